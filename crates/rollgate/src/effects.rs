//! Where a rollout's effects go when rollgate runs without a server: a
//! journal in the data directory (`effects.jsonl`), one line per effect,
//! keyed so that an effect delivered again after a crash is recorded once.
//! The server replaces this with the gateway's route table and webhooks.
//! Journaling an effect is not doing it: the actions it asks for (redeploy,
//! retire, archive) stay pending in the rollout's state until a server's
//! deploy hook or a person (`rollgate rollout confirm-effect`) records them done.

use rollgate_core::rollout::Effect;
use rollgate_store::{EffectKey, EffectSink};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub const JOURNAL_FILE: &str = "effects.jsonl";

#[derive(Debug, Serialize, Deserialize)]
pub struct JournalLine {
    pub key: String,
    pub effect: Effect,
}

pub struct Journal {
    path: PathBuf,
    seen: Mutex<HashSet<String>>,
}

impl Journal {
    /// Opens the journal in `dir`, remembering the keys it already holds.
    pub fn open(dir: &Path) -> anyhow::Result<Journal> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(JOURNAL_FILE);
        let mut seen = HashSet::new();
        if let Ok(file) = File::open(&path) {
            for line in BufReader::new(file).lines() {
                // A line cut short by a crash mid-write is not a delivery; it is skipped.
                if let Ok(entry) = serde_json::from_str::<JournalLine>(&line?) {
                    seen.insert(entry.key);
                }
            }
        }
        Ok(Journal { path, seen: Mutex::new(seen) })
    }

    fn append(&self, key: &EffectKey, effect: &Effect) -> Result<(), String> {
        let mut seen = self.seen.lock().map_err(|_| "journal lock poisoned".to_string())?;
        if !seen.insert(key.to_string()) {
            return Ok(());
        }
        let line = serde_json::to_string(&JournalLine { key: key.to_string(), effect: effect.clone() })
            .map_err(|e| e.to_string())?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
        writeln!(file, "{line}")
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        crate::commands::failpoint("after-effect");
        Ok(())
    }
}

impl EffectSink for Journal {
    async fn carry_out(&self, key: &EffectKey, effect: &Effect) -> Result<(), String> {
        self.append(key, effect)
    }
}
