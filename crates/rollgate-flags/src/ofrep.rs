//! OpenFeature's Remote Evaluation Protocol answers for an evaluation: a
//! value with its reason and variant, or an error code with details. A
//! boolean flag's value is whether it is on; the other kinds' value is the
//! chosen variant's payload. Where the flag gives no value (off, or not
//! matched for a non-boolean flag) the value is left out and the SDK uses
//! the application's default, as the protocol says.

use crate::flag::Kind;
use crate::{Context, Env, Evaluation, Flag, evaluate};
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// On for everyone: no rule looked at the context.
    Static,
    /// A rule on the context (a constraint, a user list, an override) decided.
    TargetingMatch,
    /// A sticky percentage or weighted variants decided.
    Split,
    /// The flag is switched off.
    Disabled,
    /// No rule let the context in.
    Default,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    FlagNotFound,
    TargetingKeyMissing,
    ParseError,
    InvalidContext,
    General,
}

impl ErrorCode {
    /// The HTTP status OFREP gives this error.
    pub fn status(self) -> u16 {
        if self == ErrorCode::FlagNotFound { 404 } else { 400 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Success {
    pub key: String,
    pub reason: Reason,
    /// The variant's name; `disabled`, `off` or `default` when no variant applies (SDKs require one).
    pub variant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub key: String,
    pub error_code: ErrorCode,
    pub error_details: String,
}

fn fail(key: &str, error_code: ErrorCode, details: impl Into<String>) -> Failure {
    Failure { key: key.to_string(), error_code, error_details: details.into() }
}

/// Resolves `flag` (None: there is no flag `key`) for an OpenFeature context.
pub fn resolve(
    flag: Option<&Flag>,
    key: &str,
    context: &Map<String, Value>,
    env: &mut Env<'_>,
) -> Result<Success, Failure> {
    let flag = flag.ok_or_else(|| fail(key, ErrorCode::FlagNotFound, format!("no flag `{key}`")))?;
    let ctx = Context::from_openfeature(context).map_err(|e| fail(key, ErrorCode::InvalidContext, e))?;
    let metadata = Map::from_iter([("kind".to_string(), Value::String(flag.kind.as_str().into()))]);
    let answer = |reason, variant: &str, value| Success {
        key: key.into(),
        reason,
        variant: variant.into(),
        value,
        metadata: metadata.clone(),
    };
    if !flag.enabled {
        return Ok(answer(Reason::Disabled, "disabled", None));
    }
    let e = evaluate(flag, &ctx, env);
    if e.random && ctx.user_id.is_none() && ctx.session_id.is_none() {
        return Err(fail(
            key,
            ErrorCode::TargetingKeyMissing,
            "the flag buckets by targeting key and the context has none",
        ));
    }
    if !e.enabled {
        return Ok(match flag.kind {
            Kind::Boolean => answer(Reason::Default, "off", Some(Value::Bool(false))),
            _ => answer(Reason::Default, "default", None),
        });
    }
    let reason = reason(flag, &e, &ctx);
    if flag.kind == Kind::Boolean {
        return Ok(answer(reason, e.variant.map_or("on", |v| &v.name), Some(Value::Bool(true))));
    }
    let Some(chosen) = e.variant else {
        return Err(fail(
            key,
            ErrorCode::General,
            format!("the {} flag `{key}` has no variant with a weight", flag.kind.as_str()),
        ));
    };
    let value = chosen.value(flag.kind).map_err(|e| fail(key, ErrorCode::General, e))?;
    Ok(answer(reason, &chosen.name, Some(value)))
}

/// Why the flag is on: chance (a percentage below 100 or weighted variants),
/// a rule on the context, or nothing at all.
fn reason(flag: &Flag, e: &Evaluation<'_>, ctx: &Context) -> Reason {
    let split_variants = e.variant.is_some_and(|v| {
        let variants = e.strategy.filter(|s| !s.variants.is_empty()).map_or(&flag.variants, |s| &s.variants);
        !crate::variant::overrides(v, ctx) && variants.iter().filter(|x| x.weight > 0).count() > 1
    });
    let Some(s) = e.strategy else {
        return if split_variants { Reason::Split } else { Reason::Static };
    };
    let percent = match s.name.as_str() {
        "flexibleRollout" => Some(s.percent("rollout")),
        "gradualRolloutUserId" | "gradualRolloutSessionId" | "gradualRolloutRandom" => Some(s.percent("percentage")),
        _ => None,
    };
    if split_variants || percent.is_some_and(|p| p < 100) {
        Reason::Split
    } else if !s.constraints.is_empty() || matches!(s.name.as_str(), "userWithId" | "remoteAddress") {
        Reason::TargetingMatch
    } else {
        Reason::Static
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flag(value: Value) -> Flag {
        serde_json::from_value(value).unwrap()
    }

    fn run(flag: Option<&Flag>, context: Value) -> Result<Success, Failure> {
        let mut random = || 7;
        let mut env = Env { now: jiff::Timestamp::UNIX_EPOCH, random: &mut random };
        resolve(flag, "f", context.as_object().unwrap(), &mut env)
    }

    fn rollout(percent: u32) -> Value {
        json!([{ "name": "flexibleRollout", "parameters": { "rollout": percent.to_string(), "groupId": "f" } }])
    }

    #[test]
    fn each_reason_and_error_code() {
        let on = flag(json!({ "name": "f", "enabled": true }));
        let ok = run(Some(&on), json!({ "targetingKey": "u1" })).unwrap();
        assert_eq!((ok.reason, ok.value, ok.variant.as_str()), (Reason::Static, Some(json!(true)), "on"));

        let killed = flag(json!({ "name": "f", "enabled": false, "strategies": rollout(100) }));
        let off = run(Some(&killed), json!({ "targetingKey": "u1" })).unwrap();
        assert_eq!((off.reason, off.value, off.variant.as_str()), (Reason::Disabled, None, "disabled"));

        let split = flag(json!({ "name": "f", "enabled": true, "strategies": rollout(50) }));
        let reasons: Vec<Reason> =
            (0..40).map(|i| run(Some(&split), json!({ "targetingKey": format!("u{i}") })).unwrap().reason).collect();
        assert!(reasons.contains(&Reason::Split) && reasons.contains(&Reason::Default), "{reasons:?}");
        let missing = run(Some(&split), json!({})).unwrap_err();
        assert_eq!((missing.error_code, missing.error_code.status()), (ErrorCode::TargetingKeyMissing, 400));

        let targeted = flag(json!({ "name": "f", "enabled": true, "strategies": [{ "name": "default",
            "constraints": [{ "contextName": "country", "operator": "IN", "values": ["FR"] }] }] }));
        assert_eq!(
            run(Some(&targeted), json!({ "targetingKey": "u", "country": "FR" })).unwrap().reason,
            Reason::TargetingMatch
        );
        let other = run(Some(&targeted), json!({ "targetingKey": "u", "country": "DE" })).unwrap();
        assert_eq!((other.reason, other.value), (Reason::Default, Some(json!(false))));
        let bad = run(Some(&targeted), json!({ "targetingKey": "u", "country": { "code": "FR" } })).unwrap_err();
        assert_eq!(bad.error_code, ErrorCode::InvalidContext);

        let absent = run(None, json!({ "targetingKey": "u" })).unwrap_err();
        assert_eq!((absent.error_code, absent.error_code.status()), (ErrorCode::FlagNotFound, 404));
    }

    #[test]
    fn variant_flags_answer_their_payload_of_the_right_kind() {
        let model = flag(json!({ "name": "f", "enabled": true, "kind": "string", "variants": [
            { "name": "v1", "weight": 50, "payload": { "type": "string", "value": "fraud-v1" } },
            { "name": "v2", "weight": 50, "payload": { "type": "string", "value": "fraud-v2" } }] }));
        let answers: Vec<Success> =
            (0..40).map(|i| run(Some(&model), json!({ "targetingKey": format!("u{i}") })).unwrap()).collect();
        assert!(answers.iter().all(|a| a.reason == Reason::Split));
        assert!(answers.iter().any(|a| a.value == Some(json!("fraud-v2")) && a.variant == "v2"));
        assert!(answers.iter().any(|a| a.value == Some(json!("fraud-v1"))));

        let config = flag(json!({ "name": "f", "enabled": true, "kind": "object", "variants": [
            { "name": "tuned", "weight": 1, "payload": { "type": "json", "value": "{\"threshold\": 0.7}" } }] }));
        let a = run(Some(&config), json!({ "targetingKey": "u" })).unwrap();
        assert_eq!((a.reason, a.value), (Reason::Static, Some(json!({ "threshold": 0.7 }))));

        let wrong = flag(json!({ "name": "f", "enabled": true, "kind": "number", "variants": [
            { "name": "x", "weight": 1, "payload": { "type": "string", "value": "high" } }] }));
        let e = run(Some(&wrong), json!({ "targetingKey": "u" })).unwrap_err();
        assert_eq!(e.error_code, ErrorCode::General);
        assert!(e.error_details.contains("is not a number"), "{}", e.error_details);
    }
}
