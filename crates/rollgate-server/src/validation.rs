//! Running validation against a model server: a suite's cases sent with
//! bounded concurrency (a timeout per try, retries only after transport
//! errors), the edge-case probes, the documents read beside the config, and
//! the run turned into each gate's evidence. `rollgate validate` runs it
//! from a person's or CI's machine; the reconciler runs it itself against a
//! rollout's candidate when the service names its suites, so the evidence
//! is rollgate's. The judging is `rollgate_validate`'s (pure).

use rollgate_core::config::{Config, Protocol};
use rollgate_validate::docs::{self, DocResult, Finding};
use rollgate_validate::edge::{self, ProbeResult, Try};
use rollgate_validate::report::{Answer, Decision, Report, Requirement};
use rollgate_validate::suite::{MANIFEST, ResponseSpec, Suite, cases_file};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Reads the suite in `dir` (its manifest and cases); every problem at file:line:column.
pub fn read_suite(dir: &Path) -> Result<Suite, String> {
    let manifest_path = dir.join(MANIFEST);
    let manifest =
        std::fs::read_to_string(&manifest_path).map_err(|e| format!("cannot read {}: {e}", manifest_path.display()))?;
    let cases_path = dir.join(cases_file(&manifest));
    let cases =
        std::fs::read_to_string(&cases_path).map_err(|e| format!("cannot read {}: {e}", cases_path.display()))?;
    Suite::parse(&manifest_path.display().to_string(), &manifest, &cases_path.display().to_string(), &cases).map_err(
        |problems| {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            format!("{}\n{} problem(s) in the suite", lines.join("\n"), problems.len())
        },
    )
}

/// The URL every request goes to: the endpoint and the suite's (or `path`'s) path.
fn url(endpoint: &str, suite: Option<&Suite>, path: &str) -> String {
    let path = suite.map_or(path, |s| s.manifest.request.path.as_str());
    format!("{}{path}", endpoint.trim_end_matches('/'))
}

/// Every case's answer from the model at `endpoint`, in the suite's order;
/// `progress` hears of every finished case (done, total).
pub async fn ask_all(
    http: &reqwest::Client,
    suite: &Suite,
    endpoint: &str,
    progress: Arc<dyn Fn(usize, usize) + Send + Sync>,
) -> Vec<Answer> {
    let run = &suite.manifest.run;
    let url = url(endpoint, Some(suite), "");
    let limit = Arc::new(tokio::sync::Semaphore::new(run.concurrency.max(1)));
    let done = Arc::new(AtomicUsize::new(0));
    let total = suite.cases.len();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, (_, case)) in suite.cases.iter().enumerate() {
        let Ok(permit) = limit.clone().acquire_owned().await else { break };
        let (http, url, body, done, progress) =
            (http.clone(), url.clone(), case.input_text.clone(), done.clone(), progress.clone());
        let (response, timeout, retries) = (suite.manifest.response.clone(), run.timeout, run.retries);
        tasks.spawn(async move {
            let answer = ask(&http, &url, body, timeout.duration().unsigned_abs(), retries, &response).await;
            drop(permit);
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            (index, answer)
        });
    }
    let mut answers = vec![Answer::default(); total];
    while let Some(joined) = tasks.join_next().await {
        // A case's task only ends by answering; one that panicked is left unanswered.
        if let Ok((index, answer)) = joined {
            answers[index] = answer;
        }
    }
    answers
}

/// One try of one request: the response, a hang, or a dropped connection.
async fn post(http: &reqwest::Client, url: &str, body: String, timeout: Duration) -> Result<(u16, Vec<u8>), Try> {
    let sent = http.post(url).header("content-type", "application/json").body(body).timeout(timeout).send().await;
    let response = match sent {
        Ok(response) => response,
        Err(e) if e.is_timeout() => return Err(Try::Hang),
        Err(e) => return Err(Try::Dropped(e.to_string())),
    };
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(bytes) => Ok((status, bytes.to_vec())),
        Err(e) if e.is_timeout() => Err(Try::Hang),
        Err(e) => Err(Try::Dropped(format!("the answer broke off: {e}"))),
    }
}

