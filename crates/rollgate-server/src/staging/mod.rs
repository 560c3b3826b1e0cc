//! The staging stage, run by the server when the plan names a staging
//! environment: the traffic sample is replayed at the plan's rate through
//! the gateway's staging service to the candidate's staging endpoints
//! (functional, load and integration checks from the answers), malformed
//! inputs probe its error handling, and a timed fault drill proves that the
//! judge catches a fault and that the rollback takes the traffic away. Each
//! check becomes the evidence of its `staging.*` gate, recorded by `system`.
//!
//! A run starts when a rollout is in staging with staging evidence missing
//! and no run of this process is going; a process killed mid-run leaves the
//! evidence missing, so the next one runs staging again. A run told to stop
//! (the server stops, or this replica no longer leads) cuts its traffic
//! short, clears an injected fault and gives the staging route back, and
//! records nothing: what it measured is incomplete.

mod drill;
mod inject;
mod replay;

use crate::dataplane::DataPlane;
use crate::log::Log;
use drill::{Drill, DrillRecord, Route};
use inject::Injector;
use replay::{Answer, Target};
use rollgate_core::clock::Clock;
use rollgate_core::plan::{StagingEnvironment, gate_ids};
use rollgate_core::roles::Actor;
use rollgate_core::rollout::{Command, Input, Rollout, Stage};
use rollgate_core::weight::Weight;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// One staging gate's result.
#[derive(Debug)]
pub struct Check {
    pub gate: &'static str,
    pub passed: bool,
    pub summary: String,
    pub details: serde_json::Value,
}

impl Check {
    fn new(gate: &'static str, passed: bool, summary: String, details: serde_json::Value) -> Check {
        Check { gate, passed, summary, details }
    }
}

/// Staging runs: asked for by rollout id, run one per rollout at a time.
pub struct Staging {
    due: mpsc::UnboundedSender<String>,
    requests: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    running: Mutex<HashSet<String>>,
}

impl Default for Staging {
    fn default() -> Self {
        let (due, requests) = mpsc::unbounded_channel();
        Staging { due, requests: Mutex::new(Some(requests)), running: Mutex::new(HashSet::new()) }
    }
}

impl Staging {
    pub fn new() -> Staging {
        Staging::default()
    }

    /// Asks for the rollout's staging run if it needs one.
    pub fn start_if_due(&self, rollout: &Rollout) {
        if is_due(rollout) {
            let _ = self.due.send(rollout.id.clone());
        }
    }
}

/// What a staging run works with.
pub struct StagingCtx {
    pub log: Arc<Log>,
    pub clock: Arc<dyn Clock>,
    pub http: reqwest::Client,
}

/// How long runs told to stop may take to put things back (clearing a fault
/// runs a user's command, itself limited to `inject::COMMAND_LIMIT`).
const PUT_BACK_LIMIT: Duration = Duration::from_secs(70);

/// Runs each rollout's staging as it is asked for, until `stop`.
pub async fn run(staging: Arc<Staging>, ctx: Arc<StagingCtx>, mut stop: watch::Receiver<bool>) {
    let Some(mut requests) = staging.requests.lock().unwrap_or_else(PoisonError::into_inner).take() else { return };
    let mut runs = tokio::task::JoinSet::new();
    loop {
        let id = tokio::select! {
            id = requests.recv() => id,
            _ = stop.changed() => None,
        };
        let Some(id) = id else { break };
        while runs.try_join_next().is_some() {}
        if !staging.running.lock().unwrap_or_else(PoisonError::into_inner).insert(id.clone()) {
            continue;
        }
        let (staging, ctx, stop) = (staging.clone(), ctx.clone(), Stop(stop.clone()));
        runs.spawn(async move {
            if let Some(rollout) = ctx.log.fleet().rollout(&id).filter(is_due) {
                tracing::info!(rollout = %id, "staging: replay, checks and fault drill");
                let checks = run_one(&ctx, &rollout, &stop).await;
                if stop.now() {
                    tracing::info!(rollout = %id, "staging stopped before it ended: nothing recorded; the next start, or the next leader, runs it again");
                } else {
                    record(&ctx.log, &rollout, checks).await;
                }
            }
            staging.running.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        });
    }
    // The runs see the stop themselves and put back what they changed.
    let put_back = async { while runs.join_next().await.is_some() {} };
    if tokio::time::timeout(PUT_BACK_LIMIT, put_back).await.is_err() {
        tracing::warn!("staging runs did not end in time after the stop; an injected fault may still be in place");
    }
}

