//! Comparators on answers whose differences are worked out by hand.

use rollgate_protocol::compare::{ComparatorKind, CompareConfig, Comparer, Summary};
use rollgate_protocol::{Format, Output, Protocol, parse_answer};

fn out(protocol: Protocol, body: &str) -> Output {
    parse_answer(&Format::new(protocol), body.as_bytes()).unwrap()
}

fn kserve(values: &str, shape: &str) -> Output {
    out(
        Protocol::KserveV2,
        &format!(r#"{{"outputs":[{{"name":"p","shape":{shape},"datatype":"FP32","data":{values}}}]}}"#),
    )
}

fn chat(text: &str, finish: &str, tools: &str, completion_tokens: u64) -> Output {
    let body = format!(
        r#"{{"choices":[{{"index":0,"message":{{"role":"assistant","content":{},"tool_calls":[{tools}]}},"finish_reason":"{finish}"}}],
            "usage":{{"prompt_tokens":100,"completion_tokens":{completion_tokens}}}}}"#,
        serde_json::to_string(text).unwrap()
    );
    out(Protocol::OpenaiChat, &body)
}

fn comparer(config: CompareConfig) -> Comparer {
    Comparer::new(config).unwrap()
}

#[test]
fn classification_finds_the_flips_row_by_row() {
    let c = comparer(CompareConfig { comparator: ComparatorKind::Classification, ..CompareConfig::default() });
    // Rows: arg-max 1 and 0 in production; 1 and 2 in the candidate.
    let production = kserve("[0.1,0.8,0.1, 0.7,0.2,0.1]", "[2,3]");
    let candidate = kserve("[0.2,0.7,0.1, 0.3,0.3,0.4]", "[2,3]");
    let r = c.compare(&production, &candidate);
    assert!(!r.agree);
    assert_eq!(r.labels, Some(("1,0".into(), "1,2".into())));
    assert!(r.why.starts_with("1 of 2 labels flipped"), "{}", r.why);
    // Scores: the top score of the first row, 0.7 − 0.8.
    assert!((r.score_delta.unwrap() + 0.1).abs() < 1e-6);
    // A binary score per row flips at 0.5.
    let r = c.compare(&kserve("[0.49]", "[1]"), &kserve("[0.51]", "[1]"));
    assert_eq!((r.agree, r.labels), (false, Some(("0".into(), "1".into()))));
}

