//! The control plane's own metrics at the API's `/metrics`, in the
//! Prometheus text format: what rollouts are doing (stage, weight, the
//! judge holding for data), rollbacks, and effects waiting for a hook or a
//! person. The gateway's `/metrics` has the traffic; together they are what
//! `rollgate monitoring export`'s rules and dashboard read.

use rollgate_core::measure::prometheus_label as escape;
use rollgate_core::rollout::{ActionStatus, Rollout, Stage, Verdict};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The exposition for the configured `services` and every rollout in the store.
pub fn render<'a>(services: impl IntoIterator<Item = &'a str>, rollouts: &[Rollout]) -> String {
    let mut o = String::new();
    let active: Vec<&Rollout> = rollouts.iter().filter(|r| !r.is_terminal()).collect();
    family(&mut o, "rollgate_rollout_active", "gauge", "A rollout in progress (1), by its current stage.");
    for r in &active {
        let stage = crate::views::stage_name(&r.stage);
        let _ = writeln!(o, "rollgate_rollout_active{{{},stage=\"{stage}\"}} 1", labels(r));
    }
    family(&mut o, "rollgate_rollout_candidate_percent", "gauge", "The candidate's share of served traffic.");
    for r in &active {
        let _ = writeln!(o, "rollgate_rollout_candidate_percent{{{}}} {}", labels(r), r.weight.percent());
    }
    family(
        &mut o,
        "rollgate_judge_holding",
        "gauge",
        "1 while the judge's latest verdict in the stage is hold (not enough data to decide), else 0.",
    );
    for r in active.iter().filter(|r| r.stage.is_judged()) {
        let holding = matches!(r.verdict.as_ref().map(|v| &v.verdict), Some(Verdict::Hold { .. }));
        let _ = writeln!(o, "rollgate_judge_holding{{{}}} {}", labels(r), u8::from(holding));
    }
    // Counted from the log: every configured service has its line from the
    // start, so that `increase()` sees the first rollback too.
    let mut rollbacks: BTreeMap<&str, u64> = services.into_iter().map(|s| (s, 0)).collect();
    let mut finished: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for r in rollouts {
        let outcome = match r.stage {
            Stage::Completed => "completed",
            Stage::RolledBack { .. } => "rolled_back",
            Stage::Aborted { .. } => "aborted",
            _ => continue,
        };
        *finished.entry((&r.service, outcome)).or_default() += 1;
        if outcome == "rolled_back" {
            *rollbacks.entry(&r.service).or_default() += 1;
        }
    }
    family(&mut o, "rollgate_rollbacks_total", "counter", "Rollouts rolled back, by the judge or a person.");
    for (service, n) in &rollbacks {
        let _ = writeln!(o, "rollgate_rollbacks_total{{service=\"{}\"}} {n}", escape(service));
    }
    family(&mut o, "rollgate_rollouts_finished_total", "counter", "Rollouts that ended, by outcome.");
    for ((service, outcome), n) in &finished {
        let _ = writeln!(
            o,
            "rollgate_rollouts_finished_total{{service=\"{}\",outcome=\"{outcome}\"}} {n}",
            escape(service)
        );
    }
    family(
        &mut o,
        "rollgate_pending_actions",
        "gauge",
        "Effects decided but not done (redeploy, retire, archive, close the ticket), by who must act: a hook or a person.",
    );
    for r in rollouts {
        for a in r.open_actions() {
            let waiting = if matches!(a.status, ActionStatus::WaitingForPerson { .. }) { "person" } else { "hook" };
            let _ = writeln!(
                o,
                "rollgate_pending_actions{{{},action=\"{}\",waiting=\"{waiting}\"}} 1",
                labels(r),
                escape(&a.id)
            );
        }
    }
    o
}

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn labels(r: &Rollout) -> String {
    format!("service=\"{}\",rollout=\"{}\"", escape(&r.service), escape(&r.id))
}
