//! Monitoring the team can import: the control plane's `/metrics` passes
//! `promtool check metrics`; the exported rules pass `promtool check rules`
//! and `promtool test rules` on series this test writes (an alert that
//! fires when it must and stays quiet when it must); every query of the
//! dashboard parses, and names only metrics rollgate exposes.

mod common;

use common::*;
use reqwest::StatusCode;
use rollgate_core::roles::Role;
use rollgate_server::monitoring::{Limits, dashboard, rules};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const CANARY: &str = "[plans.fast.canary]\nsteps = [{ percent = 20, hold = \"1h\" }, { percent = 100 }]\n";

fn promtool(args: &[&str], stdin: Option<&str>, dir: &Path) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) must be installed: scripts/test.sh installs it");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The metric families an exposition declares.
fn families(exposition: &str) -> BTreeSet<String> {
    exposition.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(|l| l.split(' ').next().unwrap().into()).collect()
}

#[tokio::test]
async fn the_control_plane_metrics_pass_promtool_and_say_what_rollouts_do() {
    let (v1, v2) = (named_model("v1").await, named_model("v2").await);
    let setup = Setup::new(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let config = fraud_config(&[("v1", &v1.url), ("v2", &v2.url)], CANARY, "");
    let (api, front) = setup.start_with_gateway(source(&config), Duration::from_secs(2)).await;
    let start = json!({ "service": "fraud", "candidate": "v2", "id": "r1", "skip_shadow": true });
    assert_eq!(api.post("/api/v1/rollouts", &alice, start).await.0, StatusCode::CREATED);
    for _ in 0..2 {
        api.post("/api/v1/rollouts/r1/force-promote", &dana, json!({ "reason": "test" })).await;
    }
    // No token needed: Prometheus scrapes it.
    let response = reqwest::get(format!("{}/metrics", api.base)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ok, said) = promtool(&["check", "metrics"], Some(&text), dir.path());
    assert!(ok, "promtool check metrics: {said}\n{text}");
    assert!(text.contains("rollgate_rollout_active{service=\"fraud\",rollout=\"r1\",stage=\"canary\"} 1"), "{text}");
    assert!(text.contains("rollgate_rollout_candidate_percent{service=\"fraud\",rollout=\"r1\"} 20"), "{text}");
    assert!(text.contains("rollgate_rollbacks_total{service=\"fraud\"} 0"), "{text}");

    let rollback = json!({ "category": "quality", "reason": "test", "full": false });
    assert_eq!(api.post("/api/v1/rollouts/r1/rollback", &alice, rollback).await.0, StatusCode::OK);
    let text = reqwest::get(format!("{}/metrics", api.base)).await.unwrap().text().await.unwrap();
    assert!(text.contains("rollgate_rollbacks_total{service=\"fraud\"} 1"), "{text}");
    assert!(text.contains("rollgate_rollouts_finished_total{service=\"fraud\",outcome=\"rolled_back\"} 1"), "{text}");
    assert!(!text.contains("rollgate_rollout_active{"), "{text}");
    api.stop().await;
    front.shutdown().await;
}

/// The alerts' expected labels and annotations, as promtool compares them.
fn expected(alert: &str, labels: Value) -> Value {
    let (summary, description) = match alert {
        "RollgateCanaryErrorRatioHigh" => (
            "fraud: the canary's error rate is above 2x the stable version's",
            "The judge rolls such a canary back once the evidence suffices; `rollgate rollout status` shows its numbers.",
        ),
        "RollgateCanaryLatencyRatioHigh" => (
            "fraud: the canary's p99 latency is above 1.5x the stable version's",
            "Compare the versions' latency panels; the judge's latency trigger acts on the same ratio.",
        ),
        "RollgateJudgeHoldingLong" => (
            "fraud: the judge has held for an hour without enough data to decide",
            "The canary gets too little traffic for the plan's triggers; raise its share or wait.",
        ),
        "RollgateRolledBack" => {
            ("fraud: a rollout was rolled back", "`rollgate rollout retro ID` writes what happened, from the log.")
        }
        "RollgatePendingManualEffect" => (
            "fraud: an effect waits for a person",
            "No hook could do it: do it by hand, then `rollgate rollout confirm`.",
        ),
        other => panic!("no expectation for {other}"),
    };
    json!([{ "exp_labels": labels, "exp_annotations": { "summary": summary, "description": description } }])
}

fn series(name: &str, labels: &str, values: &str) -> Value {
    json!({ "series": format!("{name}{{service=\"fraud\",{labels}}}"), "values": values })
}

fn responses(version: &str, arm: &str, ok_per_min: u32, failed_per_min: u32) -> [Value; 2] {
    let labels = |outcome: &str| format!("version=\"{version}\",arm=\"{arm}\",outcome=\"{outcome}\"");
    [
        series("rollgate_responses_total", &labels("ok"), &format!("0+{ok_per_min}x90")),
        series("rollgate_responses_total", &labels("5xx"), &format!("0+{failed_per_min}x90")),
    ]
}

fn latency(version: &str, arm: &str, fast: u32, slow: u32) -> Vec<Value> {
    [("0.01", fast), ("0.05", fast + slow), ("+Inf", fast + slow)]
        .into_iter()
        .map(|(le, n)| {
            let labels = format!("version=\"{version}\",arm=\"{arm}\",le=\"{le}\"");
            series("rollgate_request_duration_seconds_bucket", &labels, &format!("0+{n}x90"))
        })
        .collect()
}

fn alert_test(at: &str, alert: &str, expect: Value) -> Value {
    json!({ "eval_time": at, "alertname": alert, "exp_alerts": expect })
}

#[test]
fn the_exported_rules_fire_when_they_must_and_not_otherwise() {
    let config = rollgate_core::config::Config::parse(
        "test.toml",
        &fraud_config(&[("v1", "http://127.0.0.1:1"), ("v2", "http://127.0.0.1:2")], CANARY, ""),
    )
    .unwrap();
    let plan = config.plan("fast").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), rules("fraud", &plan, Limits::default())).unwrap();
    let (ok, said) = promtool(&["check", "rules", "rules.yml"], None, dir.path());
    assert!(ok && said.contains("SUCCESS: 14 rules found"), "{said}");

    let bad_canary: Vec<Value> = [responses("v1", "stable", 990, 10), responses("v2", "canary", 90, 10)]
        .into_iter()
        .flatten()
        .chain(latency("v1", "stable", 100, 0))
        .chain(latency("v2", "canary", 0, 10))
        .collect();
    let healthy: Vec<Value> = [responses("v1", "stable", 990, 10), responses("v2", "canary", 99, 1)]
        .into_iter()
        .flatten()
        .chain(latency("v1", "stable", 100, 0))
        .chain(latency("v2", "canary", 10, 0))
        .collect();
    let control = vec![
        series("rollgate_judge_holding", "rollout=\"r1\"", "1x90"),
        series("rollgate_rollbacks_total", "", "0x10 1x80"),
        series("rollgate_pending_actions", "rollout=\"r1\",action=\"redeploy-v1\",waiting=\"person\"", "1x90"),
    ];
    let service = json!({ "service": "fraud", "severity": "page" });
    let ticket = |extra: Value| {
        let mut labels = json!({ "service": "fraud", "severity": "ticket" });
        labels.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        labels
    };
    let tests = json!({
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                // A canary failing 10% against 1% and five times slower: both page, the service as a whole does not (1.8%).
                "interval": "1m",
                "input_series": bad_canary,
                "alert_rule_test": [
                    alert_test("10m", "RollgateCanaryErrorRatioHigh", expected("RollgateCanaryErrorRatioHigh", service.clone())),
                    alert_test("15m", "RollgateCanaryLatencyRatioHigh", expected("RollgateCanaryLatencyRatioHigh", service.clone())),
                    alert_test("15m", "RollgateServiceErrors", json!([])),
                ],
            },
            {
                // The same traffic with a healthy canary: nothing fires.
                "interval": "1m",
                "input_series": healthy,
                "alert_rule_test": [
                    alert_test("30m", "RollgateCanaryErrorRatioHigh", json!([])),
                    alert_test("30m", "RollgateCanaryLatencyRatioHigh", json!([])),
                    alert_test("30m", "RollgateServiceErrors", json!([])),
                ],
            },
            {
                // The control plane's series: a judge holding, a rollback, an effect waiting for a person.
                "interval": "1m",
                "input_series": control,
                "alert_rule_test": [
                    alert_test("50m", "RollgateJudgeHoldingLong", json!([])),
                    alert_test("70m", "RollgateJudgeHoldingLong", expected("RollgateJudgeHoldingLong", ticket(json!({ "rollout": "r1" })))),
                    alert_test("5m", "RollgateRolledBack", json!([])),
                    alert_test("12m", "RollgateRolledBack", expected("RollgateRolledBack", ticket(json!({})))),
                    alert_test("40m", "RollgateRolledBack", json!([])),
                    alert_test("10m", "RollgatePendingManualEffect", json!([])),
                    alert_test("20m", "RollgatePendingManualEffect", expected("RollgatePendingManualEffect", ticket(json!({ "rollout": "r1", "action": "redeploy-v1" })))),
                ],
            },
        ],
    });
    // JSON is YAML: promtool reads the test file as written.
    std::fs::write(dir.path().join("tests.yml"), serde_json::to_string_pretty(&tests).unwrap()).unwrap();
    let (ok, said) = promtool(&["test", "rules", "tests.yml"], None, dir.path());
    assert!(ok && said.contains("SUCCESS"), "promtool test rules:\n{said}");
}