/// One case: its answer, or why there is none.
async fn ask(
    http: &reqwest::Client,
    url: &str,
    body: String,
    timeout: Duration,
    retries: u32,
    spec: &ResponseSpec,
) -> Answer {
    let failed = |error: String| Answer { error: Some(error), ..Answer::default() };
    let started = Instant::now();
    let mut attempt = 0;
    let (status, bytes) = loop {
        match post(http, url, body.clone(), timeout).await {
            Ok(answer) => break answer,
            // A hang is the model's answer: only a transport error is tried again.
            Err(Try::Hang) => return failed(format!("no answer within {} ms", timeout.as_millis())),
            Err(_) if attempt < retries => attempt += 1,
            Err(other) => return failed(format!("{} after {} tries", other.describe(), attempt + 1)),
        }
    };
    let latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    if status >= 300 {
        return Answer { latency_ms, ..failed(format!("status {status}")) };
    }
    let Ok(json) = serde_json::from_slice::<Value>(&bytes) else {
        return Answer { latency_ms, ..failed("the answer is not JSON".into()) };
    };
    let Some(prediction) = json.pointer(&spec.prediction).cloned() else {
        return Answer { latency_ms, ..failed(format!("no prediction at {}", spec.prediction)) };
    };
    let score = spec.score.as_ref().and_then(|p| json.pointer(p)).and_then(Value::as_f64);
    Answer { prediction: Some(prediction), score, latency_ms, error: None }
}

/// The edge-case probes against `endpoint` (at the suite's path, or `path`
/// without one), made from the suite's first case or else the protocol's
/// example, each with the suite's timeout (10 s without one), one after
/// another, each tried until it passes or three tries fail.
pub async fn probe(
    http: &reqwest::Client,
    suite: Option<&Suite>,
    protocol: Protocol,
    endpoint: &str,
    path: &str,
) -> Vec<ProbeResult> {
    let sample = suite.and_then(|s| s.cases.first()).map_or_else(|| edge::example(protocol), |(_, c)| c.input.clone());
    let url = url(endpoint, suite, path);
    let timeout = suite.map_or(Duration::from_secs(10), |s| s.manifest.run.timeout.duration().unsigned_abs());
    let mut results = Vec::new();
    for probe in edge::probes(&sample) {
        let send = |body| {
            let (http, url) = (&http, &url);
            async move {
                post(http, url, body, timeout).await.map_or_else(|failed| failed, |(status, _)| Try::Status(status))
            }
        };
        results.push(edge::attempt(&probe, send).await);
    }
    results
}

/// The documents of `version` of `service`: its model card and the service's
/// runbook, monitoring plan and rollback plan, each read relative to `base`
/// (the config file's directory); `config_file` names the config in findings.
pub fn check_docs(
    config: &Config,
    base: &Path,
    config_file: &str,
    service: &str,
    version: &str,
) -> Result<Vec<DocResult>, String> {
    let s = config.services.get(service).ok_or_else(|| format!("no service `{service}` in {config_file}"))?;
    let v = s
        .versions
        .get(version)
        .ok_or_else(|| format!("service `{service}` has no version `{version}` in the config"))?;
    let rules = config.plan(s.plan.get_ref()).map(|p| p.pre_deployment.documents).unwrap_or_default();
    let read = |gate: &str, path: Option<&String>, check: &dyn Fn(&str, &str) -> Vec<Finding>| {
        let findings = match path {
            None => {
                vec![Finding { file: config_file.to_string(), line: 1, message: format!("names no file for {gate}") }]
            }
            Some(p) => match std::fs::read_to_string(base.join(p)) {
                Ok(text) => check(p, &text),
                Err(e) => vec![Finding { file: p.clone(), line: 1, message: format!("cannot be read: {e}") }],
            },
        };
        DocResult { gate: gate.into(), file: path.cloned(), findings }
    };
    let sha = v.artifact.sha256.get_ref().clone();
    let card = |file: &str, text: &str| docs::model_card(file, text, version, &sha);
    Ok(vec![
        read("documentation.model_card", v.model_card.as_ref(), &card),
        read("documentation.runbook", s.docs.runbook.as_ref(), &|f, t| docs::document(f, t, &rules.runbook)),
        read("documentation.monitoring_plan", s.docs.monitoring_plan.as_ref(), &|f, t| {
            docs::document(f, t, &rules.monitoring_plan)
        }),
        read("documentation.rollback_plan", s.docs.rollback_plan.as_ref(), &|f, t| {
            docs::document(f, t, &rules.rollback_plan)
        }),
    ])
}

