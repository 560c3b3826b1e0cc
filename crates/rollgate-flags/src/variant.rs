//! Which variant a context gets: an override naming it, else a sticky
//! bucket of `group:stickinessValue` (its own hash seed) over the summed
//! weights, walked in order.

use crate::bucket::{VARIANT_SEED, normalized};
use crate::strategy::{Sticky, stickiness_value};
use crate::{Context, Env, Variant};

/// The variant for `ctx` among `variants` (none when there are none or all weigh 0), and whether chance chose it.
pub fn select<'v>(
    variants: &'v [Variant],
    group: &str,
    ctx: &Context,
    env: &mut Env<'_>,
) -> (Option<&'v Variant>, bool) {
    let total: u32 = variants.iter().map(|v| v.weight).sum();
    if total == 0 {
        return (None, false);
    }
    let overridden = variants.iter().find(|v| overrides(v, ctx));
    if overridden.is_some() {
        return (overridden, false);
    }
    let stickiness = variants.first().and_then(|v| v.stickiness.as_deref());
    let (target, random) = match stickiness_value(stickiness, ctx) {
        Sticky::Value(id) => (normalized(group, id, total, VARIANT_SEED), false),
        Sticky::Random | Sticky::Missing => ((env.random)() % total + 1, true),
    };
    let mut reached = 0;
    let chosen = variants.iter().filter(|v| v.weight > 0).find(|v| {
        reached += v.weight;
        reached >= target
    });
    (chosen, random)
}

/// Whether one of the variant's overrides names this context.
pub fn overrides(v: &Variant, ctx: &Context) -> bool {
    v.overrides.iter().any(|o| ctx.value(&o.context_name).is_some_and(|x| o.values.iter().any(|y| y == x)))
}
