//! A finished rollout's archive: a directory of plain files (the plan, the
//! config in force, the rollout's state, reports, the retrospective and the
//! whole hash-chained log) with a `MANIFEST.json` that names each file with
//! its size and SHA-256. Anyone can check it offline, without rollgate's
//! database: every file against the manifest, the log's chain, and the
//! rollout's state against a replay of the log. Pure: the shell reads and
//! writes the bytes.

use crate::audit::verify_stream;
use crate::event::{RecordedEvent, replay};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

pub const MANIFEST: &str = "MANIFEST.json";
/// The log, one stored event per line exactly as it was hashed.
pub const LOG: &str = "log.jsonl";
/// The rollout's state when it was archived, as the log replays it.
pub const ROLLOUT: &str = "rollout.json";
pub const FORMAT: &str = "rollgate-archive/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub rollout: String,
    pub files: Vec<FileEntry>,
    /// The log's length and the hash of its last event, to compare with the
    /// head recorded elsewhere (`audit verify`, the signed head file).
    pub events: u64,
    pub head: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The log as archived: one JSON line per stored event.
pub fn log_lines(events: &[RecordedEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        // A stored event is plain strings and a number: it always serializes.
        out.extend(serde_json::to_vec(event).unwrap_or_default());
        out.push(b'\n');
    }
    out
}

/// The manifest of `files` (name, content; the log among them as [`LOG`])
/// for rollout `id` whose log is `events`, as the bytes written to
/// [`MANIFEST`]. Names are sorted so the same archive has the same manifest.
pub fn manifest(id: &str, files: &BTreeMap<String, Vec<u8>>, events: &[RecordedEvent]) -> Vec<u8> {
    let manifest = Manifest {
        format: FORMAT.into(),
        rollout: id.into(),
        files: files
            .iter()
            .map(|(name, bytes)| FileEntry { name: name.clone(), bytes: bytes.len() as u64, sha256: sha256_hex(bytes) })
            .collect(),
        events: events.len() as u64,
        head: events.last().map_or_else(String::new, |e| e.hash.clone()),
    };
    let mut bytes = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// One thing wrong with an archive, naming the file it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: String,
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.detail)
    }
}

/// What a verified archive holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    pub rollout: String,
    pub files: usize,
    pub events: u64,
    pub head: String,
    /// The manifest's own hash: the one the rollout's log recorded when the archive was written.
    pub manifest_sha256: String,
}

/// Checks an archive given as every file in its directory (name → bytes).
/// Every problem found is returned, each naming its file.
pub fn verify(files: &BTreeMap<String, Vec<u8>>) -> Result<Verified, Vec<Problem>> {
    let problem = |file: &str, detail: String| Problem { file: file.into(), detail };
    let Some(manifest_bytes) = files.get(MANIFEST) else {
        return Err(vec![problem(
            MANIFEST,
            "missing: this is not a rollgate archive, or its manifest was removed".into(),
        )]);
    };
    let manifest: Manifest = match serde_json::from_slice(manifest_bytes) {
        Ok(m) => m,
        Err(e) => return Err(vec![problem(MANIFEST, format!("does not parse ({e}): it was edited"))]),
    };
    if manifest.format != FORMAT {
        return Err(vec![problem(MANIFEST, format!("format `{}`, this rollgate reads `{FORMAT}`", manifest.format))]);
    }
    let mut problems = Vec::new();
    for entry in &manifest.files {
        match files.get(&entry.name) {
            None => problems.push(problem(&entry.name, "missing: the manifest lists it".into())),
            Some(bytes) => {
                let sha = sha256_hex(bytes);
                if sha != entry.sha256 || bytes.len() as u64 != entry.bytes {
                    problems.push(problem(
                        &entry.name,
                        format!(
                            "changed: {} bytes with sha256 {sha}, the manifest says {} bytes with sha256 {}",
                            bytes.len(),
                            entry.bytes,
                            entry.sha256
                        ),
                    ));
                }
            }
        }
    }
    for name in files.keys().filter(|n| *n != MANIFEST && !manifest.files.iter().any(|e| &e.name == *n)) {
        problems.push(problem(name, "added: the manifest does not list it".into()));
    }
    problems.extend(check_log(&manifest, files));
    if problems.is_empty() {
        Ok(Verified {
            rollout: manifest.rollout,
            files: manifest.files.len(),
            events: manifest.events,
            head: manifest.head,
            manifest_sha256: sha256_hex(manifest_bytes),
        })
    } else {
        Err(problems)
    }
}

