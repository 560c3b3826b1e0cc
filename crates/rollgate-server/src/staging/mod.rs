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
//! evidence missing, so the next one runs staging again.

mod drill;
mod inject;
mod replay;

use crate::state::AppState;
use drill::{Drill, DrillRecord, Route};
use inject::Injector;
use replay::{Answer, Target};
use rollgate_core::plan::StagingEnvironment;
use rollgate_core::roles::Actor;
use rollgate_core::rollout::{Command, Input, Rollout, Stage};
use rollgate_core::weight::Weight;
use rollgate_gateway::Gateway;
use rollgate_judge::JudgeConfig;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// One staging gate's result.
#[derive(Debug)]
pub struct Check {
    pub gate: String,
    pub passed: bool,
    pub summary: String,
    pub details: serde_json::Value,
}

impl Check {
    fn new(gate: impl Into<String>, passed: bool, summary: String, details: serde_json::Value) -> Check {
        Check { gate: gate.into(), passed, summary, details }
    }
}

pub struct Staging {
    gateway: Option<(Arc<Gateway>, String)>,
    http: reqwest::Client,
    running: Mutex<HashSet<String>>,
}

impl Staging {
    /// `gateway`: the in-process gateway and the URL it listens on.
    pub fn new(gateway: Option<(Arc<Gateway>, String)>) -> Staging {
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap_or_default();
        Staging { gateway, http, running: Mutex::new(HashSet::new()) }
    }

    /// Starts the rollout's staging run if it needs one and none is going.
    pub fn start_if_due(&self, state: &AppState, rollout: &Rollout) {
        if !is_due(rollout) {
            return;
        }
        if !self.running.lock().unwrap_or_else(PoisonError::into_inner).insert(rollout.id.clone()) {
            return;
        }
        tracing::info!(rollout = %rollout.id, "staging: replay, checks and fault drill");
        let (state, rollout) = (state.clone(), rollout.clone());
        tokio::spawn(async move {
            let checks = state.staging().run(&state, &rollout).await;
            record(&state, &rollout, checks).await;
            state.staging().running.lock().unwrap_or_else(PoisonError::into_inner).remove(&rollout.id);
        });
    }

    async fn run(&self, state: &AppState, rollout: &Rollout) -> Vec<Check> {
        let Some(env) = &rollout.plan.staging.environment else { return Vec::new() };
        match self.prepare(state, rollout, env) {
            Ok(setup) => setup.run(self, state, rollout, env).await,
            Err(why) => unrunnable(rollout, &why),
        }
    }

    /// Everything the run needs from the config and the gateway, or why it cannot run.
    fn prepare<'a>(
        &'a self,
        state: &'a AppState,
        rollout: &'a Rollout,
        env: &StagingEnvironment,
    ) -> Result<Setup<'a>, String> {
        let service = env.service_for(&rollout.service);
        let config = state.config().services.get(&service).ok_or_else(|| {
            format!("the plan stages `{}` in service `{service}`, which the config does not define", rollout.service)
        })?;
        let version = config.versions.get(&rollout.candidate).ok_or_else(|| {
            format!("the staging service `{service}` has no version `{}`: add its staging endpoints", rollout.candidate)
        })?;
        let (gateway, url) = self.gateway.as_ref().ok_or("this server runs no gateway to send staging traffic")?;
        let sample = match &env.traffic {
            Some(path) => rollgate_sim::traffic::read_bodies(path)?,
            None => replay::generated_sample(),
        };
        let prefix = config.route.path_prefix.as_deref().unwrap_or("").trim_end_matches('/');
        Ok(Setup {
            stable: config.stable.get_ref().clone(),
            endpoints: version.endpoints.iter().map(|e| e.get_ref().clone()).collect(),
            target: Target { url: format!("{url}{prefix}{}", env.path), host: config.route.host.clone() },
            sample: Arc::new(sample),
            gateway,
            service,
        })
    }
}

/// A rollout in staging whose plan runs it, with staging evidence still missing.
fn is_due(rollout: &Rollout) -> bool {
    rollout.stage == Stage::Staging
        && rollout.paused.is_none()
        && rollout.plan.staging.environment.is_some()
        && rollout.plan.staging.gates.iter().any(|(id, _)| !rollout.evidence.contains_key(&id))
}

