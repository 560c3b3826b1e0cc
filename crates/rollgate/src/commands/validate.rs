//! `rollgate validate`: sends a suite's cases to a model server (bounded
//! concurrency, a timeout per try, retries only after transport errors),
//! judges the answers with rollgate-validate, prints or writes the report,
//! and for a rollout attaches it as the gates' evidence.

use super::config::load;
use crate::Refused;
use crate::cli::{RolloutCommand, ValidateArgs};
use crate::client::Client;
use anyhow::Context;
use rollgate_server::views::RolloutView;
use rollgate_store::{AnyStore, Rollouts};
use rollgate_validate::report::{Answer, Decision, Report, evaluate, text};
use rollgate_validate::suite::{MANIFEST, Suite};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub async fn run(args: ValidateArgs) -> anyhow::Result<()> {
    let suite = read_suite(&args.suite)?;
    let (candidate, stable, rollout) = match &args.rollout {
        Some(id) => {
            let view = rollout_view(&args, id).await?;
            let config = load(&args.actor.config)?;
            let endpoint = |version: &str| {
                config
                    .services
                    .get(&view.service)
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
            let wants_stable = suite.manifest.metrics.iter().any(|r| r.max_drop.is_some());
            let stable = if wants_stable { Some(endpoint(&view.stable)?) } else { None };
            (endpoint(&view.candidate)?, stable, Some(view))
        }
        None => (args.endpoint.clone().unwrap_or_default(), args.stable.clone(), None),
    };
    let candidate_answers = ask_all(&suite, &candidate, "candidate").await?;
    let stable_answers = match &stable {
        Some(url) => Some(ask_all(&suite, url, "stable").await?),
        None => None,
    };
    let report = evaluate(&suite, &candidate_answers, stable_answers.as_deref());
    if let Some(path) = &args.junit {
        std::fs::write(path, rollgate_validate::junit::junit(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report));
    }
    if let Some(view) = rollout {
        attach(&args, &view, &report).await?;
    }
    if report.passed { Ok(()) } else { Err(Refused(String::new()).into()) }
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

/// Every case's answer from the model at `endpoint`, in the suite's order.
async fn ask_all(suite: &Suite, endpoint: &str, who: &'static str) -> anyhow::Result<Vec<Answer>> {
    let run = &suite.manifest.run;
    let http = reqwest::Client::builder().build().context("cannot build an HTTP client")?;
    let url = format!("{}{}", endpoint.trim_end_matches('/'), suite.manifest.request.path);
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
    let mut attempt = 0;
    let started = Instant::now();
    let response = loop {
        let sent =
            http.post(url).header("content-type", "application/json").body(body.clone()).timeout(timeout).send().await;
        match sent {
            Ok(response) => break response,
            // A hang is the model's: only a transport error is tried again.
            Err(e) if e.is_timeout() => return failed(format!("no answer within {} ms", timeout.as_millis())),
            Err(_) if attempt < retries => attempt += 1,
            Err(e) => return failed(format!("transport error after {} tries: {e}", attempt + 1)),
        }
    };
    let status = response.status();
    let bytes = match response.bytes().await {
        Ok(b) => b,
        Err(e) => return failed(format!("the answer broke off: {e}")),
    };
    let latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    if !status.is_success() {
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

/// The report as evidence of the rollout's gates: the metric requirements
/// for validation.performance, the bias requirements for validation.bias.
async fn attach(args: &ValidateArgs, view: &RolloutView, report: &Report) -> anyhow::Result<()> {
    let bias_rules = |r: &&rollgate_validate::report::Requirement| {
        r.rule.starts_with("demographic_parity") || r.rule.starts_with("equal") || r.rule.starts_with("every ")
    };
    let (bias, performance): (Vec<_>, Vec<_>) = report.requirements.iter().partition(|r| bias_rules(r));
    for (gate, requirements) in [("validation.performance", performance), ("validation.bias", bias)] {
        if requirements.is_empty() {
            continue;
        }
        let passed = requirements.iter().all(|r| r.decision == Decision::Passed);
        let unmet: Vec<&str> =
            requirements.iter().filter(|r| r.decision != Decision::Passed).map(|r| r.rule.as_str()).collect();
        let summary = if passed {
            format!(
                "suite {} ({}…): {} requirement(s) met on {} cases",
                report.suite,
                &report.suite_sha256[..12],
                requirements.len(),
                report.cases
            )
        } else {
            format!("suite {} ({}…): not met: {}", report.suite, &report.suite_sha256[..12], unmet.join("; "))
        };
        let details = serde_json::json!({
            "by": "rollgate validate", "suite": report.suite, "suite_sha256": report.suite_sha256,
            "requirements": requirements, "metrics": report.metrics, "bias": report.bias,
            "cases": report.cases, "answered": report.answered,
        });
        let command = RolloutCommand::Evidence {
            rollout: view.id.clone(),
            actor: args.actor.clone(),
            gate: gate.into(),
            failed: !passed,
            summary,
            details: Some(details.to_string()),
        };
        super::rollout_command(&args.target, command).await?;
    }
    Ok(())
}
