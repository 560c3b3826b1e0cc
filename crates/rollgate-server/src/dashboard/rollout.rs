//! A rollout's page: where it is and how healthy, the stage timeline with
//! every gate and its evidence, live charts of canary against baseline, the
//! judge's decision trace (e-values against thresholds, confidence
//! sequences, guards, a forecast), the actions the signed-in person may take,
//! and the event log with a verify-chain button.
//!
//! `/rollouts/{id}/live` serves what changes (the status and judge blocks,
//! rendered by the same functions as the page, and the trace for the charts),
//! which the page's script polls.

use super::layout::{csrf_field, duration, refusal, status_badge};
use super::{Dashboard, Signed};
use crate::api::calls;
use crate::api::problem::ApiError;
use crate::views::RolloutView;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use rollgate_core::roles::{ApprovalKind, Role};
use rollgate_core::rollout::Rollout;
use rollgate_judge::trace::{Forecast, Trace, forecast};
use rollgate_store::{Analysis, AnalysisStore};
use serde::Serialize;

/// How a rollout is doing, in a word a person reads at a glance.
pub struct Health {
    class: &'static str,
    label: String,
    why: Option<String>,
}

impl Health {
    pub fn of(v: &RolloutView) -> Health {
        let verdict = v.judge.as_ref().and_then(|j| j.get("verdict"));
        let kind = verdict.and_then(|x| x.get("verdict")).and_then(|x| x.as_str());
        let reason = verdict.and_then(|x| x.get("reason")).and_then(|x| x.as_str()).map(str::to_string);
        let (class, label, why) = match v.stage.as_str() {
            "completed" => ("healthy", "completed".to_string(), None),
            // The outcome says why, next to the badge.
            "rolled_back" => ("bad", "rolled back".to_string(), None),
            "aborted" => ("muted", "aborted".to_string(), None),
            _ if v.paused.is_some() => ("holding", "paused".to_string(), v.paused.as_ref().map(|p| p.reason.clone())),
            _ => match kind {
                Some("rollback") => ("bad", "rolling back".to_string(), reason),
                Some("hold") => ("holding", "holding: not enough data".to_string(), reason),
                Some(_) => ("healthy", "healthy".to_string(), None),
                None => ("muted", "not judged in this stage".to_string(), None),
            },
        };
        Health { class, label, why }
    }

    pub fn badge(&self) -> Markup {
        html! { span class={ "badge " (self.class) } title=[self.why.as_deref()] { (self.label) } }
    }
}

/// Time left in the stage's hold, in words.
pub fn hold_left(v: &RolloutView) -> String {
    match seconds_until(v.hold_ends_at.as_deref(), &v.as_of) {
        Some(left) if left > 0.0 => duration(left),
        Some(_) => "hold over".into(),
        None => "—".into(),
    }
}

/// Seconds from `now` to `at` (both as the API writes timestamps).
fn seconds_until(at: Option<&str>, now: &str) -> Option<f64> {
    let at: rollgate_core::Timestamp = at?.parse().ok()?;
    let now: rollgate_core::Timestamp = now.parse().ok()?;
    Some(at.duration_since(now).as_secs_f64())
}

/// What the page's script polls.
#[derive(Serialize)]
pub struct Live {
    status_html: String,
    judge_html: String,
    chat: bool,
    trace: Trace,
}

struct Loaded {
    rollout: Rollout,
    view: RolloutView,
    trace: Trace,
    forecast: Option<Forecast>,
    chat: bool,
}

async fn load(dashboard: &Dashboard, id: &str) -> Result<Loaded, ApiError> {
    let app = &dashboard.app;
    let rollout = app.rollout(id).await?.ok_or_else(|| ApiError::not_found(format!("no rollout `{id}`")))?;
    let view = app.view_of(&rollout).await?;
    let trace: Trace = app
        .store()
        .analysis(Analysis::Trace, id)
        .await?
        .and_then(|t| serde_json::from_str(&t.report).ok())
        .unwrap_or_default();
    // An ended rollout has no decision left to forecast.
    let forecast = view.judge.as_ref().filter(|_| !view.terminal).map(|judge| {
        let canary_requests = judge.get("canary_requests").and_then(|x| x.as_u64()).unwrap_or(0);
        forecast(&trace, canary_requests, rollout.plan.rollback.min_canary_requests)
    });
    let chat = app.config().serves_chat(&rollout.service);
    Ok(Loaded { rollout, view, trace, forecast, chat })
}