/// The log's chain, its head against the manifest's, and the rollout's state against a replay.
fn check_log(manifest: &Manifest, files: &BTreeMap<String, Vec<u8>>) -> Vec<Problem> {
    let problem = |file: &str, detail: String| vec![Problem { file: file.into(), detail }];
    let Some(log) = files.get(LOG) else { return problem(LOG, "missing: an archive holds its log".into()) };
    let mut events = Vec::new();
    for (index, line) in log.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        match serde_json::from_slice::<RecordedEvent>(line) {
            Ok(event) => events.push(event),
            Err(e) => return problem(LOG, format!("line {} is not a stored event ({e})", index + 1)),
        }
    }
    match verify_stream(&events) {
        Err(failure) => return problem(LOG, failure.to_string()),
        Ok(None) => return problem(LOG, "empty: an archive holds its log".into()),
        Ok(Some(head)) if head.stream != manifest.rollout => {
            return problem(LOG, format!("the log is of `{}`, the manifest of `{}`", head.stream, manifest.rollout));
        }
        Ok(Some(head)) if (head.events, &head.head) != (manifest.events, &manifest.head) => {
            return problem(
                LOG,
                format!(
                    "{} events ending at {}, the manifest says {} ending at {}",
                    head.events, head.head, manifest.events, manifest.head
                ),
            );
        }
        Ok(Some(_)) => {}
    }
    let replayed = match replay(&events) {
        Ok(Some(r)) => r,
        Ok(None) => return problem(LOG, "holds no rollout".into()),
        Err(e) => return problem(LOG, format!("does not replay: {e}")),
    };
    let stated = files.get(ROLLOUT).and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
    let replayed = serde_json::to_value(&replayed).ok();
    if stated.is_none() || stated != replayed {
        return problem(ROLLOUT, "does not agree with the rollout its log replays to".into());
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
        pairs.iter().map(|(n, b)| (n.to_string(), b.to_vec())).collect()
    }

    #[test]
    fn a_manifest_lists_every_file_with_its_hash_in_name_order() {
        let fs = files(&[("b.txt", b"two"), ("a.txt", b"one")]);
        let m: Manifest = serde_json::from_slice(&manifest("r1", &fs, &[])).unwrap();
        let names: Vec<_> = m.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a.txt", "b.txt"]);
        assert_eq!(m.files[0].sha256, sha256_hex(b"one"));
        assert_eq!((m.files[1].bytes, m.events, m.head.as_str()), (3, 0, ""));
    }

    #[test]
    fn a_changed_added_or_missing_file_is_named() {
        let fs = files(&[("plan.json", b"{}"), ("config.toml", b"x = 1")]);
        let mut archive = fs.clone();
        archive.insert(MANIFEST.into(), manifest("r1", &fs, &[]));
        archive.insert("config.toml".into(), b"x = 2".to_vec());
        archive.remove("plan.json");
        archive.insert("extra.txt".into(), b"hi".to_vec());
        let problems = verify(&archive).unwrap_err();
        let named: Vec<_> = problems.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(named, ["config.toml", "plan.json", "extra.txt", LOG], "{problems:?}");
        assert!(problems[0].detail.starts_with("changed: 5 bytes"), "{}", problems[0]);
    }

    #[test]
    fn without_a_readable_manifest_nothing_else_is_trusted() {
        assert_eq!(verify(&files(&[("log.jsonl", b"")])).unwrap_err()[0].file, MANIFEST);
        let problems = verify(&files(&[(MANIFEST, b"{not json")])).unwrap_err();
        assert!(problems[0].detail.starts_with("does not parse"), "{problems:?}");
    }
}
