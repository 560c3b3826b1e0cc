//! `rollgate demo`: rollgate doing its main job in under a minute, on one
//! machine, with nothing to set up. Simulated model versions, the gateway
//! and the control plane start on a temporary SQLite directory and free
//! loopback ports; traffic flows; two rollouts run on a clock where an hour
//! is a second. rollgate validates each candidate itself with the service's
//! suites and documents (`files`), proves the infrastructure and runs
//! staging; people approve and tick checklists. v3,
//! which fails three times as often as v1, passes its suites' bars and is
//! rolled back by the judge during its canary, measured against v1 live;
//! v2, which is good, goes through every stage to 100%.

mod files;
mod team;
mod world;

use crate::cli::DemoArgs;
use rollgate_server::views::RolloutView;
use rollgate_sim::traffic::{TrafficCounts, TrafficOptions};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use team::Team;

/// How a demo rollout ended.
pub struct Ending {
    pub stage: String,
    pub took: Duration,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let world = world::start_world(args.data_dir.as_deref()).await?;
    let front = format!("http://{}", world.gateway.addr);
    say(&format!(
        "rollgate demo: control plane {} (OpenAPI at /api/v1/openapi.json), gateway {front}, data in {}",
        world.api,
        world.data.display()
    ));
    say(&format!(
        "models: v1 (production) and v2 fail {:.0}% of requests, v3 fails {:.0}%; one hour of plan time passes in one second",
        world::BASE_ERROR_RATE * 100.0,
        3.0 * world::BASE_ERROR_RATE * 100.0
    ));
    let (stop_traffic, stopped) = tokio::sync::watch::channel(false);
    let counts = Arc::new(TrafficCounts::default());
    let traffic = TrafficOptions {
        url: format!("{front}/v2/models/fraud/infer"),
        feedback_url: Some(format!("{front}/feedback")),
        rate_per_s: args.rate,
        users: 10_000,
        bodies: Vec::new(),
        rating_rate: 0.05,
        complaint_rate: 0.0005,
        max_in_flight: 512,
    };
    tokio::spawn(rollgate_sim::traffic::run(traffic, counts.clone(), stopped));
    say(&format!("traffic: {} requests a second from 10,000 users, with ratings and complaints\n", args.rate));

    let team = Team::new(&world.api, &world.tokens)?;
    let v3 = rollout(&team, "v3", "fraud-v3").await?;
    let v2 = rollout(&team, "v2", "fraud-v2").await?;
    let _ = stop_traffic.send(true);
    say(&format!(
        "\nsummary: v3 {} after {:.1} s; v2 {} after {:.1} s; {} requests served, whole demo {:.1} s",
        v3.stage,
        v3.took.as_secs_f64(),
        v2.stage,
        v2.took.as_secs_f64(),
        counts.ok.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    ));
    if let Some(why) = rollback_story(&team, "fraud-v3").await {
        say(&why);
    }
    match archived(&team, "fraud-v2").await {
        Some(where_) => say(&format!("fraud-v2 {where_}: plan, config, evidence, reports, retrospective and log")),
        None => say("fraud-v2's archive is not written yet; the next server on this data directory writes it"),
    }
    say(
        "the event log of each rollout is hash-chained: `rollgate audit verify` checks it (run with --keep-running to try)",
    );
    if args.keep_running {
        say(&format!(
            "\nstill running; try: curl -H 'authorization: Bearer {token}' {api}/api/v1/rollouts\n\
             or open the dashboard at {api}/ and sign in with that token   (Ctrl-C stops)",
            token = world.tokens.get("alice").map(String::as_str).unwrap_or_default(),
            api = world.api
        ));
        super::serve::shutdown_signal().await;
    }
    world.server.shutdown().await;
    world.gateway.shutdown().await;
    Ok(())
}

