#![allow(dead_code)] // each test binary uses its own part of the helpers

use reqwest::{Method, StatusCode};
use rollgate_core::clock::Clock;
use rollgate_core::config::{Config, EXAMPLE};
use rollgate_core::roles::Role;
use rollgate_gateway::mirror::{DiscardPairs, MirrorLimits};
use rollgate_gateway::stats::Stats;
use rollgate_gateway::table::RouteTable;
use rollgate_gateway::{Gateway, RunningGateway, serve};
use rollgate_server::auth::create_token;
use rollgate_server::clock::ScaledClock;
use rollgate_server::notify::{Hook, RetryPolicy};
use rollgate_server::{RunningServer, ServerOptions, start};
use rollgate_store::{AnyStore, SqliteStore};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Thursday morning, so that the default deploy window allows starts.
pub const THURSDAY: &str = "2026-11-26T09:00:00Z";

pub struct Setup {
    pub dir: tempfile::TempDir,
    pub store: AnyStore,
    pub clock: ScaledClock,
}

impl Setup {
    /// A data directory and a clock running `speed` times real time from Thursday 09:00.
    pub async fn new(speed: f64) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let store = AnyStore::Sqlite(SqliteStore::open(dir.path()).await.unwrap());
        let clock = ScaledClock { origin: THURSDAY.parse().unwrap(), anchor: jiff::Timestamp::now(), speed };
        Setup { dir, store, clock }
    }

    pub fn options(&self, hooks: Vec<Hook>, retry: RetryPolicy) -> ServerOptions {
        ServerOptions {
            config: Config::parse("rollgate.toml", EXAMPLE).unwrap(),
            store: self.store.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            clock: Arc::new(self.clock.clone()),
            tick: Duration::from_millis(50),
            hooks,
            gateway: None,
            gateway_url: None,
            retry,
        }
    }

    pub async fn start(&self, hooks: Vec<Hook>, retry: RetryPolicy) -> Api {
        let server = start(self.options(hooks, retry)).await.unwrap();
        Api { base: format!("http://{}", server.addr), server: Some(server), http: reqwest::Client::new() }
    }

    /// The control plane over `config`, with an in-process gateway on a free
    /// port in front of the config's endpoints (backend timeout `timeout`).
    pub async fn start_with_gateway(&self, config: Config, timeout: Duration) -> (Api, RunningGateway) {
        let stats = Arc::new(Stats::default());
        let table = RouteTable::from_config(&config, &stats).unwrap();
        let gateway = Arc::new(Gateway::new(table, stats, timeout, Arc::new(DiscardPairs), MirrorLimits::default()));
        let front = serve(gateway.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut options = self.options(Vec::new(), RetryPolicy::default());
        options.config = config;
        options.gateway = Some(gateway);
        options.gateway_url = Some(format!("http://{}", front.addr));
        let server = start(options).await.unwrap();
        (Api { base: format!("http://{}", server.addr), server: Some(server), http: reqwest::Client::new() }, front)
    }

    pub async fn token(&self, name: &str, roles: &[Role]) -> String {
        create_token(&self.store, name, roles, "test", self.clock.now()).await.unwrap().token
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
