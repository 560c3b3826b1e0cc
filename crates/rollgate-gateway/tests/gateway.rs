//! The gateway with real sockets on loopback: model servers that answer,
//! stream, fail, hang or talk garbage, and a gateway in front of them.

use axum::Router;
use axum::body::Body;
use axum::routing::any;
use bytes::Bytes;
use rollgate_core::config::Config;
use rollgate_core::routing::{Role, RoutedVersion, Routing};
use rollgate_core::weight::Weight;
use rollgate_gateway::mirror::{ComparisonHook, DiscardPairs, MirrorLimits, MirrorPair};
use rollgate_gateway::stats::Stats;
use rollgate_gateway::{GATEWAY_ERROR, RunningGateway, SERVED_BY};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

mod support;
use support::{assert_promtool_clean, gateway_of, metric, routing_of, serving, wait_until};

/// A model server answering with its name.
async fn model(name: &'static str) -> String {
    let app = Router::new().fallback(any(move || async move { format!("{{\"served_by\":\"{name}\"}}") }));
    spawn(app).await
}

async fn spawn(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An address where nothing listens: connections are refused.
fn refused_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// A raw TCP server that answers every connection with `reply` (then, if `hang`, stays silent).
async fn raw(reply: &'static [u8], hang: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(reply).await;
                if hang {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            });
        }
    });
    addr
}

fn config(v1: &str, v2: &str, split: Option<&str>, extra: &str) -> Config {
    let split = split.map(|s| format!("split = {s}\n")).unwrap_or_default();
    let text = format!(
        r#"
[services.scorer]
route = {{ path_prefix = "/v1/score" }}
protocol = "json"
stable = "v1"
sticky = {{ header = "x-user-id" }}
{split}{extra}
[services.scorer.versions.v1]
endpoints = ["{v1}"]
artifact = {{ uri = "s3://m/v1", sha256 = "{sha}" }}
owner = "ml"

[services.scorer.versions.v2]
endpoints = ["{v2}"]
artifact = {{ uri = "s3://m/v2", sha256 = "{sha}" }}
owner = "ml"
"#,
        sha = "a".repeat(64)
    );
    Config::parse("gateway-test.toml", &text).unwrap_or_else(|e| panic!("{e:?}"))
}

async fn gateway(config: &Config) -> RunningGateway {
    gateway_with(config, Arc::new(DiscardPairs), MirrorLimits::default()).await
}

/// `config`'s routing with service `scorer` as a rollout at `percent` would route it.
fn canary_at(config: &Config, percent: f64) -> Routing {
    let mut routing = routing_of(config);
    let scorer = routing.services.get_mut("scorer").unwrap();
    let endpoints = config.services["scorer"].versions["v2"].endpoints.iter().map(|e| e.get_ref().clone()).collect();
    scorer.versions.insert("v2".into(), RoutedVersion { endpoints, role: Role::Candidate });
    let weight = Weight::from_percent(percent).unwrap();
    scorer.split = vec![("v2".into(), weight), ("v1".into(), weight.complement())];
    routing
}

async fn gateway_with(config: &Config, hook: Arc<dyn ComparisonHook>, limits: MirrorLimits) -> RunningGateway {
    serving(gateway_of(config, Arc::new(Stats::default()), hook, limits)).await
}

fn url(g: &RunningGateway, path: &str) -> String {
    format!("http://{}{path}", g.addr)
}

async fn served_by(client: &reqwest::Client, g: &RunningGateway, user: Option<&str>) -> String {
    let mut request = client.post(url(g, "/v1/score")).body("{}");
    if let Some(user) = user {
        request = request.header("x-user-id", user);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.headers()[SERVED_BY].to_str().unwrap().to_string()
}

async fn metrics_of(client: &reqwest::Client, g: &RunningGateway) -> String {
    client.get(url(g, "/metrics")).send().await.unwrap().text().await.unwrap()
}

fn responses(version: &str, arm: &str, outcome: &str) -> String {
    format!("rollgate_responses_total{{service=\"scorer\",version=\"{version}\",arm=\"{arm}\",outcome=\"{outcome}\"}}")
}

/// Within five standard deviations of a binomial(n, p).
fn plausible(hits: usize, n: usize, p: f64) -> bool {
    (hits as f64 - n as f64 * p).abs() <= 5.0 * (n as f64 * p * (1.0 - p)).sqrt()
}

#[tokio::test]
async fn a_static_split_sends_each_version_its_share() {
    let (v1, v2) = (model("v1").await, model("v2").await);
    let g = gateway(&config(&v1, &v2, Some("{ v1 = 90, v2 = 10 }"), "")).await;
    let client = reqwest::Client::new();
    let n = 3000;
    let mut canary = 0;
    for _ in 0..n {
        if served_by(&client, &g, None).await == "v2" {
            canary += 1;
        }
    }
    assert!(plausible(canary, n, 0.10), "{canary} of {n} on a 10% canary");
    g.shutdown().await;
}

#[tokio::test]
async fn users_stay_on_their_version_and_canary_users_stay_when_it_grows() {
    let (v1, v2) = (model("v1").await, model("v2").await);
    let g = gateway(&config(&v1, &v2, None, "")).await;
    let client = reqwest::Client::new();
    let users: Vec<String> = (0..1500).map(|i| format!("user-{i}")).collect();
    let config = config(&v1, &v2, None, "");
    let at = |percent: f64| g.gateway.apply(&canary_at(&config, percent)).unwrap();
    at(5.0);
    let mut on_canary_at_5 = HashSet::new();
    for user in &users {
        let first = served_by(&client, &g, Some(user)).await;
        assert_eq!(served_by(&client, &g, Some(user)).await, first, "{user} moved between requests");
        if first == "v2" {
            on_canary_at_5.insert(user.clone());
        }
    }
    assert!(plausible(on_canary_at_5.len(), users.len(), 0.05), "{}", on_canary_at_5.len());
    at(25.0);
    let mut on_canary_at_25 = HashSet::new();
    for user in &users {
        if served_by(&client, &g, Some(user)).await == "v2" {
            on_canary_at_25.insert(user.clone());
        }
    }
    assert!(on_canary_at_5.is_subset(&on_canary_at_25), "a canary user was moved back to stable");
    assert!(plausible(on_canary_at_25.len(), users.len(), 0.25), "{}", on_canary_at_25.len());
    g.shutdown().await;
}

#[tokio::test]
async fn streamed_chunks_arrive_before_the_model_finishes() {
    // The model streams what the test hands it, when the test hands it.
    let (chunks, stream) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let stream = Arc::new(tokio::sync::Mutex::new(Some(stream)));
    let app = Router::new().fallback(any(move || {
        let stream = stream.clone();
        async move {
            let rx = stream.lock().await.take().expect("one streaming request");
            Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        }
    }));
    let v1 = spawn(app).await;
    let g = gateway(&config(&v1, &v1, None, "")).await;
    chunks.send(Ok(Bytes::from_static(b"data: first token\n\n"))).await.unwrap();
    let mut response = reqwest::Client::new().post(url(&g, "/v1/score/chat")).send().await.unwrap();
    // The first event arrives while the model has not finished (it cannot: the test holds the rest).
    let first =
        tokio::time::timeout(Duration::from_secs(10), response.chunk()).await.expect("the first chunk was held back");
    assert_eq!(first.unwrap().as_deref(), Some(&b"data: first token\n\n"[..]));
    chunks.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await.unwrap();
    drop(chunks);
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"data: [DONE]\n\n");
    g.shutdown().await;
}

