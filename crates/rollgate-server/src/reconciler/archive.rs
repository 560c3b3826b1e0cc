//! Archiving a finished rollout: its plan, the config in force, its
//! evidence, approvals and checklist ticks, the judge's last report and the
//! whole hash-chained log, in one JSON document written under its own
//! SHA-256 (content-addressed: the name proves the content). The hash goes
//! into the log with the action's run.

use super::Ctx;
use rollgate_core::rollout::Rollout;
use rollgate_store::{Analysis, AnalysisStore, EventStore};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Where an archive was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Archived {
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: usize,
}

pub async fn write(ctx: &Ctx, rollout: &Rollout) -> Result<Archived, String> {
    let events = ctx.store.read(&rollout.id).await.map_err(|e| format!("cannot read the log: {e}"))?;
    let report = |kind: Analysis| async move {
        let stored = ctx
            .store
            .analysis(kind, &rollout.id)
            .await
            .map_err(|e| format!("cannot read the {kind:?} analysis: {e}"))?;
        Ok::<_, String>(stored.and_then(|a| serde_json::from_str::<serde_json::Value>(&a.report).ok()))
    };
    let (judge_report, shadow_report) = (report(Analysis::Judge).await?, report(Analysis::Shadow).await?);
    let log: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            let body: serde_json::Value = serde_json::from_str(&e.body).unwrap_or(serde_json::Value::Null);
            json!({ "seq": e.seq, "prev_hash": e.prev_hash, "hash": e.hash, "body": body })
        })
        .collect();
    let document = json!({
        "rollout": rollout.id,
        "service": rollout.service,
        "stable": rollout.stable,
        "candidate": rollout.candidate,
        "outcome": rollout.stage,
        "requester": rollout.requester,
        "plan_name": rollout.plan_name,
        "plan": rollout.plan,
        "config": &*ctx.fleet().config_in_force().text,
        "evidence": rollout.evidence,
        "approvals": rollout.approvals,
        "checklist_ticks": rollout.ticks,
        "overrides": rollout.overrides,
        "history": rollout.history,
        "judge_report": judge_report,
        "shadow_report": shadow_report,
        "log": log,
    });
    let bytes = serde_json::to_vec_pretty(&document).map_err(|e| e.to_string())?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let dir = ctx.archive_dir.clone();
    let path = dir.join(format!("{sha256}.json"));
    let written = path.clone();
    let size = bytes.len();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        // Written beside and renamed: a crash leaves no half archive under the hash's name.
        let partial =
            dir.join(format!(".{}.partial", written.file_stem().and_then(|s| s.to_str()).unwrap_or("archive")));
        std::fs::write(&partial, &bytes)?;
        std::fs::File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, &written)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(Archived { path, sha256, bytes: size })
}
