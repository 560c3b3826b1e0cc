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
use rollgate_core::roles::Actor;
use rollgate_core::rollout::{Command, Input, Rollout, Stage};
use rollgate_validate::report::evaluate;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};

/// What rollgate's run is recorded as having been made by.
const BY: &str = "rollgate (the service's suites)";

/// Starts the run of every rollout in pre-deployment that has not had one
/// in this process. After a restart the run is made again (a crash may have
/// cut the recording short); a result already in the log is not recorded twice.
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
            let evidence = run(&http, &config, &file, &suites, &r, &log).await;
            let recorded = |e: &Evidence| {
                r.evidence.get(&e.gate).is_some_and(|held| {
                    held.by == Actor::system().name && held.passed == e.passed && held.summary == e.summary
                })
            };
            for e in merge(evidence).into_iter().filter(|e| !recorded(e)) {
                let input =
                    Input::Evidence { gate: e.gate.clone(), passed: e.passed, summary: e.summary, details: e.details };
                if let Err(err) = log.submit(&r.id, &Command::new(Actor::system(), input)).await {
                    tracing::warn!(rollout = %r.id, gate = %e.gate, error = %err, "cannot record the validation");
                }
            }
        });
    }
}

/// Every suite against the candidate (the first also with the probes and the documents).
async fn run(
    http: &reqwest::Client,
    config: &Config,
    file: &Path,
    suites: &[String],
    r: &Rollout,
    log: &Log,
) -> Vec<Evidence> {
    let base = file.parent().unwrap_or(Path::new("."));
    let endpoint = |version: &str| log.fleet().endpoints(&r.service, version).into_iter().next();
    let Some(candidate) = endpoint(&r.candidate) else {
        let why = format!("{} has no endpoint to validate", r.candidate);
        return vec![Evidence {
            gate: "validation.performance".into(),
            passed: false,
            summary: why,
            details: json!({ "by": BY }),
        }];
    };
    let protocol = config.services.get(&r.service).map_or(Protocol::Json, |s| s.protocol);
    let mut out = Vec::new();
    for (i, dir) in suites.iter().enumerate() {
        let path: PathBuf = base.join(dir);
        let suite = match validation::read_suite(&path) {
            Ok(suite) => suite,
            Err(why) => {
                let summary = format!("the suite {dir} cannot be used: {why}");
                out.push(Evidence {
                    gate: "validation.performance".into(),
                    passed: false,
                    summary,
                    details: json!({ "by": BY, "suite": dir }),
                });
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
        let report = evaluate(&suite, &answers, stable.as_deref());
        let (edge, docs) = if i == 0 {
            let sample = validation::probe_sample(Some(&suite), protocol);
            let url = validation::url(&candidate, Some(&suite), "");
            let timeout = suite.manifest.run.timeout.duration().unsigned_abs();
            let probes = validation::probe_all(http, &sample, &url, timeout).await;
            let shown = file.display().to_string();
            (Some(probes), validation::check_docs(config, base, &shown, &r.service, &r.candidate).ok())
        } else {
            (None, None)
        };
        out.extend(validation::evidence(Some(&report), edge.as_deref(), docs.as_deref(), BY));
    }
    out
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
