//! `rollgate report`: a period across rollouts, read from the store.

use crate::retro::{RetroError, duration, load, text, when};
use rollgate_core::Timestamp;
use rollgate_core::report::{PeriodReport, period};
use rollgate_store::{AnyStore, EventStore, Rollouts, is_rollout_stream};
use std::fmt::Write;

/// The report of rollouts started in `[from, to)`.
pub async fn build(store: &AnyStore, from: Timestamp, to: Timestamp) -> Result<PeriodReport, RetroError> {
    let mut rollouts = Vec::new();
    for id in store.streams().await?.into_iter().filter(|s| is_rollout_stream(s)) {
        rollouts.extend(load(store, &id).await?);
    }
    let refused = Rollouts::new(store.clone()).refused_starts().await?;
    Ok(period(from, to, &rollouts, &refused))
}

/// The report as Markdown.
pub fn markdown(r: &PeriodReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# rollgate report: {} to {}\n", when(r.from), when(r.to));
    let outcomes: Vec<String> = r.outcomes.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let _ = writeln!(
        o,
        "- **Rollouts started:** {} ({})",
        r.rollouts,
        if outcomes.is_empty() { "none".into() } else { outcomes.join(", ") }
    );
    let rollbacks: Vec<String> = r.rollbacks.iter().map(|(k, n)| format!("{n} by {k}")).collect();
    let total: u64 = r.rollbacks.values().sum();
    let _ = writeln!(
        o,
        "- **Rollbacks:** {total}{}",
        if rollbacks.is_empty() { String::new() } else { format!(" ({})", rollbacks.join(", ")) }
    );
    match r.median_time_to_detect_seconds {
        Some(s) => {
            let _ = writeln!(
                o,
                "- **Median time to detect** (the candidate's first users to the judge's rollback, {} rollbacks): {}",
                r.judge_rollbacks_timed,
                duration(s)
            );
        }
        None => {
            let _ = writeln!(o, "- **Median time to detect:** no rollback by the judge in the period");
        }
    }
    let _ = writeln!(o, "- **Bad versions stopped before full traffic (incidents prevented):** {}", r.stopped.len());
    let _ = writeln!(o, "- **Starts refused by the deploy window:** {}", r.window_refusals.len());
    if !r.stopped.is_empty() {
        let _ = writeln!(
            o,
            "\n## Stopped before full traffic\n\n| rollout | version | stopped in | share reached | never reached | its requests | stable's requests meanwhile | why |\n|---|---|---|---|---|---|---|---|"
        );
        let count = |n: Option<u64>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
        for s in &r.stopped {
            let _ = writeln!(
                o,
                "| {} | {} {} | {} | {}% | {}% | {} | {} | {} |",
                text(&s.rollout),
                text(&s.service),
                text(&s.candidate),
                text(&s.stage),
                s.reached_percent,
                s.spared_percent,
                count(s.candidate_requests),
                count(s.stable_requests),
                text(&s.cause)
            );
        }
    }
    if !r.window_refusals.is_empty() {
        let _ =
            writeln!(o, "\n## Starts refused by the deploy window\n\n| at | by | version | why |\n|---|---|---|---|");
        for f in &r.window_refusals {
            let _ = writeln!(
                o,
                "| {} | {} | {} {} | {} |",
                when(f.at),
                text(&f.by),
                text(&f.service),
                text(&f.candidate),
                text(&f.reason)
            );
        }
    }
    o
}
