#![allow(dead_code)] // each test binary uses its own part of the helpers

use reqwest::{Method, StatusCode};
use rollgate_core::clock::Clock;
use rollgate_core::config::{Config, EXAMPLE};
use rollgate_core::roles::Role;
use rollgate_gateway::mirror::{ComparisonHook, DiscardPairs, MirrorLimits};
use rollgate_gateway::stats::Stats;
use rollgate_gateway::table::RouteTable;
use rollgate_gateway::{Gateway, RunningGateway, serve};
use rollgate_server::auth::create_token;
use rollgate_server::clock::ScaledClock;
use rollgate_server::dataplane::InProcess;
use rollgate_server::notify::{Hook, RetryPolicy};
use rollgate_server::shadow::ShadowPairs;
use rollgate_server::{ConfigSource, RunningServer, ServerOptions, start};
use rollgate_store::{AnyStore, SqliteStore};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Thursday morning, so that the default deploy window allows starts.
pub const THURSDAY: &str = "2026-11-26T09:00:00Z";

pub struct Setup {
    pub dir: tempfile::TempDir,
    pub store: AnyStore,
    pub clock: Arc<dyn Clock>,
}

/// A clock running `speed` times real time from Thursday 09:00.
fn scaled(speed: f64) -> Arc<dyn Clock> {
    Arc::new(ScaledClock { origin: THURSDAY.parse().unwrap(), anchor: jiff::Timestamp::now(), speed })
}

impl Setup {
    /// A data directory and a clock running `speed` times real time from Thursday 09:00.
    pub async fn new(speed: f64) -> Setup {
        Setup::with_clock(scaled(speed)).await
    }

    /// A data directory and `clock`.
    pub async fn with_clock(clock: Arc<dyn Clock>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let store = AnyStore::Sqlite(SqliteStore::open(dir.path()).await.unwrap());
        Setup { dir, store, clock }
    }

    /// The same on a fresh PostgreSQL database (dropped by [`PgDatabase::drop_now`]).
    pub async fn postgres(speed: f64) -> (Setup, PgDatabase) {
        let admin_url = std::env::var("ROLLGATE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("rollgate_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is needed at {admin_url} ({e}); start it with .ci/run or set ROLLGATE_TEST_POSTGRES")
        });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        admin.close().await;
        let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
        let store = AnyStore::open(&url).await.unwrap();
        (Setup { dir: tempfile::tempdir().unwrap(), store, clock: scaled(speed) }, PgDatabase { admin_url, name })
    }

    pub fn options(&self, hooks: Vec<Hook>, retry: RetryPolicy) -> ServerOptions {
        ServerOptions {
            config: source(EXAMPLE),
            store: self.store.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            clock: self.clock.clone(),
            tick: Duration::from_millis(50),
            hooks,
            dataplane: None,
            retry,
            archive_dir: self.dir.path().join("archive"),
            head_file: None,
            shadow: ShadowPairs::new(),
            cluster: rollgate_server::cluster::ClusterSettings::default(),
        }
    }

    pub async fn start(&self, hooks: Vec<Hook>, retry: RetryPolicy) -> Api {
        let server = start(self.options(hooks, retry)).await.unwrap();
        Api { base: format!("http://{}", server.addr), server: Some(server), http: reqwest::Client::new() }
    }

    /// The control plane over `config`, with an in-process gateway on a free
    /// port in front of the config's endpoints (backend timeout `timeout`).
    pub async fn start_with_gateway(&self, config: ConfigSource, timeout: Duration) -> (Api, RunningGateway) {
        let mut options = self.options(Vec::new(), RetryPolicy::default());
        options.config = config;
        self.start_options_with_gateway(options, timeout).await
    }

    /// The control plane on `options`, with a fresh in-process gateway on a
    /// free port as its data plane (backend timeout `timeout`).
    pub async fn start_options_with_gateway(
        &self,
        mut options: ServerOptions,
        timeout: Duration,
    ) -> (Api, RunningGateway) {
        // As `rollgate serve` does, services with a `capture` write under the data directory.
        let capture = self.dir.path().join("capture");
        let gateway = Arc::new(new_gateway(timeout, options.shadow.clone()).with_capture(capture).unwrap());
        let front = serve(gateway.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        options.dataplane = Some(Arc::new(InProcess::new(gateway, format!("http://{}", front.addr))));
        let server = start(options).await.unwrap();
        (Api { base: format!("http://{}", server.addr), server: Some(server), http: reqwest::Client::new() }, front)
    }

    pub async fn token(&self, name: &str, roles: &[Role]) -> String {
        create_token(&self.store, name, roles, "test", self.clock.now()).await.unwrap().token
    }
}

