//! The demo's little production: three simulated versions of a fraud model,
//! the gateway in front of them, the control plane on a temporary SQLite
//! directory, all on free loopback ports, and a clock on which an hour
//! passes in a second.

use super::files;
use anyhow::Context;
use rollgate_core::clock::Clock;
use rollgate_core::config::Config;
use rollgate_core::roles::{ApprovalKind, Role};
use rollgate_gateway::RunningGateway;
use rollgate_server::auth::create_token;
use rollgate_server::clock::ScaledClock;
use rollgate_server::dataplane::InProcess;
use rollgate_server::notify::RetryPolicy;
use rollgate_server::shadow::ShadowPairs;
use rollgate_server::{ConfigSource, RunningServer, ServerOptions, start};
use rollgate_sim::model::{Faults, RunningModel};
use rollgate_store::{AnyStore, SqliteStore};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The artifact every demo version names (and its model card repeats).
const ARTIFACT_SHA256: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
/// The versions share the reference model's weights: they differ in their faults.
const SEED: u64 = 42;
/// The staging traffic sample, in the data directory.
const SAMPLE: &str = "staging-sample.jsonl";
/// Baseline error rate of the simulated models; v3 fails three times as often.
pub const BASE_ERROR_RATE: f64 = 0.05;
/// One real second is this many seconds on the rollouts' clock.
pub const SPEED: f64 = 3600.0;

pub struct World {
    /// Where the event log is: the caller's directory, or a temporary one removed at the end.
    pub data: PathBuf,
    _temporary: Option<tempfile::TempDir>,
    /// The model servers, held for as long as the demo runs.
    _models: BTreeMap<&'static str, RunningModel>,
    pub gateway: RunningGateway,
    pub server: RunningServer,
    pub api: String,
    /// Tokens of the demo's team: alice deploys, bob and carol approve.
    pub tokens: BTreeMap<&'static str, String>,
}

/// The demo's config: one service, three versions, a plan whose holds fit a
/// minute at [`SPEED`] and whose staging runs in `fraud-staging` with the
/// traffic sample at `sample`.
fn config_text(endpoints: &BTreeMap<&'static str, RunningModel>, data: &Path) -> String {
    // Paths go in as TOML strings (JSON's quoting is valid TOML), whatever they hold.
    let quoted = |path: &Path| serde_json::to_string(&path.display().to_string()).unwrap_or_default();
    let suites = serde_json::to_string(&files::SUITES).unwrap_or_default();
    let mut text = format!(
        r#"[services.fraud-scorer]
route = {{ path_prefix = "/v2/models/fraud" }}
protocol = "kserve-v2"
stable = "v1"
plan = "demo"
sticky = {{ header = "x-user-id" }}
health = {{ path = "/health" }}
docs = {{ runbook = "docs/runbook.md", monitoring_plan = "docs/monitoring-plan.md", rollback_plan = "docs/rollback-plan.md" }}
# rollgate runs these against every candidate itself: the validation and documentation gates' evidence.
suites = {suites}
# The demo's logs are files in its data directory: logging works while it is writable.
# Point this at your log pipeline's readiness check (a url, or a command).
logging_check = {{ command = ["test", "-w", {data}] }}
"#,
        data = quoted(data),
    );
    text.push_str(
        "[services.fraud-staging]\nroute = { path_prefix = \"/staging\" }\nprotocol = \"json\"\nstable = \"v1\"\nplan = \"demo\"\n",
    );
    for (service, (name, model)) in endpoints.iter().flat_map(|e| [("fraud-scorer", e), ("fraud-staging", e)]) {
        text.push_str(&format!(
            "[services.{service}.versions.{name}]\nendpoints = [\"{}\"]\nartifact = {{ uri = \"sim://fraud/{name}\", sha256 = \"{sha}\" }}\nmodel_card = \"cards/fraud-{name}.md\"\nowner = \"fraud-ml@example.com\"\nscaling = {{ min_replicas = 2, max_replicas = 8, on = \"cpu 70%\" }}\n",
            model.url(),
            sha = ARTIFACT_SHA256,
        ));
    }
    text.push_str(
        r#"[plans.demo]
description = "The default process with holds short enough for a demo: every gate, a real staging drill, a canary judged live."
[plans.demo.staging.environment]
service = "fraud-staging"
"#,
    );
    text.push_str(&format!("traffic = {}\n", quoted(&data.join(SAMPLE))));
    text.push_str(
        r#"path = "/v2/models/fraud/infer"
rate = 100
duration = "1s"
max_p99_ms = 250
max_error_rate = 0.25
drill = { inject = "simulator", error_rate = 0.5, detect_within = "20s" }
[plans.demo.canary]
steps = [
  { percent = 10, hold = "8h" },
  { percent = 30, hold = "8h" },
  { percent = 60, hold = "8h" },
  { percent = 100 },
]
[plans.demo.rollback]
warm_up = "1s"
[plans.demo.full]
keep_warm = "3h"
observe = "2h"
[roles]
alice = ["deployer"]
bob = ["approver:technical"]
carol = ["approver:stakeholder"]
"#,
    );
    text
}

