//! `rollgate validate`: runs a suite and edge-case probes against a model
//! server and checks the documents (the running is the server's
//! `validation` module, shared with the reconciler, which runs a service's
//! suites itself), prints or writes the report, and for a rollout attaches
//! it as the gates' evidence.

use super::config::load;
use crate::Refused;
use crate::cli::{RolloutCommand, ValidateArgs};
use crate::client::Client;
use anyhow::Context;
use rollgate_core::config::Protocol;
use rollgate_server::validation;
use rollgate_server::views::RolloutView;
use rollgate_store::{AnyStore, Rollouts};
use rollgate_validate::docs::DocResult;
use rollgate_validate::edge::ProbeResult;
use rollgate_validate::report::{Answer, Report, evaluate, text};
use rollgate_validate::suite::Suite;
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

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
    // One client for every request of the run: its connections are kept.
    let http = reqwest::Client::builder().build().context("cannot build an HTTP client")?;
    let report = match &suite {
        Some(suite) => {
            let candidate = ask_all(&http, suite, &targets.candidate, "candidate").await;
            let stable = match &targets.stable {
                Some(url) => Some(ask_all(&http, suite, url, "stable").await),
                None => None,
            };
            Some(evaluate(suite, &candidate, stable.as_deref()))
        }
        None => None,
    };
    // A rollout's run against its model always probes edge cases; checking documents alone asks no model.
    let edge = if args.edge_cases || (targets.view.is_some() && suite.is_some()) {
        Some(validation::probe(&http, suite.as_ref(), targets.protocol, &targets.candidate, &args.path).await)
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
    validation::read_suite(dir).map_err(|why| Refused(why).into())
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
    let (service, version) = match (view, &args.service, &args.version) {
        (Some(v), _, _) => (v.service.clone(), v.candidate.clone()),
        (None, Some(s), Some(v)) => (s.clone(), v.clone()),
        _ => return Err(Refused("--docs needs --rollout ID, or --service and --version".into()).into()),
    };
    let base = args.actor.config.parent().map(Path::to_path_buf).unwrap_or_default();
    let shown = args.actor.config.display().to_string();
    validation::check_docs(&config, &base, &shown, &service, &version).map_err(|why| Refused(why).into())
}

/// Every case's answer from the model at `endpoint`, with a progress line on a terminal.
async fn ask_all(http: &reqwest::Client, suite: &Suite, endpoint: &str, who: &'static str) -> Vec<Answer> {
    let terminal = std::io::stderr().is_terminal();
    let progress = Arc::new(move |n: usize, total: usize| {
        if terminal && (n.is_multiple_of(10) || n == total) {
            eprint!("\r  {who}: {n}/{total} cases");
            let _ = std::io::stderr().flush();
        }
    });
    let answers = validation::ask_all(http, suite, endpoint, progress).await;
    if terminal {
        eprintln!();
    }
    answers
}

/// Attaches the run to its rollout, when it was against one: each gate's
/// evidence that the rollout does not have yet.
pub async fn attach(args: &ValidateArgs, o: &Outcome) -> anyhow::Result<()> {
    let Some(view) = &o.view else { return Ok(()) };
    for e in validation::evidence(o.report.as_ref(), o.edge.as_deref(), o.docs.as_deref(), "rollgate validate") {
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
