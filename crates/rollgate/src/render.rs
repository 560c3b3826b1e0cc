//! Text for people: plans as outlines, rollouts as status pages.

use rollgate_core::Timestamp;
use rollgate_core::plan::strategy::{self, Strategy};
use rollgate_core::plan::{ChecklistKind, GateCategory, GateSet, Plan, ShadowMode};
use rollgate_core::rollout::Effect;
use rollgate_server::views::RolloutView;
use std::fmt::Write;

fn gates<C: GateCategory>(out: &mut String, title: &str, set: &GateSet<C>) {
    let _ = writeln!(out, "   {title}:");
    for (id, spec) in set.iter() {
        let need = if spec.required { "required" } else { "optional" };
        let criteria: Vec<String> = spec.criteria.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        let criteria = if criteria.is_empty() { String::new() } else { format!(" [{}]", criteria.join(", ")) };
        let _ = writeln!(out, "     - {id:<42} {need:<9} {}{criteria}", spec.description);
    }
}

fn checklist(out: &mut String, plan: &Plan, kind: ChecklistKind) {
    let _ = writeln!(out, "   checklist {kind}:");
    for item in plan.checklists.list(kind) {
        let how = if item.proof.is_empty() {
            "ticked by a person".to_string()
        } else {
            format!("ticks itself on {}", item.proof.join(" + "))
        };
        let _ = writeln!(out, "     [ ] {:<45} ({how})", item.text);
    }
}

