#![allow(dead_code)] // each test binary uses its own part of the helpers

use rollgate_core::Timestamp;
use rollgate_core::plan::Plan;
use rollgate_core::roles::{Actor, ApprovalKind, Role};
use rollgate_core::rollout::{Command, Input};

/// Thursday 2026-11-26 09:00 UTC: a day the default window allows starts.
pub const THURSDAY: &str = "2026-11-26T09:00:00Z";

pub fn at(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

pub fn alice() -> Actor {
    Actor::new("alice", [Role::Deployer])
}

pub fn dana_admin() -> Actor {
    Actor::new("dana", [Role::Admin])
}

pub fn approver(name: &str, kind: ApprovalKind) -> Actor {
    Actor::new(name, [Role::Approver(kind)])
}

pub fn start(plan: Plan, skip_shadow: bool) -> Command {
    Command::new(
        alice(),
        Input::Start {
            rollout_id: "r1".into(),
            service: "fraud".into(),
            candidate: "v2".into(),
            stable: "v1".into(),
            plan_name: "default".into(),
            plan: Box::new(plan),
            skip_shadow,
            ticket: None,
            pool: None,
        },
    )
}