#[test]
fn numbers_agree_within_the_absolute_or_relative_tolerance_and_nan_only_with_nan() {
    let c = comparer(CompareConfig { abs_tolerance: 0.01, rel_tolerance: 0.05, ..CompareConfig::default() });
    // |100 − 104| = 4 ≤ 5% of 100; |0.5 − 0.509| ≤ 0.01.
    let r = c.compare(&kserve("[100.0, 0.5]", "[2]"), &kserve("[104.0, 0.509]", "[2]"));
    assert!(r.agree, "{}", r.why);
    assert!((r.max_abs_diff.unwrap() - 4.0).abs() < 1e-9);
    assert!((r.mean_abs_diff.unwrap() - (4.0 + 0.009) / 2.0).abs() < 1e-6);
    let r = c.compare(&kserve("[100.0, 0.5]", "[2]"), &kserve("[106.0, 0.5]", "[2]"));
    assert!(!r.agree && r.why.contains("1 value(s) outside the tolerance"), "{}", r.why);
    let tf = |body: &str| out(Protocol::TfServing, body);
    assert!(c.compare(&tf(r#"{"predictions":[NaN]}"#), &tf(r#"{"predictions":[NaN]}"#)).agree);
    assert!(!c.compare(&tf(r#"{"predictions":[NaN]}"#), &tf(r#"{"predictions":[0.0]}"#)).agree);
    assert!(!c.compare(&tf(r#"{"predictions":[Infinity]}"#), &tf(r#"{"predictions":[-Infinity]}"#)).agree);
    // Shapes must match.
    let r = c.compare(&kserve("[1,2]", "[2]"), &kserve("[1,2]", "[1,2]"));
    assert!(!r.agree && r.why.contains("[2]") && r.why.contains("[1, 2]"), "{}", r.why);
}

#[test]
fn texts_agree_after_normalisation_or_by_token_f1_and_refusals_always_differ() {
    let exact = comparer(CompareConfig::default());
    let r =
        exact.compare(&chat("Paris  is the capital.", "stop", "", 5), &chat("paris is the capital.", "stop", "", 5));
    assert!(r.agree, "case and white space do not count: {}", r.why);
    let r = exact.compare(&chat("Paris is the capital.", "stop", "", 5), &chat("The capital is Paris.", "stop", "", 5));
    assert!(!r.agree);
    assert_eq!(r.token_f1, Some(1.0), "the same four tokens");
    assert!((r.rouge_l.unwrap() - 0.5).abs() < 1e-12, "LCS of 2 ({{is, the}} or {{paris, the}}…) in 4");
    let close = comparer(CompareConfig { text_agreement: 0.8, ..CompareConfig::default() });
    assert!(
        close
            .compare(&chat("Paris is the capital.", "stop", "", 5), &chat("The capital is Paris.", "stop", "", 5))
            .agree
    );
    let r = close.compare(
        &chat("The answer is 42.", "stop", "", 5),
        &chat("I'm sorry, but I can't help with that.", "stop", "", 9),
    );
    assert!(!r.agree && r.refusals == Some((false, true)) && r.why == "the candidate refused and the other did not");
    assert!((r.length_ratio.unwrap() - 38.0 / 17.0).abs() < 1e-12);
    assert!((r.token_ratio.unwrap() - 9.0 / 5.0).abs() < 1e-12);
}

#[test]
fn tool_calls_are_compared_as_json_and_finish_reasons_must_match() {
    let c = comparer(CompareConfig::default());
    let call = |args: &str| {
        format!(
            r#"{{"id":"x","type":"function","function":{{"name":"get_weather","arguments":{}}}}}"#,
            serde_json::to_string(args).unwrap()
        )
    };
    let a = chat("", "tool_calls", &call(r#"{"city": "Paris", "unit": "c"}"#), 10);
    let same = chat("", "tool_calls", &call(r#"{"unit":"c","city":"Paris"}"#), 10);
    let other = chat("", "tool_calls", &call(r#"{"city": "Lyon", "unit": "c"}"#), 10);
    let r = c.compare(&a, &same);
    assert!(r.agree && r.tool_calls_agree == Some(true), "key order and spacing do not count: {}", r.why);
    let r = c.compare(&a, &other);
    assert!(!r.agree && r.tool_calls_agree == Some(false), "{r:?}");
    let r = c.compare(&chat("Hi", "stop", "", 3), &chat("Hi", "length", "", 3));
    assert!(!r.agree && r.finish_reason_agree == Some(false), "{r:?}");
}

#[test]
fn cost_comes_from_usage_and_the_configured_prices() {
    let c =
        comparer(CompareConfig { prompt_price_per_1k: 0.5, completion_price_per_1k: 1.5, ..CompareConfig::default() });
    let r = c.compare(&chat("a", "stop", "", 200), &chat("a", "stop", "", 400));
    // 100 prompt tokens at 0.5/1k + 200 at 1.5/1k = 0.35; the candidate: 0.05 + 0.6 = 0.65.
    let (production, candidate) = r.costs.unwrap();
    assert!((production - 0.35).abs() < 1e-12 && (candidate - 0.65).abs() < 1e-12, "{production} {candidate}");
}

#[test]
fn a_summary_adds_pairs_into_agreement_kappa_flips_and_costs() {
    let c = comparer(CompareConfig { comparator: ComparatorKind::Classification, ..CompareConfig::default() });
    let mut summary = Summary::default();
    let one = |p: &str| kserve(p, "[1]");
    for (a, b, times) in [("0.9", "0.8", 20), ("0.9", "0.1", 5), ("0.1", "0.9", 10), ("0.1", "0.2", 15)] {
        for _ in 0..times {
            summary.add(&c.compare(&one(&format!("[{a}]")), &one(&format!("[{b}]"))));
        }
    }
    let view = summary.view();
    assert_eq!(view.pairs, 50);
    assert!((view.agreement.value - 0.7).abs() < 1e-12);
    assert!(view.agreement.low < 0.7 && view.agreement.high > 0.7);
    assert!((view.cohens_kappa.unwrap() - 0.4).abs() < 1e-12, "{view:?}");
    assert_eq!(view.flips["1"]["0"], 5);
}

#[test]
fn structured_answers_are_held_to_the_schema_their_request_asked_for() {
    let mut c = comparer(CompareConfig { text_agreement: 0.0, ..CompareConfig::default() });
    let request = serde_json::json!({
        "model": "m", "messages": [{ "role": "user", "content": "score this" }],
        "response_format": { "type": "json_schema", "json_schema": { "name": "verdict", "strict": true, "schema": {
            "type": "object", "required": ["label", "score"], "additionalProperties": false,
            "properties": { "label": { "enum": ["approve", "review"] }, "score": { "type": "number" } } } } }
    })
    .to_string();
    let valid = chat(r#"{"label":"approve","score":0.9}"#, "stop", "", 9);
    let extra_field = chat(r#"{"label":"approve","score":0.9,"why":"x"}"#, "stop", "", 12);
    let not_json = chat("approve, 0.9", "stop", "", 4);
    let mut summary = Summary::default();
    // Texts that agree by token F1 (the bar is 0 here), but the candidate broke the schema.
    let broken = c.compare_answers(request.as_bytes(), &valid, &extra_field);
    assert_eq!(broken.schema_valid, Some((true, false)));
    assert!(!broken.agree && broken.why.contains("JSON schema"), "{}", broken.why);
    summary.add(&broken);
    summary.add(&c.compare_answers(request.as_bytes(), &valid, &not_json));
    let both = c.compare_answers(request.as_bytes(), &valid, &valid);
    assert_eq!((both.schema_valid, both.agree), (Some((true, true)), true));
    summary.add(&both);
    // Production broke it, the candidate follows it: that is no disagreement of the candidate's.
    let better = c.compare_answers(request.as_bytes(), &not_json, &valid);
    assert_eq!((better.schema_valid, better.agree), (Some((false, true)), true));
    summary.add(&better);
    // A request that asks for no schema is not checked.
    assert_eq!(c.compare_answers(b"{\"messages\":[]}", &valid, &not_json).schema_valid, None);
    let validity = summary.view().schema_validity.unwrap();
    // Production followed it in 3 of 4 pairs, the candidate in 2 of 4.
    assert_eq!((validity.production.value, validity.candidate.value), (0.75, 0.5));
}

#[test]
fn a_plan_schema_that_does_not_compile_is_refused() {
    let config =
        CompareConfig { json_schema: Some(serde_json::json!({ "type": "nonsense" })), ..CompareConfig::default() };
    let err = Comparer::new(config).unwrap_err();
    assert!(err.starts_with("json_schema:"), "{err}");
}
