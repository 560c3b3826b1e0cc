//! Monitoring a team can import: Prometheus recording and alerting rules
//! and a Grafana dashboard for one service, over rollgate's own metrics
//! (the gateway's `/metrics` for traffic, the API's `/metrics` for rollouts).
//! Thresholds come from the service's plan, so the alerts say what the
//! judge would act on. Pure text and JSON; the CLI writes the files.

use crate::prometheus::RuleGroup;
use rollgate_core::plan::Plan;
use serde_json::{Value, json};
use std::fmt::Write;

/// The group names the rules are loaded under: what the monitoring plan gate looks for.
pub fn group_names(service: &str) -> [String; 2] {
    [format!("rollgate-{service}-recording"), format!("rollgate-{service}-alerts")]
}

/// Whether the service's exported rules are loaded in Prometheus: a summary,
/// or what is missing or failing.
pub fn rules_loaded(service: &str, groups: &[RuleGroup]) -> Result<String, String> {
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    for name in group_names(service) {
        match groups.iter().find(|g| g.name == name) {
            None => problems.push(format!("group `{name}` is not loaded")),
            Some(g) if g.rules.is_empty() => problems.push(format!("group `{name}` has no rules")),
            Some(g) => {
                for rule in g.rules.iter().filter(|r| r.health == "err") {
                    let why = rule.last_error.as_deref().unwrap_or("no error given");
                    problems.push(format!("rule `{}` of `{name}` fails: {why}", rule.name));
                }
                loaded.push(format!("{name} ({} rules)", g.rules.len()));
            }
        }
    }
    if problems.is_empty() {
        Ok(format!("{} loaded in Prometheus", loaded.join(" and ")))
    } else {
        Err(format!(
            "{}; `rollgate monitoring export --service {service}` writes the rules to load",
            problems.join("; ")
        ))
    }
}

/// Outcomes that count against a version (4xx is the client's).
const FAILED: &str = r#"outcome=~"5xx|timeout|connection_failure""#;

/// Options of the export that are not in the plan.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Alert when this share of a service's requests fails, canary or not.
    pub max_error_rate: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_error_rate: 0.05 }
    }
}

