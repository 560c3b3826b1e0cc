//! One run of a deploy hook: the team's command (run without a shell, with
//! the effect in its arguments and environment) or a webhook (the effect as
//! JSON, signed like the notifications). Every run of one action carries the
//! same idempotency key, on retries and after a restart.

use crate::notify::{SIGNATURE_HEADER, signature};
use rollgate_core::config::DeployHook;
use serde::Serialize;
use std::time::Duration;

/// Header carrying the action's idempotency key on a webhook run.
pub const IDEMPOTENCY_HEADER: &str = "x-rollgate-idempotency-key";

/// What the hook is asked to do.
#[derive(Debug, Clone, Serialize)]
pub struct HookCall {
    /// `redeploy`, `retire`, `close_ticket`, or for a rolling batch `surge`,
    /// `replace`, `revert` or `unsurge` (of `endpoints`, to `version`).
    pub effect: &'static str,
    pub service: String,
    pub version: String,
    pub endpoints: Vec<String>,
    pub rollout: String,
    pub effect_id: String,
    pub idempotency_key: String,
    /// For `close_ticket`: the ticket and what to write on it.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<TicketCall>,
}

/// The ticket to close and how the rollout ended.
#[derive(Debug, Clone, Serialize)]
pub struct TicketCall {
    pub ticket: String,
    /// `completed`, `rolled_back` or `aborted`.
    pub outcome: String,
    pub summary: String,
    /// Where the rollout can be read (the API's view of it).
    pub link: Option<String>,
}

/// How one run went.
#[derive(Debug, Clone, PartialEq)]
pub struct HookOutcome {
    pub ok: bool,
    pub via: String,
    /// Exit code or HTTP status, and the tail of what it printed or answered.
    pub detail: String,
}

/// What is kept of a hook's output: its end, where the error usually is.
const OUTPUT_TAIL: usize = 2000;

pub async fn run(hook: &DeployHook, call: &HookCall, http: &reqwest::Client) -> HookOutcome {
    let timeout = hook.timeout.duration().try_into().unwrap_or(Duration::from_secs(600));
    match (&hook.command, &hook.webhook) {
        (Some(argv), _) => run_command(argv.get_ref(), call, timeout).await,
        (None, Some(url)) => post(url.get_ref(), hook.secret_env.as_deref(), call, http, timeout).await,
        (None, None) => {
            HookOutcome { ok: false, via: "nothing".into(), detail: "the hook has no command or webhook".into() }
        }
    }
}

fn placeholders(text: &str, call: &HookCall) -> String {
    text.replace("{effect}", call.effect)
        .replace("{service}", &call.service)
        .replace("{version}", &call.version)
        .replace("{rollout}", &call.rollout)
        .replace("{key}", &call.idempotency_key)
        .replace("{ticket}", call.ticket.as_ref().map_or("", |t| &t.ticket))
}

async fn run_command(argv: &[String], call: &HookCall, timeout: Duration) -> HookOutcome {
    let args: Vec<String> = argv.iter().map(|a| placeholders(a, call)).collect();
    let via = format!("command {}", args.join(" "));
    let Some((program, rest)) = args.split_first() else {
        return HookOutcome { ok: false, via, detail: "the command is empty".into() };
    };
    let ticket = call.ticket.iter().flat_map(|t| {
        [
            ("ROLLGATE_TICKET", t.ticket.clone()),
            ("ROLLGATE_OUTCOME", t.outcome.clone()),
            ("ROLLGATE_SUMMARY", t.summary.clone()),
            ("ROLLGATE_LINK", t.link.clone().unwrap_or_default()),
        ]
    });
    let child = tokio::process::Command::new(program)
        .args(rest)
        .envs(ticket)
        .envs([
            ("ROLLGATE_EFFECT", call.effect.to_string()),
            ("ROLLGATE_SERVICE", call.service.clone()),
            ("ROLLGATE_VERSION", call.version.clone()),
            ("ROLLGATE_ENDPOINTS", call.endpoints.join(",")),
            ("ROLLGATE_ROLLOUT", call.rollout.clone()),
            ("ROLLGATE_EFFECT_ID", call.effect_id.clone()),
            ("ROLLGATE_IDEMPOTENCY_KEY", call.idempotency_key.clone()),
        ])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let (ok, detail) = match tokio::time::timeout(timeout, child).await {
        Err(_) => (false, format!("stopped after {} s without finishing", timeout.as_secs())),
        Ok(Err(e)) => (false, format!("cannot run `{program}`: {e}")),
        Ok(Ok(output)) => {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            let status = output.status.code().map_or_else(|| "killed by a signal".into(), |c| format!("exit code {c}"));
            (output.status.success(), format!("{status}{}", tail(&text)))
        }
    };
    HookOutcome { ok, via, detail }
}