/// Where the server archived a finished rollout, once it has (it does so right after the end).
async fn archived(team: &Team, id: &str) -> Option<String> {
    for _ in 0..100 {
        let view = team.view(id).await.ok()?;
        let run = view.actions.iter().find(|a| a.effect == "archive").and_then(|a| a.runs.iter().find(|r| r.ok));
        if let Some(run) = run {
            return Some(run.detail.clone());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

fn say(line: &str) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

/// One rollout from start to its end, printing each stage and what moved it.
async fn rollout(team: &Team, candidate: &str, id: &str) -> anyhow::Result<Ending> {
    let started = Instant::now();
    say(&format!("── rollout {id}: fraud-scorer v1 → {candidate}"));
    team.start(candidate, id).await?;
    let mut reported = std::collections::HashSet::new();
    let mut last_stage = String::new();
    let mut last_verdict = String::new();
    loop {
        let view = team.view(id).await?;
        // Each piece of evidence as it is recorded: ci's validation runs, and
        // the server's own infrastructure, staging and post-deployment checks
        // (shown before the stage it let the rollout move on to).
        let mut recorded: Vec<_> = view.evidence.iter().filter(|e| !reported.contains(&e.gate)).collect();
        recorded.sort_by(|a, b| a.at.cmp(&b.at));
        for e in recorded {
            reported.insert(e.gate.clone());
            say(&format!("          {} {}: {} (by {})", if e.passed { "✓" } else { "✗" }, e.gate, e.summary, e.by));
        }
        if view.stage_label != last_stage {
            last_stage.clone_from(&view.stage_label);
            say(&format!(
                "{:>6.1}s  {}  {:<18} {}",
                started.elapsed().as_secs_f64(),
                &view.as_of[..16.min(view.as_of.len())],
                view.stage_label,
                bar(view.candidate_percent)
            ));
        }
        // A line when the judge's verdict changes kind, with its numbers.
        if let Some((kind, line)) = judge_line(&view)
            && kind != last_verdict
        {
            say(&format!("{:>6.1}s    judge: {line}", started.elapsed().as_secs_f64()));
            last_verdict = kind;
        }
        if view.terminal {
            say(&format!(
                "{:>6.1}s  {id} ended: {}\n",
                started.elapsed().as_secs_f64(),
                view.outcome.as_deref().unwrap_or(&view.stage)
            ));
            return Ok(Ending { stage: view.stage.clone(), took: started.elapsed() });
        }
        for line in team.answer_gates(&view).await? {
            say(&format!("          {line}"));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

fn bar(percent: f64) -> String {
    let filled = (percent / 5.0).round() as usize;
    format!("[{}{}] {percent:>5.1}% on the candidate", "█".repeat(filled), "·".repeat(20usize.saturating_sub(filled)))
}

/// The judge's verdict kind, and a line with the error trigger's numbers.
fn judge_line(view: &RolloutView) -> Option<(String, String)> {
    let judge = view.judge.as_ref()?;
    let verdict = judge["verdict"]["verdict"].as_str()?;
    let errors = judge["triggers"].as_array()?.iter().find(|t| t["trigger"] == "error_rate")?;
    let line = format!(
        "{verdict} (errors: {} canary / {} baseline, e-value {:.1} of {:.0})",
        errors["canary_events"],
        errors["baseline_events"],
        errors["e_value"].as_f64().unwrap_or(0.0),
        errors["threshold"].as_f64().unwrap_or(0.0)
    );
    Some((verdict.to_string(), line))
}

/// Why the judge rolled a rollout back, with its numbers, and how long after
/// the faulty version got its first users (read from the event log).
async fn rollback_story(team: &Team, id: &str) -> Option<String> {
    let events = team.events(id).await.ok()?;
    let at = |e: &serde_json::Value| e["at"].as_str()?.parse::<jiff::Timestamp>().ok();
    let first_users = |e: &&serde_json::Value| {
        e["effects"].as_array().is_some_and(|fx| {
            fx.iter().any(|f| f["type"] == "set_weights" && f["candidate_weight"].as_f64().is_some_and(|w| w > 0.0))
        })
    };
    let canary_from = events.iter().find(first_users).and_then(at)?;
    let rollback = events.iter().find(|e| e["input"]["verdict"]["verdict"] == "rollback")?;
    let reason = rollback["input"]["verdict"]["evidence"]["reason"].as_str()?;
    let plan_time = at(rollback)?.duration_since(canary_from).as_secs_f64();
    Some(format!(
        "v3 rolled back by the judge: {reason}\nfault → rollback: {:.1} s after v3 got its first users ({:.1} h on the plan's clock)",
        plan_time / world::SPEED,
        plan_time / 3600.0
    ))
}