#[tokio::test]
async fn backend_faults_map_to_the_right_status_and_are_charged_to_the_version() {
    let refused = refused_address();
    let garbage = raw(b"this is not HTTP\r\n\r\n", false).await;
    let hangs = raw(b"", true).await;
    let cut = raw(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial", false).await;
    let client = reqwest::Client::new();
    for (backend, status, outcome) in
        [(&refused, 502, "connection_failure"), (&garbage, 502, "connection_failure"), (&hangs, 504, "timeout")]
    {
        let extra = "timeouts = { first_byte = \"1s\" }\n";
        let g = gateway(&config(backend, backend, None, extra)).await;
        let response = client.post(url(&g, "/v1/score")).body("{}").send().await.unwrap();
        assert_eq!(response.status(), status, "{backend}");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.headers()[SERVED_BY], "v1", "the client can tell which version failed");
        assert!(response.headers().contains_key(GATEWAY_ERROR), "and that the gateway answered, not the model");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["service"], "scorer", "the error says which service: {body}");
        let metrics = metrics_of(&client, &g).await;
        assert_eq!(metric(&metrics, &responses("v1", "stable", outcome)), Some(1.0), "{metrics}");
        g.shutdown().await;
    }
    // A body cut short: the client sees the stream fail; the version is charged.
    let g = gateway(&config(&cut, &cut, None, "")).await;
    let response = client.post(url(&g, "/v1/score")).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "a truncated body must not look complete");
    let counted = wait_until(|| async {
        metric(&metrics_of(&client, &g).await, &responses("v1", "stable", "connection_failure")) == Some(1.0)
    })
    .await;
    assert!(counted);
    // The same gateway still serves once its model does.
    let ok = model("v1").await;
    g.gateway.apply(&routing_of(&config(&ok, &ok, None, ""))).unwrap();
    assert_eq!(served_by(&client, &g, None).await, "v1");
    g.shutdown().await;
}

#[tokio::test]
async fn a_rollback_swap_under_load_fails_no_request_and_applies_to_the_next_ones() {
    let (v1, v2) = (model("v1").await, model("v2").await);
    let config = config(&v1, &v2, None, "");
    let g = gateway(&config).await;
    g.gateway.apply(&canary_at(&config, 50.0)).unwrap();
    let client = reqwest::Client::new();
    let base = url(&g, "/v1/score");
    let (swapped_tx, swapped) = tokio::sync::watch::channel(false);
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (client, base, swapped, done) = (client.clone(), base.clone(), swapped.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let (mut failures, mut after_swap_on_canary, mut sent) = (0, 0, 0);
            for _ in 0..150 {
                let was_swapped = *swapped.borrow();
                match client.post(&base).body("{}").send().await {
                    Ok(r) if r.status() == 200 => {
                        if was_swapped && r.headers()[SERVED_BY] == "v2" {
                            after_swap_on_canary += 1;
                        }
                    }
                    _ => failures += 1,
                }
                if was_swapped {
                    sent += 1;
                }
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            (failures, after_swap_on_canary, sent)
        }));
    }
    // Swap while the load is running: after some requests, well before the last.
    assert!(wait_until(|| async { done.load(std::sync::atomic::Ordering::Relaxed) >= 100 }).await);
    g.gateway.apply(&canary_at(&config, 0.0)).unwrap();
    swapped_tx.send(true).unwrap();
    let mut after_swap = 0;
    for worker in workers {
        let (failures, late, sent_after) = worker.await.unwrap();
        assert_eq!(failures, 0, "no request fails during the swap");
        assert_eq!(late, 0, "no request that started after the rollback reached the canary");
        after_swap += sent_after;
    }
    assert!(after_swap > 100, "the swap came well before the end: only {after_swap} requests after it");
    g.shutdown().await;
}

