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
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Canary => "canary",
            Strategy::BlueGreen => "blue-green",
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
    }
    let warm =
        format!("the previous version is kept warm for {} for an instant rollback, then retired", plan.full.keep_warm);
    out.push(phase("completed", "100%", None, &warm));
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
    fn a_canary_plan_is_left_as_it_is() {
        let plan = Plan::default();
        assert_eq!(apply(plan.clone()), plan);
        let phases = phases(&plan);
        assert_eq!(phases.iter().filter(|p| p.stage.starts_with("canary step")).count(), 4);
        assert_eq!(phases[3].traffic, "1%", "{phases:?}");
    }
}
