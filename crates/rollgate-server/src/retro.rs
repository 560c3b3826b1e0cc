//! The retrospective as people read it: Markdown (for a wiki or a ticket)
//! and a self-contained HTML page made from the same Markdown. Text that
//! came from people or models (reasons, summaries) is escaped: in the HTML
//! any markup in it is shown, never run.

use rollgate_core::retro::{Retro, retrospective};
use rollgate_core::rollout::Rollout;
use rollgate_store::{Analysis, AnalysisStore, AnyStore, EventStore, StoreError};
use std::fmt::Write;

#[derive(Debug, thiserror::Error)]
pub enum RetroError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the rollout's log does not replay: {0}")]
    Log(#[from] rollgate_core::event::ReplayError),
}

/// The retrospective of rollout `id` from the store: its log and its stored
/// reports. `None` when there is no such rollout.
pub async fn build(store: &AnyStore, id: &str) -> Result<Option<Retro>, RetroError> {
    Ok(load(store, id).await?.map(|(_, retro)| retro))
}

/// The rollout as its log replays, with its retrospective.
pub async fn load(store: &AnyStore, id: &str) -> Result<Option<(Rollout, Retro)>, RetroError> {
    let events = store.read(id).await?;
    let Some(rollout) = rollgate_core::event::replay(&events)? else { return Ok(None) };
    let report = |stored: Option<rollgate_store::AnalysisRecord>| {
        stored.and_then(|s| serde_json::from_str::<serde_json::Value>(&s.report).ok())
    };
    let judge = report(store.analysis(Analysis::Judge, id).await?);
    let shadow = report(store.analysis(Analysis::Shadow, id).await?);
    let retro = retrospective(&rollout, &events, judge.as_ref(), shadow.as_ref());
    Ok(Some((rollout, retro)))
}

pub(crate) use rollgate_core::markdown::escape as text;

/// A moment as people read it: to the second, in UTC (the JSON keeps every digit).
pub(crate) fn when(t: rollgate_core::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub(crate) fn duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m"),
    }
}

