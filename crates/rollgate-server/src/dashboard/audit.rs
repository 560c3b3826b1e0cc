//! The audit page: every stream's hash chain checked, as
//! `GET /api/v1/audit/verify` and `rollgate audit verify` check it, naming the
//! first edited, dropped or reordered event. It reads the store directly, so it
//! works when a tampered rollout can no longer be shown.

use super::layout::{page as shell, refusal};
use super::{Dashboard, Signed};
use crate::api::calls;
use axum::extract::State;
use axum::response::Response;
use maud::html;

pub async fn page(State(dashboard): State<Dashboard>, signed: Signed) -> Response {
    let report = match calls::verify(&dashboard.app).await {
        Ok(report) => report,
        Err(error) => return refusal(Some(&signed), &error, "/"),
    };
    let body = html! {
        h1 { "Audit log" }
        section aria-labelledby="verify-h" {
            h2 #verify-h { "Hash chains" }
            @if let Some(f) = &report.failure {
                p.problem #verify-result role="alert" {
                    "The chain does not verify: stream " strong { (f.stream) } ", event " strong { (f.seq) }
                    " was " (f.tamper) ": " (f.detail)
                }
            } @else {
                p.ok #verify-result { "Every chain verifies (" (report.verified.len()) " streams)." }
            }
            table.wide {
                thead { tr { th { "Stream" } th { "Events" } th { "Head (keep it to detect events cut off the end)" } } }
                tbody {
                    @for s in &report.verified {
                        tr {
                            td { @if s.stream.starts_with('@') { (s.stream) } @else { a href={ "/rollouts/" (s.stream) } { (s.stream) } } }
                            td { (s.events) }
                            td { code { (s.head) } }
                        }
                    }
                }
            }
        }
    };
    shell("Audit log", Some(&signed), body)
}
