//! How a plan moves traffic to the candidate, as data: each strategy is the
//! phases it runs (which stages, with what share of traffic, held how long,
//! left how). The gates, staging, approvals, checklists, deploy windows, the
//! judge and the audit log are the same for all of them; a strategy only
//! shapes the traffic. Adding one touches this module and its tests.
//!
//! - **canary**: the plan's steps (1% → 5% → 25% → 50% → 100% by default),
//!   the candidate judged against the stable version at every step.
//! - **blue-green**: the candidate ("green") gets no user traffic while
//!   staging's smoke checks (and a shadow, if the plan asks) run against it;
//!   then every request switches in one route swap; for the bake time green is
//!   held to blue's record from before the switch (there is no concurrent
//!   control) and a regression swaps straight back; blue stays warm for the
//!   plan's keep-warm time, then the deploy hook retires it.
//! - **rolling**: the stable version's instances (its endpoints) are
//!   replaced in batches through the deploy hook: each batch is taken out of
//!   the pool and drained, redeployed with the candidate, health-checked and
//!   put back, then held while the judge compares the new instances with the
//!   old ones. `max_unavailable` and `max_surge` mean what they mean in
//!   Kubernetes: at most `max_unavailable` instances fewer than the pool serve,
//!   at most `max_surge` more exist (the candidate's own endpoints, started
//!   before the first batch and retired after the last). A failure stops and
//!   reverts the replaced instances in reverse order. The batches depend on the
//!   pool's size, so they are laid out when a rollout starts
//!   ([`rolling_steps`]).

use super::{CanaryStep, Plan};
use crate::hold::Hold;
use crate::weight::Weight;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    #[default]
    Canary,
    BlueGreen,
    Rolling,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Canary => "canary",
            Strategy::BlueGreen => "blue-green",
            Strategy::Rolling => "rolling",
        }
    }
}

/// Blue-green's own setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlueGreen {
    /// How long green is held to blue's record after the switch; a
    /// regression in it swaps back at once.
    pub bake: Hold,
}

impl Default for BlueGreen {
    fn default() -> Self {
        BlueGreen { bake: Hold::from_hours(1) }
    }
}

/// Rolling's own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rolling {
    /// How many of the pool's instances may be out of service at once.
    pub max_unavailable: usize,
    /// How many instances beyond the pool may exist at once: the candidate's
    /// own endpoints, started before the first batch and retired after the last.
    pub max_surge: usize,
    /// How long each batch is watched, new instances against old, before the next.
    pub interval: Hold,
    /// How long an instance taken out of the pool is given to finish its requests in flight.
    pub drain: Hold,
    /// How long a redeployed instance is given to answer its health check.
    pub health_timeout: Hold,
}

impl Default for Rolling {
    fn default() -> Self {
        Rolling {
            max_unavailable: 1,
            max_surge: 0,
            interval: Hold::from_secs(600),
            drain: Hold::from_secs(30),
            health_timeout: Hold::from_secs(60),
        }
    }
}

impl Rolling {
    /// Instances replaced at once: the unavailable ones plus those the surge stands in for.
    pub fn batch(&self, pool: usize, surge: usize) -> usize {
        (self.max_unavailable + surge).clamp(1, pool.max(1))
    }
}

/// The canary steps a rolling rollout runs over a pool of `pool` instances
/// with `surge` extra ones: one per batch but the last, at the share of
/// instances running the candidate once the batch is back, each held the
/// plan's interval; the last batch is replaced in full deployment (the last
/// entry), since after it no old instance is left to compare with.
pub fn rolling_steps(rolling: &Rolling, pool: usize, surge: usize) -> Vec<CanaryStep> {
    let batch = rolling.batch(pool, surge);
    let mut steps = Vec::new();
    let mut replaced = batch;
    while replaced < pool {
        steps.push(CanaryStep { percent: share(replaced + surge, pool + surge), hold: Some(rolling.interval) });
        replaced += batch;
    }
    steps.push(CanaryStep { percent: Weight::FULL, hold: None });
    steps
}

/// `part` of `whole` instances as a traffic share.
pub fn share(part: usize, whole: usize) -> Weight {
    if whole == 0 {
        return Weight::ZERO;
    }
    let bp = (part.min(whole) * 10_000) / whole;
    Weight::from_basis_points(u16::try_from(bp).unwrap_or(10_000)).unwrap_or(Weight::FULL)
}

/// One phase of a strategy, as `rollgate plan show` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    pub stage: String,
    /// The candidate's share of user traffic, in words.
    pub traffic: String,
    /// How long the phase lasts at least.
    pub hold: Option<Hold>,
    /// What moves the rollout on (or, for the last, what follows).
    pub exit: String,
}

/// The plan with its strategy's shape applied: what the state machine runs.
pub fn apply(mut plan: Plan) -> Plan {
    if plan.strategy == Strategy::BlueGreen {
        // One route swap: the machine goes from the stage before the canary straight to full deployment.
        plan.canary.steps = vec![CanaryStep { percent: Weight::FULL, hold: None }];
        plan.full.observe = plan.blue_green.bake;
        plan.full.rollback_on_regression = true;
    }
    if plan.strategy == Strategy::Rolling {
        // Instances are replaced in place: once all are, no old one is left
        // to keep warm; a rollback redeploys them, batch by batch.
        plan.full.keep_warm = Hold::ZERO;
    }
    plan
}