pub async fn page(State(dashboard): State<Dashboard>, signed: Signed, Path(id): Path<String>) -> Response {
    let back = format!("/rollouts/{}", super::layout::url_encode(&id));
    let loaded = match load(&dashboard, &id).await {
        Ok(loaded) => loaded,
        Err(error) => return refusal(Some(&signed), &error, "/audit"),
    };
    let events = match calls::events(&dashboard.app, &id).await {
        Ok(events) => events,
        Err(error) => return refusal(Some(&signed), &error, &back),
    };
    let shadow = dashboard
        .app
        .store()
        .analysis(Analysis::Shadow, &id)
        .await
        .ok()
        .flatten()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s.report).ok());
    let v = &loaded.view;
    let body = html! {
        h1 { (v.id) }
        p.meta {
            (v.service) ": " strong { (v.stable) } " → " strong { (v.candidate) }
            " · plan " (v.plan) " (" (v.strategy) ") · requested by " (v.requester) " · started " (v.started_at)
            @if let Some(ticket) = &v.ticket { " · ticket " (ticket) }
        }
        div #live-status aria-live="polite" { (status_block(&loaded)) }
        (actions_block(&signed, v))
        section #charts aria-labelledby="charts-h" data-rollout=(v.id) data-chat=(loaded.chat) data-points=(loaded.trace.points.len()) {
            h2 #charts-h { "Canary against baseline" }
            @if loaded.trace.points.is_empty() {
                p.muted #charts-empty { "No measurements yet: the charts start when the judge first watches this rollout's traffic (a canary step or full deployment)." }
            }
            div.charts {
                @for (chart, title) in charts(loaded.chat) {
                    figure.chart {
                        figcaption { (title) }
                        @if chart == "ratio" { p.muted.note { "A trigger's line appears once its ratio has a bound, after its first events." } }
                        div.plot #{ "chart-" (chart) } {}
                    }
                }
            }
        }
        section aria-labelledby="judge-h" {
            h2 #judge-h { "The judge's decision trace" }
            div #judge-now { (judge_block(&loaded)) }
        }
        section aria-labelledby="timeline-h" { h2 #timeline-h { "Stages" } (timeline(&loaded.rollout, v)) }
        (gates_block(v))
        (evidence_block(v, shadow.as_ref()))
        (people_block(&signed, v))
        (effects_block(&signed, v))
        section #events aria-labelledby="events-h" {
            h2 #events-h { "Event log" }
            form method="get" action="/audit" {
                button type="submit" { "Verify the chain" }
            }
            table.wide.events {
                thead { tr { th { "#" } th { "At" } th { "Who" } th { "What" } th { "Details" } } }
                tbody {
                    @for e in events.iter().rev() {
                        tr {
                            td { (e.seq) }
                            td { (e.at) }
                            td { (e.actor) }
                            td { (e.input.get("type").and_then(|t| t.as_str()).unwrap_or("?")) }
                            td { details { summary { "input and effects" } pre { (pretty(&e.input)) "\n" (pretty(&e.effects)) } } }
                        }
                    }
                }
            }
        }
    };
    super::layout::page(&v.id, Some(&signed), body)
}

pub async fn live(State(dashboard): State<Dashboard>, _signed: Signed, Path(id): Path<String>) -> Response {
    match load(&dashboard, &id).await {
        Ok(loaded) => Json(Live {
            status_html: status_block(&loaded).into_string(),
            judge_html: judge_block(&loaded).into_string(),
            chat: loaded.chat,
            trace: loaded.trace,
        })
        .into_response(),
        Err(error) => error.into_response(),
    }
}

/// The charts, by id and caption (the script knows each id's series).
fn charts(chat: bool) -> Vec<(&'static str, &'static str)> {
    let mut charts = vec![
        ("rate", "Requests per second"),
        ("errors", "Error rate (%)"),
        ("latency", "Latency p50 / p95 / p99 (ms)"),
    ];
    if chat {
        charts.push(("ttft", "Time to first token p90 (ms)"));
    }
    charts.extend([
        ("quality", "Bad outputs and complaints (%)"),
        ("evidence", "E-value ÷ threshold per trigger (log; a rollback at 1)"),
        ("ratio", "Canary/baseline ratio: confidence sequences (log)"),
    ]);
    charts
}