pub fn markdown(r: &Retro) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Retrospective: {} {} → {} ({})\n",
        text(&r.service),
        text(&r.stable),
        text(&r.candidate),
        text(&r.rollout)
    );
    let _ = writeln!(o, "- **Outcome:** {}", text(&r.outcome_detail));
    let _ = writeln!(o, "- **Plan:** {}; requested by {}", text(&r.plan), text(&r.requester));
    if let Some(ticket) = &r.ticket {
        let _ = writeln!(o, "- **Ticket:** {}", text(ticket));
    }
    let ended = r.ended_at.map_or_else(|| "not yet".to_string(), when);
    let _ = writeln!(o, "- **Started:** {}; **ended:** {ended}", when(r.started_at));
    if let Some(n) = r.candidate_requests {
        let _ = writeln!(o, "- **Requests served by the candidate** (the judge's count): {n}");
    }
    if let Some(n) = r.shadow_pairs {
        let _ = writeln!(o, "- **Shadow pairs compared:** {n}");
    }
    let _ = writeln!(o, "- **Written from** {} events of the hash-chained log, head `{}`\n", r.events, r.head);

    let _ = writeln!(o, "## Stages\n\n| stage | entered | left | time in it |\n|---|---|---|---|");
    for s in &r.stages {
        let left = s.left_at.map_or_else(|| "-".to_string(), when);
        let _ = writeln!(o, "| {} | {} | {left} | {} |", text(&s.stage), when(s.entered_at), duration(s.seconds));
    }
    if let Some(rb) = &r.rollback {
        let _ = writeln!(o, "\n## Rollback\n");
        let _ = writeln!(o, "- **Kind:** {}, during {}, by {}", rb.kind, text(&rb.during), text(&rb.cause));
        let _ = writeln!(
            o,
            "- **Decided at:** {}; **traffic off the candidate at:** {} (the same event)",
            when(rb.decided_at),
            when(rb.traffic_off_at)
        );
        let _ = writeln!(o, "- **Candidate's share before:** {}%", rb.candidate_percent);
        if let (Some(first), Some(seconds)) = (rb.first_traffic_at, rb.exposed_seconds) {
            let _ = writeln!(
                o,
                "- **Users met the candidate from** {} until traffic left it: {}",
                when(first),
                duration(seconds)
            );
        }
        if let Some(watch) = &rb.watch {
            let _ = writeln!(o, "- **Afterwards:** {}", text(watch));
        }
    }
    if !r.verdicts.is_empty() {
        let _ = writeln!(o, "\n## The judge\n\n| at | verdict | why |\n|---|---|---|");
        for v in &r.verdicts {
            let _ = writeln!(o, "| {} | {} | {} |", when(v.at), v.verdict, text(&v.detail));
        }
        for v in r.verdicts.iter().filter(|v| !v.evidence.is_null()) {
            triggers_table(&mut o, v);
            let _ = writeln!(
                o,
                "\nEvidence of the {} verdict at {}:\n\n```json\n{}\n```",
                v.verdict,
                when(v.at),
                serde_json::to_string_pretty(&v.evidence).unwrap_or_default()
            );
        }
    }
    if let Some(drill) = &r.drill {
        let _ = writeln!(
            o,
            "\n## The staging drill\n\n```json\n{}\n```",
            serde_json::to_string_pretty(drill).unwrap_or_default()
        );
    }
    let _ = writeln!(o, "\n## Gates and evidence\n\n| gate | result | by | at | summary |\n|---|---|---|---|---|");
    for e in &r.evidence {
        let result = if e.passed { "passed" } else { "**failed**" };
        let _ =
            writeln!(o, "| {} | {result} | {} | {} | {} |", text(&e.gate), text(&e.by), when(e.at), text(&e.summary));
    }
    for (title, moments) in [("Approvals", &r.approvals), ("Overrides", &r.overrides)] {
        if !moments.is_empty() {
            let _ = writeln!(o, "\n## {title}\n");
            for m in moments {
                let _ = writeln!(o, "- {} by {}: {}", when(m.at), text(&m.by), text(&m.what));
            }
        }
    }
    let _ = writeln!(o, "\n## Timeline\n\n| at | who | what |\n|---|---|---|");
    for m in r.timeline.iter().filter(|m| m.what != "time passed") {
        let _ = writeln!(o, "| {} | {} | {} |", when(m.at), text(&m.by), text(&m.what));
    }
    let _ = writeln!(o, "\n## Still open\n");
    if r.follow_ups.is_empty() {
        let _ = writeln!(o, "Nothing.");
    }
    for f in &r.follow_ups {
        let _ = writeln!(o, "- [ ] {}", text(f));
    }
    let _ = writeln!(o, "\n## Questions for the team\n");
    for q in &r.questions {
        let _ = writeln!(o, "- {}", text(q));
    }
    o
}

/// The triggers behind a verdict, one line each, read from its evidence.
fn triggers_table(o: &mut String, v: &rollgate_core::retro::VerdictLine) {
    let Some(triggers) = v.evidence["judge"]["triggers"].as_array() else { return };
    let _ = writeln!(
        o,
        "\nThe triggers at {}:\n\n| trigger | rule | e-value | threshold | canary / baseline events | fired |\n|---|---|---|---|---|---|",
        when(v.at)
    );
    for t in triggers {
        let number = |key: &str| t[key].as_f64().map_or_else(|| "-".to_string(), |x| format!("{x:.3}"));
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} / {} | {} |",
            text(t["trigger"].as_str().unwrap_or("?")),
            text(t["rule"].as_str().unwrap_or("")),
            number("e_value"),
            number("threshold"),
            t["canary_events"],
            t["baseline_events"],
            if t["fired"] == true { "**yes**" } else { "no" }
        );
    }
}

/// The retrospective as a self-contained page.
pub fn html(r: &Retro) -> String {
    crate::page::from_markdown(&format!("Retrospective: {} {} → {}", r.service, r.stable, r.candidate), &markdown(r))
}
