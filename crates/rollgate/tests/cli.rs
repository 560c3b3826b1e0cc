//! The binary as a user runs it: real processes, a real data directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Thursday morning: the default window allows starts, whatever day the tests run.
const THURSDAY: &str = "2026-11-26T09:00:00Z";

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    /// A directory with the example config written by `rollgate init`.
    fn new() -> Workspace {
        let ws = Workspace { dir: tempfile::tempdir().unwrap() };
        let out = ws.run(&["init"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        ws
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollgate"));
        cmd.args(args)
            .current_dir(self.path())
            .env("ROLLGATE_NOW", THURSDAY)
            .env_remove("ROLLGATE_FAILPOINT")
            .env_remove("ROLLGATE_DATABASE")
            .env_remove("ROLLGATE_CONFIG");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command expected to succeed and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn journal_keys(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.path().join(".rollgate/effects.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["key"].as_str().unwrap().to_string())
            .collect()
    }

    fn status(&self, rollout: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["rollout", "status", rollout, "--json"])).unwrap()
    }
}

/// The lines a child writes to a pipe, as they come.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Starts `args` with a failpoint armed, waits until the process reports
/// reaching it, and kills it with SIGKILL there.
fn kill_at_failpoint(ws: &Workspace, failpoint: &str, args: &[&str]) {
    let mut child: Child = ws
        .command(args)
        .env("ROLLGATE_FAILPOINT", failpoint)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines_of(child.stderr.take().unwrap());
    let expected = format!("failpoint {failpoint} reached");
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line == expected => break,
            Ok(_) => continue,
            Err(e) => {
                let _ = child.kill();
                panic!("the process never reached {failpoint}: {e}");
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix: no destructors, no flushing
    let status = child.wait().unwrap();
    assert!(!status.success());
}

#[test]
fn init_then_check_passes_and_init_refuses_to_overwrite() {
    let ws = Workspace::new();
    let out = ws.ok(&["check"]);
    assert!(out.contains("rollgate.toml: ok (1 service(s), 2 version(s), plans: default, careful)"), "{out}");
    let again = ws.run(&["init"]);
    assert_eq!(again.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

#[test]
fn monitoring_export_writes_rules_and_a_dashboard_for_a_configured_service() {
    let ws = Workspace::new();
    let out = ws.ok(&["monitoring", "export", "--service", "fraud-scorer", "--out", "monitoring"]);
    assert!(out.contains("wrote monitoring/rules.yml") && out.contains("wrote monitoring/dashboard.json"), "{out}");
    let rules = std::fs::read_to_string(ws.path().join("monitoring/rules.yml")).unwrap();
    assert!(rules.contains("- name: 'rollgate-fraud-scorer-alerts'"), "{rules}");
    let board: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.path().join("monitoring/dashboard.json")).unwrap()).unwrap();
    assert_eq!(board["title"], "rollgate: fraud-scorer");
    let unknown = ws.run(&["monitoring", "export", "--service", "nope", "--out", "monitoring"]);
    assert_eq!(unknown.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no service `nope`"), "{unknown:?}");
    let bad = ws.run(&["monitoring", "export", "--service", "fraud-scorer", "--out", "m", "--max-error-rate", "5"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a share between 0 and 1"), "{bad:?}");
}

#[test]
fn check_reports_problems_with_file_line_column_and_exit_code_3() {
    let ws = Workspace::new();
    let config = ws.path().join("rollgate.toml");
    let text = std::fs::read_to_string(&config).unwrap().replacen("owner = ", "ownr = ", 1).replacen(
        "percent = 50,",
        "percent = 500,",
        1,
    );
    std::fs::write(&config, &text).unwrap();
    let out = ws.run(&["check"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let owner_line = text.lines().position(|l| l.starts_with("ownr")).unwrap() + 1;
    assert!(stderr.contains(&format!("rollgate.toml:{owner_line}:1: error: unknown field `ownr`")), "{stderr}");
    assert!(stderr.contains("500% is not a share of traffic"), "{stderr}");
    assert!(stderr.contains("2 problem(s) in rollgate.toml"), "{stderr}");
    let json = ws.run(&["check", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["problems"].as_array().unwrap().len(), 2);
    let missing = ws.run(&["check", "nowhere.toml"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nowhere.toml does not exist"));
}

fn seed_guide() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("ROLLGATE_SEED") {
        return Some(PathBuf::from(path));
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = repo.join("../shared/seed/ai-deployment-lifecycle.txt");
    path.exists().then_some(path)
}

#[test]
fn the_default_plan_shows_every_checklist_item_of_the_users_guide() {
    let guide = seed_guide()
        .expect("the users' guide: ../shared/seed/ai-deployment-lifecycle.txt beside the repo, or ROLLGATE_SEED");
    let guide = std::fs::read_to_string(guide).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["plan", "show", "default"])
        .current_dir(outside.path())
        .output()
        .unwrap();
    let shown = String::from_utf8(out.stdout).unwrap();
    let section = guide.split("Deployment checklist").nth(1).unwrap().split("Rollback strategy").next().unwrap();
    let items: Vec<&str> = section.lines().filter_map(|l| l.trim().strip_prefix("• ")).collect();
    assert_eq!(items.len(), 21, "the guide's three checklists");
    for item in items {
        assert!(shown.contains(&format!("[ ] {item}")), "plan show default lacks {item:?}");
    }
    for hour in ["hour    0:    1%", "hour    4:    5%", "hour   12:   25%", "hour   24:   50%", "hour   48:  100%"] {
        assert!(shown.contains(hour), "missing {hour:?}");
    }
    for trigger in ["error rate > 2x baseline", "latency p99 > 1.5x baseline", "no starts on friday"] {
        assert!(shown.contains(trigger), "missing {trigger:?}");
    }
}

#[test]
fn a_rollout_runs_from_the_command_line_and_its_log_verifies() {
    let ws = Workspace::new();
    ws.ok(&["rollout", "start", "--service", "fraud-scorer", "--candidate", "v2", "--as", "alice", "--id", "r1"]);
    let own = ws.run(&["rollout", "approve", "r1", "--as", "alice", "--kind", "technical"]);
    assert_eq!(own.status.code(), Some(3), "alice holds no approver role");
    ws.ok(&["rollout", "approve", "r1", "--as", "bob", "--kind", "technical", "--comment", "reviewed"]);
    let blocked = ws.run(&["rollout", "promote", "r1", "--as", "alice"]);
    assert_eq!(blocked.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&blocked.stderr).contains("validation.performance: pending"));
    let status = ws.status("r1");
    assert_eq!(status["stage"], "pre_deployment");
    assert_eq!(status["approvals"][0]["by"], "bob");
    let verified = ws.ok(&["audit", "verify"]);
    assert!(verified.contains("ok: 1 stream(s), 2 event(s)"), "{verified}");
    let no_shadow = ws.run(&["shadow", "report", "r1"]);
    assert_eq!(no_shadow.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&no_shadow.stderr).contains("no shadow comparison for `r1`"));
}

#[test]
fn killed_after_appending_an_event_the_next_run_carries_out_its_effects_once() {
    let ws = Workspace::new();
    kill_at_failpoint(
        &ws,
        "after-append",
        &["rollout", "start", "--service", "fraud-scorer", "--candidate", "v2", "--as", "alice", "--id", "r1"],
    );
    // The event is durable; its effect is not out yet.
    assert!(ws.journal_keys().is_empty());
    // The next run (any rollout command) finishes what the dead one left.
    let status = ws.status("r1");
    assert_eq!(status["stage"], "pre_deployment");
    assert_eq!(ws.journal_keys(), ["r1/1/0"]);

    // An admin pushes past pre-deployment: two effects (staging, notify).
    // This time the process dies after the first effect is out but before
    // the event is marked done; the restart delivers again and the journal
    // drops the repeat.
    kill_at_failpoint(
        &ws,
        "after-effect",
        &["rollout", "force-promote", "r1", "--as", "dana", "--reason", "hotfix INC-7"],
    );
    assert_eq!(ws.journal_keys(), ["r1/1/0", "r1/2/0"]);
    let status = ws.status("r1");
    assert_eq!(status["stage"], "staging");
    assert_eq!(ws.journal_keys(), ["r1/1/0", "r1/2/0", "r1/2/1"]);
    // Nothing was recorded twice and the chain is intact.
    let log = ws.ok(&["audit", "log", "r1", "--json"]);
    assert_eq!(log.lines().count(), 2);
    assert!(ws.ok(&["audit", "verify"]).contains("every chain intact"));
}

#[tokio::test]
async fn audit_verify_names_the_first_tampered_event() {
    let ws = Workspace::new();
    ws.ok(&["rollout", "start", "--service", "fraud-scorer", "--candidate", "v2", "--as", "alice", "--id", "r1"]);
    for gate in ["validation.bias", "validation.safety", "validation.performance"] {
        ws.ok(&["rollout", "evidence", "r1", "--as", "alice", "--gate", gate, "--summary", "ok"]);
    }
    let db = ws.path().join(".rollgate/rollgate.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    sqlx::query("UPDATE events SET body = replace(body, '\"passed\":true', '\"passed\":false') WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let out = ws.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("stream r1 event 3: its content does not match its hash: it was edited"), "{stderr}");
}

#[test]
fn a_second_server_on_the_same_sqlite_data_directory_is_refused_and_the_first_goes_on() {
    let ws = Workspace::new();
    let first = Served::start(&ws);
    let second = ws
        .command(&["serve", "--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
        .env("ROLLGATE_WEBHOOK_KEY", "test key")
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(3), "refused, not failed");
    let said = String::from_utf8_lossy(&second.stderr);
    let pid = first.child.id();
    assert!(said.contains(&format!("another rollgate serve (pid {pid}) already runs on")), "{said}");
    assert!(said.contains("PostgreSQL"), "{said}");
    // The first server still answers, and once it is gone a new one may start.
    let port = first.addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "the first server still listens");
    assert!(first.terminate().success());
    Served::start(&ws).terminate();
}

/// `rollgate serve` as a real process on a free port; killed on drop.
struct Served {
    child: Child,
    addr: String,
    /// Where its gateway listens (`http://HOST:PORT`).
    gateway: String,
    /// What the server writes to stderr, line by line.
    stderr: mpsc::Receiver<String>,
}

impl Served {
    fn start(ws: &Workspace) -> Served {
        Served::start_at(ws, None)
    }

    /// The server, stopping at `failpoint` if one is named.
    fn start_at(ws: &Workspace, failpoint: Option<&str>) -> Served {
        Served::start_with(ws, failpoint, &[])
    }

    /// The server with more arguments (`--database …`), stopping at `failpoint` if one is named.
    fn start_with(ws: &Workspace, failpoint: Option<&str>, more: &[&str]) -> Served {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0", "--tick", "100ms"];
        args.extend_from_slice(more);
        let mut command = ws.command(&args);
        if let Some(point) = failpoint {
            command.env("ROLLGATE_FAILPOINT", point);
        }
        let mut child = command
            .env_remove("ROLLGATE_NOW")
            // A clock parked on Thursday morning, running at real speed.
            .env("ROLLGATE_CLOCK", format!("speed=1,origin={THURSDAY}"))
            .env("ROLLGATE_WEBHOOK_KEY", "test key")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let rx = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        let first = rx.recv_timeout(Duration::from_secs(60)).expect("the server printed its address");
        let addr = first.rsplit(' ').next().unwrap().to_string();
        assert!(addr.starts_with("http://127.0.0.1:"), "{first}");
        let gateway = loop {
            let line = rx.recv_timeout(Duration::from_secs(60)).expect("the server printed its gateway's address");
            if let Some(url) = line.strip_prefix("rollgate gateway listening on ") {
                break url.to_string();
            }
        };
        Served { child, addr, gateway, stderr }
    }

    /// Waits until the server says it reached `failpoint`, then kills it with SIGKILL.
    fn kill_at(mut self, failpoint: &str) {
        let expected = format!("failpoint {failpoint} reached");
        loop {
            match self.stderr.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line == expected => break,
                Ok(_) => continue,
                Err(e) => panic!("the server never reached {failpoint}: {e}"),
            }
        }
        self.child.kill().unwrap();
        assert!(!self.child.wait().unwrap().success());
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "the server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[test]
fn the_cli_drives_a_server_with_tokens_and_the_server_stops_on_sigterm() {
    let ws = Workspace::new();
    let token = |name: &str, role: &str| ws.ok(&["token", "create", "--name", name, "--role", role]).trim().to_string();
    let (alice, bob) = (token("alice", "deployer"), token("bob", "approver:technical"));
    let served = Served::start(&ws);
    let remote = |token: &str, args: &[&str]| {
        let mut all = vec!["rollout", "--server", served.addr.as_str(), "--token", token];
        all.extend_from_slice(args);
        ws.command(&all).env_remove("ROLLGATE_NOW").output().unwrap()
    };
    let started = remote(&alice, &["start", "--service", "fraud-scorer", "--candidate", "v2", "--id", "r1"]);
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    assert!(String::from_utf8_lossy(&started.stdout).contains("r1: start accepted; now pre-deployment"));
    let refused = remote(&alice, &["approve", "r1", "--kind", "technical"]);
    assert_eq!(refused.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("alice may not approve"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(remote(&bob, &["approve", "r1", "--kind", "technical", "--comment", "ok"]).status.success());
    let status = remote(&bob, &["status", "r1", "--json"]);
    let view: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(view["approvals"][0]["by"], "bob");
    let table = String::from_utf8(remote(&bob, &["list"]).stdout).unwrap();
    assert!(table.starts_with("r1\tfraud-scorer v1 → v2\tpre-deployment"), "{table}");
    assert!(remote(&alice, &["abort", "r1", "--reason", "wrong artifact"]).status.success());
    // --watch follows until the rollout ends: here it already has.
    let watched = remote(&bob, &["status", "r1", "--watch"]);
    assert!(watched.status.success());
    assert!(String::from_utf8_lossy(&watched.stdout).contains("aborted: wrong artifact"));
    let unreachable =
        ws.command(&["rollout", "--server", "http://127.0.0.1:9", "--token", &bob, "list"]).output().unwrap();
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach the rollgate server"));

    let audit = ws.command(&["audit", "--server", &served.addr, "--token", &bob, "verify"]).output().unwrap();
    assert!(String::from_utf8_lossy(&audit.stdout).contains("every chain intact"));
    let status = served.terminate();
    assert!(status.success(), "a SIGTERM is a clean stop: {status:?}");
}

#[test]
fn the_demo_promotes_the_good_version_and_the_judge_rolls_back_the_bad_one() {
    let ws = Workspace::new();
    let data = ws.path().join("demo-data");
    let out = ws.run(&["demo", "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // The outcomes, as the event log has them (the status is the fold of the log).
    let status = |id: &str| -> serde_json::Value {
        let text = ws.ok(&["rollout", "status", id, "--json", "--data-dir", data.to_str().unwrap()]);
        serde_json::from_str(&text).unwrap()
    };
    let v3 = status("fraud-v3");
    assert_eq!(v3["stage"], "rolled_back", "{v3}");
    assert!(v3["outcome"].as_str().unwrap().contains("error_rate"), "the judge's error trigger: {}", v3["outcome"]);
    let v2 = status("fraud-v2");
    assert_eq!(v2["stage"], "completed", "{v2}");
    let archive = ws.ok(&["rollout", "archive", "fraud-v2", "--data-dir", data.to_str().unwrap()]);
    let archived = archive.trim().strip_prefix("fraud-v2: archived to ").unwrap_or_else(|| panic!("{archive}"));
    let (dir, rest) = archived.split_once(" (MANIFEST.json sha256 ").unwrap();
    let manifest_sha = rest.split(',').next().unwrap();
    assert!(std::path::Path::new(dir).starts_with(&data), "archived under the data directory: {archive}");
    // The archive verifies offline, and against the manifest hash the log recorded.
    let verified = ws.ok(&["archive", "verify", dir, "--sha256", manifest_sha]);
    assert!(verified.contains("archive of fraud-v2 verified"), "{verified}");
    // One byte changed in any file is caught, naming that file.
    for file in ["log.jsonl", "config.toml", "retro.md"] {
        let path = std::path::Path::new(dir).join(file);
        let original = std::fs::read(&path).unwrap();
        let mut edited = original.clone();
        let middle = edited.len() / 2;
        edited[middle] = if edited[middle] == b'7' { b'8' } else { b'7' };
        std::fs::write(&path, &edited).unwrap();
        let out = ws.run(&["archive", "verify", dir]);
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(&format!("  {file}: changed:")), "{said}");
        std::fs::write(&path, &original).unwrap();
    }
    ws.ok(&["archive", "verify", dir]);
    let visited: Vec<&str> = v2["history"].as_array().unwrap().iter().map(|v| v["stage"].as_str().unwrap()).collect();
    for stage in ["pre-deployment", "staging", "canary step 1", "canary step 3", "full deployment", "completed"] {
        assert!(visited.contains(&stage), "v2 went through {stage}: {visited:?}");
    }
    // The pre-deployment evidence is real and rollgate's own: it ran the service's suites against the
    // candidate (each gate names the suite's hash and its numbers) and proved the infrastructure.
    let evidence = |gate: &str| {
        v2["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["gate"] == gate)
            .unwrap_or_else(|| panic!("{gate}"))
            .clone()
    };
    let performance = evidence("validation.performance");
    assert_eq!((performance["by"].as_str(), performance["passed"].as_bool()), (Some("rollgate"), Some(true)));
    assert_eq!(performance["details"]["suite"], "fraud-acceptance", "{performance}");
    assert_eq!(performance["details"]["suite_sha256"].as_str().map(str::len), Some(64), "{performance}");
    let accuracy = performance["details"]["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == "accuracy");
    let accuracy = accuracy.unwrap()["value"].as_f64().unwrap();
    assert!((0.85..1.0).contains(&accuracy), "v2 fails 5% of requests, and those cases count as wrong: {accuracy}");
    assert!(evidence("validation.bias")["summary"].as_str().unwrap().contains("met on 3000 cases"));
    assert!(evidence("documentation.model_card")["summary"].as_str().unwrap().starts_with("cards/fraud-v2.md"));
    for gate in [
        "validation.safety",
        "validation.edge_cases",
        "documentation.rollback_plan",
        "infrastructure.endpoints_healthy",
        "infrastructure.monitoring_instrumented",
        "infrastructure.scaling_declared",
        "infrastructure.logging_enabled",
    ] {
        let proof = evidence(gate);
        assert_eq!((proof["by"].as_str(), proof["passed"].as_bool()), (Some("rollgate"), Some(true)), "{proof}");
    }
    // Staging's drill recorded its timings as evidence.
    let drill =
        v2["evidence"].as_array().unwrap().iter().find(|e| e["gate"] == "staging.rollback_drill").unwrap().clone();
    assert_eq!(drill["passed"], true, "{drill}");
    assert_eq!(drill["by"], "rollgate", "the server ran staging itself: {drill}");
    // Its times agree with the log: detection before traffic off, both within the time staging took
    // (the demo's clock runs 3600 times real time).
    let (detect, off) = (
        drill["details"]["fault_to_detection_s"].as_f64().unwrap(),
        drill["details"]["fault_to_traffic_off_s"].as_f64().unwrap(),
    );
    let ts = |v: &serde_json::Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let staging = v2["history"].as_array().unwrap().iter().find(|v| v["stage"] == "staging").unwrap();
    let staging_real_s = ts(&drill["at"]).duration_since(ts(&staging["entered_at"])).as_secs_f64() / 3600.0;
    assert!(0.0 < detect && detect <= off && off <= staging_real_s, "{detect} <= {off} <= {staging_real_s}");
    let audit = ws.ok(&["audit", "verify", "--data-dir", data.to_str().unwrap()]);
    assert!(audit.contains("fraud-v2") && audit.contains("fraud-v3"), "{audit}");
    let retro = ws.ok(&["rollout", "retro", "fraud-v3", "--data-dir", data.to_str().unwrap()]);
    assert!(retro.contains("by the judge's error_rate trigger"), "{retro}");
    assert!(retro.contains("| error_rate | canary error rate \\> 2x baseline |"), "{retro}");
}

#[test]
fn a_server_killed_between_a_hook_run_and_its_record_runs_it_again_with_the_same_key_and_records_it_once() {
    let ws = Workspace::new();
    let keys = ws.path().join("hook-keys.txt");
    let script = format!("echo \"$ROLLGATE_IDEMPOTENCY_KEY\" >> {}", keys.display());
    let config = ws.path().join("rollgate.toml");
    let text =
        std::fs::read_to_string(&config).unwrap() + &format!("\n[deploy]\ncommand = [\"sh\", \"-c\", {script:?}]\n");
    std::fs::write(&config, text).unwrap();
    let token = |name: &str, role: &str| ws.ok(&["token", "create", "--name", name, "--role", role]).trim().to_string();
    let (alice, dana) = (token("alice", "deployer"), token("dana", "admin"));
    let served = Served::start_at(&ws, Some("after-hook"));
    let remote = |token: &str, args: &[&str]| {
        let mut all = vec!["rollout", "--server", served.addr.as_str(), "--token", token];
        all.extend_from_slice(args);
        let out = ws.command(&all).env_remove("ROLLGATE_NOW").output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    remote(&alice, &["start", "--service", "fraud-scorer", "--candidate", "v2", "--id", "r1"]);
    for _ in 0..3 {
        remote(&dana, &["force-promote", "r1", "--reason", "to the canary"]);
    }
    remote(&alice, &["rollback", "r1", "--category", "security", "--reason", "leaks data", "--full"]);
    // The hook ran (its key is in the file); the server dies before recording it.
    served.kill_at("after-hook");
    assert_eq!(std::fs::read_to_string(&keys).unwrap(), "r1/redeploy-v1\n");

    let served = Served::start(&ws);
    let status = || -> serde_json::Value {
        let mut out =
            ws.command(&["rollout", "--server", served.addr.as_str(), "--token", &alice, "status", "r1", "--json"]);
        serde_json::from_slice(&out.output().unwrap().stdout).unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while status()["open_actions"] != 0 {
        assert!(std::time::Instant::now() < deadline, "the actions were never done: {}", status()["actions"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    let ran: Vec<String> = std::fs::read_to_string(&keys).unwrap().lines().map(str::to_string).collect();
    assert_eq!(ran, ["r1/redeploy-v1", "r1/redeploy-v1", "r1/retire-v2"], "the repeat carries the same key");
    // The log holds each action's outcome once.
    let log =
        ws.command(&["audit", "--server", &served.addr, "--token", &alice, "log", "r1", "--json"]).output().unwrap();
    let done: Vec<String> = String::from_utf8(log.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["input"]["type"] == "action_run" && e["input"]["run"]["ok"] == true)
        .map(|e| e["input"]["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(done, ["redeploy-v1", "retire-v2"]);
    drop(served);
}

#[test]
fn check_reports_the_signing_key_serve_would_refuse_to_start_without() {
    let ws = Workspace::new();
    let config = ws.path().join("rollgate.toml");
    let hook = "\n[[notifications.webhooks]]\nurl = \"https://hooks.example.com/rollgate\"\nsecret_env = \"ROLLGATE_TEST_UNSET_KEY\"\n";
    let text = std::fs::read_to_string(&config).unwrap() + hook;
    std::fs::write(&config, &text).unwrap();
    let out =
        ws.command(&["check", "--config", "rollgate.toml"]).env_remove("ROLLGATE_TEST_UNSET_KEY").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let line = text.lines().position(|l| l.starts_with("url = \"https://hooks")).unwrap() + 1;
    assert!(
        stderr.contains(&format!(
            "rollgate.toml:{line}:7: error: the environment variable ROLLGATE_TEST_UNSET_KEY is not set"
        )) && stderr.contains("refuses to start without it"),
        "{stderr}"
    );
    let set = ws.command(&["check", "rollgate.toml"]).env("ROLLGATE_TEST_UNSET_KEY", "k").output().unwrap();
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
}

#[tokio::test]
async fn a_grant_edited_in_the_database_is_caught_and_not_honoured() {
    let ws = Workspace::new();
    let alice = ws.ok(&["token", "create", "--name", "alice", "--role", "viewer"]).trim().to_string();
    // Someone with write access to the database makes alice an admin.
    let db = ws.path().join(".rollgate/rollgate.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let edited =
        sqlx::query("UPDATE events SET body = replace(body, '\"viewer\"', '\"admin\"') WHERE stream = '@tokens'")
            .execute(&pool)
            .await
            .unwrap();
    assert_eq!(edited.rows_affected(), 1);
    let side_table: Option<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE name = 'tokens'").fetch_optional(&pool).await.unwrap();
    assert_eq!(side_table, None, "no token table outside the chain to edit instead");
    pool.close().await;
    let out = ws.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("stream @tokens event 1: its content does not match its hash"), "{stderr}");
    // The server honours no token while its log does not verify.
    let served = Served::start(&ws);
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/tokens", served.addr))
        .bearer_auth(&alice)
        .json(&serde_json::json!({ "name": "mallory", "roles": ["admin"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("audit verify"), "{problem}");
}

#[tokio::test]
async fn events_cut_off_the_end_are_caught_by_a_head_kept_outside_the_database() {
    let ws = Workspace::new();
    ws.ok(&["rollout", "start", "--service", "fraud-scorer", "--candidate", "v2", "--as", "alice", "--id", "r1"]);
    for gate in ["validation.bias", "validation.safety"] {
        ws.ok(&["rollout", "evidence", "r1", "--as", "alice", "--gate", gate, "--summary", "ok"]);
    }
    let r1_head = || {
        let verified = ws.ok(&["audit", "verify"]);
        verified.lines().find(|l| l.starts_with("r1\t")).unwrap().rsplit(' ').next().unwrap().to_string()
    };
    assert!(r1_head().starts_with("r1:3:"));
    // The server keeps a signed head of its own (and records what it proves itself: the candidate's
    // endpoints, which do not answer here).
    let head_file = ws.path().join("head.json");
    let served = ws
        .command(&["serve", "--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0", "--tick", "50ms"])
        .args(["--head-file", head_file.to_str().unwrap()])
        .env("ROLLGATE_HEAD_KEY", "head key")
        .env_remove("ROLLGATE_NOW")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let served = Served { child: served, addr: String::new(), gateway: String::new(), stderr: mpsc::channel().1 };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (head, seq) = loop {
        let head = r1_head();
        let seq: u64 = head.split(':').nth(1).unwrap().parse().unwrap();
        let written = std::fs::read_to_string(&head_file).is_ok_and(|t| t.contains(&format!("\"seq\": {seq}")));
        if seq >= 4 && written {
            break (head, seq);
        }
        assert!(std::time::Instant::now() < deadline, "the server never wrote its head file");
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(served);

    // Someone deletes the last event: the chain that is left is valid…
    let db = ws.path().join(".rollgate/rollgate.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    sqlx::query("DELETE FROM events WHERE stream = 'r1' AND seq = ?").bind(seq as i64).execute(&pool).await.unwrap();
    pool.close().await;
    assert!(ws.ok(&["audit", "verify"]).contains("every chain intact"));
    // …but not what was recorded outside the database.
    for args in [
        vec!["audit", "verify", "--expect-head", &head],
        vec!["audit", "verify", "--head-file", head_file.to_str().unwrap()],
    ] {
        let out = ws.command(&args).env("ROLLGATE_HEAD_KEY", "head key").output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let cut = format!("stream r1 event {seq}: the stream has {} event(s) but had {seq}", seq - 1);
        assert!(stderr.contains(&cut), "{stderr}");
    }
    // A head file checked with another key is not trusted.
    let out = ws
        .command(&["audit", "verify", "--head-file", "head.json"])
        .env("ROLLGATE_HEAD_KEY", "guess")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the signature does not match"));
}

#[test]
fn traffic_that_never_succeeds_is_a_failed_run_that_says_why() {
    let ws = Workspace::new();
    let out = ws.run(&["sim", "traffic", "http://127.0.0.1:9/score", "--rate", "50", "--seconds", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("no request succeeded (first failure: no answer"), "{stderr}");
}

#[test]
fn status_watch_follows_a_live_rollout_until_it_ends() {
    let ws = Workspace::new();
    let token = |name: &str, role: &str| ws.ok(&["token", "create", "--name", name, "--role", role]).trim().to_string();
    let alice = token("alice", "deployer");
    let served = Served::start(&ws);
    let remote = |args: &[&str]| {
        let mut all = vec!["rollout", "--server", served.addr.as_str(), "--token", alice.as_str()];
        all.extend_from_slice(args);
        let mut command = ws.command(&all);
        command.env_remove("ROLLGATE_NOW");
        command
    };
    assert!(
        remote(&["start", "--service", "fraud-scorer", "--candidate", "v2", "--id", "r1"])
            .output()
            .unwrap()
            .status
            .success()
    );
    let mut watch = remote(&["status", "r1", "--watch", "--json"]).stdout(Stdio::piped()).spawn().unwrap();
    let views = lines_of(watch.stdout.take().unwrap());
    let stage = |line: String| serde_json::from_str::<serde_json::Value>(&line).unwrap()["stage"].clone();
    assert_eq!(stage(views.recv_timeout(Duration::from_secs(30)).unwrap()), "pre_deployment");
    // The rollout ends while it is watched: the watch shows it, then exits.
    assert!(remote(&["abort", "r1", "--reason", "wrong artifact"]).output().unwrap().status.success());
    let mut last = serde_json::Value::Null;
    while let Ok(line) = views.recv_timeout(Duration::from_secs(30)) {
        last = stage(line);
    }
    assert_eq!(last, "aborted");
    assert!(watch.wait().unwrap().success());
}

#[test]
fn flags_are_created_raised_killed_and_shown_with_their_history_on_the_store() {
    let ws = Workspace::new();
    let created = ws.ok(&["flag", "create", "new-scorer", "--rollout", "10"]);
    assert!(created.starts_with("new-scorer: ") && created.contains(" created by "), "{created}");
    assert!(created.trim_end().ends_with("→ on for 10% of users"), "{created}");
    ws.ok(&["flag", "set", "new-scorer", "--rollout", "50"]);
    let out = ws.run(&["flag", "rollout", "new-scorer", "--plan", "default"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("give --server URL"), "{said}");
    let killed = ws.ok(&["flag", "kill", "new-scorer", "--reason", "checkout errors up"]);
    assert!(killed.contains("killed by") && killed.contains(": checkout errors up → off"), "{killed}");
    let list = ws.ok(&["flag", "list"]);
    assert!(list.starts_with("new-scorer\tboolean\tKILLED\t"), "{list}");
    let shown: serde_json::Value = serde_json::from_str(&ws.ok(&["flag", "show", "new-scorer", "--json"])).unwrap();
    let actions: Vec<&str> =
        shown["history"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create", "update", "kill"]);
    assert_eq!(shown["current"]["flag"]["strategies"][0]["parameters"]["rollout"], "50");
    // What an application would get: killed, DISABLED; back on, half the users in, the same ones every time.
    let eval = |args: &[&str]| -> serde_json::Value { serde_json::from_str(&ws.ok(args)).unwrap() };
    assert_eq!(eval(&["flag", "eval", "new-scorer", "--key", "user-1"])["reason"], "DISABLED");
    ws.ok(&["flag", "enable", "new-scorer", "--reason", "fixed"]);
    let on: Vec<bool> = (0..40)
        .map(|i| {
            eval(&["flag", "eval", "new-scorer", "--key", &format!("user-{i}"), "--attr", "country=FR"])["value"]
                == true
        })
        .collect();
    assert!(on.iter().any(|v| *v) && on.iter().any(|v| !*v), "{on:?}");
    assert_eq!(
        on,
        (0..40)
            .map(|i| eval(&["flag", "eval", "new-scorer", "--key", &format!("user-{i}")])["value"] == true)
            .collect::<Vec<_>>()
    );
    let out = ws.run(&["flag", "eval", "new-scorer"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("TARGETING_KEY_MISSING"), "{out:?}");
    ws.ok(&["flag", "kill", "new-scorer", "--reason", "checkout errors up"]);
    // Mistakes are refused with why, and change nothing.
    let out = ws.run(&["flag", "create", "new-scorer"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is already a flag `new-scorer`"));
    let out = ws.run(&["flag", "set", "new-scorer"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to change"), "{out:?}");
    let out = ws.run(&["flag", "set", "nope", "--rollout", "5"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no flag `nope`"), "{out:?}");
    let out = ws.run(&["flag", "create", "x", "--rollout", "101"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses a percentage over 100: {out:?}");
    std::fs::write(
        ws.path().join("model.json"),
        "{\"name\": \"model\", \"enabled\": true, \"kind\": \"number\",\n \"variants\": []}",
    )
    .unwrap();
    let out = ws.run(&["flag", "create", "model", "--file", "model.json"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("give it variants"), "{out:?}");
    assert!(ws.ok(&["audit", "verify"]).contains("@flags"), "the flag changes are in the verified log");
}

#[test]
fn a_blue_green_plan_shows_its_phases_rehearses_and_refuses_canary_steps_it_would_never_run() {
    let ws = Workspace::new();
    let config = ws.path().join("rollgate.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += "\n[plans.switch]\ndescription = \"one switch\"\nstrategy = \"blue-green\"\n[plans.switch.blue_green]\nbake = \"30m\"\n";
    std::fs::write(&config, &text).unwrap();
    ws.ok(&["check"]);
    let shown = ws.ok(&["plan", "show", "switch"]);
    assert!(shown.contains("strategy: blue-green"), "{shown}");
    assert!(shown.contains("full deployment (switched): 100% in one route swap, at least 30m"), "{shown}");
    assert!(!shown.contains("canary step"), "{shown}");
    let rehearsed = ws.ok(&["rehearse", "switch", "--scenario", "P3"]);
    assert!(rehearsed.contains("green regressed against blue, swapped back"), "{rehearsed}");
    text += "[plans.switch.canary]\nsteps = [{ percent = 10, hold = \"1h\" }, { percent = 100 }]\n";
    std::fs::write(&config, &text).unwrap();
    let out = ws.run(&["check"]);
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("a blue-green plan switches all traffic at once"), "{said}");
}

#[test]
fn a_rolling_plan_shows_its_batches_rehearses_them_and_refuses_what_cannot_roll() {
    let ws = Workspace::new();
    let config = ws.path().join("rollgate.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += "\n[plans.roll]\ndescription = \"in place\"\nstrategy = \"rolling\"\n[plans.roll.rolling]\nmax_unavailable = 2\ninterval = \"30m\"\n";
    std::fs::write(&config, &text).unwrap();
    ws.ok(&["check"]);
    let shown = ws.ok(&["plan", "show", "roll"]);
    assert!(shown.contains("strategy: rolling"), "{shown}");
    assert!(shown.contains("rolling batches: the share of instances replaced: 2 at a time"), "{shown}");
    let rehearsed = ws.ok(&["rehearse", "roll", "--instances", "6"]);
    assert!(rehearsed.contains("batch 1 of 3: 2 instance(s) being replaced"), "{rehearsed}");
    assert!(rehearsed.contains("33.3% on the candidate  — replace-1 done"), "{rehearsed}");
    assert!(rehearsed.contains("batch 3 of 3, the last"), "{rehearsed}");
    assert!(rehearsed.contains("outcome: completed"), "{rehearsed}");
    let bad = ws.ok(&["rehearse", "roll", "--instances", "6", "--scenario", "P3"]);
    assert!(bad.contains("the judge rolls back"), "{bad}");
    text += "max_surge = 0\n[plans.roll.canary]\nsteps = [{ percent = 10, hold = \"1h\" }, { percent = 100 }]\n";
    std::fs::write(&config, &text).unwrap();
    let out = ws.run(&["check"]);
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("canary steps would never run"), "{said}");
}

/// A fresh PostgreSQL database for one test (dropped at the end); its URL.
fn postgres_database() -> (String, impl FnOnce()) {
    let name = format!("rollgate_cli_{}", std::process::id());
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql is needed (PostgreSQL's client; scripts/test.sh installs and starts PostgreSQL)");
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    };
    psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    psql(&format!("CREATE DATABASE {name}"));
    let drop = move || psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    (format!("postgres://postgres@127.0.0.1:5432/rollgate_cli_{}", std::process::id()), drop)
}

/// `rollgate cluster status --json` as the server at `addr` sees it.
fn cluster_status(ws: &Workspace, addr: &str, token: &str) -> serde_json::Value {
    let out = ws.run(&["cluster", "status", "--json", "--server", addr, "--token", token]);
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Polls `check` every 50 ms for up to `limit`.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn three_replicas_on_postgres_fail_over_on_kill_and_a_paused_leader_steps_down() {
    let ws = Workspace::new();
    let (url, drop_database) = postgres_database();
    let token = ws.ok(&["token", "create", "--name", "alice", "--role", "deployer", "--database", &url]);
    let token = token.split_whitespace().find(|w| w.starts_with("rg_")).unwrap().to_string();
    let lease = ["--database", url.as_str(), "--lease", "1s", "--lease-renew", "200ms"];
    let mut replicas: Vec<Option<Served>> = (0..3).map(|_| Some(Served::start_with(&ws, None, &lease))).collect();
    let addr = |i: usize, replicas: &[Option<Served>]| replicas[i].as_ref().map(|r| r.addr.clone()).unwrap();
    // Which replica leads, as replica `asked` sees it, once it sees `members` members.
    let leader_of = |view: &serde_json::Value, replicas: &[Option<Served>]| {
        let leader = view["leader"]["address"].as_str()?;
        replicas.iter().position(|r| r.as_ref().is_some_and(|r| r.addr.ends_with(leader)))
    };
    let mut view = serde_json::Value::Null;
    let agreed = eventually(Duration::from_secs(20), || {
        view = cluster_status(&ws, &addr(0, &replicas), &token);
        view["members"].as_array().map(Vec::len) == Some(3) && leader_of(&view, &replicas).is_some()
    });
    assert!(agreed, "three members and a leader: {view}");
    let first = leader_of(&view, &replicas).unwrap();
    let first_token = view["token"].as_i64().unwrap();
    let human = ws.ok(&["cluster", "status", "--server", &addr(first, &replicas), "--token", &token]);
    assert!(human.contains(&format!("fencing token {first_token}")) && human.contains("members:"), "{human}");

    // kill -9 of the leader: another replica takes the lease with a new token.
    let mut killed = replicas[first].take().unwrap();
    killed.child.kill().unwrap();
    let _ = killed.child.wait();
    let asked = (first + 1) % 3;
    let took_over = eventually(Duration::from_secs(20), || {
        view = cluster_status(&ws, &addr(asked, &replicas), &token);
        view["token"].as_i64().unwrap_or(0) > first_token && leader_of(&view, &replicas).is_some()
    });
    assert!(took_over, "a new leader after kill -9: {view}");
    let second = leader_of(&view, &replicas).unwrap();
    let second_token = view["token"].as_i64().unwrap();

    // SIGSTOP the new leader past its lease: the third replica takes over; on SIGCONT the paused one steps down.
    let paused_pid = replicas[second].as_ref().unwrap().child.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &paused_pid]).status().unwrap().success());
    let third = (0..3).find(|&i| i != first && i != second).unwrap();
    let replaced = eventually(Duration::from_secs(20), || {
        view = cluster_status(&ws, &addr(third, &replicas), &token);
        view["token"].as_i64().unwrap_or(0) > second_token && leader_of(&view, &replicas) == Some(third)
    });
    assert!(Command::new("kill").args(["-CONT", &paused_pid]).status().unwrap().success());
    assert!(replaced, "the third replica leads while the second is paused: {view}");
    let paused = replicas[second].as_ref().unwrap();
    let stepped_down =
        eventually(Duration::from_secs(20), || paused.stderr.try_iter().any(|line| line.contains("no longer leads")));
    assert!(stepped_down, "the woken replica stepped down");
    let seen_by_woken = cluster_status(&ws, &paused.addr, &token);
    assert_eq!(leader_of(&seen_by_woken, &replicas), Some(third), "{seen_by_woken}");
    assert_eq!(seen_by_woken["self"]["leader"], false, "{seen_by_woken}");
    ws.ok(&["audit", "verify", "--database", &url]);
    drop(replicas);
    drop_database();
}

/// A `rollgate sim model` process on a free port; killed on drop.
struct SimModel {
    child: Child,
    url: String,
}

impl SimModel {
    fn start(ws: &Workspace, name: &str) -> SimModel {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listen = format!("127.0.0.1:{port}");
        let child = ws
            .command(&["sim", "model", "--listen", &listen, "--name", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let up = eventually(Duration::from_secs(30), || std::net::TcpStream::connect(&listen).is_ok());
        assert!(up, "the simulated model {name} listens on {listen}");
        SimModel { child, url: format!("http://{listen}") }
    }
}

impl Drop for SimModel {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// A webhook receiver on loopback: every delivery id it was sent, in order (repeats kept).
async fn webhook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = received.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let kept = kept.clone();
        async move {
            let id = headers.get("x-rollgate-delivery").and_then(|v| v.to_str().ok()).unwrap_or("none");
            kept.lock().unwrap().push(id.to_string());
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// `GET` of an API path on `replica` (`http://HOST:PORT`); `Null` when it does not answer with JSON.
async fn api_get(http: &reqwest::Client, replica: &str, path: &str, token: &str) -> serde_json::Value {
    let response = http.get(format!("{replica}{path}")).bearer_auth(token).send().await;
    match response {
        Ok(r) => r.json().await.unwrap_or(serde_json::Value::Null),
        Err(_) => serde_json::Value::Null,
    }
}

/// `each` requests through every gateway of `replicas` (API, gateway), all
/// answered by v1 or v2: adds them to `sent` (candidate, baseline).
fn send_through(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    replicas: &[(String, String)],
    each: usize,
    sent: &mut (u64, u64),
) {
    for (_, gateway) in replicas {
        let users = (0..each).map(|_| format!("user-{}", fastrand::u64(..)));
        let url = format!("{gateway}/fraud/score");
        let served = rt.block_on(rollgate_sim::traffic::tally_versions(http, &url, users));
        let (v1, v2) = (served.get("v1").copied().unwrap_or(0), served.get("v2").copied().unwrap_or(0));
        assert_eq!(v1 + v2, each, "{gateway}: {served:?}");
        (sent.0, sent.1) = (sent.0 + v2 as u64, sent.1 + v1 as u64);
    }
}

/// The candidate's share in the routing `replica` applied to its gateway.
async fn applied_candidate_percent(http: &reqwest::Client, replica: &str, token: &str) -> Option<f64> {
    let routing = api_get(http, replica, "/api/v1/routing", token).await;
    let split = routing["applied"]["services"]["fraud"]["split"].as_array()?.clone();
    Some(split.iter().filter(|pair| pair[0] == "v2").filter_map(|pair| pair[1].as_f64()).sum())
}

/// Issue 18's end-to-end test: three `rollgate serve` processes on one
/// PostgreSQL database, traffic through all three gateways during a canary,
/// `kill -9` of the leader in the middle of it.
#[test]
fn a_canary_survives_kill_9_of_the_leader_with_every_request_judged_and_every_effect_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let ws = Workspace::new();
    let (v1, v2) = (SimModel::start(&ws, "v1"), SimModel::start(&ws, "v2"));
    let (hook_url, deliveries) = rt.block_on(webhook_receiver());
    let hook_keys = ws.path().join("hook-keys.txt");
    let script = format!("echo \"$ROLLGATE_IDEMPOTENCY_KEY\" >> {}", hook_keys.display());
    let sha = "a".repeat(64);
    let config = format!(
        "[services.fraud]\nroute = {{ path_prefix = \"/fraud\" }}\nprotocol = \"json\"\nstable = \"v1\"\nplan = \"fast\"\n\
         [services.fraud.versions.v1]\nendpoints = [\"{}\"]\nartifact = {{ uri = \"s3://m/v1\", sha256 = \"{sha}\" }}\nowner = \"ml\"\n\
         [services.fraud.versions.v2]\nendpoints = [\"{}\"]\nartifact = {{ uri = \"s3://m/v2\", sha256 = \"{sha}\" }}\nowner = \"ml\"\n\
         [plans.fast.canary]\nsteps = [{{ percent = 50, hold = \"1h\" }}, {{ percent = 100 }}]\n\
         [[notifications.webhooks]]\nurl = \"{hook_url}\"\nformat = \"json\"\nsecret_env = \"ROLLGATE_WEBHOOK_KEY\"\n\
         [deploy]\ncommand = [\"sh\", \"-c\", {script:?}]\n",
        v1.url, v2.url
    );
    std::fs::write(ws.path().join("rollgate.toml"), config).unwrap();
    let (url, drop_database) = postgres_database();
    let token = |name: &str, role: &str| {
        let out = ws.ok(&["token", "create", "--name", name, "--role", role, "--database", &url]);
        out.split_whitespace().find(|w| w.starts_with("rg_")).unwrap().to_string()
    };
    let (alice, dana) = (token("alice", "deployer"), token("dana", "admin"));
    let lease = ["--database", url.as_str(), "--lease", "1s", "--lease-renew", "200ms"];
    let mut replicas: Vec<Option<Served>> = (0..3).map(|_| Some(Served::start_with(&ws, None, &lease))).collect();
    let alive = |replicas: &[Option<Served>]| -> Vec<(String, String)> {
        replicas.iter().flatten().map(|r| (r.addr.clone(), r.gateway.clone())).collect()
    };
    let leader_index = |view: &serde_json::Value, replicas: &[Option<Served>]| {
        let leader = view["leader"]["address"].as_str()?;
        replicas.iter().position(|r| r.as_ref().is_some_and(|r| r.addr.ends_with(leader)))
    };
    let mut view = serde_json::Value::Null;
    let agreed = eventually(Duration::from_secs(20), || {
        view = cluster_status(&ws, &alive(&replicas)[0].0, &alice);
        view["members"].as_array().map(Vec::len) == Some(3) && leader_index(&view, &replicas).is_some()
    });
    assert!(agreed, "three members and a leader: {view}");

    // Into the canary (50%, held an hour), through a replica.
    let api = alive(&replicas)[0].0.clone();
    let remote = |token: &str, args: &[&str]| {
        let mut all = vec!["rollout", "--server", api.as_str(), "--token", token];
        all.extend_from_slice(args);
        ws.ok(&all)
    };
    remote(&alice, &["start", "--service", "fraud", "--candidate", "v2", "--id", "r1", "--skip-shadow"]);
    let status = || rt.block_on(api_get(&http, &api, "/api/v1/rollouts/r1", &alice));
    let in_canary = eventually(Duration::from_secs(30), || {
        if status()["stage"] != "canary" {
            let _ = ws
                .command(&[
                    "rollout",
                    "--server",
                    &api,
                    "--token",
                    &dana,
                    "force-promote",
                    "r1",
                    "--reason",
                    "test: to the canary",
                ])
                .output();
        }
        status()["stage"] == "canary"
    });
    assert!(in_canary, "{}", status());
    let judged = || {
        let judge = status()["judge"].clone();
        (judge["canary_requests"].as_u64(), judge["baseline_requests"].as_u64())
    };
    assert!(eventually(Duration::from_secs(30), || judged().0.is_some()), "the judge watches: {}", status());
    let (canary_before, baseline_before) = judged();
    let mut sent = (canary_before.unwrap(), baseline_before.unwrap());

    // Traffic through all three gateways: the leader's judge counts every request once.
    send_through(&rt, &http, &alive(&replicas), 120, &mut sent);
    let expected = sent;
    let counted = eventually(Duration::from_secs(30), || judged() == (Some(expected.0), Some(expected.1)));
    assert!(counted, "the judge counted {:?}, the three gateways served {expected:?}", judged());
    let weight = status()["candidate_percent"].as_f64().unwrap();
    assert_eq!(weight, 50.0);
    for (addr, _) in alive(&replicas) {
        assert_eq!(rt.block_on(applied_candidate_percent(&http, &addr, &alice)), Some(weight), "{addr}");
    }

    // kill -9 of the leader mid-canary.
    view = cluster_status(&ws, &api, &alice);
    let first = leader_index(&view, &replicas).unwrap();
    let first_token = view["token"].as_i64().unwrap();
    let mut killed = replicas[first].take().unwrap();
    killed.child.kill().unwrap();
    let _ = killed.child.wait();
    let survivors = alive(&replicas);
    // Whether or not another replica has taken over yet, the survivors' gateways keep the log's weights and serve.
    for (addr, _) in &survivors {
        assert_eq!(rt.block_on(applied_candidate_percent(&http, addr, &alice)), Some(weight), "{addr}");
    }
    send_through(&rt, &http, &survivors, 20, &mut sent);
    let api = survivors[0].0.clone();
    let took_over = eventually(Duration::from_secs(20), || {
        view = cluster_status(&ws, &api, &alice);
        view["token"].as_i64().unwrap_or(0) > first_token && leader_index(&view, &replicas).is_some()
    });
    assert!(took_over, "a new leader after kill -9: {view}");
    let status = || rt.block_on(api_get(&http, &api, "/api/v1/rollouts/r1", &alice));
    assert_eq!(status()["stage"], "canary", "the new leader resumes the canary where the log says");

    // More traffic through the survivors: the new leader's judge goes on from the old one's count.
    send_through(&rt, &http, &survivors, 100, &mut sent);
    let expected = sent;
    let judged = || {
        let judge = status()["judge"].clone();
        (judge["canary_requests"].as_u64(), judge["baseline_requests"].as_u64())
    };
    let counted = eventually(Duration::from_secs(30), || judged() == (Some(expected.0), Some(expected.1)));
    assert!(counted, "after failover the judge counted {:?}, the gateways served {expected:?}", judged());

    // A full rollback through the new leader: its effects run once, and every survivor routes v1 only.
    let remote = |token: &str, args: &[&str]| {
        let mut all = vec!["rollout", "--server", api.as_str(), "--token", token];
        all.extend_from_slice(args);
        ws.ok(&all)
    };
    remote(&alice, &["rollback", "r1", "--category", "quality", "--reason", "failover test", "--full"]);
    let done =
        eventually(Duration::from_secs(30), || status()["open_actions"] == 0 && status()["stage"] == "rolled_back");
    assert!(done, "{}", status());
    for (addr, _) in alive(&replicas) {
        let routed = eventually(Duration::from_secs(10), || {
            rt.block_on(applied_candidate_percent(&http, &addr, &alice)) == Some(0.0)
        });
        assert!(routed, "{addr} follows the rollback");
    }
    let ran: Vec<String> = std::fs::read_to_string(&hook_keys).unwrap().lines().map(str::to_string).collect();
    assert_eq!(ran, ["r1/redeploy-v1", "r1/retire-v2"], "each deploy effect ran once");
    // Every webhook the log queued reached the receiver exactly once.
    let queued = status()["notifications"].as_array().map(Vec::len).unwrap_or(0);
    let delivered = eventually(Duration::from_secs(30), || {
        deliveries.lock().unwrap().len() >= queued
            && status()["notifications"].as_array().is_some_and(|d| d.iter().all(|d| d["delivered"] == true))
    });
    let received = deliveries.lock().unwrap().clone();
    assert!(delivered && queued >= 3, "{queued} queued, received {received:?}: {}", status()["notifications"]);
    let mut distinct = received.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!((received.len(), distinct.len()), (queued, queued), "each webhook once: {received:?}");
    let mut ids: Vec<String> =
        status()["notifications"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    assert_eq!(distinct, ids, "the receiver got the log's deliveries");
    ws.ok(&["audit", "verify", "--database", &url]);
    drop(replicas);
    drop_database();
}
