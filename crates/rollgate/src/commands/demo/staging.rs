//! The staging stage as the demo runs it, for real: functional, load and
//! error-handling checks against the candidate (absolute sanity bounds:
//! comparing with production is the canary's job), an integration request
//! through the gateway, and a timed fault drill. The drill sends traffic
//! through the gateway's staging route (stable and candidate half and half),
//! injects errors into the candidate, lets a judge watch the gateway's
//! measurements, takes the candidate's traffic away when the judge says so,
//! and records fault → detection → traffic off.

use rollgate_core::weight::Weight;
use rollgate_gateway::Gateway;
use rollgate_gateway::stats::Arm;
use rollgate_judge::{Judge, JudgeConfig, Verdict};
use rollgate_server::ArmPair;
use rollgate_sim::model::{Faults, RunningModel};
use serde_json::json;
use std::time::{Duration, Instant};

/// One staging gate's result.
pub struct Check {
    pub gate: &'static str,
    pub passed: bool,
    pub summary: String,
    pub details: serde_json::Value,
}

const STAGING_SERVICE: &str = "fraud-staging";
const INFER: &str = "/v2/models/fraud/infer";

async fn send(http: &reqwest::Client, url: &str, body: &'static str) -> (u16, Duration, Option<String>) {
    let started = Instant::now();
    match http.post(url).header("content-type", "application/json").body(body).send().await {
        Ok(r) => {
            let version = r.headers().get("x-rollgate-version").and_then(|v| v.to_str().ok()).map(str::to_string);
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            (status, started.elapsed(), version)
        }
        Err(_) => (0, started.elapsed(), None),
    }
}

const VALID: &str = r#"{"inputs":[{"name":"amount","shape":[1],"datatype":"FP32","data":[42.0]}]}"#;