/// The phases the plan runs, in order.
pub fn phases(plan: &Plan) -> Vec<Phase> {
    let phase = |stage: &str, traffic: &str, hold: Option<Hold>, exit: &str| Phase {
        stage: stage.into(),
        traffic: traffic.into(),
        hold,
        exit: exit.into(),
    };
    let mut out = vec![
        phase(
            "pre-deployment",
            "none",
            None,
            "moves on when validation, documentation, infrastructure and approvals pass",
        ),
        phase("staging", "staging traffic only", None, "moves on when staging's checks and the fault drill pass"),
    ];
    let shadow_exit = match plan.shadow.mode {
        super::ShadowMode::Required => "moves on when the shadow gate passes",
        super::ShadowMode::Optional => "moves on when the shadow gate passes (a rollout may skip it when it starts)",
    };
    out.push(phase("shadow", "mirrored copies, never served", Some(plan.shadow.duration), shadow_exit));
    match plan.strategy {
        Strategy::Canary => {
            let steps = &plan.canary.steps;
            for (i, step) in steps.iter().enumerate().take(steps.len().saturating_sub(1)) {
                out.push(phase(
                    &format!("canary step {}", i + 1),
                    &format!("{}", step.percent),
                    step.hold,
                    "moves on when the hold is over with the judge satisfied (canary against stable)",
                ));
            }
            out.push(phase(
                "full deployment",
                "100%",
                Some(plan.full.observe),
                "completes when the window passes with the candidate held to the previous version's record",
            ));
        }
        Strategy::BlueGreen => out.push(phase(
            "full deployment (switched)",
            "100% in one route swap",
            Some(plan.blue_green.bake),
            "completes when the bake passes with green held to blue's record; a regression swaps back at once",
        )),
        Strategy::Rolling => {
            let r = &plan.rolling;
            let surge = if r.max_surge == 0 {
                String::new()
            } else {
                format!("; first up to {} surge instance(s) of the candidate join the pool", r.max_surge)
            };
            out.push(phase(
                "rolling batches",
                &format!(
                    "the share of instances replaced: {} at a time (max_unavailable {}, max_surge {}){surge}",
                    r.max_unavailable + r.max_surge,
                    r.max_unavailable,
                    r.max_surge
                ),
                Some(r.interval),
                "each batch: out of the pool, drained, redeployed by the deploy hook, health-checked, back in, \
                 then held with the judge satisfied (new instances against old); a failure reverts the \
                 replaced batches in reverse order",
            ));
            out.push(phase(
                "full deployment",
                "100% once the last batch is back",
                Some(plan.full.observe),
                "the last batch is replaced (and any surge retired); completes when the window passes with the \
                 candidate held to the previous version's record",
            ));
        }
    }
    let after = if plan.strategy == Strategy::Rolling {
        "every instance runs the candidate; a rollback would redeploy them with the previous version".to_string()
    } else {
        format!("the previous version is kept warm for {} for an instant rollback, then retired", plan.full.keep_warm)
    };
    out.push(phase("completed", "100%", None, &after));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blue_green_switches_once_and_bakes_against_the_record() {
        let plan = Plan { strategy: Strategy::BlueGreen, ..Plan::default() };
        let applied = apply(plan.clone());
        assert_eq!(applied.canary.steps, vec![CanaryStep { percent: Weight::FULL, hold: None }]);
        assert_eq!(applied.full.observe, BlueGreen::default().bake);
        assert!(applied.full.rollback_on_regression);
        let stages: Vec<String> = phases(&applied).into_iter().map(|p| p.stage).collect();
        assert_eq!(stages, ["pre-deployment", "staging", "shadow", "full deployment (switched)", "completed"]);
    }

    #[test]
    fn rolling_steps_follow_the_share_of_instances_replaced() {
        let rolling = Rolling::default();
        let percents = |pool, surge| -> Vec<f64> {
            rolling_steps(&rolling, pool, surge).iter().map(|s| s.percent.percent()).collect()
        };
        assert_eq!(percents(4, 0), [25.0, 50.0, 75.0, 100.0]);
        // One surge instance: two old ones go at a time, and the surge counts as new.
        let surging = Rolling { max_surge: 1, ..Rolling::default() };
        assert_eq!(surging.batch(5, 1), 2);
        let steps: Vec<f64> = rolling_steps(&surging, 5, 1).iter().map(|s| s.percent.percent()).collect();
        assert_eq!(steps, [50.0, 83.33, 100.0]);
        assert_eq!(percents(1, 0), [100.0]);
        assert!(rolling_steps(&rolling, 3, 0).iter().take(2).all(|s| s.hold == Some(rolling.interval)));
    }

    #[test]
    fn a_rolling_plan_keeps_nothing_warm_and_lists_its_batches() {
        let applied = apply(Plan { strategy: Strategy::Rolling, ..Plan::default() });
        assert_eq!(applied.full.keep_warm, Hold::ZERO);
        let stages: Vec<String> = phases(&applied).into_iter().map(|p| p.stage).collect();
        assert_eq!(stages, ["pre-deployment", "staging", "shadow", "rolling batches", "full deployment", "completed"]);
    }

    #[test]
    fn a_canary_plan_is_left_as_it_is() {
        let plan = Plan::default();
        assert_eq!(apply(plan.clone()), plan);
        let phases = phases(&plan);
        assert_eq!(phases.iter().filter(|p| p.stage.starts_with("canary step")).count(), 4);
        assert_eq!(phases[3].traffic, "1%", "{phases:?}");
    }
}
