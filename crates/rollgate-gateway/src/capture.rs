//! Traffic capture: a share of a service's requests written as JSONL under
//! a directory (`SERVICE/capture-MILLIS.jsonl`), redacted before anything
//! touches disk. The request path only draws, copies the (small) body and
//! offers it to a bounded queue; a full queue drops the record and counts
//! it. One writer thread redacts, writes and rotates files by size.

use crate::mirror::Captured;
use crate::stats::Stats;
use bytes::Bytes;
use rollgate_core::config::CaptureSpec;
use rollgate_core::redact::Redactor;
use rollgate_core::weight::Weight;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::SystemTime;
use tokio::sync::oneshot;

/// Records waiting for the writer; beyond this, new ones are dropped.
const QUEUE: usize = 4096;

/// A service's capture, as its route table entry has it.
pub struct CaptureRoute {
    pub share: Weight,
    pub max_body_bytes: u64,
    /// The answers are written too.
    pub answers: bool,
    settings: Arc<Settings>,
}

/// What the writer needs of a service's capture.
struct Settings {
    redactor: Redactor,
    max_file_bytes: u64,
    max_files: u32,
}

impl CaptureRoute {
    pub fn new(spec: &CaptureSpec) -> Result<CaptureRoute, String> {
        let redactor = Redactor::with_built_in(&spec.redact, &spec.redact_pointers)?;
        let settings = Settings { redactor, max_file_bytes: spec.max_file_bytes, max_files: spec.max_files.max(1) };
        Ok(CaptureRoute {
            share: spec.percent,
            max_body_bytes: spec.max_body_bytes,
            answers: spec.answers,
            settings: Arc::new(settings),
        })
    }

    /// Whether this request is captured: a uniform draw against the share.
    pub fn take(&self) -> bool {
        fastrand::u32(..10_000) < u32::from(self.share.basis_points())
    }
}

/// One captured request, before redaction.
pub struct Record {
    pub service: Arc<str>,
    pub version: Arc<str>,
    pub path: String,
    pub body: Bytes,
    pub at: SystemTime,
    /// The answer, for a service that captures answers (none when the client left first).
    pub answer: Option<Captured>,
}

/// Answers being waited for before their records are offered; beyond this, records are dropped.
const WAITING_FOR_ANSWERS: usize = 1024;

/// The capture queue; its counts are in [`Stats`]. Cheap to clone.
#[derive(Clone)]
pub struct Capture {
    queue: SyncSender<(Record, Arc<Settings>)>,
    stats: Arc<Stats>,
    waiting: Arc<tokio::sync::Semaphore>,
}

impl Capture {
    /// Captures into `dir`, written by a thread of its own (it stops when the gateway is dropped).
    pub fn start(dir: PathBuf, stats: Arc<Stats>) -> std::io::Result<Capture> {
        std::fs::create_dir_all(&dir)?;
        let (queue, records) = std::sync::mpsc::sync_channel(QUEUE);
        let counts = stats.clone();
        std::thread::Builder::new()
            .name("rollgate-capture".into())
            .spawn(move || write_all(&dir, &records, &counts.capture_written, &counts.capture_failed))?;
        Ok(Capture { queue, stats, waiting: Arc::new(tokio::sync::Semaphore::new(WAITING_FOR_ANSWERS)) })
    }

    /// Offers `record` once its answer is in (off the request path); the
    /// answer's sender goes to the body that copies it.
    pub fn offer_with_answer(&self, route: &CaptureRoute, mut record: Record) -> Option<oneshot::Sender<Captured>> {
        let Ok(permit) = self.waiting.clone().try_acquire_owned() else {
            self.skipped();
            return None;
        };
        let (to, answer) = oneshot::channel();
        let (capture, settings) = (self.clone(), route.settings.clone());
        tokio::spawn(async move {
            record.answer = answer.await.ok();
            drop(permit);
            capture.send(record, settings);
        });
        Some(to)
    }

    /// Offers a record to the writer; never waits.
    pub fn offer(&self, route: &CaptureRoute, record: Record) {
        self.send(record, route.settings.clone());
    }