/// A staging run's view of the reconciler's stop: given, or its giver gone.
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    pub fn now(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Resolves once the stop is given (or its sender is gone).
    pub async fn given(&self) {
        let mut stop = self.0.clone();
        let _ = stop.wait_for(|s| *s).await;
    }
}

async fn run_one(ctx: &StagingCtx, rollout: &Rollout, stop: &Stop) -> Vec<Check> {
    let Some(env) = &rollout.plan.staging.environment else { return Vec::new() };
    match prepare(ctx, rollout, env) {
        Ok(setup) => {
            let checks = setup.run(ctx, rollout, env, stop).await;
            setup.route(&ctx.log, rollout).release();
            checks
        }
        Err(why) => unrunnable(rollout, &why),
    }
}

/// Everything the run needs from the config and the data plane, or why it cannot run.
fn prepare(ctx: &StagingCtx, rollout: &Rollout, env: &StagingEnvironment) -> Result<Setup, String> {
    let fleet = ctx.log.fleet();
    let config = fleet.config();
    let service = env.service_for(&rollout.service);
    let staging = config.services.get(&service).ok_or_else(|| {
        format!("the plan stages `{}` in service `{service}`, which the config does not define", rollout.service)
    })?;
    let endpoints = fleet.endpoints(&service, &rollout.candidate);
    if endpoints.is_empty() {
        return Err(format!(
            "the staging service `{service}` has no version `{}`: add its staging endpoints",
            rollout.candidate
        ));
    }
    let dataplane = fleet.dataplane().cloned().ok_or("this server runs no gateway to send staging traffic")?;
    let url = dataplane.url().ok_or("the data plane has no address to send staging traffic to")?.to_string();
    let sample = match &env.traffic {
        Some(path) => rollgate_load::read_bodies(path)?,
        None => replay::generated_sample(),
    };
    let prefix = staging.route.path_prefix.as_deref().unwrap_or("").trim_end_matches('/');
    Ok(Setup {
        stable: staging.stable.get_ref().clone(),
        endpoints,
        target: Target { url: format!("{url}{prefix}{}", env.path), host: staging.route.host.clone() },
        sample: Arc::new(sample),
        dataplane,
        service,
    })
}

/// A rollout in staging whose plan runs it, with evidence of a check rollgate makes still missing.
fn is_due(rollout: &Rollout) -> bool {
    rollout.stage == Stage::Staging
        && rollout.paused.is_none()
        && rollout.plan.staging.environment.is_some()
        && gate_ids::STAGING.iter().any(|id| rollout.plan.gate(id).is_some() && !rollout.evidence.contains_key(*id))
}

struct Setup {
    dataplane: Arc<dyn DataPlane>,
    service: String,
    stable: String,
    endpoints: Vec<String>,
    target: Target,
    sample: Arc<Vec<String>>,
}