/// A sanitized traffic sample for staging: KServe v2 requests, one per line.
fn write_sample(path: &Path) -> anyhow::Result<()> {
    let lines: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "{{\"inputs\":[{{\"name\":\"amount\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[{}.0]}}]}}",
                10 + i * 37 % 900
            )
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").with_context(|| format!("cannot write {}", path.display()))
}

pub async fn start_world(data_dir: Option<&Path>) -> anyhow::Result<World> {
    let mut models = BTreeMap::new();
    let any_port = "127.0.0.1:0".parse()?;
    for (name, error_rate) in [("v1", BASE_ERROR_RATE), ("v2", BASE_ERROR_RATE), ("v3", 3.0 * BASE_ERROR_RATE)] {
        let faults = Faults { error_rate, latency_ms: 2.0, ..Faults::default() };
        models.insert(name, rollgate_sim::model::serve(any_port, name, SEED, faults).await?);
    }
    let mut temporary = None;
    let data = match data_dir {
        Some(dir) => dir.to_path_buf(),
        None => {
            let made = tempfile::tempdir().context("cannot make a temporary data directory")?;
            temporary.insert(made).path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&data).with_context(|| format!("cannot make the data directory {}", data.display()))?;
    write_sample(&data.join(SAMPLE))?;
    let text = config_text(&models, &data);
    let config_file = files::write_config(&data, &text)?;
    files::write_documents(&data, &models.keys().copied().collect::<Vec<_>>(), ARTIFACT_SHA256)?;
    files::write_suites(&data, SEED).await?;
    let config = Config::parse("demo.toml", &text).map_err(|problems| {
        anyhow::anyhow!(
            "the demo's own config is wrong: {}",
            problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ")
        )
    })?;
    let store = AnyStore::Sqlite(
        SqliteStore::open(&data).await.with_context(|| format!("cannot open the data directory {}", data.display()))?,
    );
    let shadow = ShadowPairs::new();
    let front = super::super::gateway::start(&config, any_port, None, shadow.clone(), None).await?;
    // Monday morning: the plan's deploy window refuses Friday starts, and
    // both rollouts start well before (a slow machine stretches the plan's hours).
    let clock = ScaledClock { origin: "2026-11-23T09:00:00Z".parse()?, anchor: jiff::Timestamp::now(), speed: SPEED };
    let dataplane = InProcess::new(front.gateway.clone(), format!("http://{}", front.addr));
    let options = ServerOptions {
        config: ConfigSource { config, text, path: Some(config_file.clone()) },
        store: store.clone(),
        listen: any_port,
        clock: Arc::new(clock.clone()),
        tick: Duration::from_millis(100),
        hooks: Vec::new(),
        dataplane: Some(Arc::new(dataplane)),
        retry: RetryPolicy::default(),
        archive_dir: data.join("archive"),
        head_file: None,
        shadow,
        cluster: rollgate_server::cluster::ClusterSettings::default(),
    };
    let server = start(options).await?;
    let mut tokens = BTreeMap::new();
    for (name, role) in [
        ("alice", Role::Deployer),
        ("bob", Role::Approver(ApprovalKind::Technical)),
        ("carol", Role::Approver(ApprovalKind::Stakeholder)),
    ] {
        let token = create_token(&store, name, &[role], "demo", clock.now()).await?;
        tokens.insert(name, token.token);
    }
    let api = format!("http://{}", server.addr);
    Ok(World { data, _temporary: temporary, _models: models, gateway: front, server, api, tokens })
}
