//! `rollgate validate`: sends a suite's cases (bounded concurrency, a
//! timeout per try, retries only after transport errors) and edge-case
//! probes to a model server, judges the answers with rollgate-validate,
//! prints or writes the report, and for a rollout attaches it as the gates'
//! evidence.

use super::config::load;
use crate::Refused;
use crate::cli::{RolloutCommand, ValidateArgs};
use crate::client::Client;
use anyhow::Context;
use rollgate_core::config::Protocol;
use rollgate_server::views::RolloutView;
use rollgate_store::{AnyStore, Rollouts};
use rollgate_validate::docs::{self, DocResult, Finding};
use rollgate_validate::edge::{self, ProbeResult, Try};
use rollgate_validate::report::{Answer, Decision, Report, evaluate, text};
use rollgate_validate::suite::{MANIFEST, Suite};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What is validated: the candidate's URL, the stable version's when compared, the rollout when there is one.
struct Targets {
    candidate: String,
    stable: Option<String>,
    view: Option<RolloutView>,
    protocol: Protocol,
}

/// What one run found, and the rollout it is evidence for.
pub struct Outcome {
    pub report: Option<Report>,
    pub edge: Option<Vec<ProbeResult>>,
    pub docs: Option<Vec<DocResult>>,
    pub passed: bool,
    view: Option<RolloutView>,
}

pub async fn run(args: ValidateArgs) -> anyhow::Result<()> {
    let outcome = check(&args).await?;
    write_files(&args, &outcome)?;
    show(&args, &outcome)?;
    attach(&args, &outcome).await?;
    if outcome.passed { Ok(()) } else { Err(Refused(String::new()).into()) }
}

/// Runs the suite, the edge-case probes and the document checks `args` ask for.
pub async fn check(args: &ValidateArgs) -> anyhow::Result<Outcome> {
    let suite = args.suite.as_deref().map(read_suite).transpose()?;
    let targets = targets(args, suite.as_ref()).await?;
    let report = match &suite {
        Some(suite) => {
            let candidate = ask_all(suite, &targets.candidate, "candidate").await?;
            let stable = match &targets.stable {
                Some(url) => Some(ask_all(suite, url, "stable").await?),
                None => None,
            };
            Some(evaluate(suite, &candidate, stable.as_deref()))
        }
        None => None,
    };
    // A rollout's run against its model always probes edge cases; checking documents alone asks no model.
    let edge = if args.edge_cases || (targets.view.is_some() && suite.is_some()) {
        Some(probe_all(args, suite.as_ref(), &targets).await?)
    } else {
        None
    };
    let docs = if args.docs { Some(check_docs(args, targets.view.as_ref())?) } else { None };
    let edge_passed = edge.as_ref().is_none_or(|e| e.iter().all(|p| p.passed));
    let docs_passed = docs.as_ref().is_none_or(|d| d.iter().all(DocResult::passed));
    let passed = report.as_ref().is_none_or(|r| r.passed) && edge_passed && docs_passed;
    Ok(Outcome { report, edge, docs, passed, view: targets.view })
}

