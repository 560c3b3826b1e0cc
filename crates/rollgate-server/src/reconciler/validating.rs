//! The validation and documentation gates, run by rollgate itself when the
//! service names its suites (`suites = [...]`, directories beside the
//! config): once per rollout in pre-deployment (again after a restart), against the candidate's
//! endpoint (and the stable version's when a requirement compares), with
//! the edge-case probes and the documents checked, each gate's result
//! recorded as evidence by rollgate. A plan can then accept only such
//! evidence (`source = "rollgate"`). The run goes on in its own task, so the
//! judge's ticks never wait for a suite.

use super::Ctx;
use crate::log::Log;
use crate::validation::{self, Evidence};
use rollgate_core::config::{Config, Protocol};
use rollgate_core::rollout::{Rollout, Stage};
use rollgate_validate::report::evaluate;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, PoisonError};

/// What rollgate's run is recorded as having been made by.
const BY: &str = "rollgate (the service's suites)";

/// Starts the run of every rollout in pre-deployment that has not had one
/// in this process. After a restart the run is made again (a crash may have
/// cut the recording short); what rollgate's evidence already says is not
/// recorded twice.
pub fn tick(ctx: &Arc<Ctx>) {
    let Some(file) = ctx.config_file.clone() else { return };
    let config = ctx.fleet().config();
    for r in ctx.fleet().rollouts().into_iter().filter(|r| r.stage == Stage::PreDeployment && r.paused.is_none()) {
        let Some(suites) = config.services.get(&r.service).map(|s| s.suites.clone()).filter(|s| !s.is_empty()) else {
            continue;
        };
        let key = format!("{}/validation", r.id);
        {
            let mut checked = ctx.checked.lock().unwrap_or_else(PoisonError::into_inner);
            if checked.contains_key(&key) {
                continue;
            }
            checked.insert(key, std::time::Instant::now());
        }
        let (log, http, config, file) = (ctx.log.clone(), ctx.http.clone(), config.clone(), file.clone());
        tokio::spawn(async move {
            for e in merge(run(&http, &config, &file, &suites, &r, &log).await) {
                super::evidence::record(&log, &r, &e.gate, e.passed, e.summary, e.details).await;
            }
        });
    }
}

/// Every suite against the candidate, the edge-case probes (made from the
/// first suite that reads, or the protocol's example) and the documents.
async fn run(
    http: &reqwest::Client,
    config: &Config,
    file: &Path,
    suites: &[String],
    r: &Rollout,
    log: &Log,
) -> Vec<Evidence> {
    let base = file.parent().unwrap_or(Path::new("."));
    // Documents need no model: checked whatever the endpoints (a version the config does not hold has none to read).
    let docs = validation::check_docs(config, base, &file.display().to_string(), &r.service, &r.candidate).ok();
    let mut out = validation::evidence(None, None, docs.as_deref(), BY);
    let endpoint = |version: &str| log.fleet().endpoints(&r.service, version).into_iter().next();
    let Some(candidate) = endpoint(&r.candidate) else {
        let why = format!("{} has no endpoint to validate", r.candidate);
        out.push(failed(why, json!({ "by": BY })));
        return out;
    };
    let mut first = None;
    for dir in suites {
        let suite = match validation::read_suite(&base.join(dir)) {
            Ok(suite) => suite,
            Err(why) => {
                out.push(failed(format!("the suite {dir} cannot be used: {why}"), json!({ "by": BY, "suite": dir })));
                continue;
            }
        };
        let quiet = Arc::new(|_: usize, _: usize| {});
        let answers = validation::ask_all(http, &suite, &candidate, quiet.clone()).await;
        let compares = suite.manifest.metrics.iter().any(|m| m.max_drop.is_some());
        let stable = match endpoint(&r.stable).filter(|_| compares) {
            Some(url) => Some(validation::ask_all(http, &suite, &url, quiet).await),
            None => None,
        };
        out.extend(validation::evidence(Some(&evaluate(&suite, &answers, stable.as_deref())), None, None, BY));
        first.get_or_insert(suite);
    }
    let protocol = config.services.get(&r.service).map_or(Protocol::Json, |s| s.protocol);
    let probes = validation::probe(http, first.as_ref(), protocol, &candidate, "").await;
    out.extend(validation::evidence(None, Some(&probes), None, BY));
    out
}

/// A performance gate failed for a reason that is not the model's answers.
fn failed(summary: String, details: serde_json::Value) -> Evidence {
    Evidence { gate: "validation.performance".into(), passed: false, summary, details }
}

/// One piece of evidence a gate: results of several suites for the same gate pass only together.
fn merge(evidence: Vec<Evidence>) -> Vec<Evidence> {
    let mut by_gate: BTreeMap<String, Evidence> = BTreeMap::new();
    for e in evidence {
        match by_gate.get_mut(&e.gate) {
            Some(held) => {
                held.passed &= e.passed;
                held.summary = format!("{}; {}", held.summary, e.summary);
                held.details = json!({ "by": BY, "runs": [held.details.take(), e.details] });
            }
            None => {
                by_gate.insert(e.gate.clone(), e);
            }
        }
    }
    by_gate.into_values().collect()
}
