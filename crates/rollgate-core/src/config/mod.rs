//! `rollgate.toml`: services (route, wire protocol, stable version) with
//! their versions (endpoints, artifact, model card, owner), plans over the
//! built-in default, roles and organisation-wide policy.
//!
//! Parsing never stops at the first problem: each section and each entry is
//! read on its own, and every problem is reported with file:line:column.

mod diagnostic;
mod validate;

pub use diagnostic::Diagnostic;
pub use validate::{MAX_NAME_LEN, SLUG_HINT, check_url, is_slug};

use crate::hold::Hold;
use crate::plan::{DEFAULT_PLAN, Plan};
use crate::roles::Role;
use crate::rollout::NotificationKind;
use crate::weight::Weight;
use crate::window::Freeze;
use diagnostic::Locator;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// A commented example that passes `rollgate check`; `rollgate init` writes it.
pub const EXAMPLE: &str = include_str!("example.toml");

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub services: BTreeMap<String, Service>,
    pub plans: BTreeMap<String, Plan>,
    /// People and the roles they hold.
    pub roles: BTreeMap<String, Vec<Role>>,
    pub policy: Policy,
    pub notifications: Notifications,
    pub metrics: Metrics,
    /// How rollgate asks the deployment system to redeploy or retire a
    /// version, for every service without a `deploy` of its own.
    pub deploy: Option<DeployHook>,
    /// How rollgate closes (or comments on) a rollout's deployment ticket when
    /// it ends: a hook of the same kind, run with the outcome (`{effect}` is
    /// `close_ticket`; `{ticket}`, ROLLGATE_TICKET, ROLLGATE_OUTCOME,
    /// ROLLGATE_SUMMARY and ROLLGATE_LINK say what to write).
    pub tickets: Option<DeployHook>,
}

/// A deploy hook: a command, or a webhook, that redeploys or retires a
/// version. Each run carries an idempotency key that is the same on every
/// retry and after a restart: delivery is at least once, so the hook must
/// recognise a repeat.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployHook {
    /// A program and its arguments, run without a shell. `{effect}`
    /// (redeploy or retire), `{service}`, `{version}`, `{rollout}` and `{key}`
    /// in an argument are replaced; the environment has ROLLGATE_EFFECT,
    /// ROLLGATE_SERVICE, ROLLGATE_VERSION, ROLLGATE_ENDPOINTS,
    /// ROLLGATE_ROLLOUT, ROLLGATE_EFFECT_ID and ROLLGATE_IDEMPOTENCY_KEY.
    #[serde(default)]
    pub command: Option<Spanned<Vec<String>>>,
    /// Or a URL that is POSTed the effect as JSON, signed like notifications.
    #[serde(default)]
    pub webhook: Option<Spanned<String>>,
    /// The environment variable holding the webhook's HMAC-SHA256 key.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// How long one run may take before it is stopped and counted as failed.
    #[serde(default = "DeployHook::default_timeout")]
    pub timeout: Hold,
    /// Runs before the action is handed to a person.
    #[serde(default = "DeployHook::default_attempts")]
    pub attempts: u32,
    /// Wait after the first failed run; doubled after each further one, up to 10 minutes.
    #[serde(default = "DeployHook::default_backoff")]
    pub backoff: Hold,
}

impl DeployHook {
    fn default_timeout() -> Hold {
        Hold::from_secs(600)
    }
    fn default_attempts() -> u32 {
        5
    }
    fn default_backoff() -> Hold {
        Hold::from_secs(10)
    }
}

/// An environment variable the config needs, and where it names it.
#[derive(Debug, Clone, PartialEq)]
pub struct NeededSecret {
    pub var: String,
    /// What needs it and what happens without it.
    pub what: String,
    pub span: std::ops::Range<usize>,
}

impl Config {
    /// The environment variables holding signing keys that `serve` needs (it
    /// refuses to start without a notification webhook's key; a deploy
    /// webhook without its key fails every run).
    pub fn needed_secrets(&self) -> Vec<NeededSecret> {
        let webhooks = self.notifications.webhooks.iter().filter_map(|w| {
            Some(NeededSecret {
                var: w.secret_env.clone()?,
                what: format!(
                    "the signing key of webhook {}: `rollgate serve` refuses to start without it",
                    w.url.get_ref()
                ),
                span: w.url.span(),
            })
        });
        let hooks = self.services.values().filter_map(|s| s.deploy.as_ref()).chain(self.deploy.as_ref());
        let hooks = hooks.map(|h| ("deploy", h)).chain(self.tickets.as_ref().map(|h| ("ticket", h)));
        let deploys = hooks.filter_map(|(kind, h)| {
            let url = h.webhook.as_ref()?;
            Some(NeededSecret {
                var: h.secret_env.clone()?,
                what: format!("the signing key of {kind} webhook {}: every run would fail without it", url.get_ref()),
                span: url.span(),
            })
        });
        webhooks.chain(deploys).collect()
    }