#[test]
fn the_dashboard_is_a_grafana_dashboard_whose_queries_parse_and_name_real_metrics() {
    let plan = rollgate_core::plan::Plan::default();
    let board = dashboard("fraud", &plan);
    assert_eq!(board["schemaVersion"], 39);
    assert_eq!(board["uid"], "rollgate-fraud");
    let variables: Vec<&str> =
        board["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(variables, ["datasource", "version"]);
    let panels = board["panels"].as_array().unwrap();
    assert!(panels.len() >= 8, "{}", panels.len());
    // Panels: unique ids, inside Grafana's 24 columns, none over another.
    let mut cells = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "a repeated panel id: {p}");
        assert_eq!(p["type"], "timeseries");
        let g = &p["gridPos"];
        let (x, y, w, h) =
            (g["x"].as_u64().unwrap(), g["y"].as_u64().unwrap(), g["w"].as_u64().unwrap(), g["h"].as_u64().unwrap());
        assert!(x + w <= 24 && w > 0 && h > 0, "{g}");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "panels overlap at {cx},{cy}: {}", p["title"]);
            }
        }
    }
    // Every query parses (promtool checks them as recording rules, with
    // Grafana's variables replaced), and names only metrics rollgate exposes
    // or the exported rules record.
    let queries: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{t}");
            t["expr"].as_str().unwrap().replace("$__rate_interval", "5m").replace("$version", ".*")
        })
        .collect();
    let mut check = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        check += &format!("      - record: dashboard:query_{i}\n        expr: {}\n", Value::String(q.clone()));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dashboard-queries.yml"), check).unwrap();
    let (ok, said) = promtool(&["check", "rules", "dashboard-queries.yml"], None, dir.path());
    assert!(ok, "{said}");

    let stats = rollgate_gateway::stats::Stats::default();
    stats.series("fraud", "v1", rollgate_gateway::stats::Arm::Stable);
    let mut known = families(&stats.render());
    known.extend(families(&rollgate_server::control_metrics::render(["fraud"], &[])));
    let recorded = rules("fraud", &plan, Limits::default());
    let names = regex::Regex::new(r"rollgate(_[a-z0-9]+)+|rollgate:[a-z0-9_:]+").unwrap();
    known.extend(
        recorded.lines().filter_map(|l| l.trim().strip_prefix("- record: ")).map(|n| n.trim_matches('\'').to_string()),
    );
    for q in queries.iter().map(String::as_str).chain(recorded.lines().filter(|l| l.trim().starts_with("expr:"))) {
        for name in names.find_iter(q).map(|m| m.as_str()) {
            let family =
                ["_bucket", "_sum", "_count"].iter().fold(name, |n, suffix| n.strip_suffix(suffix).unwrap_or(n));
            assert!(known.contains(family), "`{name}` in `{q}` is no metric rollgate exposes: {known:?}");
        }
    }
}

