//! The dashboard's actions: each form becomes the command the API's route
//! of the same name records, submitted as the signed-in person through
//! [`calls::submit`]. A refusal (role, gate, state) is the API's, shown as
//! a page with its status; success goes back to the rollout's page.

use super::layout::refusal;
use super::{Dashboard, Signed};
use crate::api::calls;
use crate::api::problem::ApiError;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use rollgate_core::rollout::{Command, Input};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Every field any action form sends; each verb reads its own.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    reason: Option<String>,
    category: Option<String>,
    full: Option<String>,
    kind: Option<String>,
    comment: Option<String>,
    checklist: Option<String>,
    item: Option<String>,
    action: Option<String>,
    note: Option<String>,
}

pub async fn act(
    State(dashboard): State<Dashboard>,
    signed: Signed,
    Path((id, verb)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let back = format!("/rollouts/{}", super::layout::url_encode(&id));
    let submitted = match signed.check_post(&headers, &form.csrf).and_then(|()| input(&verb, form)) {
        Ok(input) => calls::submit(&dashboard.app, &id, Command::new(signed.actor.clone(), input)).await,
        Err(error) => Err(error),
    };
    match submitted {
        Ok(_) => Redirect::to(&back).into_response(),
        Err(error) => refusal(Some(&signed), &error, &back),
    }
}

/// The command a form asks for, or what is missing from it.
fn input(verb: &str, form: ActionForm) -> Result<Input, ApiError> {
    Ok(match verb {
        "promote" => Input::Promote,
        "resume" => Input::Resume,
        "pause" => Input::Pause { reason: required(form.reason, "reason")? },
        "abort" => Input::Abort { reason: required(form.reason, "reason")? },
        "rollback" => Input::Rollback {
            category: parsed(form.category, "category")?,
            reason: required(form.reason, "reason")?,
            full: form.full.is_some_and(|f| f == "true" || f == "on"),
        },
        "approve" => {
            Input::Approve { kind: parsed(form.kind, "kind")?, comment: form.comment.filter(|c| !c.trim().is_empty()) }
        }
        "tick" => Input::Tick {
            checklist: parsed(form.checklist, "checklist")?,
            item: required(form.item, "item")?,
            note: form.note.filter(|n| !n.trim().is_empty()),
        },
        "confirm" => {
            Input::ConfirmAction { action: required(form.action, "action")?, note: required(form.note, "note")? }
        }
        other => {
            return Err(ApiError::not_found(format!(
                "no action `{other}`: promote, pause, resume, rollback, abort, approve, tick or confirm"
            )));
        }
    })
}

fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::unprocessable(format!("`{field}` is required: say why, in words, for the log")))
}

/// A named value (a rollback category, an approval kind, a checklist) as the API's JSON spells it.
fn parsed<T: DeserializeOwned>(value: Option<String>, field: &str) -> Result<T, ApiError> {
    let text = required(value, field)?;
    serde_json::from_value(serde_json::Value::String(text.clone()))
        .map_err(|e| ApiError::unprocessable(format!("`{field}` = `{text}` is not one of the choices: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollgate_core::rollout::RollbackCategory;

    #[test]
    fn a_form_becomes_the_apis_command() {
        let form = ActionForm {
            category: Some("harmful_outputs".into()),
            reason: Some(" toxic answers ".into()),
            full: Some("true".into()),
            ..ActionForm::default()
        };
        let Ok(Input::Rollback { category, reason, full }) = input("rollback", form) else { panic!("not a rollback") };
        assert_eq!((category, reason.as_str(), full), (RollbackCategory::HarmfulOutputs, "toxic answers", true));
    }

    #[test]
    fn a_missing_reason_or_an_unknown_choice_is_refused_with_what_to_fix() {
        let blank = ActionForm { reason: Some("  ".into()), ..ActionForm::default() };
        let Err(e) = input("pause", blank) else { panic!("a blank reason was accepted") };
        assert!(e.detail.contains("`reason` is required"), "{}", e.detail);
        let wrong = ActionForm { kind: Some("janitor".into()), ..ActionForm::default() };
        let Err(e) = input("approve", wrong) else { panic!("an unknown kind was accepted") };
        assert!(e.detail.contains("janitor"), "{}", e.detail);
        assert_eq!(input("launch", ActionForm::default()).err().map(|e| e.status.as_u16()), Some(404));
    }
}
