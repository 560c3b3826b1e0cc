//! Whether a strategy lets a context in: its constraints all hold, and its
//! own rule (everyone, listed users, a sticky percentage, listed addresses).
//! An unknown strategy lets nobody in.

use crate::bucket::in_rollout;
use crate::{Context, Env, Strategy};

/// Whether `s` (of flag `flag`) lets `ctx` in, and whether chance decided it.
pub fn is_on(s: &Strategy, flag: &str, ctx: &Context, env: &mut Env<'_>) -> (bool, bool) {
    if !s.constraints.iter().all(|c| c.holds(ctx, env.now)) {
        return (false, false);
    }
    let group = s.group_id(flag);
    match s.name.as_str() {
        "default" => (true, false),
        "userWithId" => {
            let listed = s.parameter("userIds").unwrap_or_default();
            (ctx.user_id.as_deref().is_some_and(|u| listed.split(',').any(|x| x.trim() == u)), false)
        }
        "gradualRolloutUserId" => {
            (ctx.user_id.as_deref().is_some_and(|u| in_rollout(&group, u, s.percent("percentage"))), false)
        }
        "gradualRolloutSessionId" => {
            (ctx.session_id.as_deref().is_some_and(|id| in_rollout(&group, id, s.percent("percentage"))), false)
        }
        "gradualRolloutRandom" => (chance(env) <= s.percent("percentage"), true),
        "flexibleRollout" => {
            let percent = s.percent("rollout");
            match stickiness_value(s.parameter("stickiness").as_deref(), ctx) {
                Sticky::Value(id) => (in_rollout(&group, id, percent), false),
                Sticky::Random => (chance(env) <= percent, true),
                Sticky::Missing => (false, false),
            }
        }
        "remoteAddress" => {
            let listed = s.parameter("IPs").unwrap_or_default();
            (
                ctx.remote_address.as_deref().is_some_and(|a| listed.split(',').any(|x| address_matches(x.trim(), a))),
                false,
            )
        }
        _ => (false, false),
    }
}

/// A number from 1 to 100, uniformly.
fn chance(env: &mut Env<'_>) -> u32 {
    (env.random)() % 100 + 1
}

/// What a stickiness setting buckets by in a context.
pub enum Sticky<'c> {
    Value(&'c str),
    /// `default` with neither a user nor a session id, or `random`.
    Random,
    /// A named field the context lacks: nobody is bucketed.
    Missing,
}

pub fn stickiness_value<'c>(stickiness: Option<&str>, ctx: &'c Context) -> Sticky<'c> {
    match stickiness.unwrap_or("default") {
        "default" => ctx.user_id.as_deref().or(ctx.session_id.as_deref()).map_or(Sticky::Random, Sticky::Value),
        "random" => Sticky::Random,
        field => ctx.value(field).map_or(Sticky::Missing, Sticky::Value),
    }
}

/// An address against an entry: the same address, or inside the entry's CIDR range.
fn address_matches(entry: &str, address: &str) -> bool {
    if entry == address {
        return true;
    }
    let (Some((net, bits)), Ok(addr)) = (entry.split_once('/'), address.parse::<std::net::IpAddr>()) else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<std::net::IpAddr>(), bits.parse::<u32>()) else { return false };
    let prefix = |width: u32, a: u128, b: u128| bits <= width && (bits == 0 || (a ^ b) >> (width - bits) == 0);
    match (net, addr) {
        (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => prefix(32, u32::from(n).into(), u32::from(a).into()),
        (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => prefix(128, u128::from(n), u128::from(a)),
        _ => false,
    }
}