impl Setup {
    fn route<'a>(&'a self, log: &'a Log, rollout: &'a Rollout) -> Route<'a> {
        Route {
            fleet: log.fleet(),
            dataplane: self.dataplane.clone(),
            service: &self.service,
            stable: &self.stable,
            candidate: &rollout.candidate,
        }
    }

    async fn run(&self, ctx: &StagingCtx, rollout: &Rollout, env: &StagingEnvironment, stop: &Stop) -> Vec<Check> {
        let route = self.route(&ctx.log, rollout);
        if let Err(why) = route.send_to_candidate(Weight::FULL) {
            return unrunnable(rollout, &why);
        }
        let http = &ctx.http;
        let duration = env.duration.duration().unsigned_abs();
        let until = async {
            tokio::select! {
                () = tokio::time::sleep(duration) => {}
                () = stop.given() => {}
            }
        };
        let answers = replay::replay(http, &self.target, self.sample.clone(), env.rate, until).await;
        if stop.now() {
            return Vec::new();
        }
        let probes = probe_error_handling(http, &self.target, self.sample.first()).await;
        let _ = route.send_to_candidate(Weight::ZERO);

        let mut checks = replay_checks(&answers, env, duration, &rollout.candidate);
        checks.push(probes);
        let injector = Injector {
            http,
            how: &env.drill.inject,
            endpoints: self.endpoints.clone(),
            env: vec![
                ("ROLLGATE_SERVICE", self.service.clone()),
                ("ROLLGATE_CANDIDATE", rollout.candidate.clone()),
                ("ROLLGATE_ENDPOINTS", self.endpoints.join(",")),
                ("ROLLGATE_ERROR_RATE", env.drill.error_rate.to_string()),
            ],
            error_rate: env.drill.error_rate,
            command_limit: inject::COMMAND_LIMIT,
        };
        let drill = drill::run(Drill {
            http,
            route,
            target: &self.target,
            sample: self.sample.clone(),
            env,
            judge: crate::reconciler::judging::judge_config(&ctx.log, rollout),
            clock: ctx.clock.as_ref(),
            injector,
            stop,
        })
        .await;
        checks.extend(drill_checks(&drill, env));
        checks.push(no_blocking_issues(&checks));
        checks
    }
}

/// Functional, load and integration checks from the replay's answers.
fn replay_checks(answers: &[Answer], env: &StagingEnvironment, duration: Duration, candidate: &str) -> Vec<Check> {
    let sent = answers.len();
    let failed = answers.iter().filter(|a| !a.ok()).count();
    let malformed = answers.iter().filter(|a| a.ok() && !a.well_formed).count();
    let error_rate = if sent == 0 { 1.0 } else { failed as f64 / sent as f64 };
    let p99_ms = replay::latency_quantile(answers, 0.99).as_secs_f64() * 1000.0;
    let achieved = sent as f64 / duration.as_secs_f64().max(1e-3);
    let rate_kept = achieved >= 0.9 * env.rate;
    // Answers the model gave (any status), not ones the gateway made because it could not reach it.
    let from_model: Vec<&Answer> = answers.iter().filter(|a| a.gateway_error.is_none()).collect();
    let by_others = from_model.iter().filter(|a| a.served_by.as_ref().is_some_and(|v| v != candidate)).count();
    let by_candidate = from_model.iter().filter(|a| a.served_by.as_deref() == Some(candidate)).count();
    vec![
        Check::new(
            gate_ids::STAGING_FUNCTIONAL_TESTS,
            sent > 0 && malformed == 0 && error_rate <= env.max_error_rate,
            format!(
                "{} of {sent} sample requests answered well-formed; {failed} failed ({:.1}%, bound {:.1}%), {malformed} malformed",
                sent - failed - malformed,
                error_rate * 100.0,
                env.max_error_rate * 100.0
            ),
            json!({ "requests": sent, "failed": failed, "malformed": malformed, "error_rate": error_rate }),
        ),
        Check::new(
            gate_ids::STAGING_PERFORMANCE_UNDER_LOAD,
            sent > 0 && rate_kept && p99_ms <= env.max_p99_ms && error_rate <= env.max_error_rate,
            format!(
                "{achieved:.0} req/s for {:.0} s (plan {:.0}): p99 {p99_ms:.1} ms (bound {:.0}), errors {:.1}% (bound {:.1}%)",
                duration.as_secs_f64(),
                env.rate,
                env.max_p99_ms,
                error_rate * 100.0,
                env.max_error_rate * 100.0
            ),
            json!({ "rate": achieved, "planned_rate": env.rate, "p99_ms": p99_ms, "error_rate": error_rate }),
        ),
        Check::new(
            gate_ids::STAGING_INTEGRATION,
            by_candidate > 0 && by_others == 0,
            format!(
                "through the gateway: {by_candidate} requests answered by {candidate}, {by_others} by another version, {} not answered (the gateway could not reach it)",
                answers.len() - from_model.len()
            ),
            json!({ "served_by_candidate": by_candidate, "served_by_others": by_others }),
        ),
    ]
}