fn status_block(loaded: &Loaded) -> Markup {
    let v = &loaded.view;
    let health = Health::of(v);
    let hold = hold_left(v);
    html! {
        dl.status {
            div { dt { "Stage" } dd #stage { (v.stage_label) @if v.canary_step.is_some() { " of " (v.canary_steps) } } }
            div { dt { "Candidate traffic" } dd #weight { (format!("{:.1}%", v.candidate_percent)) } }
            div { dt { "Hold left" } dd #hold { (hold) } }
            div { dt { "Health" } dd #health { (health.badge()) } }
        }
        @if let Some(why) = &health.why { p.why { (why) } }
        @if let Some(p) = &v.paused { p.why { "Paused by " (p.by) " at " (p.at) ": " (p.reason) } }
        @if let Some(w) = &v.waiting_for_window { p.why { "Waiting for the deploy window: " (w) } }
        @if let Some(outcome) = &v.outcome { p.outcome #outcome { (outcome) } }
    }
}

fn judge_block(loaded: &Loaded) -> Markup {
    let Some(judge) = &loaded.view.judge else {
        return html! { p.muted { "The judge watches canary steps and full deployment; it has not watched this rollout yet." } };
    };
    let verdict = judge.get("verdict");
    let kind = verdict.and_then(|v| v.get("verdict")).and_then(|v| v.as_str()).unwrap_or("?");
    let reason = verdict.and_then(|v| v.get("reason")).and_then(|v| v.as_str());
    let triggers = judge.get("triggers").and_then(|t| t.as_array()).cloned().unwrap_or_default();
    let number = |t: &serde_json::Value, key: &str| t.get(key).and_then(|x| x.as_f64());
    html! {
        p.verdict {
            "Verdict: " strong #verdict { (match kind { "hold" => "holding: not enough data", "rollback" => "roll back", other => other }) }
            @if let Some(reason) = reason { ": " (reason) }
            " · " (judge.get("canary_requests").and_then(|x| x.as_u64()).unwrap_or(0)) " canary and "
            (judge.get("baseline_requests").and_then(|x| x.as_u64()).unwrap_or(0)) " baseline requests judged"
        }
        @if let Some(f) = &loaded.forecast { (forecast_block(f)) }
        table.wide.triggers {
            thead { tr { th { "Trigger" } th { "Rolls back when" } th { "E-value" } th { "Threshold" } th { "Ratio (confidence sequence)" } th { "Guard" } th { "State" } } }
            tbody {
                @for t in &triggers {
                    @let fired = t.get("fired").and_then(|x| x.as_bool()).unwrap_or(false);
                    @let guard_met = t.get("guard_met").and_then(|x| x.as_bool()).unwrap_or(false);
                    tr class=[fired.then_some("fired")] {
                        td { strong { (t.get("trigger").and_then(|x| x.as_str()).unwrap_or("?")) } }
                        td { (t.get("rule").and_then(|x| x.as_str()).unwrap_or("")) }
                        td { (number(t, "e_value").map(|e| format!("{e:.3}")).unwrap_or_else(|| "—".into())) }
                        td { (number(t, "threshold").map(|e| format!("{e:.0}")).unwrap_or_else(|| "—".into())) }
                        td { (confidence(t.get("confidence"))) }
                        td { (t.get("guard").and_then(|x| x.as_str()).unwrap_or("")) " " (status_badge(if guard_met { "passed" } else { "pending" })) }
                        td {
                            @if fired { (status_badge("failed")) " fired" }
                            @else if !guard_met && t.get("kind").and_then(|k| k.as_str()) == Some("sequential") { "not enough data yet" }
                            @else if !guard_met { "not active" }
                            @else { "watching" }
                        }
                    }
                }
            }
        }
        @if let Some(warnings) = judge.get("warnings").and_then(|w| w.as_array()) {
            ul.warnings { @for w in warnings { li { (w.as_str().unwrap_or("")) } } }
        }
    }
}

fn confidence(cs: Option<&serde_json::Value>) -> String {
    let bound = |key: &str| cs.and_then(|c| c.get(key)).and_then(|x| x.as_f64());
    match (bound("lower"), bound("upper")) {
        (None, None) => "—".into(),
        (lower, upper) => format!(
            "[{}, {}]",
            lower.map_or("0".into(), |l| format!("{l:.2}")),
            upper.map_or("∞".into(), |u| format!("{u:.2}"))
        ),
    }
}

fn forecast_block(f: &Forecast) -> Markup {
    html! {
        ul.forecast #forecast {
            li {
                "At the current " (format!("{:.1}", f.canary_requests_per_second)) " canary requests/s: "
                @match f.guard_met_in_seconds {
                    Some(s) if s <= 0.0 => "the canary has served enough requests to be called healthy.",
                    Some(s) => { "enough requests to call the canary healthy in about " (duration(s)) "." }
                    None => "no canary traffic, so no decision is expected until traffic arrives.",
                }
            }
            @for t in &f.triggers {
                li {
                    strong { (t.trigger) } ": e-value " (format!("{:.2}", t.e_value)) " of " (format!("{:.0}", t.threshold)) "; "
                    @match t.threshold_in_seconds {
                        Some(s) if s <= 0.0 => "at its threshold.",
                        Some(s) => { "rising: at this trend it reaches the threshold (a rollback) in about " (duration(s)) "." }
                        None => "not rising: no rollback expected at current rates.",
                    }
                }
            }
        }
    }
}

/// The planned stages in order, each done (with when), current, skipped or to come.
fn timeline(rollout: &Rollout, v: &RolloutView) -> Markup {
    let mut planned: Vec<String> = vec!["pre-deployment".into(), "staging".into(), "shadow".into()];
    planned.extend(rollout.plan.canary.steps.iter().enumerate().map(|(i, _)| format!("canary step {}", i + 1)));
    planned.extend(["full deployment".to_string(), "completed".to_string()]);
    let percent = |label: &str| {
        let step: usize = label.strip_prefix("canary step ")?.parse().ok()?;
        rollout.plan.canary.steps.get(step.checked_sub(1)?).map(|s| s.percent.percent())
    };
    let visited = |label: &str| v.history.iter().find(|h| h.stage == label).map(|h| h.entered_at.clone());
    let last_visited = planned.iter().rposition(|label| visited(label).is_some()).unwrap_or(0);
    html! {
        ol.timeline {
            @for (i, label) in planned.iter().enumerate() {
                @let entered = visited(label);
                @let state = if *label == v.stage_label { "current" } else if entered.is_some() { "done" } else if i < last_visited { "skipped" } else if v.terminal { "not-reached" } else { "upcoming" };
                li class=(state) {
                    span.stage { (label) @if let Some(p) = percent(label) { " (" (format!("{p:.0}%")) ")" } }
                    span.state { (state.replace('-', " ")) }
                    @if let Some(at) = entered { span.at { (at) } }
                }
            }
            @if v.terminal && v.stage != "completed" {
                li.current.ended {
                    span.stage { (v.stage_label) }
                    span.state { "ended" }
                    @if let Some(h) = v.history.last() { span.at { (h.entered_at) } }
                }
            }
        }
    }
}

fn gates_block(v: &RolloutView) -> Markup {
    html! {
        section aria-labelledby="gates-h" {
            h2 #gates-h { "Gates of this stage" }
            @if v.gates.is_empty() { p.muted { "No open stage: the rollout has ended." } }
            @else {
                table.wide {
                    thead { tr { th { "Gate" } th { "Kind" } th { "State" } th { "Evidence or what is missing" } } }
                    tbody {
                        @for g in &v.gates {
                            tr { td { (g.gate) @if !g.blocking { " " span.muted { "(advisory)" } } } td { (g.kind) } td { (status_badge(&g.status)) } td { (g.detail) } }
                        }
                    }
                }
            }
        }
    }
}

fn evidence_block(v: &RolloutView, shadow: Option<&serde_json::Value>) -> Markup {
    html! {
        section aria-labelledby="evidence-h" {
            h2 #evidence-h { "Evidence" }
            @if v.evidence.is_empty() { p.muted { "No evidence recorded yet." } }
            @else {
                table.wide {
                    thead { tr { th { "Gate" } th { "Result" } th { "Summary" } th { "By" } th { "At" } } }
                    tbody {
                        @for e in &v.evidence {
                            tr {
                                td { (e.gate) }
                                td { (status_badge(if e.passed { "passed" } else { "failed" })) }
                                td { (e.summary) @if !e.details.is_null() { details { summary { "the numbers" } pre { (pretty(&e.details)) } } } }
                                td { (e.by) }
                                td { (e.at) }
                            }
                        }
                    }
                }
            }
            @if let Some(report) = shadow {
                details.shadow { summary { "Shadow comparison report" } pre { (pretty(report)) } }
            }
        }
    }
}

/// Approvals with names and times, and checklists with who ticked each item.
fn people_block(signed: &Signed, v: &RolloutView) -> Markup {
    let may_tick = signed.actor.may_operate() && !v.terminal;
    html! {
        section aria-labelledby="people-h" {
            h2 #people-h { "Approvals and checklists" }
            @if v.approvals.is_empty() { p.muted { "No approvals yet." } }
            @else {
                ul.approvals #approvals {
                    @for a in &v.approvals {
                        li { strong { (a.kind) } " approved by " strong { (a.by) } " at " (a.at) @if let Some(c) = &a.comment { ": “" (c) "”" } }
                    }
                }
            }
            @for list in &v.checklists {
                h3 { (list.checklist.replace('_', " ")) " checklist" }
                ul.checklist {
                    @for item in &list.items {
                        li class=(if item.done { "done" } else { "open" }) {
                            span.mark aria-hidden="true" { (if item.done { "✔" } else { "○" }) }
                            " " (item.text)
                            @if let Some(how) = &item.how { " " span.muted { "— " (how) } }
                            @if !item.done && may_tick {
                                form.inline method="post" action={ "/rollouts/" (v.id) "/act/tick" } data-confirm={ "Tick “" (item.text) "”?" } {
                                    (csrf_field(signed))
                                    input type="hidden" name="checklist" value=(list.checklist);
                                    input type="hidden" name="item" value=(item.id);
                                    button type="submit" { "Tick" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn effects_block(signed: &Signed, v: &RolloutView) -> Markup {
    if v.actions.is_empty() {
        return html! {};
    }
    html! {
        section aria-labelledby="effects-h" {
            h2 #effects-h { "Effects" }
            table.wide {
                thead { tr { th { "Effect" } th { "State" } th { "Detail" } th {} } }
                tbody {
                    @for a in &v.actions {
                        tr {
                            td { (a.id) }
                            td { (status_badge(&a.status)) }
                            td { (a.detail) }
                            td {
                                @if (a.status == "pending" || a.status == "waiting_for_person") && signed.actor.may_operate() {
                                    form.inline method="post" action={ "/rollouts/" (v.id) "/act/confirm" } data-confirm={ "Record that you carried out " (a.id) "?" } {
                                        (csrf_field(signed))
                                        input type="hidden" name="action" value=(a.id);
                                        label { "What you did " input type="text" name="note" required; }
                                        button type="submit" { "Confirm done" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The forms the signed-in person's roles allow; the server checks again.
fn actions_block(signed: &Signed, v: &RolloutView) -> Markup {
    if v.terminal {
        return html! {};
    }
    let actor = &signed.actor;
    let approvable: Vec<&str> = v
        .gates
        .iter()
        .filter(|g| g.status == "pending" && g.kind == "approval")
        .filter_map(|g| g.gate.strip_prefix("approval."))
        .filter(|kind| kind.parse::<ApprovalKind>().is_ok_and(|k| actor.has(Role::Approver(k))))
        .collect();
    let operate = actor.may_operate();
    let action = |verb: &str| format!("/rollouts/{}/act/{verb}", v.id);
    html! {
        section.actions aria-labelledby="actions-h" {
            h2 #actions-h { "Actions" }
            @if !operate && approvable.is_empty() {
                p.muted { "Your roles let you watch this rollout, not act on it." }
            }
            div.action-forms {
                @for kind in &approvable {
                    form method="post" action=(action("approve")) data-confirm={ "Approve this rollout as " (kind) " approver?" } {
                        (csrf_field(signed))
                        input type="hidden" name="kind" value=(kind);
                        label { "Comment " input type="text" name="comment"; }
                        button type="submit" { "Approve (" (kind) ")" }
                    }
                }
                @if operate {
                    form method="post" action=(action("promote")) data-confirm="Promote to the next stage?" {
                        (csrf_field(signed)) button type="submit" { "Promote" }
                    }
                    @if v.paused.is_some() {
                        form method="post" action=(action("resume")) data-confirm="Resume automatic promotion?" {
                            (csrf_field(signed)) button type="submit" { "Resume" }
                        }
                    } @else {
                        form method="post" action=(action("pause")) data-confirm="Pause automatic promotion?" {
                            (csrf_field(signed))
                            label { "Reason " input type="text" name="reason" required; }
                            button type="submit" { "Pause" }
                        }
                    }
                    form.danger method="post" action=(action("rollback")) data-confirm="Roll back now? Traffic goes back to the stable version." {
                        (csrf_field(signed))
                        label { "Category "
                            select name="category" {
                                @for c in ["quality", "complaints", "harmful_outputs", "security", "other"] { option value=(c) { (c.replace('_', " ")) } }
                            }
                        }
                        label { "Reason " input type="text" name="reason" required; }
                        label.check { input type="checkbox" name="full" value="true"; " full (redeploy stable, retire the candidate)" }
                        button type="submit" { "Roll back" }
                    }
                    form.danger method="post" action=(action("abort")) data-confirm="Abort this rollout? Traffic goes back to the stable version." {
                        (csrf_field(signed))
                        label { "Reason " input type="text" name="reason" required; }
                        button type="submit" { "Abort" }
                    }
                }
            }
        }
    }
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}