struct Rule {
    /// `record` or `alert` name.
    name: String,
    expr: String,
    for_: Option<&'static str>,
    labels: Vec<(&'static str, String)>,
    annotations: Vec<(&'static str, String)>,
}

/// `rules.yml`: a recording group and an alerting group for `service`.
pub fn rules(service: &str, plan: &Plan, limits: Limits) -> String {
    let s = quoted(service);
    let sel = format!("service={s}");
    let t = &plan.rollback;
    let q = t.latency_quantile;
    let record = |name: &str, expr: String| Rule {
        name: name.into(),
        expr,
        for_: None,
        labels: Vec::new(),
        annotations: Vec::new(),
    };
    let recording = vec![
        record(
            "rollgate:responses:rate5m",
            format!(r#"sum by (service, version, arm) (rate(rollgate_responses_total{{{sel},outcome!="4xx"}}[5m]))"#),
        ),
        record(
            "rollgate:errors:rate5m",
            format!("sum by (service, version, arm) (rate(rollgate_responses_total{{{sel},{FAILED}}}[5m]))"),
        ),
        record(
            "rollgate:error_ratio:rate5m",
            format!("rollgate:errors:rate5m{{{sel}}} / rollgate:responses:rate5m{{{sel}}}"),
        ),
        record(
            "rollgate:latency_quantile:rate5m",
            format!(
                "histogram_quantile({q}, sum by (service, version, arm, le) (rate(rollgate_request_duration_seconds_bucket{{{sel}}}[5m])))"
            ),
        ),
        record(
            "rollgate:canary_error_ratio:vs_stable",
            format!(
                r#"sum by (service) (rollgate:error_ratio:rate5m{{{sel},arm="canary"}}) / sum by (service) (rollgate:error_ratio:rate5m{{{sel},arm="stable"}})"#
            ),
        ),
        record(
            "rollgate:canary_latency_ratio:vs_stable",
            format!(
                r#"max by (service) (rollgate:latency_quantile:rate5m{{{sel},arm="canary"}}) / max by (service) (rollgate:latency_quantile:rate5m{{{sel},arm="stable"}})"#
            ),
        ),
    ];
    let alert = |name: &str, expr: String, for_, severity: &str, summary: String, description: String| Rule {
        name: name.into(),
        expr,
        for_: Some(for_),
        labels: vec![("severity", severity.into())],
        annotations: vec![("summary", summary), ("description", description)],
    };
    let pct = |x: f64| format!("{}%", x * 100.0);
    let alerts = vec![
        alert(
            "RollgateCanaryErrorRatioHigh",
            format!(
                r#"rollgate:canary_error_ratio:vs_stable{{{sel}}} > {} and on (service) sum by (service) (increase(rollgate_responses_total{{{sel},arm="canary",{FAILED}}}[5m])) >= {}"#,
                t.error_rate_ratio, t.min_canary_events
            ),
            "2m",
            "page",
            format!("{service}: the canary's error rate is above {}x the stable version's", t.error_rate_ratio),
            "The judge rolls such a canary back once the evidence suffices; `rollgate rollout status` shows its numbers.".into(),
        ),
        alert(
            "RollgateCanaryLatencyRatioHigh",
            format!("rollgate:canary_latency_ratio:vs_stable{{{sel}}} > {}", t.latency_ratio),
            "5m",
            "page",
            format!("{service}: the canary's p{} latency is above {}x the stable version's", q * 100.0, t.latency_ratio),
            "Compare the versions' latency panels; the judge's latency trigger acts on the same ratio.".into(),
        ),
        alert(
            "RollgateServiceErrors",
            format!(
                "sum by (service) (rollgate:errors:rate5m{{{sel}}}) / sum by (service) (rollgate:responses:rate5m{{{sel}}}) > {}",
                limits.max_error_rate
            ),
            "5m",
            "page",
            format!("{service}: over {} of requests through the gateway fail", pct(limits.max_error_rate)),
            "Every version together, canary or not: a failing model server or a gateway that cannot reach it.".into(),
        ),
        alert(
            "RollgateJudgeHoldingLong",
            format!("max by (service, rollout) (rollgate_judge_holding{{{sel}}}) == 1"),
            "1h",
            "ticket",
            format!("{service}: the judge has held for an hour without enough data to decide"),
            "The canary gets too little traffic for the plan's triggers; raise its share or wait.".into(),
        ),
        alert(
            "RollgateRolledBack",
            format!("increase(rollgate_rollbacks_total{{{sel}}}[15m]) > 0"),
            "0m",
            "ticket",
            format!("{service}: a rollout was rolled back"),
            "`rollgate rollout retro ID` writes what happened, from the log.".into(),
        ),
        alert(
            "RollgatePendingManualEffect",
            format!(r#"max by (service, rollout, action) (rollgate_pending_actions{{{sel},waiting="person"}}) > 0"#),
            "15m",
            "ticket",
            format!("{service}: an effect waits for a person"),
            "No hook could do it: do it by hand, then `rollgate rollout confirm`.".into(),
        ),
        alert(
            "RollgatePendingHookEffect",
            format!(r#"max by (service, rollout, action) (rollgate_pending_actions{{{sel},waiting="hook"}}) > 0"#),
            "1h",
            "ticket",
            format!("{service}: a deploy hook has not finished an effect for an hour"),
            "See the action's runs in `rollgate rollout status`.".into(),
        ),
        alert(
            "RollgateMirrorDropping",
            "sum(rate(rollgate_mirror_dropped_total[5m])) > 0".into(),
            "10m",
            "ticket",
            "shadow copies are being dropped to protect the primary path".into(),
            "The shadow version is slower than production or its queue is full; the comparison sees fewer pairs."
                .into(),
        ),
    ];
    let [recording_group, alerting_group] = group_names(service);
    let mut o = format!(
        "# Prometheus rules for {service}, written by `rollgate monitoring export`; its plan's thresholds: {}.\n\
         # Needs the gateway's /metrics and the API's /metrics scraped.\ngroups:\n",
        thresholds(plan)
    );
    write_group(&mut o, &recording_group, "record", &recording);
    write_group(&mut o, &alerting_group, "alert", &alerts);
    o
}

fn thresholds(plan: &Plan) -> String {
    let t = &plan.rollback;
    format!(
        "errors > {}x, p{} latency > {}x, at least {} canary errors",
        t.error_rate_ratio,
        t.latency_quantile * 100.0,
        t.latency_ratio,
        t.min_canary_events
    )
}

fn write_group(o: &mut String, name: &str, key: &str, rules: &[Rule]) {
    let _ = writeln!(o, "  - name: {}\n    interval: 30s\n    rules:", yaml(name));
    for r in rules {
        let _ = writeln!(o, "      - {key}: {}\n        expr: {}", yaml(&r.name), yaml(&r.expr));
        if let Some(f) = r.for_ {
            let _ = writeln!(o, "        for: {f}");
        }
        for (section, pairs) in [("labels", &r.labels), ("annotations", &r.annotations)] {
            if !pairs.is_empty() {
                let _ = writeln!(o, "        {section}:");
                for (k, v) in pairs {
                    let _ = writeln!(o, "          {k}: {}", yaml(v));
                }
            }
        }
    }
}

/// A double-quoted literal in JSON's syntax: a PromQL string, and a YAML scalar too.
fn quoted(s: &str) -> String {
    Value::String(s.into()).to_string()
}

/// A YAML scalar, single-quoted where it can be (no escapes: PromQL reads as written).
fn yaml(s: &str) -> String {
    if s.chars().all(|c| c != '\'' && !c.is_control()) { format!("'{s}'") } else { quoted(s) }
}

/// `dashboard.json`: a Grafana dashboard of the service's versions, canary
/// against stable, on a Prometheus data source chosen at import.
pub fn dashboard(service: &str, plan: &Plan) -> Value {
    let sel = format!("service={}", quoted(service));
    let versions = format!(r#"{sel},version=~"$version""#);
    let t = &plan.rollback;
    let mut panels = Vec::new();
    let mut add = |title: &str, unit: &str, targets: Vec<(String, &str)>, threshold: Option<f64>| {
        let index = panels.len();
        let (w, h) = (12, 8);
        let targets: Vec<Value> = targets
            .into_iter()
            .enumerate()
            .map(|(i, (expr, legend))| {
                json!({
                    "refId": char::from(b'A' + i as u8).to_string(),
                    "datasource": { "type": "prometheus", "uid": "${datasource}" },
                    "expr": expr,
                    "legendFormat": legend,
                })
            })
            .collect();
        let mut steps = vec![json!({ "color": "green", "value": null })];
        if let Some(limit) = threshold {
            steps.push(json!({ "color": "red", "value": limit }));
        }
        panels.push(json!({
            "id": index + 1,
            "type": "timeseries",
            "title": title,
            "datasource": { "type": "prometheus", "uid": "${datasource}" },
            "gridPos": { "x": (index % 2) * w, "y": (index / 2) * h, "w": w, "h": h },
            "fieldConfig": {
                "defaults": {
                    "unit": unit,
                    "thresholds": { "mode": "absolute", "steps": steps },
                    "custom": { "thresholdsStyle": { "mode": if threshold.is_some() { "line" } else { "off" } } }
                },
                "overrides": []
            },
            "options": { "legend": { "displayMode": "table", "placement": "bottom" }, "tooltip": { "mode": "multi" } },
            "targets": targets,
        }));
    };
    let by_arm = "{{version}} ({{arm}})";
    add(
        "Requests per second, by version and arm",
        "reqps",
        vec![(
            format!("sum by (version, arm) (rate(rollgate_requests_total{{{versions}}}[$__rate_interval]))"),
            by_arm,
        )],
        None,
    );
    add(
        "Error rate, canary vs stable",
        "percentunit",
        vec![(format!("rollgate:error_ratio:rate5m{{{versions}}}"), by_arm)],
        None,
    );
    add(
        "Canary error rate / stable",
        "none",
        vec![(format!("rollgate:canary_error_ratio:vs_stable{{{sel}}}"), "canary / stable")],
        Some(t.error_rate_ratio),
    );
    let quantile = |q: f64, metric: &str| {
        format!(
            "histogram_quantile({q}, sum by (version, arm, le) (rate({metric}_bucket{{{versions}}}[$__rate_interval])))"
        )
    };
    add(
        "Latency p50 / p95 / p99",
        "s",
        vec![
            (quantile(0.5, "rollgate_request_duration_seconds"), "p50 {{version}} ({{arm}})"),
            (quantile(0.95, "rollgate_request_duration_seconds"), "p95 {{version}} ({{arm}})"),
            (quantile(0.99, "rollgate_request_duration_seconds"), "p99 {{version}} ({{arm}})"),
        ],
        None,
    );
    add(
        &format!("Canary p{} latency / stable", t.latency_quantile * 100.0),
        "none",
        vec![(format!("rollgate:canary_latency_ratio:vs_stable{{{sel}}}"), "canary / stable")],
        Some(t.latency_ratio),
    );
    add(
        "Time to first byte p95 (time to first token for streamed models)",
        "s",
        vec![(quantile(0.95, "rollgate_time_to_first_byte_seconds"), by_arm)],
        None,
    );
    add(
        "Complaints per request",
        "percentunit",
        vec![(
            format!(
                r#"sum by (version, arm) (rate(rollgate_feedback_total{{{versions},kind="complaint"}}[$__rate_interval])) / sum by (version, arm) (rate(rollgate_requests_total{{{versions}}}[$__rate_interval]))"#
            ),
            by_arm,
        )],
        None,
    );
    add(
        "Candidate's share of traffic",
        "percent",
        vec![(format!("rollgate_rollout_candidate_percent{{{sel}}}"), "{{rollout}}")],
        None,
    );
    add(
        "Judge holding for data (1) / deciding (0)",
        "none",
        vec![(format!("rollgate_judge_holding{{{sel}}}"), "{{rollout}}")],
        None,
    );
    add(
        "Effects waiting (hook or person) and rollbacks",
        "none",
        vec![
            (format!("sum by (waiting) (rollgate_pending_actions{{{sel}}})"), "waiting for a {{waiting}}"),
            (format!("increase(rollgate_rollbacks_total{{{sel}}}[1h])"), "rollbacks in the last hour"),
        ],
        None,
    );
    json!({
        "title": format!("rollgate: {service}"),
        "uid": format!("rollgate-{}", service.chars().filter(char::is_ascii_alphanumeric).take(30).collect::<String>()),
        "description": format!("Canary against stable for {service}, exported by rollgate from its plan."),
        "tags": ["rollgate"],
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "refresh": "10s",
        "time": { "from": "now-6h", "to": "now" },
        "timezone": "utc",
        "templating": { "list": [
            {
                "name": "datasource",
                "label": "Prometheus",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0
            },
            {
                "name": "version",
                "label": "Version",
                "type": "query",
                "datasource": { "type": "prometheus", "uid": "${datasource}" },
                "definition": format!("label_values(rollgate_requests_total{{{sel}}}, version)"),
                "query": { "query": format!("label_values(rollgate_requests_total{{{sel}}}, version)"), "refId": "versions" },
                "refresh": 2,
                "multi": true,
                "includeAll": true,
                "current": { "text": "All", "value": "$__all" },
                "hide": 0
            }
        ] },
        "annotations": { "list": [] },
        "panels": panels,
    })
}
