//! Archiving a finished rollout as a directory anyone can check offline
//! (`rollgate archive verify DIR`): the rollout's state as its log replays
//! it, its plan, the config in force, the judge's and shadow's last reports,
//! the retrospective, the whole hash-chained log, and a manifest naming each
//! file's SHA-256. The manifest's own hash goes into the log with the
//! action's run.

use super::Ctx;
use rollgate_core::archive::{LOG, MANIFEST, ROLLOUT, log_lines, manifest, sha256_hex};
use rollgate_core::rollout::Rollout;
use rollgate_store::{Analysis, AnalysisStore, EventStore};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where an archive was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Archived {
    pub path: PathBuf,
    /// The SHA-256 of its MANIFEST.json.
    pub sha256: String,
    pub bytes: usize,
}

pub async fn write(ctx: &Ctx, rollout: &Rollout) -> Result<Archived, String> {
    let events = ctx.store.read(&rollout.id).await.map_err(|e| format!("cannot read the log: {e}"))?;
    // The state archived is the one these very events replay to, so the archive agrees with itself.
    let replayed = rollgate_core::event::replay(&events)
        .map_err(|e| format!("the log does not replay: {e}"))?
        .ok_or("the rollout has no events")?;
    let report = |kind: Analysis| async move {
        let stored = ctx
            .store
            .analysis(kind, &rollout.id)
            .await
            .map_err(|e| format!("cannot read the {kind:?} analysis: {e}"))?;
        Ok::<_, String>(stored.and_then(|a| serde_json::from_str::<serde_json::Value>(&a.report).ok()))
    };
    let (judge, shadow) = (report(Analysis::Judge).await?, report(Analysis::Shadow).await?);
    let retro = rollgate_core::retro::retrospective(&replayed, &events, judge.as_ref(), shadow.as_ref());
    let mut files = BTreeMap::from([
        (ROLLOUT.to_string(), pretty(&replayed)),
        ("plan.json".to_string(), pretty(&replayed.plan)),
        ("config.toml".to_string(), ctx.fleet().config_in_force().text.as_bytes().to_vec()),
        ("retro.md".to_string(), crate::retro::markdown(&retro).into_bytes()),
        ("retro.html".to_string(), crate::retro::html(&retro).into_bytes()),
        (LOG.to_string(), log_lines(&events)),
    ]);
    for (name, report) in [("judge-report.json", judge), ("shadow-report.json", shadow)] {
        if let Some(report) = report {
            files.insert(name.to_string(), pretty(&report));
        }
    }
    let manifest_bytes = manifest(&replayed.id, &files, &events);
    let sha256 = sha256_hex(&manifest_bytes);
    files.insert(MANIFEST.to_string(), manifest_bytes);
    let size = files.values().map(Vec::len).sum();
    let path = ctx.archive_dir.join(directory_name(&replayed.id, &sha256));
    let written = path.clone();
    let root = ctx.archive_dir.clone();
    tokio::task::spawn_blocking(move || write_dir(&root, &written, &files))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(Archived { path, sha256, bytes: size })
}

/// `ID.SHA` with the id made safe as one file name (ids are free text) and
/// the manifest's hash cut to 16 digits: readable, and a rewrite gets a new name.
fn directory_name(id: &str, sha256: &str) -> String {
    let safe: String = id
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') { c } else { '_' })
        .collect();
    format!("{safe}.{}", &sha256[..16])
}

/// Written beside and renamed: a crash leaves no half archive under the final name.
fn write_dir(root: &Path, target: &Path, files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("archive");
    let partial = root.join(format!(".{name}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    std::fs::create_dir_all(&partial)?;
    for (file, bytes) in files {
        let at = partial.join(file);
        std::fs::write(&at, bytes)?;
        std::fs::File::open(&at)?.sync_all()?;
    }
    if target.exists() {
        // The same content under the same name, written before a crash: keep one.
        std::fs::remove_dir_all(target)?;
    }
    std::fs::rename(&partial, target)?;
    std::fs::File::open(root)?.sync_all()
}

/// Pretty JSON with a final newline. The archived values are plain data:
/// serializing them cannot fail.
fn pretty<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
