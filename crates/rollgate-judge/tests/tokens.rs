//! A chat model's token triggers: a canary whose first tokens come twice as
//! late, or whose tokens come at half the rate, is rolled back on that
//! trigger with its evidence; a healthy one is not; a judge that does not
//! judge tokens ignores them; and a stored judge goes on with them.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rollgate_judge::{ArmTick, Judge, JudgeConfig, Samples, Tick, Verdict};

/// Lognormal-ish durations around `median_us` (spread x0.6..x1.6).
fn durations(rng: &mut ChaCha8Rng, n: usize, median_us: f64) -> Vec<u32> {
    (0..n).map(|_| (median_us * (0.6 + rng.random::<f64>())) as u32).collect()
}

struct Arm {
    requests: u64,
    latencies: Vec<u32>,
    ttft: Vec<u32>,
    per_token: Vec<u32>,
}

impl Arm {
    fn new(rng: &mut ChaCha8Rng, requests: u64, ttft_us: f64, token_us: f64) -> Arm {
        let n = requests as usize;
        Arm {
            requests,
            // End-to-end latency alike on both arms: only the token measures differ.
            latencies: durations(rng, n, 2_000_000.0),
            ttft: durations(rng, n, ttft_us),
            per_token: durations(rng, n, token_us),
        }
    }

    fn tick(&self) -> ArmTick<'_> {
        ArmTick {
            requests: self.requests,
            errors: 0,
            saturated: 0,
            latencies_us: &self.latencies,
            latency_population: self.requests,
            ttft: Samples { values_us: &self.ttft, population: self.requests },
            per_token: Samples { values_us: &self.per_token, population: self.requests },
        }
    }
}

/// Runs a 20% canary at 50 answers a second for up to `seconds`; the second it was rolled back, and on what.
fn run(config: JudgeConfig, ttft_ratio: f64, token_ratio: f64, seconds: u64) -> (Option<(u64, String)>, Judge) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut judge = Judge::new(config);
    for t in 0..seconds {
        let canary = Arm::new(&mut rng, 10, 300_000.0 * ttft_ratio, 20_000.0 * token_ratio);
        let baseline = Arm::new(&mut rng, 40, 300_000.0, 20_000.0);
        let tick =
            Tick { at_ms: t * 1000, weight: 0.2, canary: canary.tick(), baseline: baseline.tick(), ..Tick::default() };
        if let Verdict::Rollback { trigger, .. } = judge.tick(&tick) {
            return (Some((t, trigger.clone())), judge);
        }
    }
    (None, judge)
}

fn chat() -> JudgeConfig {
    JudgeConfig::default().judging_tokens(true)
}

#[test]
fn twice_the_time_to_first_token_is_rolled_back_on_that_trigger_with_its_evidence() {
    let (rolled, judge) = run(chat(), 2.2, 1.0, 1200);
    let (at, trigger) = rolled.expect("a canary with 2.2x the time to first token was never rolled back");
    assert_eq!(trigger, "ttft");
    // The reference needs its first minute of baseline; then evidence mounts within minutes.
    assert!(at < 600, "rolled back after {at} s");
    let report = judge.report();
    let ttft = report.triggers.iter().find(|t| t.trigger == "ttft").unwrap();
    assert!(ttft.fired && ttft.e_value.unwrap() >= ttft.threshold.unwrap(), "{ttft:?}");
    assert!(ttft.rule.contains("time to first token > 2x"), "{}", ttft.rule);
    let Verdict::Rollback { reason, .. } = &report.verdict else { unreachable!() };
    assert!(reason.contains("first tokens slower than"), "{reason}");
}

#[test]
fn half_the_tokens_per_second_is_rolled_back_on_that_trigger() {
    let (rolled, judge) = run(chat(), 1.0, 2.5, 1200);
    assert_eq!(rolled.map(|(_, t)| t).as_deref(), Some("tokens_per_second"));
    let Verdict::Rollback { reason, .. } = judge.verdict() else { unreachable!() };
    assert!(reason.contains("tokens/s"), "{reason}");
}

#[test]
fn a_healthy_chat_canary_is_not_rolled_back_and_a_judge_without_token_triggers_ignores_them() {
    assert_eq!(run(chat(), 1.0, 1.0, 1200).0, None);
    let (rolled, judge) = run(JudgeConfig::default(), 3.0, 3.0, 1200);
    assert_eq!(rolled, None, "a judge of a non-chat service has no token triggers");
    assert!(judge.report().triggers.iter().all(|t| t.trigger != "ttft"));
}

#[test]
fn a_stored_chat_judge_goes_on_with_its_token_evidence() {
    let (_, judge) = run(chat(), 2.2, 1.0, 90);
    let state = serde_json::to_string(&judge.snapshot()).unwrap();
    let restored = Judge::restore(chat(), serde_json::from_str(&state).unwrap()).unwrap();
    let e = |j: &Judge| j.report().triggers.iter().find(|t| t.trigger == "ttft").and_then(|t| t.e_value);
    assert!(e(&judge).is_some());
    assert_eq!(e(&restored), e(&judge));
}