async fn post(
    url: &str,
    secret_env: Option<&str>,
    call: &HookCall,
    http: &reqwest::Client,
    timeout: Duration,
) -> HookOutcome {
    let via = format!("webhook {url}");
    let body = serde_json::to_string(call).unwrap_or_default();
    let mut request = http
        .post(url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .header(IDEMPOTENCY_HEADER, &call.idempotency_key);
    if let Some(var) = secret_env {
        match std::env::var(var) {
            Ok(key) => request = request.header(SIGNATURE_HEADER, signature(key.as_bytes(), body.as_bytes())),
            Err(_) => {
                let detail = format!("the environment variable {var} holding the signing key is not set");
                return HookOutcome { ok: false, via, detail };
            }
        }
    }
    let (ok, detail) = match request.body(body).send().await {
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            (status.is_success(), format!("HTTP {status}{}", tail(&text)))
        }
        Err(e) => (false, format!("no answer: {e}")),
    };
    HookOutcome { ok, via, detail }
}

/// `: <the last OUTPUT_TAIL bytes>` of a hook's output, or nothing when it printed nothing.
fn tail(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let start = text.len().saturating_sub(OUTPUT_TAIL);
    let start = (start..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
    format!(": {}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> HookCall {
        HookCall {
            effect: "redeploy",
            service: "fraud".into(),
            version: "v1".into(),
            endpoints: vec!["http://10.0.0.1".into(), "http://10.0.0.2".into()],
            rollout: "r1".into(),
            effect_id: "redeploy-v1".into(),
            idempotency_key: "r1/redeploy-v1".into(),
            ticket: None,
        }
    }

    fn hook(argv: &[&str]) -> DeployHook {
        let text = format!("command = {argv:?}\ntimeout = \"5s\"");
        toml::from_str(&text).unwrap()
    }

    #[tokio::test]
    async fn a_command_gets_the_effect_in_its_arguments_and_environment() {
        let script = r#"echo "$1 $2 $ROLLGATE_ENDPOINTS $ROLLGATE_IDEMPOTENCY_KEY""#;
        let outcome =
            run(&hook(&["sh", "-c", script, "sh", "{effect}", "{version}"]), &call(), &reqwest::Client::new()).await;
        assert!(outcome.ok, "{outcome:?}");
        assert_eq!(outcome.detail, "exit code 0: redeploy v1 http://10.0.0.1,http://10.0.0.2 r1/redeploy-v1");
    }

    #[tokio::test]
    async fn a_failing_or_missing_command_is_a_failed_run_with_its_output() {
        let failed = run(&hook(&["sh", "-c", "echo no capacity >&2; exit 3"]), &call(), &reqwest::Client::new()).await;
        assert_eq!((failed.ok, failed.detail.as_str()), (false, "exit code 3: no capacity"));
        let missing = run(&hook(&["/nonexistent/deploy"]), &call(), &reqwest::Client::new()).await;
        assert!(!missing.ok && missing.detail.starts_with("cannot run `/nonexistent/deploy`"), "{missing:?}");
    }

    #[test]
    fn only_the_end_of_long_output_is_kept() {
        let long = "x".repeat(5000) + "the error";
        let kept = tail(&long);
        assert!(kept.ends_with("the error") && kept.len() == OUTPUT_TAIL + 2, "{}", kept.len());
    }
}