/// One gate's evidence from a run.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub gate: String,
    pub passed: bool,
    pub summary: String,
    pub details: Value,
}

/// A run as evidence of the rollout's gates: the metric requirements for
/// validation.performance, the bias requirements for validation.bias, the
/// safety requirement for validation.safety, the probes for
/// validation.edge_cases, each document for its documentation gate. `by`
/// says what ran it (`rollgate validate`, or the server).
pub fn evidence(
    report: Option<&Report>,
    edge: Option<&[ProbeResult]>,
    docs: Option<&[DocResult]>,
    by: &str,
) -> Vec<Evidence> {
    let mut out = Vec::new();
    for d in docs.unwrap_or_default() {
        let file = d.file.clone().unwrap_or_default();
        let summary = if d.passed() {
            format!("{file}: complete")
        } else {
            d.findings.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        };
        let details = json!({ "by": by, "file": d.file, "findings": d.findings });
        out.push(Evidence { gate: d.gate.clone(), passed: d.passed(), summary, details });
    }
    if let Some(report) = report {
        let is_bias = |r: &&Requirement| {
            r.rule.starts_with("demographic_parity") || r.rule.starts_with("equal") || r.rule.starts_with("every ")
        };
        let (bias, others): (Vec<_>, Vec<_>) = report.requirements.iter().partition(|r| is_bias(r));
        let (safety, performance): (Vec<_>, Vec<_>) = others.into_iter().partition(|r| r.rule.starts_with("safety"));
        let suite = format!("suite {} ({}…)", report.suite, &report.suite_sha256[..12]);
        let gates = [("validation.performance", performance), ("validation.bias", bias), ("validation.safety", safety)];
        for (gate, requirements) in gates {
            if requirements.is_empty() {
                continue;
            }
            let unmet: Vec<&str> =
                requirements.iter().filter(|r| r.decision != Decision::Passed).map(|r| r.rule.as_str()).collect();
            let summary = if unmet.is_empty() {
                format!("{suite}: {} requirement(s) met on {} cases", requirements.len(), report.cases)
            } else {
                format!("{suite}: not met: {}", unmet.join("; "))
            };
            let details = json!({
                "by": by, "suite": report.suite, "suite_sha256": report.suite_sha256,
                "requirements": requirements, "metrics": report.metrics, "bias": report.bias, "safety": report.safety,
                "cases": report.cases, "answered": report.answered,
            });
            out.push(Evidence { gate: gate.into(), passed: unmet.is_empty(), summary, details });
        }
    }
    if let Some(probes) = edge {
        let failed: Vec<&str> = probes.iter().filter(|p| !p.passed).map(|p| p.why.as_str()).collect();
        let summary = if failed.is_empty() {
            format!("{} edge-case probes answered below 500 within the timeout", probes.len())
        } else {
            format!("{} of {} edge-case probes failed: {}", failed.len(), probes.len(), failed.join("; "))
        };
        let details = json!({ "by": by, "probes": probes });
        out.push(Evidence { gate: "validation.edge_cases".into(), passed: failed.is_empty(), summary, details });
    }
    out
}
