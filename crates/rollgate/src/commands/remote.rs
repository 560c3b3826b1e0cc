//! The CLI as a client of `rollgate serve`: the same commands, over the API.

use crate::Refused;
use crate::cli::{AuditCommand, RolloutCommand, VersionCommand};
use crate::client::Client;
use crate::render;
use rollgate_server::VersionSpec;
use rollgate_server::api::{AuditReport, EventView, RolloutSummary, VersionView};
use rollgate_server::views::RolloutView;
use serde_json::json;
use std::io::Write;
use std::time::Duration;

pub async fn rollout(client: &Client, command: RolloutCommand) -> anyhow::Result<()> {
    let path = |id: &str, action: &str| format!("/api/v1/rollouts/{id}/{action}");
    let (label, view): (&str, RolloutView) = match command {
        RolloutCommand::List { json } => return list(client, json).await,
        RolloutCommand::Status { rollout, json, watch } => return status(client, &rollout, json, watch).await,
        RolloutCommand::Archive { rollout, json } => {
            return render::archive(&client.get(&format!("/api/v1/rollouts/{rollout}")).await?, json);
        }
        RolloutCommand::Retro { rollout, format, out } => {
            let path = format!("/api/v1/rollouts/{rollout}/retro?format={}", format.as_str());
            return super::write_out(&client.get_text(&path).await?, out.as_deref());
        }
        RolloutCommand::ConfirmEffect { rollout, action, note, .. } => {
            let url = format!("/api/v1/rollouts/{rollout}/actions/{action}/confirm");
            ("confirm_action", client.post(&url, &json!({ "note": note })).await?)
        }
        RolloutCommand::Start { service, candidate, skip_shadow, id, ticket, .. } => {
            let body = json!({ "service": service, "candidate": candidate, "skip_shadow": skip_shadow, "id": id,
                               "ticket": ticket });
            ("start", client.post("/api/v1/rollouts", &body).await?)
        }
        RolloutCommand::Evidence { rollout, gate, failed, summary, details, .. } => {
            let details: serde_json::Value = match details {
                Some(text) => {
                    serde_json::from_str(&text).map_err(|e| Refused(format!("--details is not JSON: {e}")))?
                }
                None => serde_json::Value::Null,
            };
            let body = json!({ "gate": gate, "passed": !failed, "summary": summary, "details": details });
            ("evidence", client.post(&path(&rollout, "evidence"), &body).await?)
        }
        RolloutCommand::Approve { rollout, kind, comment, .. } => {
            ("approve", client.post(&path(&rollout, "approvals"), &json!({ "kind": kind, "comment": comment })).await?)
        }
        RolloutCommand::Tick { rollout, checklist, item, note, .. } => {
            let url = format!("/api/v1/rollouts/{rollout}/checklists/{checklist}/items/{item}");
            ("tick", client.post(&url, &json!({ "note": note })).await?)
        }
        RolloutCommand::Promote { rollout, .. } => {
            ("promote", client.post(&path(&rollout, "promote"), &json!({})).await?)
        }
        RolloutCommand::Pause { rollout, reason, .. } => {
            ("pause", client.post(&path(&rollout, "pause"), &json!({ "reason": reason })).await?)
        }
        RolloutCommand::Resume { rollout, .. } => ("resume", client.post(&path(&rollout, "resume"), &json!({})).await?),
        RolloutCommand::Abort { rollout, reason, .. } => {
            ("abort", client.post(&path(&rollout, "abort"), &json!({ "reason": reason })).await?)
        }
        RolloutCommand::Rollback { rollout, category, reason, full, .. } => {
            let body = json!({ "category": category, "reason": reason, "full": full });
            ("rollback", client.post(&path(&rollout, "rollback"), &body).await?)
        }
        RolloutCommand::ForcePromote { rollout, reason, .. } => {
            ("force_promote", client.post(&path(&rollout, "force-promote"), &json!({ "reason": reason })).await?)
        }
        RolloutCommand::Advance { .. } => {
            return Err(Refused(
                "a server's controller lets time pass on its own; `advance` is for the local store".into(),
            )
            .into());
        }
    };
    println!("{}: {label} accepted; now {}", view.id, render::stage_line(&view));
    Ok(())
}

async fn list(client: &Client, json: bool) -> anyhow::Result<()> {
    let all: Vec<RolloutSummary> = client.get("/api/v1/rollouts").await?;
    if json {
        println!("{}", serde_json::to_string(&all)?);
    } else if all.is_empty() {
        println!("no rollouts yet; start one with `rollgate rollout start --service S --candidate V`");
    }
    for r in all.iter().filter(|_| !json) {
        println!(
            "{}\t{} {} → {}\t{} at {}%",
            r.id, r.service, r.stable, r.candidate, r.stage_label, r.candidate_percent
        );
    }
    Ok(())
}

async fn status(client: &Client, id: &str, json: bool, watch: bool) -> anyhow::Result<()> {
    let url = format!("/api/v1/rollouts/{id}");
    if !watch {
        let view: RolloutView = client.get(&url).await?;
        if json {
            println!("{}", serde_json::to_string(&view)?);
        } else {
            print!("{}", render::status(&view));
        }
        return Ok(());
    }
    loop {
        let view: RolloutView = client.get(&url).await?;
        if json {
            println!("{}", serde_json::to_string(&view)?);
        } else {
            // Clear the screen and redraw, like `watch`.
            print!("\x1b[2J\x1b[H{}", render::status(&view));
        }
        std::io::stdout().flush()?;
        if view.terminal {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub async fn audit(client: &Client, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { expect_head, head_file, .. } if !expect_head.is_empty() || head_file.is_some() => {
            Err(Refused(
                "--expect-head and --head-file read the store directly: run them where the data directory or database is"
                    .into(),
            )
            .into())
        }
        AuditCommand::Verify { json, .. } => {
            let report: AuditReport = client.get("/api/v1/audit/verify").await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                for v in &report.verified {
                    println!("{}\t{} events\thead {}", v.stream, v.events, v.head);
                }
            }
            match report.failure {
                Some(f) => {
                    Err(Refused(format!("audit chain broken: stream {} event {}: {}", f.stream, f.seq, f.detail))
                        .into())
                }
                None => {
                    if !json {
                        println!("ok: {} stream(s), every chain intact", report.verified.len());
                    }
                    Ok(())
                }
            }
        }
        AuditCommand::Log { rollout, json } => {
            let events: Vec<EventView> = client.get(&format!("/api/v1/rollouts/{rollout}/events")).await?;
            for e in events {
                if json {
                    println!("{}", serde_json::to_string(&e)?);
                } else {
                    let input = e.input["type"].as_str().unwrap_or("?").to_string();
                    let effects = e.effects.as_array().map_or(0, Vec::len);
                    println!(
                        "{:>4}  {}  {input:<14} {:<24} {effects} effect(s)  {}",
                        e.seq,
                        e.at,
                        e.actor,
                        &e.hash[..16.min(e.hash.len())]
                    );
                }
            }
            Ok(())
        }
    }
}

pub async fn version(client: &Client, command: VersionCommand) -> anyhow::Result<()> {
    let VersionCommand::Register { service, name, endpoints, artifact_uri, sha256, model_card, owner } = command;
    let spec = VersionSpec { name, endpoints, artifact_uri, artifact_sha256: sha256, model_card, owner };
    let view: VersionView = client.post(&format!("/api/v1/services/{service}/versions"), &spec).await?;
    println!("registered {service} {}: {}", view.version.name, view.source);
    Ok(())
}
