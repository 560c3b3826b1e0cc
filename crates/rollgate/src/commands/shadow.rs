//! `rollgate shadow report ROLLOUT`: the stored report of a rollout's shadow
//! stage, from a server (--server) or from the store directly.

use crate::Refused;
use crate::cli::{ShadowCommand, Target};
use crate::client::Client;
use anyhow::Context;
use rollgate_store::{Analysis, AnalysisStore, AnyStore};
use serde_json::Value;
use std::fmt::Write;

pub async fn run(target: &Target, command: ShadowCommand) -> anyhow::Result<()> {
    let ShadowCommand::Report { rollout, json } = command;
    let report: Value = match &target.server {
        Some(server) => {
            Client::new(server, target.token.clone())?.get(&format!("/api/v1/rollouts/{rollout}/shadow")).await?
        }
        None => {
            let location = target.store.location();
            let store =
                AnyStore::open(&location).await.with_context(|| format!("cannot open the store at {location}"))?;
            let stored = store.analysis(Analysis::Shadow, &rollout).await?.ok_or_else(|| {
                Refused(format!(
                    "no shadow comparison for `{rollout}`: it starts with the first pair of answers the rollout's shadow stage mirrors"
                ))
            })?;
            serde_json::from_str(&stored.report).context("the stored report is not JSON")?
        }
    };
    if json {
        println!("{report}");
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

fn pct(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{:.1}%", x * 100.0))
}

fn signed(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{:+.1}%", x * 100.0))
}

fn num(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.1}"))
}

/// A share with its interval: `90.6% [89.1%, 92.0%]`.
fn interval(v: &Value) -> String {
    format!("{} [{}, {}]", pct(&v["value"]), pct(&v["low"]), pct(&v["high"]))
}

/// The report as a page for a person.
pub fn render(r: &Value) -> String {
    let mut o = String::new();
    let state = if r["running"] == true { "running" } else { "finished" };
    let _ = writeln!(
        o,
        "shadow of {}: {} {} (candidate) against {} (production), {state}, as of {}",
        r["rollout"].as_str().unwrap_or("?"),
        r["service"].as_str().unwrap_or("?"),
        r["candidate"].as_str().unwrap_or("?"),
        r["production"].as_str().unwrap_or("?"),
        r["updated_at"].as_str().unwrap_or("?"),
    );
    let not_compared: u64 = r["not_compared"].as_object().map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
    let _ = writeln!(
        o,
        "pairs compared: {}   not compared: {not_compared}   dropped (comparison behind): {}   production asked twice: {}%\n",
        r["pairs"], r["dropped_pairs"], r["noise_percent"]
    );
    verdict(&mut o, r);
    flips(&mut o, &r["agreement"]["flips"]);
    figures(&mut o, &r["agreement"]);
    timings(&mut o, r);
    errors(&mut o, r);
    let cost = &r["cost"];
    if cost["production"].as_f64().unwrap_or(0.0) > 0.0 || cost["mirrored"].as_f64().unwrap_or(0.0) > 0.0 {
        let _ = writeln!(
            o,
            "cost: production {:.4}; mirrored {:.4} (candidate {:.4} + production asked again {:.4})\n",
            cost["production"].as_f64().unwrap_or(0.0),
            cost["mirrored"].as_f64().unwrap_or(0.0),
            cost["candidate"].as_f64().unwrap_or(0.0),
            cost["production_again"].as_f64().unwrap_or(0.0),
        );
    }
    findings(&mut o, r);
    examples(&mut o, r);
    o
}

fn verdict(o: &mut String, r: &Value) {
    let a = &r["agreement"];
    let kappa = a["cohens_kappa"].as_f64().map_or(String::new(), |k| format!("   Cohen's kappa {k:.3}"));
    let _ = writeln!(o, "agreement with production:      {}{kappa}", interval(&a["agreement"]));
    if let Some(noise) = r["noise_floor"].as_object() {
        let _ = writeln!(o, "production agreeing with itself: {}", interval(&noise["agreement"]));
    }
    let e = &r["excess"];
    let decision = match e["decision"].as_str() {
        Some("pass") => "PASS: within the bound".to_string(),
        Some("block") => format!(
            "BLOCK: over the bound (e-value {:.3e} >= {})",
            e["e_value"].as_f64().unwrap_or(0.0),
            e["threshold"]
        ),
        _ => match (e["pairs_needed"].as_u64(), r["decision_expected_at"].as_str()) {
            (Some(n), Some(at)) => format!(
                "not enough evidence yet: about {n} pairs needed at the current estimate, around {at} at the current traffic"
            ),
            (Some(n), None) => format!("not enough evidence yet: about {n} pairs needed at the current estimate"),
            (None, _) => "not enough evidence yet".to_string(),
        },
    };
    let _ = writeln!(
        o,
        "excess disagreement:            {} [{}, {}], allowed {}\n  gate: {decision}\n",
        signed(&e["excess"]),
        signed(&e["low"]),
        signed(&e["high"]),
        pct(&e["bound"]),
    );
}

fn flips(o: &mut String, flips: &Value) {
    let Some(rows) = flips.as_object().filter(|m| !m.is_empty()) else { return };
    let mut labels: Vec<&String> = rows.keys().collect();
    for row in rows.values().filter_map(Value::as_object) {
        labels.extend(row.keys());
    }
    labels.sort();
    labels.dedup();
    let width = labels.iter().map(|l| l.len()).max().unwrap_or(0).max(10);
    let _ = writeln!(o, "flips (row: production's label, column: the candidate's):");
    let _ = write!(o, "  {:width$}", "");
    for label in &labels {
        let _ = write!(o, " {label:>width$}");
    }
    let _ = writeln!(o);
    for from in &labels {
        let _ = write!(o, "  {from:width$}");
        for to in &labels {
            let n = rows.get(*from).and_then(|row| row[to.as_str()].as_u64()).unwrap_or(0);
            let _ = write!(o, " {n:>width$}");
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o);
}

fn figures(o: &mut String, a: &Value) {
    let lines = [
        ("mean score change", a["mean_score_delta"].as_f64().map(|x| format!("{x:+.4}"))),
        ("mean abs difference", a["mean_abs_diff"].as_f64().map(|x| format!("{x:.3e}"))),
        ("p99 abs difference", a["p99_abs_diff"].as_f64().map(|x| format!("{x:.3e}"))),
        ("max abs difference", a["max_abs_diff"].as_f64().map(|x| format!("{x:.3e}"))),
        ("mean token F1", a["mean_token_f1"].as_f64().map(|x| format!("{x:.3}"))),
        ("mean ROUGE-L", a["mean_rouge_l"].as_f64().map(|x| format!("{x:.3}"))),
        ("refusal agreement", a["refusal_agreement"].is_object().then(|| interval(&a["refusal_agreement"]))),
        (
            "finish-reason agreement",
            a["finish_reason_agreement"].is_object().then(|| interval(&a["finish_reason_agreement"])),
        ),
        ("tool-call agreement", a["tool_call_agreement"].is_object().then(|| interval(&a["tool_call_agreement"]))),
        ("median length ratio", a["median_length_ratio"].as_f64().map(|x| format!("{x:.2}"))),
        ("median token ratio", a["median_token_ratio"].as_f64().map(|x| format!("{x:.2}"))),
        (
            "follows the JSON schema",
            a["schema_validity"].is_object().then(|| {
                let v = &a["schema_validity"];
                format!("production {}, candidate {}", interval(&v["production"]), interval(&v["candidate"]))
            }),
        ),
    ];
    let shown: Vec<_> = lines.iter().filter_map(|(name, v)| v.as_ref().map(|v| (name, v))).collect();
    for (name, value) in &shown {
        let _ = writeln!(o, "{name:<24} {value}");
    }
    if !shown.is_empty() {
        let _ = writeln!(o);
    }
}

fn timings(o: &mut String, r: &Value) {
    for (title, key) in [("latency ms", "latency_ms"), ("first byte ms", "first_byte_ms")] {
        let _ = writeln!(o, "{title:<18} {:>8} {:>8} {:>8} {:>8} {:>8}", "p50", "p90", "p99", "max", "count");
        for (side, name) in
            [("production", "production"), ("candidate", "candidate"), ("production_again", "production again")]
        {
            let d = &r[key][side];
            if d["count"].as_u64().unwrap_or(0) == 0 {
                continue;
            }
            let _ = writeln!(
                o,
                "  {name:<16} {:>8} {:>8} {:>8} {:>8} {:>8}",
                num(&d["p50"]),
                num(&d["p90"]),
                num(&d["p99"]),
                num(&d["max"]),
                d["count"].as_u64().unwrap_or(0)
            );
        }
    }
    let _ = writeln!(o);
}

fn errors(o: &mut String, r: &Value) {
    let new: Vec<&str> =
        r["new_error_classes"].as_array().map_or(Vec::new(), |a| a.iter().filter_map(Value::as_str).collect());
    let _ = writeln!(o, "errors by class:");
    for (side, name) in
        [("production", "production"), ("candidate", "candidate"), ("production_again", "production again")]
    {
        let classes = r["errors"][side].as_object();
        let listed: Vec<String> = classes.map_or(Vec::new(), |m| {
            m.iter()
                .map(|(class, n)| {
                    let mark = if side == "candidate" && new.contains(&class.as_str()) { " (new)" } else { "" };
                    format!("{class} x{n}{mark}")
                })
                .collect()
        });
        let _ = writeln!(o, "  {name:<16} {}", if listed.is_empty() { "none".to_string() } else { listed.join(", ") });
    }
    if let Some(why) = r["not_compared"].as_object().filter(|m| !m.is_empty()) {
        for (reason, n) in why {
            let _ = writeln!(o, "  not compared: {reason} x{n}");
        }
    }
    let _ = writeln!(o);
}

fn findings(o: &mut String, r: &Value) {
    let _ = writeln!(o, "shadow gates (as recorded in the log when they change):");
    let found = r["findings"].as_array().map_or(&[][..], Vec::as_slice);
    for gate in ["shadow.output_agreement", "shadow.performance", "shadow.error_patterns"] {
        match found.iter().find(|f| f["gate"] == gate) {
            Some(f) => {
                let status = if f["passed"] == true { "passed" } else { "FAILED" };
                let _ = writeln!(o, "  {gate:<26} {status:<7} {}", f["summary"].as_str().unwrap_or(""));
            }
            None => {
                let _ = writeln!(o, "  {gate:<26} pending not enough pairs yet");
            }
        }
    }
    let _ = writeln!(o);
}

fn examples(o: &mut String, r: &Value) {
    let Some(examples) = r["examples"].as_array().filter(|e| !e.is_empty()) else {
        let _ = writeln!(o, "no divergent examples");
        return;
    };
    let _ = writeln!(o, "most divergent examples (redacted before they were stored):");
    for e in examples {
        let _ = writeln!(
            o,
            "  pair {} (divergence {:.2}): {}",
            e["pair"],
            e["divergence"].as_f64().unwrap_or(0.0),
            e["why"].as_str().unwrap_or("")
        );
        for (name, key) in [("request", "request"), ("production", "production"), ("candidate", "candidate")] {
            let _ = writeln!(o, "    {name:<11} {}", one_line(e[key].as_str().unwrap_or(""), 160));
        }
    }
}

/// The text on one line, cut to `max` characters for the terminal (`--json` has it whole).
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> Value {
        let interval = |v: f64, l: f64, h: f64| json!({ "value": v, "low": l, "high": h });
        let dist = |p: f64, n: u64| json!({ "count": n, "p50": p, "p90": p, "p99": p * 2.0, "max": p * 3.0 });
        json!({
            "rollout": "r1", "service": "fraud", "production": "v1", "candidate": "v2", "running": true,
            "updated_at": "2026-11-26T09:00:00Z", "pairs": 1500, "dropped_pairs": 2, "noise_percent": 25.0,
            "agreement": {
                "pairs": 1500, "agreement": interval(0.9, 0.88, 0.92), "cohens_kappa": 0.8,
                "schema_validity": { "production": interval(1.0, 0.99, 1.0), "candidate": interval(0.5, 0.45, 0.55) },
                "flips": { "approve": { "approve": 700, "review": 80 }, "review": { "approve": 70, "review": 650 } },
            },
            "noise_floor": { "agreement": interval(0.99, 0.97, 1.0) },
            "excess": { "excess": 0.09, "low": 0.05, "high": 0.13, "bound": 0.02, "decision": "block",
                        "e_value": 1.0e9, "threshold": 20.0, "pairs": 1500 },
            "latency_ms": { "production": dist(5.0, 1500), "candidate": dist(6.0, 1500), "production_again": dist(5.0, 0) },
            "first_byte_ms": { "production": dist(1.0, 1500), "candidate": dist(1.0, 1500), "production_again": dist(1.0, 0) },
            "errors": { "production": {}, "candidate": { "http_500": 3 }, "production_again": {} },
            "new_error_classes": ["http_500"], "not_compared": { "production failed": 1 },
            "cost": { "production": 0.0, "candidate": 0.0, "production_again": 0.0, "mirrored": 0.0 },
            "findings": [{ "gate": "shadow.output_agreement", "passed": false, "summary": "over the bound" }],
            "examples": [{ "pair": 7, "divergence": 2.0, "why": "the candidate failed (http_500)",
                           "request": "{\"amount\":1,\n\"user\":\"[redacted]\"}", "production": "{}", "candidate": "{}" }],
        })
    }

    #[test]
    fn the_page_shows_the_verdict_the_flips_the_new_errors_and_pending_gates() {
        let page = render(&report());
        for line in [
            "shadow of r1: fraud v2 (candidate) against v1 (production), running",
            "pairs compared: 1500   not compared: 1   dropped (comparison behind): 2",
            "agreement with production:      90.0% [88.0%, 92.0%]   Cohen's kappa 0.800",
            "production agreeing with itself: 99.0% [97.0%, 100.0%]",
            "excess disagreement:            +9.0% [+5.0%, +13.0%], allowed 2.0%",
            "gate: BLOCK: over the bound",
            "  approve           700         80",
            "follows the JSON schema  production 100.0% [99.0%, 100.0%], candidate 50.0% [45.0%, 55.0%]",
            "  candidate        http_500 x3 (new)",
            "  shadow.output_agreement    FAILED  over the bound",
            "  shadow.performance         pending not enough pairs yet",
            "    request     {\"amount\":1, \"user\":\"[redacted]\"}",
        ] {
            assert!(page.contains(line), "missing {line:?} in\n{page}");
        }
        // No copies of production were asked for: that row is left out, and there is no cost to show.
        assert!(!page.contains("production again     ") && !page.contains("cost:"), "{page}");
    }

    #[test]
    fn a_gate_still_waiting_says_how_many_pairs_it_expects_to_need() {
        let mut r = report();
        r["excess"]["decision"] = json!("not_yet");
        r["excess"]["pairs_needed"] = json!(4200);
        let page = render(&r);
        assert!(page.contains("not enough evidence yet: about 4200 pairs needed at the current estimate"), "{page}");
        r["decision_expected_at"] = json!("2026-11-26T10:30:00Z");
        let page = render(&r);
        assert!(page.contains("4200 pairs needed at the current estimate, around 2026-11-26T10:30:00Z"), "{page}");
    }
}
