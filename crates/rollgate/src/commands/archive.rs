//! `rollgate archive verify DIR`: an archive checked offline, from its files alone.

use crate::Refused;
use crate::cli::ArchiveCommand;
use anyhow::Context;
use rollgate_core::archive::{MANIFEST, Problem, verify};
use std::collections::BTreeMap;
use std::path::Path;

pub fn run(command: ArchiveCommand) -> anyhow::Result<()> {
    let ArchiveCommand::Verify { dir, sha256, json } = command;
    let files = read_dir(&dir)?;
    let mut result = verify(&files);
    if let (Ok(verified), Some(expected)) = (&result, &sha256)
        && !verified.manifest_sha256.eq_ignore_ascii_case(expected)
    {
        result = Err(vec![Problem {
            file: MANIFEST.into(),
            detail: format!(
                "its sha256 is {}, the log recorded {expected}: the archive was rewritten",
                verified.manifest_sha256
            ),
        }]);
    }
    match result {
        Ok(verified) if json => {
            println!("{}", serde_json::to_string_pretty(&verified)?);
            Ok(())
        }
        Ok(v) => {
            println!(
                "{}: archive of {} verified: {} files match MANIFEST.json, {} events chained to head {}",
                dir.display(),
                v.rollout,
                v.files,
                v.events,
                v.head
            );
            println!("MANIFEST.json sha256 {} (compare with the one the rollout's log recorded)", v.manifest_sha256);
            Ok(())
        }
        Err(problems) if json => {
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "problems": problems }))?);
            Err(Refused(String::new()).into())
        }
        Err(problems) => {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            Err(Refused(format!("{}: the archive does not verify:\n  {}", dir.display(), lines.join("\n  "))).into())
        }
    }
}

/// Every regular file directly in `dir`, by name. Subdirectories are named as
/// files too, so that anything added to an archive shows.
fn read_dir(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read the archive directory {}", dir.display()))?;
    let mut files = BTreeMap::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = if entry.file_type()?.is_file() {
            std::fs::read(entry.path()).with_context(|| format!("cannot read {}", entry.path().display()))?
        } else {
            Vec::new()
        };
        files.insert(name, bytes);
    }
    Ok(files)
}