/// The whole plan, stage by stage, with every number it uses.
pub fn plan(name: &str, plan: &Plan) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "plan {name}: {}", plan.description);
    let auto = if plan.auto_promote { "automatic when a stage's gates pass" } else { "by `promote` only" };
    let _ = writeln!(o, "promotion: {auto}");
    let _ = writeln!(o, "strategy: {}", plan.strategy.as_str());
    for (i, p) in strategy::phases(plan).iter().enumerate() {
        let hold = p.hold.map_or(String::new(), |h| format!(", at least {h}"));
        let _ = writeln!(o, "  {}. {}: {}{hold}; {}", i + 1, p.stage, p.traffic, p.exit);
    }
    let _ = writeln!(o);
    let p = &plan.pre_deployment;
    let _ = writeln!(o, "1. pre-deployment");
    gates(&mut o, "model validation", &p.validation);
    gates(&mut o, "documentation", &p.documentation);
    gates(&mut o, "infrastructure", &p.infrastructure);
    let required: Vec<String> = p.approvals.required().iter().map(ToString::to_string).collect();
    let _ = writeln!(o, "   approvals (never by the requester): {}", required.join(", "));
    checklist(&mut o, plan, ChecklistKind::PreDeployment);
    let _ = writeln!(
        o,
        "\n2. staging (exit: no blocking issues, performance acceptable, all tests pass, monitoring working)"
    );
    gates(&mut o, "tests", &plan.staging.gates);
    let mode = match plan.shadow.mode {
        ShadowMode::Required => "required",
        ShadowMode::Optional => "optional: a rollout may skip it when started",
    };
    let sh = &plan.shadow;
    let _ =
        writeln!(o, "\n3. shadow ({mode}): mirror {} of traffic for {}, never served", sh.mirror_percent, sh.duration);
    let model = sh.model.as_ref().map_or(String::new(), |m| format!(", copies ask for model `{m}`"));
    let _ = writeln!(
        o,
        "   compare: {} comparator; production asked twice on {} of copies (its noise floor){model}",
        format!("{:?}", sh.compare.comparator).to_lowercase(),
        sh.noise_percent
    );
    let _ = writeln!(
        o,
        "   gate: block when the candidate disagrees more than {:.1}% beyond production's own disagreement \
         (false blocks at most {:.0}%), after at least {} pairs; keeps {} redacted examples",
        sh.max_excess_disagreement * 100.0,
        sh.false_block_budget * 100.0,
        sh.min_pairs,
        sh.examples
    );
    gates(&mut o, "comparison", &plan.shadow.gates);
    checklist(&mut o, plan, ChecklistKind::DeploymentDay);
    match plan.strategy {
        Strategy::Canary => {
            let _ =
                writeln!(o, "\n4. canary (each step moves on only if stable: holds over, judge healthy, window open)");
            for ((weight, starts), step) in plan.canary.schedule().into_iter().zip(&plan.canary.steps) {
                let hours = starts.as_secs() as f64 / 3600.0;
                let then = match step.hold {
                    Some(hold) => format!("hold {hold}, then the next step if stable"),
                    None => "full deployment".to_string(),
                };
                let _ = writeln!(o, "     hour {hours:>4}: {weight:>5}  {then}");
            }
        }
        Strategy::BlueGreen => {
            let _ = writeln!(
                o,
                "\n4. blue-green switch: green has no user traffic until here, then 100% in one route swap;\n   \
                 for {} green is held to blue's record from before the switch, and a regression swaps back at once",
                plan.blue_green.bake
            );
        }
        Strategy::Rolling => {
            let r = &plan.rolling;
            let _ = writeln!(
                o,
                "\n4. rolling: the stable version's instances are replaced {} at a time (max_unavailable {}, max_surge {});\n   \
                 each batch is drained (up to {}), redeployed by the deploy hook, health-checked (up to {}), put back,\n   \
                 then held {} while the judge compares new instances with old; a failure reverts the replaced\n   \
                 batches in reverse order",
                r.max_unavailable + r.max_surge,
                r.max_unavailable,
                r.max_surge,
                r.drain,
                r.health_timeout,
                r.interval
            );
        }
    }
    let r = &plan.rollback;
    let _ = writeln!(o, "   rollback triggers:");
    let _ = writeln!(o, "     - error rate > {}x baseline", r.error_rate_ratio);
    let _ = writeln!(o, "     - latency p{} > {}x baseline", r.latency_quantile * 100.0, r.latency_ratio);
    let _ = writeln!(o, "     - quality: bad-output rate > {}x baseline", r.quality_ratio);
    let _ = writeln!(o, "     - complaints per user > {}x baseline", r.complaint_ratio);
    let _ = writeln!(
        o,
        "     - chat models (openai-chat): time to first token p{q} > {}x baseline, output tokens/s p{} < {}x baseline",
        r.ttft_ratio,
        100.0 - r.ttft_quantile * 100.0,
        r.tokens_per_second_ratio,
        q = r.ttft_quantile * 100.0
    );
    let _ = writeln!(o, "     - {} consecutive failed health checks of the candidate", r.health_check_failures);
    let _ = writeln!(
        o,
        "     - resource exhaustion: over {}% of requests time out or are refused (429/503)",
        r.max_saturation * 100.0
    );
    for m in &r.external {
        let bound = match (m.max, m.max_ratio) {
            (_, Some(ratio)) => format!("> {ratio}x the baseline's"),
            (Some(max), None) => format!("> {max}"),
            (None, None) => "(no bound)".into(),
        };
        let _ = writeln!(o, "     - external `{}`: the canary's `{}` {bound} (every {})", m.name, m.query, m.interval);
    }
    let _ = writeln!(
        o,
        "     judged continuously: at least {} canary events per trigger, latency ignores {} after each weight change",
        r.min_canary_events, r.warm_up
    );
    let kind = if r.full_rollback {
        "full (redeploy the previous version, retire the candidate)"
    } else {
        "quick (traffic back to stable, candidate kept for investigation)"
    };
    let _ =
        writeln!(o, "     false-rollback budget {}%; automatic rollbacks are {kind}", r.false_rollback_budget * 100.0);
    let _ = writeln!(
        o,
        "     manual rollback at any time with a reason: quality, complaints, harmful outputs, security, other"
    );
    if r.watch.duration().is_zero() {
        let _ = writeln!(o, "     after a rollback the version that came back is not watched");
    } else {
        let _ = writeln!(
            o,
            "     after a rollback the version that came back is watched for {} against its own record before",
            r.watch
        );
    }
    let f = &plan.full;
    let _ = writeln!(
        o,
        "\n5. full deployment: previous version kept warm for {}; metrics observed for {} before closing",
        f.keep_warm, f.observe
    );
    gates(&mut o, "post-deployment checks", &f.gates);
    checklist(&mut o, plan, ChecklistKind::PostDeployment);
    let w = &plan.window;
    let days = |d: &[rollgate_core::window::Day]| {
        if d.is_empty() { "none".to_string() } else { d.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ") }
    };
    let _ = writeln!(
        o,
        "\ndeploy window ({}): no starts on {}; no traffic changes on {}",
        w.timezone,
        days(&w.no_start_on),
        days(&w.no_traffic_changes_on)
    );
    for freeze in &w.freezes {
        let _ = writeln!(o, "   freeze {} → {} {}", freeze.from, freeze.until, freeze.reason);
    }
    o
}

