//! The timed fault drill. Staging traffic flows half to the candidate and
//! half to the stable version; after a healthy second the fault goes in;
//! a judge with the plan's triggers watches the gateway's measurements; on
//! its rollback the route swap takes the candidate's traffic away, and the
//! requests sent after the swap show whether it did.

use super::inject::{Injected, Injector};
use super::replay::{self, Answer, Target};
use crate::dataplane::DataPlane;
use crate::fleet::Fleet;
use crate::reconciler::judging::{ArmPair, Arms};
use rollgate_core::Timestamp;
use rollgate_core::clock::Clock;
use rollgate_core::plan::StagingEnvironment;
use rollgate_core::routing::StagingRoute;
use rollgate_core::weight::Weight;
use rollgate_judge::{Judge, JudgeConfig, Verdict};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The staging service's route, held by the run through the fleet's one
/// routing: the staging run is one more input of the desired state.
pub struct Route<'a> {
    pub fleet: &'a Fleet,
    pub dataplane: Arc<dyn DataPlane>,
    pub service: &'a str,
    pub stable: &'a str,
    pub candidate: &'a str,
}

impl Route<'_> {
    pub fn send_to_candidate(&self, weight: Weight) -> Result<(), String> {
        let route = StagingRoute { service: self.service.to_string(), candidate: self.candidate.to_string(), weight };
        self.fleet.stage(self.service, Some(route)).map_err(|e| format!("the staging route cannot change: {e}"))
    }

    /// Gives the staging service's route back to the rest of the routing.
    pub fn release(&self) {
        if let Err(e) = self.fleet.stage(self.service, None) {
            tracing::warn!(service = %self.service, error = %e, "the staging route could not be given back");
        }
    }
}

/// What the drill measured. Times are on the control plane's clock too, so
/// they can be laid beside the event log's timestamps.
#[derive(Debug, Default)]
pub struct DrillRecord {
    pub fault_at: Option<Timestamp>,
    pub detected_at: Option<Timestamp>,
    pub traffic_off_at: Option<Timestamp>,
    pub fault_to_detection: Option<Duration>,
    pub fault_to_traffic_off: Option<Duration>,
    /// Requests sent after the swap, and how many of them the candidate served.
    pub after_swap: usize,
    pub candidate_after_swap: usize,
    pub verdict: String,
    pub problem: Option<String>,
}

impl DrillRecord {
    pub fn detected(&self) -> bool {
        self.fault_to_detection.is_some()
    }

    /// The rollback took the traffic off: requests after the swap reached only the stable version.
    pub fn traffic_off(&self) -> bool {
        self.fault_to_traffic_off.is_some() && self.after_swap > 0 && self.candidate_after_swap == 0
    }

    pub fn details(&self, env: &StagingEnvironment) -> serde_json::Value {
        json!({
            "fault": format!("candidate error rate {}", env.drill.error_rate),
            "fault_at": self.fault_at,
            "detected_at": self.detected_at,
            "traffic_off_at": self.traffic_off_at,
            "fault_to_detection_s": self.fault_to_detection.map(|d| d.as_secs_f64()),
            "fault_to_traffic_off_s": self.fault_to_traffic_off.map(|d| d.as_secs_f64()),
            "requests_after_swap": self.after_swap,
            "served_by_candidate_after_swap": self.candidate_after_swap,
            "verdict": self.verdict,
            "problem": self.problem,
        })
    }
}

/// How long the traffic runs healthy before the fault goes in.
const HEALTHY_LEAD: Duration = Duration::from_secs(1);
/// How long requests keep flowing after the swap, to show where they go.
const AFTER_SWAP: Duration = Duration::from_millis(500);
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// Everything a drill works with.
pub struct Drill<'a> {
    pub http: &'a reqwest::Client,
    pub route: Route<'a>,
    pub target: &'a Target,
    pub sample: Arc<Vec<String>>,
    pub env: &'a StagingEnvironment,
    pub judge: JudgeConfig,
    pub clock: &'a dyn Clock,
    pub injector: Injector<'a>,
    /// Ends the drill early; the fault is cleared all the same.
    pub stop: &'a super::Stop,
}

