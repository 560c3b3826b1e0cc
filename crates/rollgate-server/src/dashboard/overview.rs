//! The overview: every service with its stable version and running rollout
//! (stage, weight, time left in the hold, health), what waits for a person,
//! and recent outcomes.

use super::layout::refusal;
use super::rollout::{Health, hold_left};
use super::{Dashboard, Signed};
use crate::api::calls;
use crate::api::problem::ApiError;
use crate::views::RolloutView;
use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

/// Recent outcomes shown.
const RECENT: usize = 10;

pub async fn page_of(dashboard: &Dashboard, signed: &Signed) -> Result<Markup, ApiError> {
    let app = &dashboard.app;
    let services = calls::services(app)?;
    let mut rollouts = app.rollouts().all().await?;
    rollouts.sort_by_key(|r| std::cmp::Reverse(r.started_at));
    let mut running: Vec<RolloutView> = Vec::new();
    for r in rollouts.iter().filter(|r| !r.is_terminal()) {
        running.push(app.view_of(r).await?);
    }
    let ended: Vec<_> = rollouts.iter().filter(|r| r.is_terminal()).take(RECENT).collect();
    let waiting: Vec<(&RolloutView, String)> =
        running.iter().flat_map(|v| waiting_for_people(v).map(move |w| (v, w))).collect();
    Ok(html! {
        h1 { "Overview" }
        section aria-labelledby="services-h" {
            h2 #services-h { "Services" }
            table.wide {
                thead { tr { th { "Service" } th { "Stable" } th { "Rollout" } th { "Stage" } th { "Candidate traffic" } th { "Hold left" } th { "Health" } } }
                tbody {
                    @for s in &services {
                        @let rollout = running.iter().find(|v| v.service == s.name);
                        tr {
                            td { strong { (s.name) } " " span.muted { (s.protocol) } }
                            td { (s.stable) }
                            @if let Some(v) = rollout {
                                td { a href={ "/rollouts/" (v.id) } { (v.id) } br; span.muted { (v.stable) " → " (v.candidate) } }
                                td { (v.stage_label) }
                                td { (format!("{:.0}%", v.candidate_percent)) }
                                td { (hold_left(v)) }
                                td { (Health::of(v).badge()) }
                            } @else {
                                td.muted colspan="5" { "no rollout running" }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="waiting-h" {
            h2 #waiting-h { "Waiting for a person" }
            @if waiting.is_empty() {
                p.muted { "Nothing waits for anyone." }
            } @else {
                ul.waiting {
                    @for (v, what) in &waiting { li { a href={ "/rollouts/" (v.id) } { (v.id) } ": " (what) } }
                }
            }
        }
        section aria-labelledby="recent-h" {
            h2 #recent-h { "Recent outcomes" }
            @if ended.is_empty() {
                p.muted { "No rollout has ended yet." }
            } @else {
                table.wide {
                    thead { tr { th { "Rollout" } th { "Service" } th { "Outcome" } th { "Started" } } }
                    tbody {
                        @for r in &ended {
                            @let view = RolloutView::new(r, app.now(), &[]);
                            tr {
                                td { a href={ "/rollouts/" (r.id) } { (r.id) } }
                                td { (r.service) }
                                td { (Health::of(&view).badge()) " " (view.outcome.clone().unwrap_or_default()) }
                                td { (r.started_at.strftime("%Y-%m-%d %H:%M")) }
                            }
                        }
                    }
                }
            }
        }
        p.muted { "Signed in as " (signed.actor.name) ". Pages refresh their live figures every few seconds." }
    })
}

pub async fn page(State(dashboard): State<Dashboard>, signed: Signed) -> Response {
    match page_of(&dashboard, &signed).await {
        Ok(body) => super::layout::page("Overview", Some(&signed), body),
        Err(error) => refusal(Some(&signed), &error, "/"),
    }
}

/// Approvals and checklist items the stage waits for, and effects a person must confirm.
fn waiting_for_people(v: &RolloutView) -> impl Iterator<Item = String> + '_ {
    let gates = v
        .gates
        .iter()
        .filter(|g| g.status == "pending" && (g.kind == "approval" || g.kind == "checklist"))
        .map(|g| format!("{} ({})", g.gate, g.detail));
    let actions = v
        .actions
        .iter()
        .filter(|a| a.status == "waiting_for_person" || a.status == "pending")
        .map(|a| format!("effect {} {}: {}", a.id, a.status.replace('_', " "), a.detail));
    gates.chain(actions)
}