/// "canary step 2 at 5% on v2 (paused by …)"
pub fn stage_line(r: &RolloutView) -> String {
    let mut line = r.stage_label.clone();
    if r.candidate_percent > 0.0 || matches!(r.stage.as_str(), "canary" | "full") {
        let _ = write!(line, " at {}% on {}", r.candidate_percent, r.candidate);
    }
    if let Some(share) = r.mirroring_percent {
        let _ = write!(line, ", mirroring {share}%");
    }
    if let Some(outcome) = &r.outcome {
        let _ = write!(line, ": {outcome}");
    }
    if let Some(p) = &r.paused {
        let _ = write!(line, " (paused by {}: {})", p.by, p.reason);
    }
    if let Some(w) = &r.waiting_for_window {
        let _ = write!(line, " (waiting: {w})");
    }
    line
}

pub fn effects(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .map(|e| match e {
            Effect::SetWeights { service, candidate, candidate_weight, .. } => {
                format!("traffic: {service} sends {candidate_weight} to {candidate}")
            }
            Effect::StartMirroring { service, shadow, share } => {
                format!("shadow: mirror {share} of {service} to {shadow}")
            }
            Effect::StopMirroring { service } => format!("shadow: stop mirroring {service}"),
            Effect::StartStaging { service, candidate } => format!("staging: deploy {service} {candidate} to staging"),
            Effect::ScheduleTimer { at } => format!("timer at {at}"),
            Effect::KeepWarm { version, until, .. } => format!("keep {version} warm until {until}"),
            Effect::Redeploy { service, version } => format!("redeploy {service} {version}"),
            Effect::Retire { service, version } => format!("retire {service} {version}"),
            Effect::Notify { message, .. } => format!("notify: {message}"),
            Effect::Archive => "archive the rollout's artifacts".to_string(),
            Effect::CloseTicket { ticket, outcome, .. } => format!("close ticket {ticket}: {outcome}"),
            Effect::Instances { service, op, version, endpoints, .. } => {
                format!("instances: {op} {} of {service} ({version})", endpoints.join(", "))
            }
        })
        .collect()
}

/// A bar of `width` cells, `done` of `total` filled.
fn bar(done: f64, total: f64, width: usize) -> String {
    let filled = if total > 0.0 { ((done / total).clamp(0.0, 1.0) * width as f64).round() as usize } else { width };
    format!("[{}{}]", "█".repeat(filled), "░".repeat(width - filled))
}