    fn send(&self, record: Record, settings: Arc<Settings>) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.queue.try_send((record, settings)) {
            self.stats.capture_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request that was drawn but not captured (its body too large or of unknown size).
    pub fn skipped(&self) {
        self.stats.capture_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// An open capture file of one service.
struct Open {
    file: File,
    size: u64,
}

fn write_all(dir: &Path, records: &Receiver<(Record, Arc<Settings>)>, written: &AtomicU64, failed: &AtomicU64) {
    let mut open: HashMap<Arc<str>, Open> = HashMap::new();
    // Files begun in the same millisecond still get names of their own, in order.
    let mut files_begun = 0u64;
    while let Ok((record, settings)) = records.recv() {
        match write_one(dir, &mut open, &mut files_begun, &record, &settings) {
            Ok(()) => written.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(service = %record.service, error = %e, "cannot write a captured request");
                open.remove(&record.service);
                failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

fn write_one(
    dir: &Path,
    open: &mut HashMap<Arc<str>, Open>,
    files_begun: &mut u64,
    record: &Record,
    settings: &Settings,
) -> std::io::Result<()> {
    let at = rollgate_core::Timestamp::try_from(record.at).unwrap_or(rollgate_core::Timestamp::UNIX_EPOCH);
    let mut line = serde_json::json!({
        "at": at.to_string(),
        "service": &*record.service,
        "version": &*record.version,
        "path": settings.redactor.text(&record.path),
        "request": settings.redactor.body(&record.body),
    });
    if let Some(answer) = &record.answer {
        line["answer"] = serde_json::json!({
            "status": answer.status.as_u16(),
            "latency_ms": answer.latency.as_secs_f64() * 1000.0,
            "body": settings.redactor.body(&answer.body),
            "truncated": answer.truncated,
        });
    }
    let mut text = line.to_string();
    text.push('\n');
    let service_dir = dir.join(&*record.service);
    let full = open.get(&record.service).is_some_and(|o| o.size + text.len() as u64 > settings.max_file_bytes);
    if full || !open.contains_key(&record.service) {
        std::fs::create_dir_all(&service_dir)?;
        *files_begun += 1;
        let name = format!("capture-{:020}-{:08}.jsonl", at.as_millisecond().max(0), files_begun);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(service_dir.join(name))?;
        let size = file.metadata()?.len();
        open.insert(record.service.clone(), Open { file, size });
        prune(&service_dir, settings.max_files)?;
    }
    let current = open.get_mut(&record.service).unwrap_or_else(|| unreachable!("opened above"));
    current.file.write_all(text.as_bytes())?;
    current.size += text.len() as u64;
    Ok(())
}

/// Deletes the oldest capture files beyond `keep` (names sort by time).
fn prune(service_dir: &Path, keep: u32) -> std::io::Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(service_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("capture-")))
        .collect();
    files.sort();
    let excess = files.len().saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX));
    for old in &files[..excess] {
        std::fs::remove_file(old)?;
    }
    Ok(())
}

/// What an export found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    pub written: usize,
    /// Captured before the window.
    pub older: usize,
    /// Lines that are not a capture record (one cut short by a crash mid-write).
    pub unreadable: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no capture of `{service}` under {dir}: {why}")]
    NoCapture { service: String, dir: String, why: String },
    #[error("`{service}` captured no requests in that window under {dir} ({older} older, {unreadable} unreadable)")]
    Empty { service: String, dir: String, older: usize, unreadable: usize },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Writes the request bodies `service` captured (under `dir`) since `since`
/// to `out`, one JSON value a line: the format of a staging sample.
pub fn export(dir: &Path, service: &str, since: rollgate_core::Timestamp, out: &Path) -> Result<Exported, ExportError> {
    let service_dir = dir.join(service);
    let shown = service_dir.display().to_string();
    let entries = std::fs::read_dir(&service_dir).map_err(|e| ExportError::NoCapture {
        service: service.into(),
        dir: shown.clone(),
        why: e.to_string(),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let (mut kept, mut older, mut unreadable) = (Vec::new(), 0, 0);
    for file in &files {
        for line in std::io::BufRead::lines(std::io::BufReader::new(File::open(file)?)) {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let record = serde_json::from_str::<serde_json::Value>(&line).ok();
            let at = record.as_ref().and_then(|r| r["at"].as_str()?.parse::<rollgate_core::Timestamp>().ok());
            match (record, at) {
                (Some(record), Some(at)) if at >= since => kept.push(record["request"].to_string()),
                (Some(_), Some(_)) => older += 1,
                _ => unreadable += 1,
            }
        }
    }
    if kept.is_empty() {
        return Err(ExportError::Empty { service: service.into(), dir: shown, older, unreadable });
    }
    let mut sample = std::io::BufWriter::new(File::create(out)?);
    for body in &kept {
        sample.write_all(body.as_bytes())?;
        sample.write_all(b"\n")?;
    }
    sample.flush()?;
    Ok(Exported { written: kept.len(), older, unreadable })
}