/// The JUnit XML and HTML page, where asked for.
pub fn write_files(args: &ValidateArgs, o: &Outcome) -> anyhow::Result<()> {
    let (edge, docs) = (o.edge.as_deref().unwrap_or_default(), o.docs.as_deref().unwrap_or_default());
    if let Some(path) = &args.junit {
        let xml = rollgate_validate::junit::junit(o.report.as_ref(), edge, docs);
        std::fs::write(path, xml).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        let markdown = rollgate_validate::markdown::markdown(o.report.as_ref(), edge, docs);
        let title =
            o.report.as_ref().map_or_else(|| "rollgate validate".to_string(), |r| format!("Validation: {}", r.suite));
        std::fs::write(path, rollgate_server::page::from_markdown(&title, &markdown))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The outcome on standard output: JSON for machines, or the readable report.
fn show(args: &ValidateArgs, o: &Outcome) -> anyhow::Result<()> {
    if args.json {
        let all = json!({ "passed": o.passed, "suite": o.report, "edge_cases": o.edge, "documentation": o.docs });
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    if let Some(r) = &o.report {
        print!("{}", text(r));
    }
    if let Some(results) = &o.docs {
        let failed = results.iter().filter(|d| !d.passed()).count();
        println!("documentation: {}", if failed == 0 { "PASSED".to_string() } else { format!("FAILED ({failed})") });
        for d in results {
            let file = d.file.as_deref().unwrap_or("(none named in the config)");
            match d.findings.as_slice() {
                [] => println!("  ✓ {} ({file})", d.gate),
                findings => findings.iter().for_each(|f| println!("  ✗ {}: {f}", d.gate)),
            }
        }
    }
    if let Some(results) = &o.edge {
        let failed = results.iter().filter(|p| !p.passed).count();
        println!("edge cases: {}", if failed == 0 { "PASSED".to_string() } else { format!("FAILED ({failed})") });
        for p in results {
            println!("  {} {}", if p.passed { "✓" } else { "✗" }, p.why);
        }
    }
    Ok(())
}

fn read_suite(dir: &Path) -> anyhow::Result<Suite> {
    let manifest_path = dir.join(MANIFEST);
    let manifest = std::fs::read_to_string(&manifest_path)
        .map_err(|e| Refused(format!("cannot read {}: {e}", manifest_path.display())))?;
    let cases_name = toml::from_str::<toml::Table>(&manifest)
        .ok()
        .and_then(|t| t.get("cases").and_then(|c| c.as_str()).map(str::to_string))
        .unwrap_or_else(|| "cases.jsonl".into());
    let cases_path = dir.join(&cases_name);
    let cases = std::fs::read_to_string(&cases_path)
        .map_err(|e| Refused(format!("cannot read {}: {e}", cases_path.display())))?;
    Suite::parse(&manifest_path.display().to_string(), &manifest, &cases_path.display().to_string(), &cases).map_err(
        |problems| {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            Refused(format!("{}\n{} problem(s) in the suite", lines.join("\n"), problems.len())).into()
        },
    )
}

async fn targets(args: &ValidateArgs, suite: Option<&Suite>) -> anyhow::Result<Targets> {
    if args.endpoint.is_none() && args.rollout.is_none() && (suite.is_some() || args.edge_cases) {
        return Err(Refused("a suite or edge cases need a model to ask: --endpoint URL or --rollout ID".into()).into());
    }
    let Some(id) = &args.rollout else {
        let candidate = args.endpoint.clone().unwrap_or_default();
        let protocol = args.protocol.unwrap_or(Protocol::Json);
        return Ok(Targets { candidate, stable: args.stable.clone(), view: None, protocol });
    };
    let view = rollout_view(args, id).await?;
    let config = load(&args.actor.config)?;
    let service = config.services.get(&view.service);
    let endpoint = |version: &str| {
        service
            .and_then(|s| s.versions.get(version))
            .and_then(|v| v.endpoints.first())
            .map(|e| e.get_ref().clone())
            .ok_or_else(|| {
                Refused(format!(
                    "{} has no endpoint for {} {version}; validate it with --endpoint URL instead",
                    args.actor.config.display(),
                    view.service
                ))
            })
    };
    let wants_stable = suite.is_some_and(|s| s.manifest.metrics.iter().any(|r| r.max_drop.is_some()));
    let stable = if wants_stable { Some(endpoint(&view.stable)?) } else { None };
    let protocol = args.protocol.or(service.map(|s| s.protocol)).unwrap_or(Protocol::Json);
    Ok(Targets { candidate: endpoint(&view.candidate)?, stable, view: Some(view), protocol })
}

async fn rollout_view(args: &ValidateArgs, id: &str) -> anyhow::Result<RolloutView> {
    match &args.target.server {
        Some(server) => Client::new(server, args.target.token.clone())?.get(&format!("/api/v1/rollouts/{id}")).await,
        None => {
            let location = args.target.store.location();
            let store =
                AnyStore::open(&location).await.with_context(|| format!("cannot open the store at {location}"))?;
            let rollout = Rollouts::new(store).load(id).await?.ok_or_else(|| {
                Refused(format!("no rollout `{id}`; `rollgate rollout list` shows the ones there are"))
            })?;
            Ok(RolloutView::new(&rollout, super::now()?, &[]))
        }
    }
}

/// The documents of the version being deployed: its model card and its service's runbook, monitoring plan and
/// rollback plan, each read from its path relative to the config file.
fn check_docs(args: &ValidateArgs, view: Option<&RolloutView>) -> anyhow::Result<Vec<DocResult>> {
    let config = load(&args.actor.config)?;
    let (service_name, version_name) = match (view, &args.service, &args.version) {
        (Some(v), _, _) => (v.service.clone(), v.candidate.clone()),
        (None, Some(s), Some(v)) => (s.clone(), v.clone()),
        _ => return Err(Refused("--docs needs --rollout ID, or --service and --version".into()).into()),
    };
    let service = config
        .services
        .get(&service_name)
        .ok_or_else(|| Refused(format!("no service `{service_name}` in {}", args.actor.config.display())))?;
    let version = service
        .versions
        .get(&version_name)
        .ok_or_else(|| Refused(format!("service `{service_name}` has no version `{version_name}` in the config")))?;
    let rules = config.plan(service.plan.get_ref()).map(|p| p.pre_deployment.documents).unwrap_or_default();
    let base = args.actor.config.parent().map(Path::to_path_buf).unwrap_or_default();
    let config_file = args.actor.config.display().to_string();
    let read = |gate: &str, path: Option<&String>, check: &dyn Fn(&str, &str) -> Vec<Finding>| {
        let findings = match path {
            None => vec![Finding { file: config_file.clone(), line: 1, message: format!("names no file for {gate}") }],
            Some(p) => match std::fs::read_to_string(base.join(p)) {
                Ok(text) => check(p, &text),
                Err(e) => vec![Finding { file: p.clone(), line: 1, message: format!("cannot be read: {e}") }],
            },
        };
        DocResult { gate: gate.into(), file: path.cloned(), findings }
    };
    let sha = version.artifact.sha256.get_ref().clone();
    let card = |file: &str, text: &str| docs::model_card(file, text, &version_name, &sha);
    Ok(vec![
        read("documentation.model_card", version.model_card.as_ref(), &card),
        read("documentation.runbook", service.docs.runbook.as_ref(), &|f, t| docs::document(f, t, &rules.runbook)),
        read("documentation.monitoring_plan", service.docs.monitoring_plan.as_ref(), &|f, t| {
            docs::document(f, t, &rules.monitoring_plan)
        }),
        read("documentation.rollback_plan", service.docs.rollback_plan.as_ref(), &|f, t| {
            docs::document(f, t, &rules.rollback_plan)
        }),
    ])
}

/// The URL every request goes to: the endpoint and the suite's (or --path's) path.
fn url(endpoint: &str, suite: Option<&Suite>, path: &str) -> String {
    let path = suite.map_or(path, |s| s.manifest.request.path.as_str());
    format!("{}{path}", endpoint.trim_end_matches('/'))
}

/// Every case's answer from the model at `endpoint`, in the suite's order.
async fn ask_all(suite: &Suite, endpoint: &str, who: &'static str) -> anyhow::Result<Vec<Answer>> {
    let run = &suite.manifest.run;
    let http = reqwest::Client::builder().build().context("cannot build an HTTP client")?;
    let url = url(endpoint, Some(suite), "");
    let limit = Arc::new(tokio::sync::Semaphore::new(run.concurrency));
    let done = Arc::new(AtomicUsize::new(0));
    let total = suite.cases.len();
    let progress = std::io::stderr().is_terminal();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, (_, case)) in suite.cases.iter().enumerate() {
        let permit = limit.clone().acquire_owned().await?;
        let (http, url, body, done) = (http.clone(), url.clone(), case.input_text.clone(), done.clone());
        let (response, timeout, retries) = (suite.manifest.response.clone(), run.timeout, run.retries);
        tasks.spawn(async move {
            let answer = ask(&http, &url, body, timeout.duration().unsigned_abs(), retries, &response).await;
            drop(permit);
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if progress && (n % 10 == 0 || n == total) {
                eprint!("\r  {who}: {n}/{total} cases");
                let _ = std::io::stderr().flush();
            }
            (index, answer)
        });
    }
    let mut answers = vec![Answer::default(); total];
    while let Some(joined) = tasks.join_next().await {
        let (index, answer) = joined.context("a case's task stopped")?;
        answers[index] = answer;
    }
    if progress {
        eprintln!();
    }
    Ok(answers)
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
    spec: &rollgate_validate::suite::ResponseSpec,
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
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Answer { latency_ms, ..failed("the answer is not JSON".into()) };
    };
    let Some(prediction) = json.pointer(&spec.prediction).cloned() else {
        return Answer { latency_ms, ..failed(format!("no prediction at {}", spec.prediction)) };
    };
    let score = spec.score.as_ref().and_then(|p| json.pointer(p)).and_then(serde_json::Value::as_f64);
    Answer { prediction: Some(prediction), score, latency_ms, error: None }
}

/// The edge-case probes, one after another, each tried until it passes or three tries fail.
async fn probe_all(args: &ValidateArgs, suite: Option<&Suite>, targets: &Targets) -> anyhow::Result<Vec<ProbeResult>> {
    let sample =
        suite.and_then(|s| s.cases.first()).map_or_else(|| edge::example(targets.protocol), |(_, c)| c.input.clone());
    let timeout = suite.map_or(Duration::from_secs(10), |s| s.manifest.run.timeout.duration().unsigned_abs());
    let http = reqwest::Client::builder().build().context("cannot build an HTTP client")?;
    let url = url(&targets.candidate, suite, &args.path);
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
    Ok(results)
}

/// One gate's evidence from a run.
pub struct Evidence {
    pub gate: String,
    pub passed: bool,
    pub summary: String,
    pub details: serde_json::Value,
}

/// Attaches the run to its rollout, when it was against one: each gate's
/// evidence that the rollout does not have yet.
pub async fn attach(args: &ValidateArgs, o: &Outcome) -> anyhow::Result<()> {
    let Some(view) = &o.view else { return Ok(()) };
    for e in evidence(o) {
        // The same result again changes nothing (and the log refuses a repeat): it is already the evidence.
        let recorded = view.evidence.iter().any(|r| r.gate == e.gate && r.passed == e.passed && r.summary == e.summary);
        if recorded {
            continue;
        }
        let command = RolloutCommand::Evidence {
            rollout: view.id.clone(),
            actor: args.actor.clone(),
            gate: e.gate,
            failed: !e.passed,
            summary: e.summary,
            details: Some(e.details.to_string()),
        };
        super::rollout_command(&args.target, command).await?;
    }
    Ok(())
}

/// The run as evidence of the rollout's gates: the metric requirements for
/// validation.performance, the bias requirements for validation.bias, the
/// safety requirement for validation.safety, the probes for
/// validation.edge_cases, each document for its documentation gate.
pub fn evidence(o: &Outcome) -> Vec<Evidence> {
    let (report, edge, docs) = (o.report.as_ref(), o.edge.as_deref(), o.docs.as_deref());
    let mut evidence = Vec::new();
    for d in docs.unwrap_or_default() {
        let file = d.file.clone().unwrap_or_default();
        let summary = if d.passed() {
            format!("{file}: complete")
        } else {
            d.findings.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        };
        let details = json!({ "by": "rollgate validate --docs", "file": d.file, "findings": d.findings });
        evidence.push((d.gate.as_str(), d.passed(), summary, details));
    }
    if let Some(report) = report {
        let is_bias = |r: &&rollgate_validate::report::Requirement| {
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
                "by": "rollgate validate", "suite": report.suite, "suite_sha256": report.suite_sha256,
                "requirements": requirements, "metrics": report.metrics, "bias": report.bias, "safety": report.safety,
                "cases": report.cases, "answered": report.answered,
            });
            evidence.push((gate, unmet.is_empty(), summary, details));
        }
    }
    if let Some(probes) = edge {
        let failed: Vec<&str> = probes.iter().filter(|p| !p.passed).map(|p| p.why.as_str()).collect();
        let summary = if failed.is_empty() {
            format!("{} edge-case probes answered below 500 within the timeout", probes.len())
        } else {
            format!("{} of {} edge-case probes failed: {}", failed.len(), probes.len(), failed.join("; "))
        };
        evidence.push((
            "validation.edge_cases",
            failed.is_empty(),
            summary,
            json!({ "by": "rollgate validate", "probes": probes }),
        ));
    }
    evidence
        .into_iter()
        .map(|(gate, passed, summary, details)| Evidence { gate: gate.into(), passed, summary, details })
        .collect()
}