/// The current step and hold as progress bars: what `status --watch` redraws.
pub fn progress(r: &RolloutView) -> String {
    let mut o = String::new();
    if let Some(step) = r.canary_step {
        let _ = writeln!(
            o,
            "canary step {step}/{} {} {}% on {}",
            r.canary_steps,
            bar(f64::from(step), f64::from(r.canary_steps), 20),
            r.candidate_percent,
            r.candidate
        );
    }
    let hold = r.hold_ends_at.as_deref().map(str::parse::<Timestamp>);
    if let (Ok(now), Ok(began), Some(Ok(until))) =
        (r.as_of.parse::<Timestamp>(), r.stage_entered_at.parse::<Timestamp>(), hold)
    {
        let (total, done) = ((until - began).as_secs_f64(), (now - began).as_secs_f64());
        let left = (until - now).as_secs().max(0);
        let _ = writeln!(
            o,
            "hold          {} {}h{:02}m left (ends {until})",
            bar(done, total, 20),
            left / 3600,
            (left % 3600) / 60
        );
    }
    o
}

/// A rollout's status page.
pub fn status(r: &RolloutView) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "rollout {}: {} {} → {} (plan {}, requested by {})",
        r.id, r.service, r.stable, r.candidate, r.plan, r.requester
    );
    let _ = writeln!(o, "stage: {} since {}", stage_line(r), r.stage_entered_at);
    let _ =
        writeln!(o, "traffic: {} {}%, {} {}%", r.stable, 100.0 - r.candidate_percent, r.candidate, r.candidate_percent);
    o.push_str(&progress(r));
    if let Some(warm) = &r.warm {
        let state = if warm.warm { "kept warm (no traffic, probed) until" } else { "was kept warm until" };
        let _ = writeln!(o, "previous version: {} {state} {}", warm.version, warm.until);
    }
    if let Some(ticket) = &r.ticket {
        let _ = writeln!(o, "ticket: {ticket}");
    }
    if let Some(w) = &r.watch {
        let summary = w.summary.as_deref().unwrap_or("");
        let line = match w.status.as_str() {
            "watching" => {
                format!("watching {} until {} against its own record before the rollback", w.version, w.until)
            }
            "stable" => format!("{} stable since {}: {summary}", w.version, w.from),
            _ => format!("ALERT: {} is not healthy either: {summary}", w.version),
        };
        let _ = writeln!(o, "after the rollback: {line}");
    }
    if !r.actions.is_empty() {
        let _ = writeln!(
            o,
            "
actions ({} open):",
            r.open_actions
        );
        for a in &r.actions {
            let mark = match a.status.as_str() {
                "done" => "✓",
                "waiting_for_person" => "!",
                _ => "…",
            };
            let _ = writeln!(o, "  {mark} {} ({}): {}", a.id, a.status.replace('_', " "), a.detail);
            if a.status == "waiting_for_person" {
                let _ = writeln!(
                    o,
                    "      when done: rollgate rollout confirm-effect {} {} --note \"what you did\"",
                    r.id, a.id
                );
            }
            for run in a.runs.iter().filter(|run| !run.ok) {
                let _ = writeln!(o, "      run {} failed via {}: {}", run.attempt, run.via, run.detail);
            }
        }
    }
    if !r.gates.is_empty() {
        let _ = writeln!(o, "\ngates to leave {}:", r.stage_label);
        for g in &r.gates {
            let mark = match g.status.as_str() {
                "passed" => "✓",
                "failed" => "✗",
                _ => "…",
            };
            let optional = if g.blocking { "" } else { " (optional)" };
            let _ = writeln!(o, "  {mark} {}: {}{optional}", g.gate, g.detail);
        }
    }
    for list in &r.checklists {
        let done = list.items.iter().filter(|i| i.done).count();
        let _ = writeln!(o, "\nchecklist {}: {done}/{} done", list.checklist, list.items.len());
        for item in &list.items {
            let how = item.how.as_ref().map(|h| format!(" ({h})")).unwrap_or_default();
            let _ = writeln!(o, "  [{}] {}{how}", if item.done { "x" } else { " " }, item.text);
        }
    }
    if let Some(judge) = &r.judge {
        o.push_str(&judge_report(judge));
    }
    let _ = writeln!(o, "\nhistory:");
    for visit in &r.history {
        let _ = writeln!(o, "  {}  {}", visit.entered_at, visit.stage);
    }
    for forced in &r.overrides {
        let _ = writeln!(
            o,
            "  override by {} at {} leaving {}: {} (bypassed {})",
            forced.by,
            forced.at,
            forced.from,
            forced.reason,
            forced.bypassed.join("; ")
        );
    }
    let failed: Vec<_> = r.notifications.iter().filter(|n| !n.delivered).collect();
    if !failed.is_empty() {
        let _ = writeln!(o, "\nnotifications not delivered:");
        for n in failed {
            let state = if n.gave_up { "gave up" } else { "retrying" };
            let _ = writeln!(
                o,
                "  {} → {}: {state} after {} attempt(s): {}",
                n.id,
                n.sink,
                n.attempts,
                n.last_error.as_deref().unwrap_or("-")
            );
        }
    }
    o
}