/// A gateway with an empty table: the control plane gives it its routing.
pub fn gateway(timeout: Duration) -> Arc<Gateway> {
    gateway_with(timeout, Arc::new(DiscardPairs))
}

/// The same, with its shadow pairs going to `pairs`.
pub fn gateway_with(timeout: Duration, pairs: Arc<dyn ComparisonHook>) -> Arc<Gateway> {
    Arc::new(new_gateway(timeout, pairs))
}

fn new_gateway(timeout: Duration, pairs: Arc<dyn ComparisonHook>) -> Gateway {
    Gateway::new(RouteTable::empty(), Arc::new(Stats::default()), timeout, pairs, MirrorLimits::default())
}

/// A config without a file (it cannot be reloaded).
pub fn source(text: &str) -> ConfigSource {
    ConfigSource { config: Config::parse("rollgate.toml", text).unwrap(), text: text.to_string(), path: None }
}

/// A PostgreSQL database made for one test.
pub struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// The database's URL with another host and port (e.g. a proxy in front of PostgreSQL).
    pub fn url_via(&self, host_port: &str) -> String {
        format!("postgres://postgres@{host_port}/{}", self.name)
    }

    pub async fn drop_now(self) {
        let admin = sqlx::PgPool::connect(&self.admin_url).await.unwrap();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&admin).await.unwrap();
    }
}

pub struct Api {
    pub base: String,
    pub server: Option<RunningServer>,
    pub http: reqwest::Client,
}

impl Api {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// Rollout `id`'s view once `check` holds of it (within 15 s); otherwise the
/// test fails saying `what`, with the view's stage, outcome, evidence, watch and actions.
pub async fn view_until(api: &Api, token: &str, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/api/v1/rollouts/{id}");
    let held = wait_for(Duration::from_secs(15), || async { check(&api.get(&path, token).await.1) }).await;
    let v = api.get(&path, token).await.1;
    let shown = serde_json::json!({ "stage": v["stage"], "outcome": v["outcome"], "evidence": v["evidence"], "watch": v["watch"], "actions": v["actions"] });
    assert!(held, "{what}: {shown}");
    v
}

/// Polls `check` every 20 ms until it holds or `limit` passes.
pub async fn wait_for<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A model server that answers every request with its name and counts the
/// health probes (`GET /healthz`) it gets.
pub struct NamedModel {
    pub url: String,
    pub probes: Arc<std::sync::atomic::AtomicU64>,
}

pub async fn named_model(name: &'static str) -> NamedModel {
    use axum::routing::{any, get};
    let probes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = probes.clone();
    let app = axum::Router::new()
        .route(
            "/healthz",
            get(move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async { "ok" }
            }),
        )
        .fallback(any(move || async move { format!("{{\"served_by\":\"{name}\"}}") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    NamedModel { url, probes }
}

/// A config of one service `fraud` at /fraud (sticky on x-user-id) with
/// config versions `(name, url)`, the first stable, its plan `fast` made of
/// `plan` (TOML under [plans.fast]) and `extra` (more TOML) after.
pub fn fraud_config(versions: &[(&str, &str)], plan: &str, extra: &str) -> String {
    let mut text = format!(
        "[services.fraud]\nroute = {{ path_prefix = \"/fraud\" }}\nprotocol = \"json\"\nstable = \"{}\"\nplan = \"fast\"\nsticky = {{ header = \"x-user-id\" }}\n{extra}\n",
        versions[0].0
    );
    for (name, url) in versions {
        text += &format!(
            "[services.fraud.versions.{name}]\nendpoints = [\"{url}\"]\nartifact = {{ uri = \"s3://m/{name}\", sha256 = \"{}\" }}\nowner = \"ml\"\n",
            "a".repeat(64)
        );
    }
    text + "[plans.fast]\n" + plan
}

/// A chat service `assistant` (protocol openai-chat, at /v1) with versions
/// v1 (stable) and v2 at `v1` and `v2`, on plan `fast` written by `plan`
/// (TOML tables under `[plans.fast…]`).
pub fn chat_config(v1: &str, v2: &str, plan: &str) -> String {
    let mut text = String::from(
        "[services.assistant]\nroute = { path_prefix = \"/v1\" }\nprotocol = \"openai-chat\"\nstable = \"v1\"\nplan = \"fast\"\n",
    );
    for (name, url) in [("v1", v1), ("v2", v2)] {
        text += &format!(
            "[services.assistant.versions.{name}]\nendpoints = [\"{url}\"]\nartifact = {{ uri = \"s3://m/{name}\", sha256 = \"{}\" }}\nowner = \"ml\"\n",
            "a".repeat(64)
        );
    }
    text + plan
}

/// Moves rollout `id` into its canary, `admin` overriding the gates before it.
pub async fn force_into_canary(api: &Api, id: &str, reader: &str, admin: &str) {
    let path = format!("/api/v1/rollouts/{id}");
    let in_canary = wait_for(Duration::from_secs(10), || async {
        let stage = api.get(&path, reader).await.1["stage"].clone();
        if stage != "canary" {
            api.post(
                &format!("{path}/force-promote"),
                admin,
                serde_json::json!({ "reason": "test: straight to the canary" }),
            )
            .await;
        }
        stage == "canary"
    })
    .await;
    assert!(in_canary, "{}", api.get(&path, reader).await.1);
}

/// `clients` loops streaming chat completions to `url` until aborted.
pub fn stream_chat(url: &str, clients: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"Is order 1234 fraud?"}]}"#;
    (0..clients)
        .map(|_| {
            let url = url.to_string();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                loop {
                    if let Ok(response) = http.post(&url).body(body).send().await {
                        let _ = response.bytes().await;
                    }
                }
            })
        })
        .collect()
}