struct Setup<'a> {
    gateway: &'a Gateway,
    service: String,
    stable: String,
    endpoints: Vec<String>,
    target: Target,
    sample: Arc<Vec<String>>,
}

impl Setup<'_> {
    async fn run(
        &self,
        staging: &Staging,
        state: &AppState,
        rollout: &Rollout,
        env: &StagingEnvironment,
    ) -> Vec<Check> {
        let route = Route {
            gateway: self.gateway,
            service: &self.service,
            stable: &self.stable,
            candidate: &rollout.candidate,
        };
        if let Err(why) = route.send_to_candidate(Weight::FULL) {
            return unrunnable(rollout, &why);
        }
        let http = &staging.http;
        let duration = env.duration.duration().unsigned_abs();
        let answers =
            replay::replay(http, &self.target, self.sample.clone(), env.rate, tokio::time::sleep(duration)).await;
        let probes = probe_error_handling(http, &self.target).await;
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
        };
        let drill = drill::run(Drill {
            http,
            route,
            target: &self.target,
            sample: self.sample.clone(),
            env,
            judge: JudgeConfig::from_plan(&rollout.plan.rollback),
            clock: state.clock(),
            injector,
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
    let by_others = answers.iter().filter(|a| a.served_by.as_ref().is_some_and(|v| v != candidate)).count();
    let by_candidate = answers.iter().filter(|a| a.served_by.as_deref() == Some(candidate)).count();
    vec![
        Check::new(
            "staging.functional_tests",
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
            "staging.performance_under_load",
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
            "staging.integration",
            by_candidate > 0 && by_others == 0,
            format!(
                "through the gateway: {by_candidate} requests served by {candidate}, {by_others} by another version"
            ),
            json!({ "served_by_candidate": by_candidate, "served_by_others": by_others }),
        ),
    ]
}

/// Malformed inputs must be answered (any status), not hang or cut the connection.
async fn probe_error_handling(http: &reqwest::Client, target: &Target) -> Check {
    let probes = ["{not json", "", "[]", "{\"inputs\":null}"];
    let mut statuses = Vec::new();
    for body in probes {
        statuses.push(replay::send(http, target, body.to_string()).await.status);
    }
    let answered = statuses.iter().filter(|s| **s != 0).count();
    Check::new(
        "staging.error_handling",
        answered == probes.len(),
        format!("{answered} of {} malformed inputs answered (statuses {statuses:?})", probes.len()),
        json!({ "probes": probes, "statuses": statuses }),
    )
}

fn drill_checks(drill: &DrillRecord, env: &StagingEnvironment) -> [Check; 2] {
    let secs = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
    let problem = drill.problem.as_deref().unwrap_or("");
    [
        Check::new(
            "staging.monitoring_captures_issues",
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
            "staging.rollback_drill",
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
    let failed: Vec<&str> = checks.iter().filter(|c| !c.passed).map(|c| c.gate.as_str()).collect();
    Check::new(
        "staging.no_blocking_issues",
        failed.is_empty(),
        if failed.is_empty() { "every staging check passed".into() } else { format!("failed: {}", failed.join(", ")) },
        json!({ "failed": failed }),
    )
}

/// Every staging gate failed, for one reason that stops the run.
fn unrunnable(rollout: &Rollout, why: &str) -> Vec<Check> {
    rollout
        .plan
        .staging
        .gates
        .iter()
        .map(|(gate, _)| Check::new(gate, false, format!("staging could not run: {why}"), json!({ "problem": why })))
        .collect()
}

/// Records each check as its gate's evidence (gates the plan does not have are left out).
async fn record(state: &AppState, rollout: &Rollout, checks: Vec<Check>) {
    for check in checks.into_iter().filter(|c| rollout.plan.gate(&c.gate).is_some()) {
        let gate = check.gate.clone();
        let input =
            Input::Evidence { gate: check.gate, passed: check.passed, summary: check.summary, details: check.details };
        if let Err(e) = state.submit(&rollout.id, &Command::new(Actor::system(), input)).await {
            tracing::warn!(rollout = %rollout.id, %gate, error = %e, "cannot record staging evidence");
        }
    }
}
