//! A signed record, kept outside the database, of where every stream of the
//! log ended. A hash chain shows an edit, a gap or a reordering by itself,
//! but not events cut off its end (what is left is a shorter, valid chain),
//! nor a chain rewritten and rehashed whole by someone who can write the
//! database. The head file, signed with a key the database never holds,
//! shows both: `rollgate audit verify --head-file` checks every stream still
//! reaches its recorded head.

use crate::notify::signature;
use rollgate_core::Timestamp;
use rollgate_core::audit::StreamHead;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

/// Where the server keeps the head, and the key it signs it with.
#[derive(Clone)]
pub struct HeadFile {
    pub path: PathBuf,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for HeadFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadFile").field("path", &self.path).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    pub at: Timestamp,
    pub streams: Vec<StreamHead>,
    /// `sha256=<hex HMAC-SHA256>` of the moment and the heads.
    pub signature: String,
}

impl SignedHead {
    pub fn new(at: Timestamp, streams: Vec<StreamHead>, key: &[u8]) -> SignedHead {
        let signature = signature(key, signed_text(at, &streams).as_bytes());
        SignedHead { at, streams, signature }
    }

    /// Whether `key` made this signature over these heads.
    pub fn signed_by(&self, key: &[u8]) -> bool {
        let expected = signature(key, signed_text(self.at, &self.streams).as_bytes());
        expected.as_bytes().ct_eq(self.signature.as_bytes()).into()
    }

    pub fn read(path: &Path) -> Result<SignedHead, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{} is not a head file: {e}", path.display()))
    }

    /// Writes the file whole or not at all (beside it, then renamed over it).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let partial = path.with_extension("partial");
        std::fs::write(&partial, serde_json::to_vec_pretty(self).unwrap_or_default())?;
        std::fs::File::open(&partial)?.sync_all()?;
        std::fs::rename(partial, path)
    }
}

fn signed_text(at: Timestamp, streams: &[StreamHead]) -> String {
    serde_json::to_string(&(at, streams)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_key_that_signed_the_heads_verifies_them() {
        let at: Timestamp = "2026-11-26T09:00:00Z".parse().unwrap();
        let heads = vec![StreamHead { stream: "r1".into(), seq: 4, hash: "ab".repeat(32) }];
        let head = SignedHead::new(at, heads, b"the key");
        assert!(head.signed_by(b"the key"));
        assert!(!head.signed_by(b"another key"));
        let mut shortened = head.clone();
        shortened.streams[0].seq = 3;
        assert!(!shortened.signed_by(b"the key"), "a head moved back no longer verifies");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.json");
        head.write(&path).unwrap();
        assert_eq!(SignedHead::read(&path).unwrap(), head);
    }
}