pub async fn run(gateway: &Gateway, front: &str, candidate: &str, model: &RunningModel) -> Vec<Check> {
    let http = reqwest::Client::new();
    let direct = format!("{}{INFER}", model.url());
    let mut checks = Vec::new();

    // Functional: valid inputs get well-formed answers.
    let mut ok = 0;
    for _ in 0..100 {
        ok += u32::from(send(&http, &direct, VALID).await.0 == 200);
    }
    checks.push(Check {
        gate: "staging.functional_tests",
        passed: ok >= 75,
        summary: format!("{ok} of 100 valid requests answered 200 (bound: 75)"),
        details: json!({ "requests": 100, "ok": ok }),
    });

    // Load: 400 requests, 40 at a time; p99 and errors within bounds.
    let mut latencies = Vec::new();
    let mut errors = 0;
    for _ in 0..10 {
        let batch = futures_util::future::join_all((0..40).map(|_| send(&http, &direct, VALID))).await;
        for (status, took, _) in batch {
            latencies.push(took);
            errors += u32::from(status != 200);
        }
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    checks.push(Check {
        gate: "staging.performance_under_load",
        passed: p99 < Duration::from_millis(250) && errors <= 100,
        summary: format!("400 requests 40 at a time: p99 {:.1} ms (bound 250), {errors} errors (bound 100)", ms(p99)),
        details: json!({ "requests": 400, "p99_ms": ms(p99), "errors": errors }),
    });

    // Error handling: malformed and empty inputs are answered, not hung.
    let mut answered = 0;
    for body in ["{not json", "", "[]"] {
        let (status, took, _) = send(&http, &direct, body).await;
        answered += u32::from(status != 0 && took < Duration::from_secs(1));
    }
    checks.push(Check {
        gate: "staging.error_handling",
        passed: answered == 3,
        summary: format!("{answered} of 3 malformed inputs answered within 1 s"),
        details: json!({ "probes": 3, "answered": answered }),
    });

    // Integration: a request through the gateway reaches the service.
    let (status, _, version) = send(&http, &format!("{front}{INFER}"), VALID).await;
    checks.push(Check {
        gate: "staging.integration",
        passed: status != 0 && version.is_some(),
        summary: format!("through the gateway: status {status}, served by {}", version.as_deref().unwrap_or("nobody")),
        details: json!({ "status": status, "served_by": version }),
    });

    let drill = drill(gateway, front, candidate, model).await;
    checks.push(Check {
        gate: "staging.monitoring_captures_issues",
        passed: drill.detected_after.is_some(),
        summary: match drill.detected_after {
            Some(d) => format!("an injected fault (50% errors) was detected by the judge in {:.2} s", d.as_secs_f64()),
            None => "the judge did not detect an injected fault within 20 s".into(),
        },
        details: drill.details(),
    });
    checks.push(Check {
        gate: "staging.rollback_drill",
        passed: drill.traffic_off_after.is_some(),
        summary: match (drill.detected_after, drill.traffic_off_after) {
            (Some(d), Some(off)) => format!(
                "fault → detection {:.2} s → traffic off the candidate {:.3} s later (fault → off {:.2} s)",
                d.as_secs_f64(),
                (off - d).as_secs_f64(),
                off.as_secs_f64()
            ),
            _ => "rollback was not shown to take the traffic off the candidate".into(),
        },
        details: drill.details(),
    });
    let blocking: Vec<&str> = checks.iter().filter(|c| !c.passed).map(|c| c.gate).collect();
    checks.push(Check {
        gate: "staging.no_blocking_issues",
        passed: blocking.is_empty(),
        summary: if blocking.is_empty() {
            "every staging check passed".into()
        } else {
            format!("failed: {}", blocking.join(", "))
        },
        details: json!({ "failed": blocking }),
    });
    checks
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Drill {
    detected_after: Option<Duration>,
    traffic_off_after: Option<Duration>,
    verdict: String,
}

impl Drill {
    fn details(&self) -> serde_json::Value {
        json!({
            "fault": "candidate error rate 50%",
            "fault_to_detection_s": self.detected_after.map(|d| d.as_secs_f64()),
            "fault_to_traffic_off_s": self.traffic_off_after.map(|d| d.as_secs_f64()),
            "verdict": self.verdict,
        })
    }
}

/// The timed drill on the gateway's staging route.
async fn drill(gateway: &Gateway, front: &str, candidate: &str, model: &RunningModel) -> Drill {
    let http = reqwest::Client::new();
    let half = Weight::from_percent(50.0).unwrap_or(Weight::ZERO);
    let swap = |w: Weight| match gateway.table().with_weights(STAGING_SERVICE, "v1", candidate, w, &gateway.stats) {
        Ok(table) => gateway.swap(table),
        Err(e) => eprintln!("warning: the staging route cannot change: {e}"),
    };
    swap(half);
    let url = format!("{front}/staging{INFER}");
    let mut arms = ArmPair::new(
        gateway.stats.series(STAGING_SERVICE, candidate, Arm::Canary),
        gateway.stats.series(STAGING_SERVICE, "v1", Arm::Stable),
    );
    let mut judge = Judge::new(JudgeConfig { warm_up_ms: 0, min_canary_requests: 20, ..JudgeConfig::default() });
    let healthy = model.faults();
    let origin = Instant::now();
    let mut fault_at = None;
    let mut out = Drill { detected_after: None, traffic_off_after: None, verdict: String::new() };
    while origin.elapsed() < Duration::from_secs(25) {
        futures_util::future::join_all((0..40).map(|_| send(&http, &url, VALID))).await;
        if fault_at.is_none() && origin.elapsed() > Duration::from_millis(500) {
            model.set_faults(Faults { error_rate: 0.5, ..healthy.clone() });
            fault_at = Some(Instant::now());
        }
        let at_ms = origin.elapsed().as_millis() as u64;
        let verdict = arms.feed(&mut judge, at_ms, 0.5, None, &[]);
        if let (Verdict::Rollback { reason, .. }, Some(fault)) = (verdict, fault_at) {
            out.detected_after = Some(fault.elapsed());
            out.verdict = reason;
            swap(Weight::ZERO);
            // Traffic is off once a full batch after the swap reaches only the stable version.
            let batch = futures_util::future::join_all((0..40).map(|_| send(&http, &url, VALID))).await;
            if batch.iter().all(|(_, _, v)| v.as_deref() == Some("v1")) {
                out.traffic_off_after = Some(fault.elapsed());
            }
            break;
        }
    }
    model.set_faults(healthy);
    out
}