    /// The deploy hook of a service: its own, or the global one.
    pub fn deploy_hook(&self, service: &str) -> Option<&DeployHook> {
        self.services.get(service).and_then(|s| s.deploy.as_ref()).or(self.deploy.as_ref())
    }
}

/// Where the judge reads metrics computed elsewhere.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// A Prometheus server's base URL, for the plans' `rollback.external` queries.
    #[serde(default)]
    pub prometheus: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub route: RouteMatch,
    pub protocol: Protocol,
    /// The version serving production now.
    pub stable: Spanned<String>,
    /// The plan rollouts of this service follow.
    #[serde(default = "default_plan_name")]
    pub plan: Spanned<String>,
    #[serde(default)]
    pub sticky: Option<Sticky>,
    /// A fixed split outside any rollout (A/B tests): version → percent, summing to 100.
    #[serde(default)]
    pub split: Option<Spanned<BTreeMap<String, Weight>>>,
    /// Copy a share of the traffic to a shadow version outside any rollout.
    #[serde(default)]
    pub mirror: Option<MirrorSpec>,
    /// A share of the requests written to disk, redacted, for staging samples and suites.
    #[serde(default)]
    pub capture: Option<CaptureSpec>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Active health checks of every endpoint (off unless set).
    #[serde(default)]
    pub health: Option<HealthCheck>,
    /// The service's runbook, monitoring plan and rollback plan (paths from the config file's directory),
    /// which `rollgate validate --docs` checks for the plan's required sections.
    #[serde(default)]
    pub docs: ServiceDocs,
    /// The `infrastructure.logging_enabled` gate's proof, checked by rollgate.
    #[serde(default)]
    pub logging_check: Option<LoggingCheck>,
    /// Evaluation suites (directories beside the config) rollgate runs itself against every candidate in
    /// pre-deployment: the validation and documentation gates' evidence, recorded by rollgate.
    #[serde(default)]
    pub suites: Vec<String>,
    /// Passive ejection of endpoints that keep failing real requests.
    #[serde(default)]
    pub ejection: Ejection,
    #[serde(default)]
    pub limits: Limits,
    /// How the gateway speaks TLS to the service's `https://` endpoints.
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    #[serde(default)]
    pub versions: BTreeMap<String, Version>,
    /// This service's deploy hook, instead of the global `[deploy]`.
    #[serde(default)]
    pub deploy: Option<DeployHook>,
    /// For `protocol = "json"`: JSON pointers to the answer's label, score or text, for shadow comparison.
    #[serde(default)]
    pub outputs: Pointers,
    /// How to ask an endpoint which version it serves, so that the version a
    /// rollback brought back (or redeployed) is checked to be the right one.
    #[serde(default)]
    pub version_probe: Option<VersionProbe>,
}

/// `GET path` on an endpoint answers JSON whose string at `pointer` names the
/// version it serves (a version's `reports_as`, or its name).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VersionProbe {
    pub path: String,
    /// A JSON pointer (RFC 6901), e.g. "/model_version".
    pub pointer: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorSpec {
    pub version: Spanned<String>,
    /// The share of requests copied (with a `flag`, at most this much).
    #[serde(default = "MirrorSpec::everything")]
    pub percent: Weight,
    /// Dark launch: a feature flag says how much of `percent` is copied now
    /// (its rollout percentage; killed or missing, nothing), so the copies
    /// are raised, lowered and stopped without a deploy.
    #[serde(default)]
    pub flag: Option<String>,
}

impl MirrorSpec {
    fn everything() -> Weight {
        Weight::FULL
    }
}

/// Traffic capture: a share of a service's requests written as JSONL under
/// the data directory (`capture/SERVICE/`), redacted before they touch disk,
/// in files rotated by size; `rollgate capture export` turns them into a
/// staging sample.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureSpec {
    /// The share of requests written.
    pub percent: Weight,
    /// Regular expressions redacted besides the built-in ones (tokens, keys, e-mail addresses, card numbers).
    pub redact: Vec<String>,
    /// JSON pointers whose values are redacted whole (e.g. `/user`).
    pub redact_pointers: Vec<String>,
    /// A file is closed and a new one begun past this size.
    pub max_file_bytes: u64,
    /// The oldest files are deleted beyond this many.
    pub max_files: u32,
    /// Requests with a larger (or unknown) body are not captured.
    pub max_body_bytes: u64,
    /// Also write each captured request's answer (status, latency, the body's first part), redacted alike.
    pub answers: bool,
}