/// Runs the drill; the fault is cleared again whatever happens.
pub async fn run(drill: Drill<'_>) -> DrillRecord {
    let Drill { http, route, target, sample, env, judge: judge_config, clock, injector, stop: told_to_stop } = drill;
    let mut record = DrillRecord::default();
    if let Err(e) = route.send_to_candidate(Weight::HALF) {
        record.problem = Some(e);
        return record;
    }
    let local = Arms::Local(route.dataplane.clone());
    let mut arms = match ArmPair::open(local, (route.service, route.candidate, route.stable), None).await {
        Ok(arms) => arms,
        Err(e) => {
            record.problem = Some(format!("the arms cannot be read: {e}"));
            return record;
        }
    };
    let mut judge = Judge::new(judge_config);
    let budget = HEALTHY_LEAD + env.drill.detect_within.duration().unsigned_abs() + AFTER_SWAP;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let traffic = {
        let (http, target) = (http.clone(), target.clone());
        let rate = env.rate;
        let until = async move {
            let _ = tokio::time::timeout(budget, stopped).await;
        };
        tokio::spawn(async move { replay::replay(&http, &target, sample, rate, until).await })
    };
    let origin = Instant::now();
    // Each moment is read once, as an Instant, and laid on the control
    // plane's timeline from here: the timestamps and the durations the drill
    // reports then agree exactly, however busy the machine.
    let start_on_clock = clock.now();
    let on_clock = |at: Instant| clock.after(start_on_clock, at.duration_since(origin));
    let mut fault: Option<(Instant, Injected)> = None;
    let mut swapped_at = None;
    // The drill's judge is shown through its record, not traced for the dashboard.
    let mut untraced = rollgate_judge::trace::Recorder::default();
    while origin.elapsed() < budget {
        tokio::select! {
            () = tokio::time::sleep(LOOK_EVERY) => {}
            () = told_to_stop.given() => {
                record.problem = Some("the drill was stopped before it ended".into());
                break;
            }
        }
        let at_ms = u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let verdict = match arms.read().await {
            Ok(now) => arms.feed(&now, &mut judge, &mut untraced, (at_ms, 0.5), None, &[]),
            Err(e) => {
                record.problem = Some(format!("the arms cannot be read: {e}"));
                break;
            }
        };
        if fault.is_none() && origin.elapsed() >= HEALTHY_LEAD {
            match injector.inject().await {
                Ok(injected) => {
                    let at = Instant::now();
                    record.fault_at = Some(on_clock(at));
                    fault = Some((at, injected));
                }
                Err(e) => {
                    record.problem = Some(format!("the fault could not be injected: {e}"));
                    break;
                }
            }
            continue;
        }
        let Verdict::Rollback { reason, .. } = verdict else { continue };
        let Some((fault_at, _)) = &fault else {
            record.problem = Some(format!("the judge rolled back before any fault was injected: {reason}"));
            break;
        };
        let detected = Instant::now();
        record.fault_to_detection = Some(detected - *fault_at);
        record.detected_at = Some(on_clock(detected));
        record.verdict = reason;
        if let Err(e) = route.send_to_candidate(Weight::ZERO) {
            record.problem = Some(e);
            break;
        }
        let swapped = Instant::now();
        record.fault_to_traffic_off = Some(swapped - *fault_at);
        record.traffic_off_at = Some(on_clock(swapped));
        swapped_at = Some(swapped);
        tokio::time::sleep(AFTER_SWAP).await;
        break;
    }
    let _ = stop.send(());
    let answers: Vec<Answer> = traffic.await.unwrap_or_default();
    if let Some(swapped) = swapped_at {
        let after: Vec<&Answer> = answers.iter().filter(|a| a.sent >= swapped).collect();
        record.after_swap = after.len();
        record.candidate_after_swap = after.iter().filter(|a| a.served_by.as_deref() == Some(route.candidate)).count();
    }
    if record.problem.is_none() && !record.detected() {
        record.problem = Some(format!("the judge did not detect the fault within {}", env.drill.detect_within));
    }
    let _ = route.send_to_candidate(Weight::ZERO);
    if let Some((_, injected)) = fault
        && let Err(e) = injector.clear(injected).await
    {
        record.problem.get_or_insert(format!("the fault could not be cleared: {e}"));
    }
    record
}
