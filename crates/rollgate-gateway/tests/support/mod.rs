//! Helpers shared by the gateway's test files.

/// The value of one series in Prometheus text (the whole series name with its
/// labels, e.g. `rollgate_requests_total{service="scorer",...}`), if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Fails unless `promtool check metrics` finds nothing wrong with the exposition.
pub fn assert_promtool_clean(metrics: &str) {
    let out = promtool_check(metrics)
        .expect("promtool (Debian's prometheus package) must be installed: scripts/test.sh installs it");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `promtool check metrics` with the exposition on its standard input.
fn promtool_check(metrics: &str) -> std::io::Result<std::process::Output> {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().expect("piped stdin").write_all(metrics.as_bytes())?;
    child.wait_with_output()
}
