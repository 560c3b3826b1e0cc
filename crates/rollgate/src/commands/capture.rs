//! `rollgate capture export`: the requests a service captured (already
//! redacted by the gateway) as a staging sample, one request body a line.

use rollgate_core::Timestamp;
use rollgate_core::hold::Hold;
use rollgate_gateway::capture::ExportError;
use std::path::Path;

/// Writes `service`'s requests captured since `now - last` to `out`; says what it wrote.
pub fn export(capture_dir: &Path, service: &str, last: Hold, out: &Path, now: Timestamp) -> anyhow::Result<String> {
    match rollgate_gateway::capture::export(capture_dir, service, now - last.duration(), out) {
        Ok(e) => Ok(format!(
            "wrote {} requests of `{service}` captured in the last {last} to {} ({} older left out, {} unreadable lines skipped)",
            e.written,
            out.display(),
            e.older,
            e.unreadable
        )),
        // Nothing to export is the user's situation to fix, not a failure of the command.
        Err(e @ (ExportError::NoCapture { .. } | ExportError::Empty { .. })) => Err(crate::Refused(format!(
            "{e}; a service captures with `capture = {{ percent = 1 }}` under [services.NAME], and --capture-dir names where the gateway writes"
        ))
        .into()),
        Err(e) => Err(e.into()),
    }
}
