//! The README's command blocks are executable documentation: the quick start
//! and "Running the control plane" run here, in order, as written, in an
//! empty directory, with the built binary first on PATH. A command that fails
//! fails the test.
//!
//! Only the clocks are pinned (to a Thursday morning, so that the example
//! plan's deploy window lets rollouts start whatever day the test runs), and
//! the background processes the README starts are stopped at the end.

use std::path::Path;
use std::process::Command;

const THURSDAY: &str = "2026-11-26T09:00:00Z";

/// The first ```sh block after `heading`.
fn block_after<'a>(readme: &'a str, heading: &str) -> &'a str {
    let section = &readme[readme.find(heading).unwrap_or_else(|| panic!("the README has no {heading:?}"))..];
    let start = section.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = section[start..].find("```").expect("the block ends");
    &section[start..start + end]
}

#[test]
fn the_readme_quick_start_and_control_plane_commands_run_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let quick_start = block_after(&readme, "## Quick start");
    let control_plane = block_after(&readme, "## Running the control plane");
    assert!(quick_start.contains("rollgate init") && control_plane.contains("rollgate serve &"));
    let bin = Path::new(env!("CARGO_BIN_EXE_rollgate")).parent().unwrap().to_path_buf();
    let script = format!(
        "set -euo pipefail\n\
         trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT\n\
         echo '--- quick start'\n{quick_start}\n\
         echo '--- running the control plane'\n{control_plane}\n\
         echo '--- all commands ran'\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
        .env("ROLLGATE_NOW", THURSDAY)
        .env("ROLLGATE_CLOCK", format!("speed=1,origin={THURSDAY}"))
        .env("HOME", dir.path())
        .env_remove("ROLLGATE_SERVER")
        .env_remove("ROLLGATE_TOKEN")
        .env_remove("ROLLGATE_CONFIG")
        .env_remove("ROLLGATE_DATABASE")
        .env_remove("ROLLGATE_DATA_DIR")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "a README command failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("--- all commands ran"), "{stdout}");
    // What the commands said, where it shows they did their job.
    assert!(stdout.contains("fraud-v2: rollback accepted; now rolled back (full)"), "{stdout}");
    assert!(stdout.contains("fraud-v2: confirm_action accepted"), "{stdout}");
    let traffic = stdout.lines().find(|l| l.starts_with("sent ")).expect("sim traffic reports what it sent");
    assert!(!traffic.contains(", ok 0,"), "the sample reached the models through the gateway: {traffic}");
    assert!(stdout.contains("registered fraud-scorer v3"), "{stdout}");
    assert!(stdout.matches("every chain intact").count() == 2, "{stdout}");
}