impl Default for CaptureSpec {
    fn default() -> Self {
        CaptureSpec {
            percent: Weight::from_basis_points(100).unwrap_or(Weight::ZERO),
            redact: Vec::new(),
            redact_pointers: Vec::new(),
            max_file_bytes: 16 * 1024 * 1024,
            max_files: 8,
            max_body_bytes: 64 * 1024,
            answers: false,
        }
    }
}

/// Probing each endpoint: `GET path` every `interval`; an endpoint is taken
/// out after `unhealthy_after` failed probes and back after `healthy_after` good ones.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Hold,
    pub timeout: Hold,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: "/healthz".into(),
            interval: Hold::from_secs(5),
            timeout: Hold::from_secs(1),
            unhealthy_after: 3,
            healthy_after: 2,
        }
    }
}

/// An endpoint whose real requests fail `after` times in a row (refused,
/// reset, timed out) is left out for `for` (unless it is the last one).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ejection {
    pub after: u32,
    #[serde(rename = "for")]
    pub duration: Hold,
}

impl Default for Ejection {
    fn default() -> Self {
        Ejection { after: 5, duration: Hold::from_secs(30) }
    }
}

/// TLS to a service's model servers (its `https://` endpoints): the
/// system's root certificates plus `ca_file`, SNI and the checked name from
/// the endpoint's host (or `server_name`), and for mutual TLS a client
/// certificate. Files are PEM, read when the routing is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// CA certificates trusted besides the system's (e.g. an in-cluster CA).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The certificate chain the gateway presents (mutual TLS); needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<String>,
    #[serde(default)]
    pub client_key: Option<String>,
    /// The name sent in SNI and checked against the server's certificate, instead of the endpoint's host.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// How long the gateway waits on a model server.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    pub connect: Hold,
    /// The TLS handshake with an `https://` endpoint, after the connection.
    pub handshake: Hold,
    /// Until the response's headers arrive.
    pub first_byte: Hold,
    /// The whole exchange, body included (streams too).
    pub total: Hold,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Hold::from_secs(2),
            handshake: Hold::from_secs(5),
            first_byte: Hold::from_secs(60),
            total: Hold::from_secs(300),
        }
    }
}

/// Size limits the gateway enforces.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_request_bytes: u64,
    pub max_response_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_request_bytes: 16 * 1024 * 1024, max_response_bytes: 64 * 1024 * 1024 }
    }
}

fn default_plan_name() -> Spanned<String> {
    Spanned::new(0..0, DEFAULT_PLAN.to_string())
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
}

/// The inference wire format a service speaks (see `rollgate_protocol`).
pub use rollgate_protocol::{Pointers, Protocol};

/// How a user is kept on the same version across requests.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sticky {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub cookie: Option<String>,
    /// A JSON pointer into the request's body (e.g. "/user", OpenAI's end-user
    /// field, or "/metadata/conversation_id"), so a conversation stays on one
    /// version; the body is read before the version is chosen, for this service only.
    #[serde(default)]
    pub body: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    pub endpoints: Vec<Spanned<String>>,
    pub artifact: Artifact,
    #[serde(default)]
    pub model_card: Option<String>,
    pub owner: String,
    /// What its endpoints answer to the service's `version_probe` (default: the version's name).
    #[serde(default)]
    pub reports_as: Option<String>,
    /// How the version scales, as deployed: the `infrastructure.scaling_declared` gate's proof.
    #[serde(default)]
    pub scaling: Option<Scaling>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scaling {
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// What it scales on (e.g. "cpu 70%", "queue depth"), in words.
    #[serde(default)]
    pub on: Option<String>,
}

/// How rollgate confirms that a service's logging works: a URL that answers 2xx,
/// or a command (argv, no shell) that exits 0.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingCheck {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDocs {
    #[serde(default)]
    pub runbook: Option<String>,
    #[serde(default)]
    pub monitoring_plan: Option<String>,
    #[serde(default)]
    pub rollback_plan: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub uri: String,
    pub sha256: Spanned<String>,
}

/// Where stakeholders are told what happens.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
}