/// Which version serves each of `n` requests (users u0..un), by `x-rollgate-version`.
pub async fn served_by(gateway: &RunningGateway, n: usize) -> std::collections::BTreeMap<String, usize> {
    let url = format!("http://{}/fraud/score", gateway.addr);
    rollgate_sim::traffic::tally_versions(&reqwest::Client::new(), &url, (0..n).map(|i| format!("u{i}"))).await
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real Prometheus (Debian's package) on a loopback port, scraping
/// `target` every second and loading the rule file `rules.yml` in its
/// directory when there is one (`reload` reads it again); killed when dropped.
pub struct PrometheusServer {
    child: std::process::Child,
    dir: tempfile::TempDir,
    pub url: String,
}

impl PrometheusServer {
    pub fn start(target: &str) -> PrometheusServer {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nscrape_configs:\n  - job_name: models\n    static_configs:\n      - targets: ['{target}']\n",
                dir.path().join("rules.yml").display()
            ),
        )
        .unwrap();
        let port = free_port();
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("Debian's prometheus package is installed (scripts/test.sh installs it)");
        PrometheusServer { child, dir, url: format!("http://127.0.0.1:{port}") }
    }

    /// Writes the rule file and has Prometheus read its configuration again (SIGHUP).
    pub fn load_rules(&self, rules: &str) {
        std::fs::write(self.dir.path().join("rules.yml"), rules).unwrap();
        let status = std::process::Command::new("kill").arg("-HUP").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server and gateway on `config` with rollout `r1` of fraud v2 started by alice (a deployer).
pub struct Started {
    pub api: Api,
    pub front: RunningGateway,
    pub alice: String,
    pub setup: Setup,
}

impl Started {
    pub async fn new(config: &str) -> Started {
        let setup = Setup::new(1.0).await;
        let alice = setup.token("alice", &[Role::Deployer]).await;
        let (api, front) = setup.start_with_gateway(source(config), Duration::from_secs(2)).await;
        let start = serde_json::json!({ "service": "fraud", "candidate": "v2", "id": "r1", "skip_shadow": true });
        let (status, body) = api.post("/api/v1/rollouts", &alice, start).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        Started { api, front, alice, setup }
    }

    /// The rollout's evidence for `gate`, if any.
    pub async fn evidence(&self, gate: &str) -> Option<Value> {
        let (_, view) = self.api.get("/api/v1/rollouts/r1", &self.alice).await;
        view["evidence"].as_array()?.iter().find(|e| e["gate"] == gate).cloned()
    }

    pub async fn stop(self) {
        self.api.stop().await;
        self.front.shutdown().await;
    }
}