#[tokio::test]
async fn the_monitoring_plan_gate_passes_once_the_exported_rules_are_loaded_in_prometheus() {
    let prometheus = PrometheusServer::start("127.0.0.1:1");
    let (v1, v2) = (named_model("v1").await, named_model("v2").await);
    let plan = format!("{CANARY}[plans.fast.pre_deployment]\nmonitoring_rules = true\n");
    let config = fraud_config(&[("v1", &v1.url), ("v2", &v2.url)], &plan, "")
        + &format!("[metrics]\nprometheus = \"{}\"\n", prometheus.url);
    let s = Started::new(&config).await;
    let gate = || s.evidence("documentation.monitoring_plan");
    let said = |text: &'static str| {
        let gate = &gate;
        async move { gate().await.is_some_and(|e| e["summary"].as_str().unwrap().contains(text)) }
    };
    let missing = wait_for(Duration::from_secs(60), || said("group `rollgate-fraud-recording` is not loaded")).await;
    let evidence = gate().await;
    assert!(missing, "{evidence:?}");
    let evidence = evidence.unwrap();
    assert_eq!((evidence["passed"].as_bool(), evidence["by"].as_str()), (Some(false), Some("rollgate")), "{evidence}");

    let plan = rollgate_core::config::Config::parse("t.toml", &config).unwrap().plan("fast").unwrap();
    prometheus.load_rules(&rules("fraud", &plan, Limits::default()));
    let loaded =
        wait_for(Duration::from_secs(60), || said("(6 rules) and rollgate-fraud-alerts (8 rules) loaded")).await;
    let evidence = gate().await.unwrap();
    assert!(loaded, "{evidence}");
    assert_eq!((evidence["passed"].as_bool(), evidence["by"].as_str()), (Some(true), Some("rollgate")), "{evidence}");
    s.stop().await;
}
