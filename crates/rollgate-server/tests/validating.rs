//! The validation and documentation gates run by rollgate itself: a service
//! that names its suites has them run against every candidate in
//! pre-deployment, once, by the server (real HTTP to simulated models, the
//! suite and documents in files beside the config), each gate's result
//! recorded as evidence by rollgate; a plan that accepts only rollgate's
//! evidence keeps a person's typed-in evidence from passing.

mod common;

use common::*;
use reqwest::StatusCode;
use rollgate_core::roles::Role;
use rollgate_server::ConfigSource;
use rollgate_sim::model::{Faults, RunningModel, serve};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const BANDS: [&str; 2] = ["18-40", "41+"];

async fn model(faults: Faults) -> RunningModel {
    serve("127.0.0.1:0".parse().unwrap(), "fraud", 7, Faults { latency_ms: 0.5, latency_sigma: 0.0, ..faults })
        .await
        .unwrap()
}

/// A 400-case suite whose expected labels are a fault-free reference model's, with bias by age band.
async fn write_suite(dir: &Path, reference: &RunningModel) {
    let http = reqwest::Client::new();
    let mut cases = String::new();
    for i in 0..400 {
        let band = BANDS[i % 2];
        let input = json!({ "amount": i, "age_band": band });
        let answer: Value = http.post(reference.url()).json(&input).send().await.unwrap().json().await.unwrap();
        cases +=
            &format!("{}\n", json!({ "input": input, "expected": answer["label"], "group": { "age_band": band } }));
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cases.jsonl"), cases).unwrap();
    let manifest = "name = \"fraud\"\ntask = \"classification\"\npositive = \"approve\"\n[response]\nprediction = \"/label\"\n\
                    [[metrics]]\nmetric = \"accuracy\"\nmin = 0.9\n\
                    [bias]\nattribute = \"age_band\"\nmin_group_size = 50\nmax_equal_opportunity_difference = 0.2\n";
    std::fs::write(dir.join("suite.toml"), manifest).unwrap();
}

/// The config in a file beside the suite: `fraud` with v1 stable and v2 at `v2_url`, its suite named.
fn config_file(dir: &Path, v1_url: &str, v2_url: &str, plan: &str) -> ConfigSource {
    let text = fraud_config(&[("v1", v1_url), ("v2", v2_url)], plan, "suites = [\"suite\"]\n");
    let path = dir.join("rollgate.toml");
    std::fs::write(&path, &text).unwrap();
    ConfigSource {
        config: rollgate_core::config::Config::parse("rollgate.toml", &text).unwrap(),
        text,
        path: Some(path),
    }
}

fn evidence(view: &Value, gate: &str) -> Option<Value> {
    view["evidence"].as_array()?.iter().find(|e| e["gate"] == gate).cloned()
}

#[tokio::test]
async fn rollgate_runs_the_services_suite_once_and_records_each_gate() {
    let (reference, v1) = (model(Faults::default()).await, model(Faults::default()).await);
    let biased = model(Faults { wrong_group: Some("\"age_band\":\"41+\"".into()), ..Faults::default() }).await;
    let setup = Setup::new(1.0).await;
    write_suite(&setup.dir.path().join("suite"), &reference).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    // Only rollgate's own evidence passes the performance gate.
    let plan = "[plans.fast.pre_deployment.validation.performance]\nrequired = true\n\
                description = \"Performance meets requirements\"\nsource = \"rollgate\"\n";
    let config = config_file(setup.dir.path(), &v1.url(), &biased.url(), plan);
    let (api, front) = setup.start_with_gateway(config, Duration::from_secs(2)).await;
    let start = json!({ "service": "fraud", "candidate": "v2", "id": "r1", "skip_shadow": true });
    assert_eq!(api.post("/api/v1/rollouts", &alice, start).await.0, StatusCode::CREATED);

    let view = || async { api.get("/api/v1/rollouts/r1", &alice).await.1 };
    let gates = ["validation.performance", "validation.bias", "validation.edge_cases", "documentation.runbook"];
    let recorded = wait_for(Duration::from_secs(30), || async {
        let v = view().await;
        gates.iter().all(|g| evidence(&v, g).is_some())
    })
    .await;
    let v = view().await;
    assert!(recorded, "{}", v["evidence"]);
    for gate in gates {
        assert_eq!(evidence(&v, gate).unwrap()["by"], "rollgate", "{gate}");
    }
    // The biased candidate gets half the cases wrong: performance and bias fail, the probes pass.
    let performance = evidence(&v, "validation.performance").unwrap();
    assert_eq!(performance["passed"], false, "{performance}");
    assert!(performance["summary"].as_str().unwrap().contains("not met: accuracy >= 0.9"), "{performance}");
    assert_eq!(evidence(&v, "validation.bias").unwrap()["passed"], false);
    assert_eq!(evidence(&v, "validation.edge_cases").unwrap()["passed"], true);
    // The service names no runbook: said, with the config file.
    let runbook = evidence(&v, "documentation.runbook").unwrap();
    assert!(runbook["summary"].as_str().unwrap().contains("names no file for documentation.runbook"), "{runbook}");

    // A person's evidence stays in the log but cannot pass a gate that takes only rollgate's.
    let typed = json!({ "gate": "validation.performance", "passed": true, "summary": "looks fine to me" });
    let (status, body) = api.post("/api/v1/rollouts/r1/evidence", &alice, typed).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = view().await;
    let gate = v["gates"].as_array().unwrap().iter().find(|g| g["gate"] == "validation.performance").unwrap().clone();
    assert_ne!(gate["status"], "passed", "{gate}");

    // Once per rollout: more ticks run nothing again.
    let bias_records = || async {
        let (_, events) = api.get("/api/v1/rollouts/r1/events", &alice).await;
        events.as_array().unwrap().iter().filter(|e| e["input"]["gate"] == "validation.bias").count()
    };
    assert_eq!(bias_records().await, 1);
    let again = wait_for(Duration::from_millis(500), || async { bias_records().await > 1 }).await;
    assert!(!again, "the suite ran again within ten ticks");
    api.stop().await;
    front.shutdown().await;
}