#[tokio::test]
async fn feedback_is_credited_to_the_version_that_answered() {
    let (v1, v2) = (model("v1").await, model("v2").await);
    let g = gateway(&config(&v1, &v2, Some("{ v1 = 50, v2 = 50 }"), "")).await;
    let client = reqwest::Client::new();
    let mut by_version: HashMap<String, Vec<String>> = HashMap::new();
    for _ in 0..40 {
        let response = client.post(url(&g, "/v1/score")).body("{}").send().await.unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap().to_string();
        by_version.entry(response.headers()[SERVED_BY].to_str().unwrap().to_string()).or_default().push(id);
    }
    let given = client.post(url(&g, "/v1/score")).header("x-request-id", "client-chosen-42").send().await.unwrap();
    assert_eq!(given.headers()["x-request-id"], "client-chosen-42", "a client's own id is kept");
    for id in &by_version["v2"] {
        let sent = client
            .post(url(&g, "/feedback"))
            .body(format!(r#"{{"request_id":"{id}","complaint":true}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 202);
    }
    let unknown = client.post(url(&g, "/feedback")).body(r#"{"request_id":"nope","rating":1}"#).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let bad = client.post(url(&g, "/feedback")).body(r#"{"request_id":"x","rating":9}"#).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let metrics = client.get(url(&g, "/metrics")).send().await.unwrap().text().await.unwrap();
    let complaints = |v: &str, arm: &str| {
        format!("rollgate_feedback_total{{service=\"scorer\",version=\"{v}\",arm=\"{arm}\",kind=\"complaint\"}}")
    };
    assert_eq!(metric(&metrics, &complaints("v2", "canary")), Some(by_version["v2"].len() as f64), "{metrics}");
    assert_eq!(metric(&metrics, &complaints("v1", "stable")), Some(0.0), "{metrics}");
    g.shutdown().await;
}

#[tokio::test]
async fn metrics_pass_promtool() {
    let (v1, v2) = (model("v1").await, model("v2").await);
    let g = gateway(&config(&v1, &v2, Some("{ v1 = 50, v2 = 50 }"), "")).await;
    let client = reqwest::Client::new();
    for _ in 0..20 {
        served_by(&client, &g, None).await;
    }
    let metrics = client.get(url(&g, "/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("rollgate_request_duration_seconds_bucket"));
    assert_promtool_clean(&metrics);
    g.shutdown().await;
}

/// nginx (Debian's package) running `split_clients` in a temporary prefix.
struct Nginx {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx running `servers` (and `http_extra`) in the http block of a temporary prefix; `port` is the one the test uses.
fn nginx(http_extra: &str, servers: &str, port: u16) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;
         events {{ worker_connections 64; }}
         http {{
           access_log off;
           client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
           {http_extra}
           {servers}
         }}"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = std::process::Command::new("nginx")
        .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx (Debian's package) must be installed: scripts/test.sh installs it");
    Nginx { child, _dir: dir, port }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn nginx_split(split: &str) -> Nginx {
    let port = free_port();
    let split_clients = format!("split_clients \"${{http_x_user_id}}\" $variant {{ {split} }}");
    nginx(&split_clients, &format!("server {{ listen 127.0.0.1:{port}; location / {{ return 200 $variant; }} }}"), port)
}

#[tokio::test]
async fn sticky_buckets_are_the_ones_nginx_split_clients_picks() {
    let nginx = nginx_split("5% canary; 20% other; *  stable;");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}/", nginx.port);
    assert!(wait_until(|| async { client.get(&base).send().await.is_ok() }).await, "nginx did not start");
    let names = ["canary", "other", "stable"];
    let ours = rollgate_gateway::sticky::Split::new(&[
        (0, Weight::from_percent(5.0).unwrap()),
        (1, Weight::from_percent(20.0).unwrap()),
        (2, Weight::from_percent(75.0).unwrap()),
    ]);
    let mut seen = HashSet::new();
    for i in 0..2000 {
        // Keys of every length class, and some non-ASCII ones.
        let key = if i % 7 == 0 { format!("usér-{i}") } else { format!("{}{i}", "u".repeat(i % 5)) };
        let theirs = client.get(&base).header("x-user-id", key.as_bytes()).send().await.unwrap().text().await.unwrap();
        let mine = names[ours.pick_key(key.as_bytes()).unwrap()];
        assert_eq!(mine, theirs, "key {key:?}");
        seen.insert(theirs);
    }
    assert_eq!(seen.len(), 3, "every bucket was exercised");
}

#[derive(Default)]
struct Pairs(std::sync::Mutex<Vec<MirrorPair>>);

impl ComparisonHook for Pairs {
    fn compare(&self, pair: MirrorPair) {
        self.0.lock().unwrap().push(pair);
    }
}

#[tokio::test]
async fn mirroring_never_holds_the_primary_and_pairs_both_answers() {
    let v1 = model("v1").await;
    // The shadow holds every request until the test lets it answer.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = gate.clone();
    let shadow = spawn(Router::new().fallback(any(move |body: Bytes| {
        let held = held.clone();
        async move {
            let _permit = held.acquire().await.unwrap();
            format!("shadow saw {}", String::from_utf8_lossy(&body))
        }
    })))
    .await;
    let pairs = Arc::new(Pairs::default());
    let limits = MirrorLimits { queue: 8, concurrency: 2, ..MirrorLimits::default() };
    let extra = "mirror = { version = \"v2\", percent = 100 }\n";
    let g = gateway_with(&config(&v1, &shadow, None, extra), pairs.clone(), limits).await;
    let client = reqwest::Client::new();
    for i in 0..20 {
        let response = client.post(url(&g, "/v1/score")).body(format!("{{\"n\":{i}}}")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), r#"{"served_by":"v1"}"#);
    }
    // Every user got the primary's answer while the shadow had answered nothing.
    assert!(pairs.0.lock().unwrap().is_empty());
    let stats = &g.gateway.stats;
    let (sent, dropped) = (
        stats.mirror_sent.load(std::sync::atomic::Ordering::Relaxed),
        stats.mirror_dropped.load(std::sync::atomic::Ordering::Relaxed),
    );
    assert_eq!(sent + dropped, 20);
    assert!(dropped >= 1 && sent >= 8, "a full queue drops copies: sent {sent}, dropped {dropped}");
    gate.add_permits(1000);
    let all_paired = wait_until(|| async { pairs.0.lock().unwrap().len() as u64 == sent }).await;
    assert!(all_paired, "the comparison hook got every copy that was sent");
    for pair in pairs.0.lock().unwrap().iter() {
        let primary = pair.primary.as_ref().expect("the primary's answer is captured");
        assert_eq!(primary.body.as_ref(), br#"{"served_by":"v1"}"#);
        let shadow = pair.shadow.as_ref().expect("the shadow answered");
        assert_eq!(shadow.body, format!("shadow saw {}", String::from_utf8_lossy(&pair.request_body)));
        assert_eq!((&*pair.primary_version, &*pair.shadow_version), ("v1", "v2"));
    }
    let metrics = client.get(url(&g, "/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(metric(&metrics, "rollgate_mirror_dropped_total"), Some(dropped as f64));
    assert_eq!(
        metric(&metrics, "rollgate_requests_total{service=\"scorer\",version=\"v2\",arm=\"shadow\"}"),
        Some(sent as f64)
    );
    g.shutdown().await;
}

/// A model server answering `{"by": name, "model": <the request's model>}`
/// followed by `pad` bytes of padding.
async fn echo_model(name: &'static str, pad: usize) -> String {
    spawn(Router::new().fallback(any(move |body: Bytes| async move {
        let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let answer = serde_json::json!({"by": name, "model": request["model"], "pad": "x".repeat(pad)});
        answer.to_string()
    })))
    .await
}

#[tokio::test]
async fn shadow_copies_carry_the_candidate_model_and_a_share_goes_to_production_again() {
    let (v1, v2) = (echo_model("v1", 0).await, echo_model("v2", 0).await);
    let pairs = Arc::new(Pairs::default());
    let config = config(&v1, &v2, None, "mirror = { version = \"v2\", percent = 100 }\n");
    let g = gateway_with(&config, pairs.clone(), MirrorLimits::default()).await;
    let mut routing = routing_of(&config);
    let mirror = routing.services.get_mut("scorer").unwrap().mirror.as_mut().unwrap();
    mirror.noise = Weight::from_percent(50.0).unwrap();
    mirror.model = Some("candidate-7b".into());
    g.gateway.apply(&routing).unwrap();
    let client = reqwest::Client::new();
    let n = 200;
    for _ in 0..n {
        let response = client.post(url(&g, "/v1/score")).body(r#"{"model":"prod-7b","prompt":"hi"}"#).send().await;
        // The user is answered by production under the name they asked for.
        assert_eq!(response.unwrap().text().await.unwrap(), r#"{"by":"v1","model":"prod-7b","pad":""}"#);
    }
    assert!(wait_until(|| async { pairs.0.lock().unwrap().len() == n }).await, "every copy was paired");
    let pairs = std::mem::take(&mut *pairs.0.lock().unwrap());
    let mut noisy = 0;
    for pair in pairs.iter() {
        let shadow = pair.shadow.as_ref().unwrap();
        assert_eq!(shadow.body.as_ref(), br#"{"by":"v2","model":"candidate-7b","pad":""}"#);
        if let Some(noise) = &pair.noise {
            noisy += 1;
            // The second copy to production is the request as the user sent it.
            assert_eq!(noise.as_ref().unwrap().body.as_ref(), br#"{"by":"v1","model":"prod-7b","pad":""}"#);
        }
        let primary = pair.primary.as_ref().unwrap();
        assert!(primary.first_byte <= primary.latency && shadow.first_byte <= shadow.latency);
    }
    assert!(plausible(noisy, n, 0.5), "{noisy} of {n} copies went to production again at a 50% share");
    let metrics = metrics_of(&client, &g).await;
    let production_again =
        metric(&metrics, "rollgate_requests_total{service=\"scorer\",version=\"v1\",arm=\"shadow\"}");
    assert_eq!(production_again, Some(noisy as f64), "the noise copies are measured apart from production");
    g.shutdown().await;
}

#[tokio::test]
async fn both_sides_keep_the_same_prefix_of_a_long_answer_and_mark_it_cut() {
    let (v1, v2) = (echo_model("v1", 5000).await, echo_model("v2", 5000).await);
    let pairs = Arc::new(Pairs::default());
    let limits = MirrorLimits { capture: 1000, ..MirrorLimits::default() };
    let config = config(&v1, &v2, None, "mirror = { version = \"v2\", percent = 100 }\n");
    let g = gateway_with(&config, pairs.clone(), limits).await;
    let client = reqwest::Client::new();
    let served = client.post(url(&g, "/v1/score")).body("{}").send().await.unwrap().text().await.unwrap();
    assert!(served.len() > 5000, "the user gets the whole answer");
    assert!(wait_until(|| async { pairs.0.lock().unwrap().len() == 1 }).await);
    let pair = pairs.0.lock().unwrap().pop().unwrap();
    let (primary, shadow) = (pair.primary.unwrap(), pair.shadow.unwrap());
    assert_eq!((primary.body.len(), primary.truncated), (1000, true));
    assert_eq!((shadow.body.len(), shadow.truncated), (1000, true));
    assert_eq!(&primary.body[..], &served.as_bytes()[..1000]);
    assert_eq!(&shadow.body[..], &served.replace("v1", "v2").as_bytes()[..1000]);
    g.shutdown().await;
}

/// A model server whose health probe answers `probe_status`, and which
/// serves requests with its name either way.
async fn model_with_probe(name: &'static str, probe_status: u16) -> String {
    let app = Router::new()
        .route(
            "/healthz",
            axum::routing::get(move || async move { axum::http::StatusCode::from_u16(probe_status).unwrap() }),
        )
        .fallback(any(move || async move { format!("{{\"served_by\":\"{name}\"}}") }));
    spawn(app).await
}

/// Two endpoints for one version, as the config's endpoint list.
fn two(a: &str, b: &str) -> String {
    format!("{a}\", \"{b}")
}

async fn bodies(client: &reqwest::Client, g: &RunningGateway, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let response = client.post(url(g, "/v1/score")).body("{}").send().await.unwrap();
        *seen.entry(response.text().await.unwrap()).or_insert(0) += 1;
    }
    seen
}

#[tokio::test]
async fn endpoints_failing_their_probes_get_no_requests() {
    let (good, sick) = (model_with_probe("good", 200).await, model_with_probe("sick", 503).await);
    let extra = "health = { path = \"/healthz\", interval = \"100ms\", timeout = \"1s\", unhealthy_after = 2, healthy_after = 1 }\n";
    let g = gateway(&config(&two(&good, &sick), &good, None, extra)).await;
    let marked = wait_until(|| async {
        let table = g.gateway.table();
        let v1 = &table.service("scorer").unwrap().versions[0];
        v1.endpoints.iter().any(|e| !e.health.probed_healthy())
    })
    .await;
    assert!(marked, "the sick endpoint was never marked unhealthy");
    let seen = bodies(&reqwest::Client::new(), &g, 60).await;
    assert_eq!(seen.get(r#"{"served_by":"good"}"#), Some(&60), "{seen:?}");
    g.shutdown().await;
}

#[tokio::test]
async fn an_endpoint_failing_real_requests_is_ejected() {
    let good = model("good").await;
    let refused = refused_address();
    let extra = "ejection = { after = 3, for = \"1h\" }\n";
    let g = gateway(&config(&two(&good, &refused), &good, None, extra)).await;
    let client = reqwest::Client::new();
    // Until the refusing endpoint has failed 3 times in a row, some requests fail.
    let ejected = wait_until(|| async {
        let _ = client.post(url(&g, "/v1/score")).body("{}").send().await;
        g.gateway.table().service("scorer").unwrap().versions[0].endpoints.iter().any(|e| e.health.ejected())
    })
    .await;
    assert!(ejected, "the refusing endpoint was never ejected");
    let seen = bodies(&client, &g, 60).await;
    assert_eq!(seen.get(r#"{"served_by":"good"}"#), Some(&60), "{seen:?}");
    g.shutdown().await;
}

#[tokio::test]
async fn a_client_that_gives_up_releases_the_endpoint() {
    // The model never answers; the client leaves while the gateway waits for headers.
    let silent = raw(b"", true).await;
    let g = gateway(&config(&silent, &silent, None, "")).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let in_flight = || {
        let table = g.gateway.table();
        let service = table.service("scorer").unwrap();
        service
            .versions
            .iter()
            .flat_map(|v| &v.endpoints)
            .map(|e| e.in_flight.load(std::sync::atomic::Ordering::Relaxed))
            .sum::<usize>()
    };
    // The request is out, counted while the gateway waits for the model's headers…
    let waiting = tokio::spawn(client.post(url(&g, "/v1/score")).body("{}").send());
    assert!(wait_until(|| async { in_flight() == 1 }).await, "the balancer never counted the request");
    // …and the client gives up.
    waiting.abort();
    assert!(wait_until(|| async { in_flight() == 0 }).await, "the balancer still counts {} requests", in_flight());
    g.shutdown().await;
}

#[tokio::test]
async fn a_new_table_keeps_the_health_of_endpoints_it_still_has() {
    let (good, sick) = (model_with_probe("good", 200).await, model_with_probe("sick", 503).await);
    let extra = "health = { path = \"/healthz\", interval = \"100ms\", timeout = \"1s\", unhealthy_after = 2, healthy_after = 5 }\n";
    let config = config(&two(&good, &sick), &good, None, extra);
    let g = gateway(&config).await;
    let sick_is_out = || {
        let table = g.gateway.table();
        let v1 = &table.service("scorer").unwrap().versions[0];
        v1.endpoints.iter().any(|e| !e.health.probed_healthy())
    };
    assert!(wait_until(|| async { sick_is_out() }).await, "the sick endpoint was never marked unhealthy");
    // A change of weights builds a new table; the sick endpoint must not
    // come back healthy (it would need five good probes in a row).
    g.gateway.apply(&canary_at(&config, 10.0)).unwrap();
    assert!(sick_is_out(), "the new table forgot the endpoint's health");
    let table = g.gateway.table();
    let scorer = table.service("scorer").unwrap();
    assert_eq!(scorer.versions.iter().map(|v| &*v.name).collect::<Vec<_>>(), ["v1", "v2"]);
    // And a routing that names a version it gives no endpoints is refused, the table kept.
    let mut broken = canary_at(&config, 20.0);
    broken.services.get_mut("scorer").unwrap().split.push(("v9".into(), Weight::ZERO));
    assert!(g.gateway.apply(&broken).is_err());
    assert_eq!(g.gateway.table().service("scorer").unwrap().versions.len(), 2);
    g.shutdown().await;
}

/// A model server answering with its name that counts the connections it accepts.
async fn counting_model(name: &'static str) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::serve::{Listener, ListenerExt};
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap().tap_io(move |_| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().fallback(any(move || async move { format!("{{\"served_by\":\"{name}\"}}") }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, accepted)
}

#[tokio::test]
async fn model_server_connections_are_kept_alive_and_reused() {
    let (v1, accepted) = counting_model("v1").await;
    let g = gateway(&config(&v1, &v1, None, "")).await;
    let client = reqwest::Client::new();
    for _ in 0..50 {
        assert_eq!(served_by(&client, &g, None).await, "v1");
    }
    // One request at a time: each finds the last one's connection idle again
    // (a gateway thread each at most, as a connection belongs to one thread's pool).
    let connections = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(connections <= 4, "{connections} connections for 50 requests in a row");
    g.shutdown().await;
}

#[tokio::test]
async fn a_connection_whose_answer_was_cut_short_is_not_used_again() {
    // Every connection answers once with a body cut short, then stays open
    // and silent: reusing it would hang the next request until its timeout.
    let cut = raw(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial", true).await;
    let g = gateway(&config(&cut, &cut, None, "timeouts = { first_byte = \"1s\", total = \"1s\" }\n")).await;
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let response = client.post(url(&g, "/v1/score")).body("{}").send().await.unwrap();
        assert_eq!(response.status(), 200, "a fresh connection answers at once");
        assert!(response.bytes().await.is_err(), "a truncated body must not look complete");
    }
    g.shutdown().await;
}

/// A raw model server that counts the requests it reads and, for each, either
/// answers and closes the connection (`answer`) or closes without answering.
async fn closing_model(answer: bool) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if answer {
                    // Keep-alive as far as the headers say; the server closes right after.
                    let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn a_request_is_sent_again_only_if_it_never_left_the_gateway() {
    let client = reqwest::Client::new();
    // A model server that closes every connection after its answer: pooled
    // connections turn out closed, and the request goes out on a new one.
    let (closes_idle, seen) = closing_model(true).await;
    let g = gateway(&config(&closes_idle, &closes_idle, None, "")).await;
    for i in 0..20 {
        let response = client.post(url(&g, "/v1/score")).body("{}").send().await.unwrap();
        assert_eq!(response.status(), 200, "request {i}");
        assert_eq!(response.text().await.unwrap(), "ok");
    }
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 20, "each request reached the model once");
    g.shutdown().await;
    // One that reads the request and closes without answering: the request
    // may have reached the model, so it is never repeated.
    let (takes_and_hangs_up, seen) = closing_model(false).await;
    let g = gateway(&config(&takes_and_hangs_up, &takes_and_hangs_up, None, "")).await;
    for _ in 0..3 {
        let response = client.post(url(&g, "/v1/score")).body("{}").send().await.unwrap();
        assert_eq!(response.status(), 502);
    }
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 3, "no request was sent twice");
    g.shutdown().await;
}

/// A model server that answers `/big` with 5,000 bytes, `/stream` with 5,000
/// bytes in chunks (no length), and counts the requests it gets.
async fn sized_model() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    let app = Router::new().fallback(any(move |uri: axum::http::Uri, _body: Bytes| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let chunks =
                |n: usize| tokio_stream::iter((0..n).map(|_| Ok::<_, std::io::Error>(Bytes::from("x".repeat(1000)))));
            match uri.path() {
                p if p.ends_with("/big") => Body::from("x".repeat(5000)),
                p if p.ends_with("/stream") => Body::from_stream(chunks(5)),
                _ => Body::from("ok"),
            }
        }
    }));
    (spawn(app).await, seen)
}

/// Sends a chunked request of `size` bytes over a raw connection; returns the status line.
async fn chunked_request(g: &RunningGateway, size: usize) -> String {
    let mut socket = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let head = "POST /v1/score HTTP/1.1\r\nhost: scorer\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\n";
    socket.write_all(head.as_bytes()).await.unwrap();
    for chunk in "x".repeat(size).as_bytes().chunks(500) {
        let frame = format!("{:x}\r\n{}\r\n", chunk.len(), String::from_utf8_lossy(chunk));
        if socket.write_all(frame.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let mut answer = vec![0u8; 1024];
    let n = socket.read(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..n]).lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn bodies_over_their_limits_are_refused_or_cut_and_charged_to_the_right_side() {
    let (sized, seen) = sized_model().await;
    let extra =
        "limits = { max_request_bytes = 1000, max_response_bytes = 2000 }\nejection = { after = 2, for = \"1h\" }\n";
    let g = gateway(&config(&sized, &sized, None, extra)).await;
    let client = reqwest::Client::new();
    // A declared length over the limit: refused before anything is sent.
    let response = client.post(url(&g, "/v1/score")).body("x".repeat(5000)).send().await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["error"], "request_too_large");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 0, "the model never saw it");
    // A chunked body has no length: it is cut at the limit, the client's fault, not the model's.
    for _ in 0..3 {
        assert_eq!(chunked_request(&g, 5000).await, "HTTP/1.1 413 Payload Too Large");
    }
    assert_eq!(chunked_request(&g, 800).await, "HTTP/1.1 200 OK", "under the limit it goes through");
    let metrics = metrics_of(&client, &g).await;
    assert_eq!(metric(&metrics, &responses("v1", "stable", "4xx")), Some(3.0), "{metrics}");
    assert_eq!(metric(&metrics, &responses("v1", "stable", "connection_failure")), Some(0.0), "{metrics}");
    // (Ejection after 2 failures would have taken the model out for an hour.)
    assert_eq!(served_by(&client, &g, None).await, "v1");
    // An answer declared over the limit is refused whole, and charged to the model.
    let response = client.get(url(&g, "/v1/score/big")).send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["error"], "response_too_large");
    // One streamed without a length is cut at the limit: the client sees the body fail.
    let response = client.get(url(&g, "/v1/score/stream")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "a cut answer must not look complete");
    let counted =
        wait_until(|| async { metric(&metrics_of(&client, &g).await, &responses("v1", "stable", "5xx")) == Some(2.0) })
            .await;
    assert!(counted, "{}", metrics_of(&client, &g).await);
    g.shutdown().await;
}

#[tokio::test]
async fn users_stay_on_their_version_by_cookie() {
    let (v1, v2) = (model("v1").await, model("v2").await);
    let g = gateway(&config(&v1, &v2, Some("{ v1 = 50, v2 = 50 }"), "")).await;
    let cookies_config = config(&v1, &v2, Some("{ v1 = 50, v2 = 50 }"), "").services["scorer"].clone();
    assert!(cookies_config.sticky.is_some());
    let mut routing = routing_of(&config(&v1, &v2, Some("{ v1 = 50, v2 = 50 }"), ""));
    routing.services.get_mut("scorer").unwrap().sticky =
        Some(rollgate_core::config::Sticky { header: None, cookie: Some("uid".into()), body: None });
    g.gateway.apply(&routing).unwrap();
    let client = reqwest::Client::new();
    let on = |user: String| {
        let request = client.post(url(&g, "/v1/score")).header("cookie", format!("theme=dark; uid={user}")).body("{}");
        async move { request.send().await.unwrap().headers()[SERVED_BY].to_str().unwrap().to_string() }
    };
    let mut on_v2 = 0;
    for i in 0..300 {
        let first = on(format!("u{i}")).await;
        for _ in 0..2 {
            assert_eq!(on(format!("u{i}")).await, first, "user u{i} moved");
        }
        on_v2 += usize::from(first == "v2");
    }
    assert!(plausible(on_v2, 300, 0.5), "{on_v2} of 300 users on v2");
    g.shutdown().await;
}

#[tokio::test]
async fn connect_and_total_timeouts_end_the_exchange_and_count_as_timeouts_or_failures() {
    // A listener whose accept queue is full: a new connection is never answered.
    let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    full.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    full.listen(0).unwrap();
    let full_addr = full.local_addr().unwrap().as_socket().unwrap();
    let _filler = std::net::TcpStream::connect(full_addr).unwrap();
    let unanswered = format!("http://{full_addr}");
    let extra = "timeouts = { connect = \"300ms\", first_byte = \"10s\", total = \"10s\" }\n";
    let g = gateway(&config(&unanswered, &unanswered, None, extra)).await;
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    let response = client.post(url(&g, "/v1/score")).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 502);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("cannot connect within 300ms"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(9), "the service's connect timeout, not a longer one");
    g.shutdown().await;

    // Headers, then a body that never ends: the total timeout cuts it.
    let stalls = raw(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nsome", true).await;
    let extra = "timeouts = { first_byte = \"5s\", total = \"1s\" }\n";
    let g = gateway(&config(&stalls, &stalls, None, extra)).await;
    let response = client.post(url(&g, "/v1/score")).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "the stalled body ends in an error, not a hang");
    let counted = wait_until(|| async {
        metric(&metrics_of(&client, &g).await, &responses("v1", "stable", "timeout")) == Some(1.0)
    })
    .await;
    assert!(counted, "{}", metrics_of(&client, &g).await);
    g.shutdown().await;
}

#[tokio::test]
async fn refusals_for_capacity_are_passed_on_and_counted_and_a_service_with_nothing_routed_is_503() {
    let busy =
        spawn(Router::new().fallback(any(|| async { (axum::http::StatusCode::TOO_MANY_REQUESTS, "slow down") }))).await;
    let g = gateway(&config(&busy, &busy, None, "")).await;
    let client = reqwest::Client::new();
    for _ in 0..4 {
        let response = client.post(url(&g, "/v1/score")).body("{}").send().await.unwrap();
        assert_eq!(response.status(), 429);
        assert!(!response.headers().contains_key(GATEWAY_ERROR), "the model's own answer, passed on as it is");
    }
    let metrics = metrics_of(&client, &g).await;
    assert_eq!(metric(&metrics, &responses("v1", "stable", "4xx")), Some(4.0), "{metrics}");
    let table = g.gateway.table();
    let counters = table.service("scorer").unwrap().versions[0].series.counters();
    assert_eq!(counters.saturated, 4, "429s count as the model out of capacity");
    // A routing that gives the service's traffic to nobody: 503, not a hang or a 500.
    let mut routing = routing_of(&config(&busy, &busy, None, ""));
    routing.services.get_mut("scorer").unwrap().split = vec![("v1".into(), Weight::ZERO)];
    g.gateway.apply(&routing).unwrap();
    let response = client.post(url(&g, "/v1/score")).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["error"], "no_version");
    g.shutdown().await;
}

#[tokio::test]
async fn when_every_endpoint_fails_its_probes_all_are_still_tried() {
    let (a, b) = (model_with_probe("a", 503).await, model_with_probe("b", 503).await);
    let extra = "health = { path = \"/healthz\", interval = \"100ms\", timeout = \"1s\", unhealthy_after = 1, healthy_after = 1 }\n";
    let g = gateway(&config(&two(&a, &b), &a, None, extra)).await;
    let all_out = wait_until(|| async {
        g.gateway.table().service("scorer").unwrap().versions[0].endpoints.iter().all(|e| !e.health.probed_healthy())
    })
    .await;
    assert!(all_out, "both endpoints were never marked unhealthy");
    let seen = bodies(&reqwest::Client::new(), &g, 60).await;
    assert_eq!(seen.values().sum::<usize>(), 60);
    assert!(seen.len() == 2, "a failing check is not a full outage: both still serve {seen:?}");
    g.shutdown().await;
}

#[tokio::test]
async fn an_endpoint_taken_out_of_the_table_is_drained_of_its_requests_in_flight() {
    // A model that holds every answer until told to let go.
    let (release_tx, release) = tokio::sync::watch::channel(false);
    let arrived = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = arrived.clone();
    let app = Router::new().fallback(any(move || {
        let (mut release, seen) = (release.clone(), seen.clone());
        async move {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = release.wait_for(|go| *go).await;
            "{\"served_by\":\"held\"}"
        }
    }));
    let held = spawn(app).await;
    let other = model("other").await;
    let config = config(&held, &other, None, "");
    let g = gateway(&config).await;
    assert_eq!(g.gateway.in_flight_after_removal("scorer", &held), None, "routed: not draining");
    let client = reqwest::Client::new();
    let request = tokio::spawn(client.post(url(&g, "/v1/score")).body("{}").send());
    assert!(wait_until(|| async { arrived.load(std::sync::atomic::Ordering::SeqCst) == 1 }).await);
    // v1 moves to the other instance: the held one leaves the table with its request still in flight.
    let mut routing = routing_of(&config);
    routing.services.get_mut("scorer").unwrap().versions.get_mut("v1").unwrap().endpoints = vec![other.clone()];
    g.gateway.apply(&routing).unwrap();
    assert_eq!(g.gateway.in_flight_after_removal("scorer", &held), Some(1));
    assert_eq!(g.gateway.in_flight_after_removal("scorer", &other), None);
    release_tx.send(true).unwrap();
    let answer = request.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200, "the request in flight finished where it began");
    assert!(wait_until(|| async { g.gateway.in_flight_after_removal("scorer", &held) == Some(0) }).await);
    g.shutdown().await;
}

/// A test CA, with certificates it signed for `localhost` and `other.test`
/// (servers) and a client, made by the openssl command line; and a second,
/// unknown CA's certificate.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl").args(args).current_dir(dir.path()).output().unwrap();
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let ca = [
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=rollgate test CA"],
        ]
        .concat();
        run(&ca);
        for (name, ext) in [
            ("localhost", "subjectAltName=DNS:localhost"),
            ("other", "subjectAltName=DNS:other.test"),
            ("client", "extendedKeyUsage=clientAuth"),
        ] {
            std::fs::write(dir.path().join(format!("{name}.ext")), ext).unwrap();
            let (key, csr, pem, ext) =
                (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
            run(&[&["req"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={name}")]].concat());
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        }
        Certs { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }
}

/// nginx serving TLS on two ports: `port` picks its certificate by SNI
/// (`localhost`'s for localhost, `other.test`'s for anything else) and
/// answers with the name the client sent and how many requests its
/// connection has carried; `mutual_port` wants a client certificate of the test CA.
fn nginx_tls(certs: &Certs) -> (Nginx, u16) {
    let (port, mutual_port) = (free_port(), free_port());
    let c = |f: &str| certs.path(f);
    let answer = "location / { return 200 \"$ssl_server_name $connection_requests\"; }";
    let servers = format!(
        "server {{ listen 127.0.0.1:{port} ssl default_server; ssl_certificate {other}; ssl_certificate_key {other_key}; {answer} }}
         server {{ listen 127.0.0.1:{port} ssl; server_name localhost; ssl_certificate {local}; ssl_certificate_key {local_key}; {answer} }}
         server {{ listen 127.0.0.1:{mutual_port} ssl; server_name localhost; ssl_certificate {local}; ssl_certificate_key {local_key};
                  ssl_client_certificate {ca}; ssl_verify_client on; location / {{ return 200 mutual; }} }}",
        other = c("other.pem"),
        other_key = c("other.key"),
        local = c("localhost.pem"),
        local_key = c("localhost.key"),
        ca = c("ca.pem"),
    );
    (nginx("", &servers, port), mutual_port)
}

/// Status and body of the third of three requests through a gateway whose service `scorer` is `endpoint` with `tls`.
async fn through_tls(endpoint: &str, tls: &str) -> (u16, String) {
    let other = model("unused").await;
    let config = config(endpoint, &other, None, &format!("tls = {{ {tls} }}\n"));
    let g = gateway(&config).await;
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    // nginx may still be starting: a refused connection is tried again, anything else is an answer.
    for _ in 0..100 {
        let response = client.post(url(&g, "/v1/score")).body("{}").send().await.unwrap();
        let answer = (response.status().as_u16(), response.text().await.unwrap());
        if answer.1.contains("Connection refused") {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        answers.push(answer);
        if answers.len() == 3 {
            break;
        }
    }
    g.shutdown().await;
    answers.pop().unwrap_or_default()
}

#[tokio::test]
async fn https_model_servers_are_reached_over_verified_tls_with_sni_and_client_certificates() {
    let certs = Certs::new();
    let (nginx, mutual_port) = nginx_tls(&certs);
    let ca = format!("ca_file = \"{}\"", certs.path("ca.pem"));
    let https = format!("https://localhost:{}", nginx.port);
    // Trusted through the service's CA bundle; SNI says localhost, so nginx shows localhost's certificate;
    // the third request rides the connection the first opened.
    assert_eq!(through_tls(&https, &ca).await, (200, "localhost 3".to_string()));
    // Another name in SNI gets the other certificate, checked against that name.
    let other = format!("{ca}, server_name = \"other.test\"");
    assert_eq!(through_tls(&https, &other).await, (200, "other.test 3".to_string()));
    // Without the CA the certificate is untrusted: a 502 that says so, and no request reaches the model.
    let (status, body) = through_tls(&https, "").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("TLS handshake failed") && body.contains("certificate"), "{body}");
    // Mutual TLS: refused without a client certificate, served with one of the CA's.
    let mutual = format!("https://localhost:{mutual_port}");
    let (status, _) = through_tls(&mutual, &ca).await;
    assert_eq!(status, 400, "nginx refuses a client without a certificate");
    let client =
        format!("{ca}, client_cert = \"{}\", client_key = \"{}\"", certs.path("client.pem"), certs.path("client.key"));
    assert_eq!(through_tls(&mutual, &client).await, (200, "mutual".to_string()));
    drop(nginx);
}

#[tokio::test]
async fn a_conversation_sticky_by_a_body_field_stays_on_its_version_as_the_canary_grows() {
    let (v1, v2) = (model("v1").await, model("v2").await);
    let config = config(&v1, &v2, None, "");
    let g = gateway(&config).await;
    let by_body = |percent: f64| {
        let mut routing = canary_at(&config, percent);
        let sticky = rollgate_core::config::Sticky { header: None, cookie: None, body: Some("/user".into()) };
        routing.services.get_mut("scorer").unwrap().sticky = Some(sticky);
        routing
    };
    let client = reqwest::Client::new();
    let served = |user: Option<String>| {
        let body = match user {
            Some(u) => format!(r#"{{"model":"scorer","user":"{u}","messages":[{{"role":"user","content":"hi"}}]}}"#),
            None => r#"{"model":"scorer","messages":[]}"#.to_string(),
        };
        let request = client.post(url(&g, "/v1/score")).body(body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.headers()[SERVED_BY].to_str().unwrap().to_string()
        }
    };
    g.gateway.apply(&by_body(20.0)).unwrap();
    let mut at_20 = Vec::new();
    for i in 0..200 {
        at_20.push(served(Some(format!("user-{i}"))).await);
    }
    let on_v2 = at_20.iter().filter(|v| *v == "v2").count();
    assert!(plausible(on_v2, 200, 0.2), "{on_v2} of 200 on the 20% canary");
    // Every turn of a conversation lands where the first did.
    for (i, first) in at_20.iter().enumerate().take(50) {
        assert_eq!(&served(Some(format!("user-{i}"))).await, first, "user-{i} moved");
    }
    // The canary grows to 50%: everyone already on it stays.
    g.gateway.apply(&by_body(50.0)).unwrap();
    for (i, first) in at_20.iter().enumerate() {
        if first == "v2" {
            assert_eq!(served(Some(format!("user-{i}"))).await, "v2", "user-{i} left the canary as it grew");
        }
    }
    // A body without the field is still served (on a random pick).
    assert!(["v1", "v2"].contains(&served(None).await.as_str()));
    g.shutdown().await;
}