/// Edge-case inputs made from the sample, with `rollgate validate
/// --edge-cases`'s rule: the model must answer each below 500 (a 4xx for an
/// invalid input); a 5xx, a hang or a cut connection fails, once every try has.
async fn probe_error_handling(http: &reqwest::Client, target: &Target, sample: Option<&String>) -> Check {
    use rollgate_validate::edge::{self, Try};
    let sample = sample
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .unwrap_or_else(|| edge::example(rollgate_core::config::Protocol::Json));
    let mut results = Vec::new();
    for probe in edge::probes(&sample) {
        let send = |body| async move {
            let answer = replay::send(http, target, body).await;
            match (answer.status, answer.gateway_error) {
                (0, _) => Try::Dropped("no answer".into()),
                // The gateway answered itself: it could not get an answer from the model.
                (status, Some(why)) => Try::Dropped(format!("{status} from the gateway: {why}")),
                (status, None) => Try::Status(status),
            }
        };
        results.push(edge::attempt(&probe, send).await);
    }
    let failed: Vec<&str> = results.iter().filter(|r| !r.passed).map(|r| r.why.as_str()).collect();
    let summary = if failed.is_empty() {
        format!(
            "{} edge-case inputs answered below 500 (malformed, wrong types, very long, unusual Unicode, a huge batch)",
            results.len()
        )
    } else {
        format!("{} of {} edge-case inputs failed: {}", failed.len(), results.len(), failed.join("; "))
    };
    Check::new(gate_ids::STAGING_ERROR_HANDLING, failed.is_empty(), summary, json!({ "probes": results }))
}

fn drill_checks(drill: &DrillRecord, env: &StagingEnvironment) -> [Check; 2] {
    let secs = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
    let problem = drill.problem.as_deref().unwrap_or("");
    [
        Check::new(
            gate_ids::STAGING_MONITORING_CAPTURES_ISSUES,
            drill.detected(),
            if drill.detected() {
                format!(
                    "an injected fault (candidate errors {:.0}%) was detected by the judge in {:.2} s: {}",
                    env.drill.error_rate * 100.0,
                    secs(drill.fault_to_detection),
                    drill.verdict
                )
            } else {
                format!("the fault drill did not show detection: {problem}")
            },
            drill.details(env),
        ),
        Check::new(
            gate_ids::STAGING_ROLLBACK_DRILL,
            drill.traffic_off(),
            if drill.traffic_off() {
                format!(
                    "fault → detection {:.2} s → traffic off the candidate at {:.2} s; {} requests after the swap, none to the candidate",
                    secs(drill.fault_to_detection),
                    secs(drill.fault_to_traffic_off),
                    drill.after_swap
                )
            } else {
                format!(
                    "rollback was not shown to take the traffic off the candidate ({} of {} requests after the swap reached it) {problem}",
                    drill.candidate_after_swap, drill.after_swap
                )
            },
            drill.details(env),
        ),
    ]
}

fn no_blocking_issues(checks: &[Check]) -> Check {
    let failed: Vec<&str> = checks.iter().filter(|c| !c.passed).map(|c| c.gate).collect();
    Check::new(
        gate_ids::STAGING_NO_BLOCKING_ISSUES,
        failed.is_empty(),
        if failed.is_empty() { "every staging check passed".into() } else { format!("failed: {}", failed.join(", ")) },
        json!({ "failed": failed }),
    )
}

/// Every staging gate rollgate checks failed, for one reason that stops the run.
fn unrunnable(rollout: &Rollout, why: &str) -> Vec<Check> {
    gate_ids::STAGING
        .into_iter()
        .filter(|gate| rollout.plan.gate(gate).is_some())
        .map(|gate| Check::new(gate, false, format!("staging could not run: {why}"), json!({ "problem": why })))
        .collect()
}

/// Records each check as its gate's evidence (gates the plan does not have are left out).
async fn record(log: &Log, rollout: &Rollout, checks: Vec<Check>) {
    for check in checks.into_iter().filter(|c| rollout.plan.gate(c.gate).is_some()) {
        let gate = check.gate;
        let input = Input::Evidence {
            gate: check.gate.to_string(),
            passed: check.passed,
            summary: check.summary,
            details: check.details,
        };
        if let Err(e) = log.submit(&rollout.id, &Command::new(Actor::system(), input)).await {
            tracing::warn!(rollout = %rollout.id, %gate, error = %e, "cannot record staging evidence");
        }
    }
}