/// The judge's live report (as the API sends it): the verdict, then one line per trigger.
fn judge_report(j: &serde_json::Value) -> String {
    let mut o = String::new();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_string();
    let verdict = &j["verdict"];
    let why = verdict.get("reason").map(|r| format!(": {}", text(r))).unwrap_or_default();
    let _ = writeln!(
        o,
        "\njudge: {}{why} (canary weight {:.2}%, {} canary / {} baseline requests)",
        text(&verdict["verdict"]),
        j["weight"].as_f64().unwrap_or(0.0) * 100.0,
        j["canary_requests"],
        j["baseline_requests"]
    );
    for t in j["triggers"].as_array().into_iter().flatten() {
        let mark = if t["fired"].as_bool() == Some(true) { "✗" } else { "·" };
        let evidence = match (t["e_value"].as_f64(), t["threshold"].as_f64()) {
            (Some(e), Some(bar)) => format!("e-value {e:.2} of {bar:.0}"),
            _ => text(&t["detail"]),
        };
        let bound = |b: &serde_json::Value| b.as_f64().map_or("?".into(), |v| format!("{v:.2}"));
        let cs = t["confidence"]
            .as_object()
            .map_or(String::new(), |c| format!(", ratio in [{}, {}]", bound(&c["lower"]), bound(&c["upper"])));
        let guard = if t["guard_met"].as_bool() == Some(true) {
            String::new()
        } else {
            format!(" (waiting: {})", text(&t["guard"]))
        };
        let _ = writeln!(
            o,
            "  {mark} {:<14} {evidence}; events {} canary / {} baseline{cs}{guard}",
            text(&t["trigger"]),
            t["canary_events"],
            t["baseline_events"]
        );
    }
    for warning in j["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(o, "  ! {}", text(warning));
    }
    o
}

/// Where a rollout's archive is, from its archive action's run.
pub fn archive(r: &RolloutView, json: bool) -> anyhow::Result<()> {
    let action = r.actions.iter().find(|a| a.effect == "archive");
    let run = action.and_then(|a| a.runs.iter().find(|run| run.ok));
    match (action, run) {
        (_, Some(run)) if json => println!("{}", run.details),
        (_, Some(run)) => println!(
            "{}: archived to {} (MANIFEST.json sha256 {}, {} bytes; `rollgate archive verify` checks it)",
            r.id,
            run.details["path"].as_str().unwrap_or("?"),
            run.details["sha256"].as_str().unwrap_or("?"),
            run.details["bytes"]
        ),
        (Some(a), None) => {
            return Err(crate::Refused(format!(
                "{}: the archive is not written yet ({}: {})",
                r.id, a.status, a.detail
            ))
            .into());
        }
        (None, None) => {
            return Err(crate::Refused(format!(
                "{}: no archive: a rollout is archived when it completes (it is {})",
                r.id, r.stage_label
            ))
            .into());
        }
    }
    Ok(())
}
