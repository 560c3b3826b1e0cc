//! The dashboard in real headless Chromium (Debian's `chromium`, driven over
//! WebDriver by `chromedriver`), against a server with simulated chat model
//! versions behind the real gateway: sign in with a token, approve as an
//! approver and be refused as a viewer, watch a running canary's charts move,
//! roll back with a reason and see the timeline and log change, and a forged
//! cross-site POST refused. Screenshots go to `target/dashboard/`.

mod common;

use common::{Setup, chat_config, force_into_canary, source, stream_chat, wait_for};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use rollgate_core::roles::{ApprovalKind, Role};
use rollgate_sim::model::{Faults, serve};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// chromedriver and a Chromium session; chromedriver is killed when dropped.
struct Browser {
    driver: Child,
    client: Client,
}

impl Browser {
    async fn start() -> Browser {
        let port = common::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is needed (Debian's chromium-driver; scripts/test.sh installs it)");
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1366,900"]
            }
        });
        let serde_json::Value::Object(caps) = caps else { unreachable!() };
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver takes a moment to listen: wait for a session, not for a fixed time.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let client = loop {
            match ClientBuilder::native().capabilities(caps.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(e) if tokio::time::Instant::now() > deadline => panic!("no WebDriver session from {url}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        Browser { driver, client }
    }

    async fn sign_in(&self, base: &str, token: &str) {
        self.client.goto(&format!("{base}/")).await.unwrap();
        // Not signed in: the page sends the person to sign in.
        assert!(self.client.current_url().await.unwrap().path().ends_with("/sign-in"));
        self.client.find(Locator::Css("#token")).await.unwrap().send_keys(token).await.unwrap();
        self.client.find(Locator::Css("section.sign-in button[type=submit]")).await.unwrap().click().await.unwrap();
        self.wait_text("h1", "Overview", "signed in, the overview shows").await;
    }

    /// The text of `css` once it contains `expected` (pages load after a click); fails saying `what`.
    async fn wait_text(&self, css: &str, expected: &str, what: &str) -> String {
        let seen = wait_for(Duration::from_secs(10), || async { self.text(css).await.contains(expected) }).await;
        let text = self.text(css).await;
        assert!(seen, "{what}: `{css}` shows {text:?}, not {expected:?}");
        text
    }

    async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn sign_out(&self) {
        self.client.find(Locator::Css("header form[action='/sign-out'] button")).await.unwrap().click().await.unwrap();
        let out = wait_for(Duration::from_secs(5), || async {
            self.client.current_url().await.is_ok_and(|u| u.path() == "/sign-in")
        })
        .await;
        assert!(out, "signing out leads to the sign-in page");
    }

    /// Clicks the submit button of the form `css` and accepts its confirmation.
    async fn submit_confirmed(&self, css: &str) {
        let button = format!("{css} button[type=submit]");
        self.client.find(Locator::Css(&button)).await.unwrap().click().await.unwrap();
        let accepted = wait_for(Duration::from_secs(5), || async { self.client.accept_alert().await.is_ok() }).await;
        assert!(accepted, "the action asked for confirmation");
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        // The whole page, not only the first screen: as tall as its content, as wide as a laptop's.
        let height = self.client.execute("return document.documentElement.scrollHeight", vec![]).await.unwrap();
        let height = height.as_u64().unwrap_or(900).clamp(600, 6000) as u32;
        self.client.set_window_size(1366, height + 140).await.unwrap();
        std::fs::write(&path, self.client.screenshot().await.unwrap()).unwrap();
        self.client.set_window_size(1366, 900).await.unwrap();
        path
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_watches_and_steers_a_canary_from_the_dashboard() {
    let chat = |latency_ms: f64| Faults { latency_ms, token_ms: 2, ..Faults::default() };
    let v1 = serve("127.0.0.1:0".parse().unwrap(), "v1", 5, chat(5.0)).await.unwrap();
    let v2 = serve("127.0.0.1:0".parse().unwrap(), "v2", 5, chat(8.0)).await.unwrap();
    let setup = Setup::new(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let tess = setup.token("tess", &[Role::Approver(ApprovalKind::Technical)]).await;
    let vic = setup.token("vic", &[Role::Viewer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    // The default pre-deployment gates (technical and stakeholder approvals among them) and a long canary step.
    let plan = "[plans.fast.canary]\nsteps = [{ percent = 30, hold = \"4h\" }, { percent = 100 }]\n\
                [plans.fast.rollback]\nwarm_up = \"1s\"\n";
    let config = chat_config(&v1.url(), &v2.url(), plan);
    let (api, front) = setup.start_with_gateway(source(&config), Duration::from_secs(2)).await;
    let base = api.base.clone();
    let (status, started) =
        api.post("/api/v1/rollouts", &alice, json!({ "service": "assistant", "candidate": "v2", "id": "c1" })).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");

    // An approver approves the technical gate from the page.
    let browser = Browser::start().await;
    browser.sign_in(&base, &tess).await;
    browser.client.goto(&format!("{base}/rollouts/c1")).await.unwrap();
    assert!(browser.text("#live-status").await.contains("pre-deployment"));
    browser
        .client
        .find(Locator::Css("form[action$='/act/approve'] input[name=comment]"))
        .await
        .unwrap()
        .send_keys("looked at the eval")
        .await
        .unwrap();
    browser.submit_confirmed("form[action$='/act/approve']").await;
    browser.wait_text("#approvals", "technical approved by tess", "the page shows the approval").await;
    let view = api.get("/api/v1/rollouts/c1", &alice).await.1;
    assert_eq!(view["approvals"][0]["by"], "tess", "recorded through the API's log: {view}");

    // A viewer sees no approve button; the same form, sent anyway from the viewer's page, is refused by the API's rules.
    browser.sign_out().await;
    let fresh = &browser;
    fresh.sign_in(&base, &vic).await;
    fresh.client.goto(&format!("{base}/rollouts/c1")).await.unwrap();
    assert!(
        fresh.client.find(Locator::Css("form[action$='/act/approve']")).await.is_err(),
        "a viewer has no approve form"
    );
    assert!(fresh.text("section.actions").await.contains("let you watch this rollout, not act on it"));
    let refused = r#"
        const csrf = document.querySelector("input[name=csrf]").value;
        const form = document.createElement("form");
        form.method = "post"; form.action = "/rollouts/c1/act/approve";
        for (const [k, v] of [["csrf", csrf], ["kind", "stakeholder"]]) {
            const input = document.createElement("input"); input.name = k; input.value = v; form.appendChild(input);
        }
        document.body.appendChild(form); form.submit();"#;
    fresh.client.execute(refused, vec![]).await.unwrap();
    fresh.wait_text("h1", "Refused", "the viewer's approval is refused").await;
    let page = fresh.text("main").await;
    assert!(page.contains("vic"), "the viewer is refused with the API's words: {page}");
    let view = api.get("/api/v1/rollouts/c1", &alice).await.1;
    assert_eq!(view["approvals"].as_array().map(Vec::len), Some(1), "nothing recorded for the viewer: {view}");
    fresh.client.goto(&format!("{base}/")).await.unwrap();
    fresh.sign_out().await;

    // Into the canary (an admin overrides the rest of the gates through the API), with streaming traffic.
    force_into_canary(&api, "c1", &alice, &dana).await;
    let traffic = stream_chat(&format!("http://{}/v1/chat/completions", front.addr), 8);

    // A deployer watches the charts move without reloading the page.
    browser.sign_in(&base, &alice).await;
    browser.client.goto(&format!("{base}/rollouts/c1")).await.unwrap();
    let points = || async {
        let charts = browser.client.find(Locator::Css("#charts")).await.unwrap();
        charts.attr("data-points").await.unwrap().unwrap_or_default().parse::<usize>().unwrap_or(0)
    };
    assert!(wait_for(Duration::from_secs(30), || async { points().await >= 2 }).await, "the charts got points");
    let first = points().await;
    assert!(
        wait_for(Duration::from_secs(30), || async { points().await > first }).await,
        "the charts moved without a reload"
    );
    let drawn = browser
        .client
        .find_all(Locator::Css(
            "#chart-latency canvas, #chart-ttft canvas, #chart-evidence canvas, #chart-ratio canvas",
        ))
        .await
        .unwrap();
    assert_eq!(drawn.len(), 4, "latency, time to first token, e-value and confidence-sequence charts are drawn");
    let judge = browser.wait_text("#judge-now", "ttft", "the judge's triggers are listed").await;
    assert!(judge.contains("error_rate"), "the error trigger is listed: {judge}");
    browser.wait_text("#forecast", "canary requests/s", "a forecast at current traffic").await;
    let overview_shot = {
        browser.client.goto(&format!("{base}/")).await.unwrap();
        let row = browser.text("table.wide tbody tr").await;
        assert!(row.contains("c1") && row.contains("30%"), "the overview shows the running rollout: {row}");
        browser.screenshot("overview").await
    };
    browser.client.goto(&format!("{base}/rollouts/c1")).await.unwrap();
    assert!(wait_for(Duration::from_secs(10), || async { points().await >= 2 }).await);
    let rollout_shot = browser.screenshot("rollout-canary").await;

    // A forged cross-site POST (a page on another site submitting the rollback form) is refused and changes nothing.
    let attacker = attacker_page(&base).await;
    browser.client.goto(&attacker).await.unwrap();
    let landed = wait_for(Duration::from_secs(5), || async {
        browser.client.current_url().await.is_ok_and(|u| u.as_str().starts_with(&base))
    })
    .await;
    assert!(landed, "the forged form was submitted to the dashboard");
    let stage = api.get("/api/v1/rollouts/c1", &alice).await.1["stage"].clone();
    assert_eq!(stage, "canary", "the forged rollback did nothing");
    let forged = reqwest::Client::new()
        .post(format!("{base}/rollouts/c1/act/abort"))
        .header("cookie", cookie_of(&base, &alice).await)
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("reason=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status(),
        StatusCode::FORBIDDEN,
        "a POST with the session cookie but no CSRF token and a foreign origin"
    );

    // The deployer rolls back with a reason; the timeline and the event log show it.
    browser.client.goto(&format!("{base}/rollouts/c1")).await.unwrap();
    let form = "form[action$='/act/rollback']";
    browser
        .client
        .find(Locator::Css(&format!("{form} input[name=reason]")))
        .await
        .unwrap()
        .send_keys("answers look off to support")
        .await
        .unwrap();
    browser.client.find(Locator::Css(&format!("{form} option[value=quality]"))).await.unwrap().click().await.unwrap();
    browser.submit_confirmed(form).await;
    browser.wait_text("ol.timeline li.ended", "rolled back", "the timeline ends in the rollback").await;
    browser
        .wait_text("#outcome", "by alice (quality): answers look off to support", "the outcome names who and why")
        .await;
    let mut rows = Vec::new();
    for row in browser.client.find_all(Locator::Css("table.events tbody tr")).await.unwrap() {
        rows.push(row.text().await.unwrap());
    }
    assert!(
        rows.iter().any(|row| row.contains(" alice rollback")),
        "the event log shows alice's rollback (newest first): {rows:?}"
    );
    // Verify the chain from the page.
    browser.client.find(Locator::Css("#events form button")).await.unwrap().click().await.unwrap();
    browser.wait_text("#verify-result", "Every chain verifies", "the chain verifies from the page").await;
    let rolled_back_shot = browser.screenshot("rollout-rolled-back").await;
    traffic.iter().for_each(|t| t.abort());

    for shot in [overview_shot, rollout_shot, rolled_back_shot] {
        let bytes = std::fs::read(&shot).unwrap();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{} is a real screenshot", shot.display());
    }
    browser.close().await;
    api.stop().await;
    front.shutdown().await;
}

/// A page on another site (`localhost` is not `127.0.0.1`'s site) whose form
/// rolls back rollout c1 as soon as it loads.
async fn attacker_page(base: &str) -> String {
    let target = format!("{base}/rollouts/c1/act/rollback");
    let html = format!(
        "<!doctype html><form id=f method=post action=\"{target}\"><input name=category value=other>\
         <input name=reason value=forged></form><script>document.getElementById('f').submit()</script>"
    );
    let app = axum::Router::new().route("/", axum::routing::get(move || async move { axum::response::Html(html) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://localhost:{port}/")
}

/// A valid session cookie for `token`, from signing in over HTTP.
async fn cookie_of(base: &str, token: &str) -> String {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = http
        .post(format!("{base}/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set = response.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

/// Without a browser: the pages' rules that need no clicking.
#[tokio::test]
async fn the_page_names_the_first_edited_event_and_a_revoked_token_signs_its_sessions_out() {
    use rollgate_core::config::EXAMPLE;
    let setup = Setup::new(1.0).await;
    let alice = setup.token("alice", &[Role::Deployer]).await;
    let dana = setup.token("dana", &[Role::Admin]).await;
    let mut options = setup.options(Vec::new(), rollgate_server::notify::RetryPolicy::default());
    options.config = source(EXAMPLE);
    let server = rollgate_server::start(options).await.unwrap();
    let base = format!("http://{}", server.addr);
    let api = common::Api { base: base.clone(), server: Some(server), http: reqwest::Client::new() };
    let start = json!({ "service": "fraud-scorer", "candidate": "v2", "id": "r1" });
    assert_eq!(api.post("/api/v1/rollouts", &alice, start).await.0, StatusCode::CREATED);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = |cookie: String, path: &'static str| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let response = http.get(url).header("cookie", cookie).send().await.unwrap();
            let status = response.status();
            let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_string());
            (status, location, response.text().await.unwrap())
        }
    };

    // Nothing without a session: pages and their live data send the person to sign in.
    let (status, location, _) = page(String::new(), "/rollouts/r1/live").await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/sign-in?next=/rollouts/r1/live")));
    let cookie = cookie_of(&base, &alice).await;
    let (status, _, html) = page(cookie.clone(), "/rollouts/r1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("pre-deployment"), "{html}");

    // An edited event: the verify button names it.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", setup.dir.path().join("rollgate.db").display()))
        .await
        .unwrap();
    sqlx::query("UPDATE events SET body = replace(body, '\"alice\"', '\"mallory\"') WHERE stream = 'r1' AND seq = 1")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (_, _, html) = page(cookie.clone(), "/audit").await;
    assert!(html.contains("The chain does not verify: stream <strong>r1</strong>, event <strong>1</strong>"), "{html}");
    // The rollout cannot be shown from an edited log; its page says so and points to the audit.
    let (status, _, html) = page(cookie.clone(), "/rollouts/r1").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{html}");
    assert!(html.contains("does not replay") && html.contains("href=\"/audit\""), "{html}");

    // A revoked token's session ends at once.
    let id = alice.split('_').nth(1).unwrap();
    let revoked = api.call(reqwest::Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(&dana), None).await.0;
    assert_eq!(revoked, StatusCode::NO_CONTENT);
    let (status, location, _) = page(cookie, "/").await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/sign-in?next=/")));

    // A bad token is refused at sign-in with the API's words, and no cookie is set.
    let response = http
        .post(format!("{base}/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=rg_nope_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("set-cookie").is_none());
    assert!(response.text().await.unwrap().contains("the token is not valid"));
    api.stop().await;
}
