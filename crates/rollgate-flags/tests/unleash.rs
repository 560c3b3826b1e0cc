//! The Unleash client specification's test cases (tests/unleash/, Apache-2.0,
//! see SOURCE.md there), as data: every `isEnabled` and variant case of the
//! files whose features rollgate evaluates passes. The files left out need
//! what rollgate's flags do not have (segments, dependent features, the delta
//! API, regular-expression operators); the random strategy is only checked
//! where chance cannot decide (0% and 100%), as the specification says.

use rollgate_flags::{Context, Env, Flag, evaluate};
use serde::Deserialize;
use serde_json::Value;

/// Specification files rollgate's flags are held to.
const FILES: [&str; 16] = [
    "01-simple-examples.json",
    "02-user-with-id-strategy.json",
    "03-gradual-rollout-user-id-strategy.json",
    "04-gradual-rollout-session-id-strategy.json",
    "05-gradual-rollout-random-strategy.json",
    "06-remote-address-strategy.json",
    "07-multiple-strategies.json",
    "08-variants.json",
    "09-strategy-constraints.json",
    "10-flexible-rollout-strategy.json",
    "11-strategy-constraints-edge-cases.json",
    "12-custom-stickiness.json",
    "13-constraint-operators.json",
    "14-constraint-semver-operators.json",
    "16-strategy-variants.json",
    "18-utf8-flag-names.json",
];

#[derive(Deserialize)]
struct Spec {
    state: State,
    #[serde(default)]
    tests: Vec<Case<bool>>,
    #[serde(default, rename = "variantTests")]
    variant_tests: Vec<Case<Value>>,
}

#[derive(Deserialize)]
struct State {
    features: Vec<Value>,
}

#[derive(Deserialize)]
struct Case<T> {
    description: String,
    context: Context,
    #[serde(rename = "toggleName")]
    toggle: String,
    #[serde(rename = "expectedResult")]
    expected: T,
}

fn flags(state: &State) -> Vec<Flag> {
    state.features.iter().map(|f| serde_json::from_value(f.clone()).unwrap_or_else(|e| panic!("{e}: {f}"))).collect()
}

/// What an Unleash client answers for a variant: the variant, or "disabled".
fn variant_answer(flags: &[Flag], case: &Case<Value>, env: &mut Env<'_>) -> Value {
    let Some(flag) = flags.iter().find(|f| f.name == case.toggle) else {
        return serde_json::json!({ "name": "disabled", "enabled": false, "feature_enabled": false });
    };
    let e = evaluate(flag, &case.context, env);
    match e.variant.filter(|_| e.enabled) {
        Some(v) => {
            let mut answer = serde_json::json!({ "name": v.name, "enabled": true, "feature_enabled": true });
            if let Some(p) = &v.payload {
                answer["payload"] = serde_json::json!({ "type": p.kind, "value": p.value });
            }
            answer
        }
        None => serde_json::json!({ "name": "disabled", "enabled": false, "feature_enabled": e.enabled }),
    }
}

#[test]
fn the_unleash_client_specification_passes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/unleash");
    let mut counter = 0u32;
    let mut random = || {
        counter = counter.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        counter
    };
    let now = "2026-11-30T12:00:00Z".parse().unwrap();
    let mut env = Env { now, random: &mut random };
    let (mut passed, mut failures) = (0, Vec::new());
    for file in FILES {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let spec: Spec = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let flags = flags(&spec.state);
        for case in &spec.tests {
            let got = flags
                .iter()
                .find(|f| f.name == case.toggle)
                .is_some_and(|f| evaluate(f, &case.context, &mut env).enabled);
            if got == case.expected {
                passed += 1;
            } else {
                failures.push(format!("{file}: {} (expected {}, got {got})", case.description, case.expected));
            }
        }
        for case in &spec.variant_tests {
            let mut got = variant_answer(&flags, case, &mut env);
            let mut expected = case.expected.clone();
            // Older files leave feature_enabled out: compare what they say.
            if expected.get("feature_enabled").is_none() {
                got.as_object_mut().unwrap().remove("feature_enabled");
            }
            if let Some(o) = expected.as_object_mut() {
                o.retain(|k, _| ["name", "payload", "enabled", "feature_enabled"].contains(&k.as_str()));
            }
            if got == expected {
                passed += 1;
            } else {
                failures.push(format!("{file}: {} (expected {expected}, got {got})", case.description));
            }
        }
    }
    assert!(failures.is_empty(), "{} passed, {} failed:\n{}", passed, failures.len(), failures.join("\n"));
    // Every case of the sixteen files: 162 isEnabled and 19 variant cases.
    assert_eq!(passed, 181, "every case ran");
}
