//! Feature flags, evaluated as Unleash clients evaluate them, so a team's
//! toggles behave the same when they move to rollgate: a flag is on when it
//! is enabled and one of its strategies (or none) lets the context in; a
//! strategy's constraints must all hold; gradual rollouts and variants are
//! sticky, by MurmurHash3 buckets of `groupId:stickinessValue`. `ofrep`
//! turns an evaluation into OpenFeature's remote-evaluation answer.
//!
//! Pure: no clock (the caller passes the time for date constraints) and no
//! randomness of its own (the caller passes a source for the `random`
//! stickiness).

pub mod bucket;
pub mod constraint;
pub mod context;
pub mod flag;
pub mod ofrep;
pub mod strategy;
pub mod variant;

pub use context::Context;
pub use flag::{Flag, Strategy, Variant};

/// What the caller provides besides the context: the time (for date
/// constraints without `currentTime`) and random numbers (for the `random`
/// stickiness and `gradualRolloutRandom`).
pub struct Env<'a> {
    pub now: jiff::Timestamp,
    pub random: &'a mut dyn FnMut() -> u32,
}

/// Why a flag came out as it did.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation<'f> {
    /// The flag is on for this context.
    pub enabled: bool,
    /// The strategy that let the context in (none when the flag has no strategies, or is off).
    pub strategy: Option<&'f Strategy>,
    /// The variant chosen, when the flag is on and has variants.
    pub variant: Option<&'f Variant>,
    /// The answer depended on a stickiness value the context lacked and was decided at random.
    pub random: bool,
}

/// Evaluates `flag` for `ctx`.
pub fn evaluate<'f>(flag: &'f Flag, ctx: &Context, env: &mut Env<'_>) -> Evaluation<'f> {
    let off = Evaluation { enabled: false, strategy: None, variant: None, random: false };
    if !flag.enabled {
        return off;
    }
    let mut random = false;
    let strategy = if flag.strategies.is_empty() {
        None
    } else {
        let found = flag.strategies.iter().find(|s| {
            let (on, by_chance) = strategy::is_on(s, &flag.name, ctx, env);
            random |= by_chance;
            on
        });
        match found {
            Some(s) => Some(s),
            None => return Evaluation { random, ..off },
        }
    };
    // A strategy's own variants take the place of the flag's.
    let (variants, group) = match strategy.filter(|s| !s.variants.is_empty()) {
        Some(s) => (&s.variants, s.group_id(&flag.name)),
        None => (&flag.variants, flag.name.clone()),
    };
    let (variant, by_chance) = variant::select(variants, &group, ctx, env);
    Evaluation { enabled: true, strategy, variant, random: random || by_chance }
}