/// A webhook fired on stage changes, rollbacks, pauses and completion.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: Spanned<String>,
    #[serde(default)]
    pub format: WebhookFormat,
    /// The environment variable holding the HMAC-SHA256 key the body is
    /// signed with (kept out of the config file).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Only these notifications (default: all).
    #[serde(default)]
    pub events: Vec<NotificationKind>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// The notification as a JSON object.
    #[default]
    Json,
    /// `{"text": …}`, which Slack-compatible incoming webhooks accept.
    Slack,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Freezes that apply to every plan, on top of the plan's own.
    #[serde(default)]
    pub freezes: Vec<Freeze>,
}

impl Config {
    /// Parses and checks a config file; `file` names it in diagnostics.
    pub fn parse(file: &str, text: &str) -> Result<Config, Vec<Diagnostic>> {
        let locate = Locator::new(file, text);
        let (root, syntax) = DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            // Past a syntax error the document's shape is a guess: report
            // the syntax errors alone.
            return Err(syntax.iter().map(|e| locate.toml_error(e)).collect());
        }
        let mut problems = Vec::new();
        let mut config = Config::default();
        // Plans that exist but could not be read: references to them are
        // not reported again as references to missing plans.
        let mut unreadable_plans = Vec::new();
        for (key, value) in root.get_ref() {
            match key.get_ref().as_ref() {
                "services" => config.services = read_entries(value, &locate, &mut problems),
                "plans" => {
                    let before = problems.len();
                    config.plans = read_entries(value, &locate, &mut problems);
                    if problems.len() > before {
                        unreadable_plans.extend(entry_names(value).filter(|n| !config.plans.contains_key(n)));
                    }
                }
                "roles" => config.roles = read_entries(value, &locate, &mut problems),
                "policy" => {
                    if let Some(policy) = read_value(value, &locate, &mut problems) {
                        config.policy = policy;
                    }
                }
                "notifications" => {
                    if let Some(notifications) = read_value(value, &locate, &mut problems) {
                        config.notifications = notifications;
                    }
                }
                "metrics" => {
                    if let Some(metrics) = read_value(value, &locate, &mut problems) {
                        config.metrics = metrics;
                    }
                }
                "deploy" => config.deploy = read_value(value, &locate, &mut problems),
                "tickets" => config.tickets = read_value(value, &locate, &mut problems),
                other => problems.push(locate.at(
                    Some(key.span()),
                    format!("unknown section `{other}`"),
                    Some(
                        "the sections are services, plans, roles, policy, notifications, metrics, deploy and tickets"
                            .into(),
                    ),
                )),
            }
        }
        problems.extend(validate::check(&config, &unreadable_plans, root.get_ref(), &locate));
        if problems.is_empty() { Ok(config) } else { Err(problems) }
    }

    /// Whether `service` is a chat model (`protocol = "openai-chat"`), whose tokens are measured and judged.
    pub fn serves_chat(&self, service: &str) -> bool {
        self.services.get(service).is_some_and(|s| s.protocol == Protocol::OpenaiChat)
    }

    /// The plan a name refers to: one of the config's, or the built-in
    /// default, with the organisation's freezes added to its window.
    pub fn plan(&self, name: &str) -> Option<Plan> {
        let mut plan = match self.plans.get(name) {
            Some(plan) => plan.clone(),
            None if name == DEFAULT_PLAN => Plan::default(),
            None => return None,
        };
        plan.window.freezes.extend(self.policy.freezes.iter().cloned());
        Some(crate::plan::strategy::apply(plan))
    }

    /// Names of every plan a service may use.
    pub fn plan_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.plans.keys().cloned().collect();
        if !self.plans.contains_key(DEFAULT_PLAN) {
            names.insert(0, DEFAULT_PLAN.to_string());
        }
        names
    }
}

fn read_value<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    locate: &Locator<'_>,
    problems: &mut Vec<Diagnostic>,
) -> Option<T> {
    match T::deserialize(ValueDeserializer::from(value.clone())) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(locate.toml_error(&e));
            None
        }
    }
}

fn entry_names<'a>(value: &'a Spanned<DeValue<'_>>) -> impl Iterator<Item = String> + 'a {
    value.get_ref().as_table().into_iter().flat_map(|t| t.keys().map(|k| k.get_ref().to_string()))
}

/// Reads a table of named entries one by one, so one bad entry does not
/// hide the problems of the others.
fn read_entries<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    locate: &Locator<'_>,
    problems: &mut Vec<Diagnostic>,
) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    let Some(table) = value.get_ref().as_table() else {
        problems.push(locate.at(
            Some(value.span()),
            "expected a table of named entries",
            Some("write it as [section.NAME] tables".into()),
        ));
        return out;
    };
    for (name, entry) in table {
        if let Some(v) = read_value(entry, locate, problems) {
            out.insert(name.get_ref().to_string(), v);
        }
    }
    out
}
