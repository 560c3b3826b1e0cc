//! The command line: what a person types. Each subcommand's work lives in `commands/`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "rollgate",
    version,
    about = "Ship machine-learning models as a gated, staged process: validation, staging, shadow, canary, full deployment, with rollback and an audit log.",
    after_help = "Start with `rollgate init && rollgate check`. Exit codes: 0 success, 1 error, 2 usage, 3 refused (a failed check, a blocked or forbidden action, a broken audit chain)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented example rollgate.toml that passes `rollgate check`.
    Init {
        /// Where to write it.
        #[arg(default_value = "rollgate.toml")]
        path: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Check a config file and report every problem with file:line:column and a hint.
    Check {
        /// The config file (or --config FILE, as every other command takes it).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        #[arg(long = "config", value_name = "FILE", env = "ROLLGATE_CONFIG", conflicts_with = "file")]
        config: Option<PathBuf>,
        /// Print the problems as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the plans a rollout can follow.
    Plan {
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// Start and steer rollouts: through a server (--server), or directly on the data directory.
    Rollout {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// Replicas on PostgreSQL: which one leads (runs the reconciler), its lease's fencing token, and every
    /// member's address and last heartbeat.
    Cluster {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Read and verify the tamper-evident event log.
    Audit {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// A period across rollouts: outcomes, rollbacks by cause, median time to detect, bad versions stopped
    /// before full traffic and the traffic they never reached, starts refused by the deploy window.
    Report {
        #[command(flatten)]
        target: Target,
        /// How far back from --to (e.g. 7d, 24h), when --from is not given.
        #[arg(long, default_value = "30d")]
        since: rollgate_core::hold::Hold,
        /// The period's start (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long)]
        from: Option<rollgate_core::Timestamp>,
        /// The period's end (RFC 3339; default now).
        #[arg(long)]
        to: Option<rollgate_core::Timestamp>,
        #[arg(long)]
        json: bool,
    },
    /// Validate a model before it ships: an evaluation suite (performance, bias, safety), edge-case probes and the
    /// documents, against an endpoint or a rollout's candidate (whose gates get the results as evidence).
    /// Exit code 0 when everything passes, 3 when not. See docs/validate.md.
    Validate(ValidateArgs),
    /// Prometheus rules and a Grafana dashboard for a service, from its plan.
    Monitoring {
        #[command(subcommand)]
        command: MonitoringCommand,
    },
    /// Check a finished rollout's archive offline (no database needed).
    Archive {
        #[command(subcommand)]
        command: ArchiveCommand,
    },
    /// The shadow stage's comparison of a rollout's candidate with production.
    Shadow {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: ShadowCommand,
    },
    /// Register model versions with a server.
    Version {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: VersionCommand,
    },
    /// Run the control plane (API, controller, notifications) and the gateway in one process.
    Serve(ServeArgs),
    /// Run only the gateway, on the config's static splits (no rollouts).
    Gateway {
        #[arg(long, default_value = "rollgate.toml", env = "ROLLGATE_CONFIG")]
        config: PathBuf,
        /// Address of the gateway; port 0 picks a free port (the chosen address is printed).
        #[arg(long, default_value = "127.0.0.1:8080", env = "ROLLGATE_GATEWAY_LISTEN")]
        listen: std::net::SocketAddr,
        /// Threads serving requests, each with its own listener and backend pool (default: one per core).
        #[arg(long, env = "ROLLGATE_GATEWAY_THREADS")]
        threads: Option<std::num::NonZeroUsize>,
        /// Where services with a `capture` write their redacted requests (`rollgate serve` uses DATA_DIR/capture).
        #[arg(long, default_value = ".rollgate/capture", env = "ROLLGATE_CAPTURE_DIR")]
        capture_dir: PathBuf,
    },
    /// See rollgate do its job in under a minute: simulated models, gateway, control plane, two rollouts.
    Demo(DemoArgs),
    /// Rehearse a plan on a virtual clock against simulated traffic and a fault scenario: the timeline,
    /// the hour each step would advance, and where and why a rollback would happen.
    Rehearse {
        /// The plan (the built-in `default`, or one from the config).
        #[arg(default_value = "default")]
        plan: String,
        #[arg(long, default_value = "rollgate.toml", env = "ROLLGATE_CONFIG")]
        config: PathBuf,
        /// A scenario id from the judge benchmark's set (N0 healthy, P3 crash-like errors, P5 latency x2, …).
        #[arg(long, default_value = "N0")]
        scenario: String,
        /// A scenario file in the judge benchmark's format (`rollgate bench judge --print-scenarios`).
        #[arg(long)]
        scenarios: Option<PathBuf>,
        /// Total requests a second.
        #[arg(long, default_value_t = 100)]
        rate: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How many instances the stable version has, for a rolling plan (replaced batch by batch).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1000))]
        instances: u16,
        #[arg(long)]
        json: bool,
    },
    /// Stand-ins for your model servers and your users: `rollgate sim model`, `rollgate sim traffic`.
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
    /// Benchmarks that run on their own: `rollgate bench judge`.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Feature flags, served to applications over OpenFeature's OFREP: create, set (e.g. the rollout
    /// percentage), kill (takes effect on the next evaluation), enable, show, list. Every change is audited.
    Flag {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: FlagCommand,
    },
    /// Traffic captured by services with a `capture` (redacted before it was written): export a sample.
    Capture {
        #[command(subcommand)]
        command: CaptureCommand,
    },
    /// Create, list and revoke API tokens, directly on the data directory or database.
    Token {
        #[command(flatten)]
        store: StoreArgs,
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// A simulated model server (OpenAI chat with streaming, KServe v2, plain JSON) that injects faults;
    /// change them while it runs with `curl -X PUT URL/_sim/faults -d '{"error_rate":0.2}'`.
    Model {
        #[arg(long, default_value = "127.0.0.1:9001")]
        listen: std::net::SocketAddr,
        #[arg(long, default_value = "model")]
        name: String,
        /// Answers are a function of the seed and the request.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Initial faults as JSON, e.g. '{"error_rate":0.05,"latency_ms":20,"tail_share":0.01,"tail_factor":10}';
        /// also wrong_rate (wrong labels), wrong_group (always wrong where the body has this text), crash_over_bytes (cut the connection on a larger body),
        /// flaky_rate (answers that change from call to call), hang, crash, slow_start_ms, token_ms.
        #[arg(long, default_value = "{}")]
        faults: String,
        /// Fault changes by time after start, as JSON, e.g.
        /// '[{"after":"30s","faults":{"error_rate":0.2}},{"after":"90s","faults":{"error_rate":0}}]'.
        #[arg(long)]
        schedule: Option<String>,
    },
    /// Open-loop traffic from many users (sticky x-user-id), with ratings and complaints.
    Traffic {
        /// Where requests go, e.g. http://127.0.0.1:8080/v2/models/fraud/infer.
        url: String,
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 1000)]
        users: u64,
        /// A JSONL file of request bodies to replay in turn (e.g. sanitized production samples).
        #[arg(long)]
        replay: Option<PathBuf>,
        /// The gateway's feedback URL (http://HOST:PORT/feedback) for ratings and complaints.
        #[arg(long)]
        feedback: Option<String>,
        #[arg(long, default_value_t = 0.0)]
        rating_rate: f64,
        #[arg(long, default_value_t = 0.0)]
        complaint_rate: f64,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Requests a second the simulated users send through the gateway.
    #[arg(long, default_value_t = 800.0)]
    pub rate: f64,
    /// Stay up after the two rollouts (the API and gateway addresses are printed).
    #[arg(long)]
    pub keep_running: bool,
    /// Keep the event log in this directory (default: a temporary one, removed at the end).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Race rollgate's judge against Flagger-, Argo- and Kayenta-like judges and an oracle on seeded simulations.
    Judge(BenchJudgeArgs),
    /// The shadow gate on seeded A/A and excess-disagreement streams: how often it blocks an identical
    /// candidate, and how many paired requests it needs to catch a given excess.
    Shadow(BenchShadowArgs),
}

#[derive(Debug, Args)]
pub struct BenchShadowArgs {
    /// The excess disagreement the gate allows (the plan's shadow.max_excess_disagreement).
    #[arg(long, default_value_t = 0.02)]
    pub bound: f64,
    /// The false-block budget (the plan's shadow.false_block_budget).
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    #[arg(long, default_value_t = 200)]
    pub min_pairs: u64,
    /// A run stops undecided after this many pairs.
    #[arg(long, default_value_t = 50_000)]
    pub max_pairs: u64,
    /// Seeded runs per cell.
    #[arg(long, default_value_t = 1000)]
    pub runs: u64,
    #[arg(long, default_value_t = rollgate_judge::sim::DEFAULT_SEED)]
    pub seed: u64,
    /// Noise floors (how often production disagrees with itself), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [0.0, 0.02, 0.10])]
    pub noise: Vec<f64>,
    /// True excesses to run besides 0 (A/A) and the bound itself, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [0.05, 0.10])]
    pub excess: Vec<f64>,
    /// The share of pairs also sent to production again (the plan's shadow.noise_percent / 100).
    #[arg(long, default_value_t = 1.0)]
    pub noise_share: f64,
}

#[derive(Debug, Args)]
pub struct BenchJudgeArgs {
    /// A TOML file of scenarios (default: the built-in set; `rollgate bench judge --print-scenarios` shows it).
    #[arg(long)]
    pub scenarios: Option<PathBuf>,
    /// Simulated rollouts per scenario, drift condition and rate.
    #[arg(long, default_value_t = 200)]
    pub runs: u64,
    #[arg(long, default_value_t = rollgate_judge::sim::DEFAULT_SEED)]
    pub seed: u64,
    /// Only these scenario ids (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    /// Only these total request rates (comma-separated), instead of the file's.
    #[arg(long, value_delimiter = ',')]
    pub rates: Option<Vec<u32>>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<std::num::NonZeroUsize>,
    #[arg(long)]
    pub json: bool,
    /// Print the built-in scenario file (a starting point for your own) and exit.
    #[arg(long)]
    pub print_scenarios: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, default_value = "rollgate.toml", env = "ROLLGATE_CONFIG")]
    pub config: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address of the API; port 0 picks a free port (the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:7070", env = "ROLLGATE_LISTEN")]
    pub listen: std::net::SocketAddr,
    /// Address of the gateway in front of the model servers; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080", env = "ROLLGATE_GATEWAY_LISTEN")]
    pub gateway_listen: std::net::SocketAddr,
    /// Threads serving gateway requests, each with its own listener and backend pool (default: one per core).
    #[arg(long, env = "ROLLGATE_GATEWAY_THREADS")]
    pub gateway_threads: Option<std::num::NonZeroUsize>,
    /// How often the controller lets time pass for every rollout (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = parse_tick)]
    pub tick: std::time::Duration,
    /// Run on a faster clock: speed=3600,origin=2026-11-26T09:00:00Z[,anchor=…] (rehearsals, demos, tests).
    #[arg(long, env = "ROLLGATE_CLOCK", hide = true)]
    pub clock: Option<String>,
    /// Where finished rollouts are archived (default: DATA_DIR/archive).
    #[arg(long, env = "ROLLGATE_ARCHIVE_DIR")]
    pub archive_dir: Option<PathBuf>,
    /// Keep a signed head of the log in this file, outside the database, so that events cut off the
    /// end of a stream are caught too (`rollgate audit verify --head-file`). Needs a key (--head-key-env).
    #[arg(long, env = "ROLLGATE_HEAD_FILE", value_name = "FILE")]
    pub head_file: Option<PathBuf>,
    /// The environment variable holding the head file's HMAC-SHA256 key.
    #[arg(long, default_value = "ROLLGATE_HEAD_KEY")]
    pub head_key_env: String,
    /// Replicas on PostgreSQL: how long the leader's lease lasts unless renewed (a dead leader is
    /// replaced within this plus --lease-renew).
    #[arg(long, default_value = "5s", value_parser = parse_tick, env = "ROLLGATE_LEASE")]
    pub lease: std::time::Duration,
    /// Replicas on PostgreSQL: how often the lease is renewed (or tried by a follower).
    #[arg(long, default_value = "1s", value_parser = parse_tick, env = "ROLLGATE_LEASE_RENEW")]
    pub lease_renew: std::time::Duration,
}

fn parse_tick(text: &str) -> Result<std::time::Duration, String> {
    let ms = text.strip_suffix("ms").map(|n| n.parse::<u64>());
    let secs = text.strip_suffix('s').filter(|_| ms.is_none()).map(|n| n.parse::<f64>());
    match (ms, secs) {
        (Some(Ok(ms)), _) if ms > 0 => Ok(std::time::Duration::from_millis(ms)),
        (_, Some(Ok(s))) if s > 0.0 && s.is_finite() => Ok(std::time::Duration::from_secs_f64(s)),
        _ => Err(format!("`{text}` is not a tick: write it like 1s or 250ms")),
    }
}

/// A server to talk to, or else the local store.
#[derive(Debug, Args)]
pub struct Target {
    /// The rollgate server's URL (e.g. http://127.0.0.1:7070); without it, commands work on the store directly.
    #[arg(long, global = true, env = "ROLLGATE_SERVER")]
    pub server: Option<String>,
    /// The API token (default: ROLLGATE_TOKEN, then the file ~/.config/rollgate/token).
    #[arg(long, global = true, env = "ROLLGATE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub enum CaptureCommand {
    /// Write the requests a service captured in the last `--last` as JSONL, one request body a line:
    /// the format of staging's `traffic` sample and of `rollgate sim traffic --replay`.
    Export {
        #[arg(long)]
        service: String,
        /// How far back, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        last: rollgate_core::hold::Hold,
        #[arg(long)]
        out: PathBuf,
        /// Where the gateway wrote them (`rollgate serve` writes to DATA_DIR/capture).
        #[arg(long, default_value = ".rollgate/capture", env = "ROLLGATE_CAPTURE_DIR")]
        capture_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum FlagCommand {
    /// Define a flag: a boolean one on for everyone, or --rollout PCT of users, or --file with the whole
    /// definition (Unleash's client-API JSON with a `kind`: boolean, string, number or object).
    Create {
        name: String,
        #[command(flatten)]
        shape: FlagShape,
    },
    /// Change a flag: its rollout percentage (users already in stay in when it rises), or its whole definition.
    Set {
        name: String,
        #[command(flatten)]
        shape: FlagShape,
    },
    /// Roll a flag out on a plan (through a server): its flexibleRollout percentage follows the plan's
    /// canary steps, judged on the outcomes applications report; a rollback kills it.
    Rollout {
        name: String,
        /// A canary plan of the config (default: the built-in `default`).
        #[arg(long)]
        plan: Option<String>,
        /// The rollout's id (default: flag-NAME-YYYYMMDDhhmmss).
        #[arg(long)]
        id: Option<String>,
    },
    /// The kill switch: every evaluation answers DISABLED from the next one on.
    Kill {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Switch a killed flag back on, as it was defined.
    Enable {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// A flag's definition and every change made to it.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Every flag, on or killed, with its last change.
    List {
        #[arg(long)]
        json: bool,
    },
    /// What a flag answers for a context, as an application would get it over OFREP: value, reason, variant.
    Eval {
        name: String,
        /// The targeting key (the user id buckets are made of).
        #[arg(long)]
        key: Option<String>,
        /// A context attribute, NAME=VALUE (repeatable), e.g. --attr country=FR.
        #[arg(long = "attr", value_parser = attribute)]
        attrs: Vec<(String, String)>,
    },
}

fn attribute(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
}

#[derive(Debug, clap::Args)]
pub struct FlagShape {
    /// The whole definition, as JSON.
    #[arg(long, conflicts_with = "stickiness")]
    pub file: Option<PathBuf>,
    /// The share of users (0-100) the flag is on for, bucketed as Unleash does.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub rollout: Option<u32>,
    /// What buckets users for --rollout: default (the targeting key, then the session), or a context field.
    #[arg(long, requires = "rollout")]
    pub stickiness: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ShadowCommand {
    /// Agreement with its interval, the gate's test, flips, latency and first byte side by side,
    /// errors by class, mirrored cost and the most divergent examples (redacted).
    Report {
        rollout: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create {
        /// Whom it acts as (shown in the audit log).
        #[arg(long)]
        name: String,
        /// A role: viewer, deployer, admin, approver:technical|ethics|security|stakeholder. Repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; it stops working at once.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum VersionCommand {
    /// Register a new version of a service.
    Register {
        #[arg(long)]
        service: String,
        #[arg(long)]
        name: String,
        /// An endpoint URL; repeat for several.
        #[arg(long = "endpoint", required = true)]
        endpoints: Vec<String>,
        #[arg(long)]
        artifact_uri: String,
        #[arg(long)]
        sha256: String,
        #[arg(long)]
        model_card: Option<String>,
        #[arg(long)]
        owner: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Print a plan: the built-in `default`, or one from the config.
    Show {
        #[arg(default_value = "default")]
        name: String,
        #[arg(long, default_value = "rollgate.toml", env = "ROLLGATE_CONFIG")]
        config: PathBuf,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
    /// List the plans a config defines, with the built-in default.
    List {
        #[arg(long, default_value = "rollgate.toml", env = "ROLLGATE_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PlanFormat {
    /// A readable outline, stage by stage.
    Text,
    /// TOML that can be pasted under [plans.NAME] and edited.
    Toml,
    Json,
}

/// Where the event log lives.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Data directory of the embedded SQLite store (created on first use).
    #[arg(long, global = true, default_value = ".rollgate", env = "ROLLGATE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Use PostgreSQL instead (postgres://user@host:port/db).
    #[arg(long, global = true, env = "ROLLGATE_DATABASE")]
    pub database: Option<String>,
}

impl StoreArgs {
    pub fn location(&self) -> String {
        self.database.clone().unwrap_or_else(|| self.data_dir.display().to_string())
    }
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["endpoint", "rollout", "version"])))]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["suite", "edge_cases", "docs", "rollout"])))]
pub struct ValidateArgs {
    /// Check the version's model card (fields, and its name and artifact hash against the config) and the
    /// service's runbook, monitoring plan and rollback plan (the plan's required sections).
    #[arg(long)]
    pub docs: bool,
    /// With --docs and no rollout: the service …
    #[arg(long, requires = "version")]
    pub service: Option<String>,
    /// … and the version whose documents are checked.
    #[arg(long, requires = "service", requires = "docs")]
    pub version: Option<String>,
    /// The suite's directory: suite.toml and its cases (JSONL).
    #[arg(long)]
    pub suite: Option<PathBuf>,
    /// Probe the model with edge cases made from one well-formed request (the suite's first case, or the
    /// protocol's example): empty, malformed, wrong types, missing fields, very long, unusual Unicode, a huge
    /// batch. Always part of a --rollout run with a suite.
    #[arg(long)]
    pub edge_cases: bool,
    /// The wire protocol for the edge-case probes without a suite (json, kserve-v2, openai-chat, tf-serving;
    /// default: the service's for --rollout, else json).
    #[arg(long, value_parser = protocol)]
    pub protocol: Option<rollgate_core::config::Protocol>,
    /// Appended to the endpoint for every request when there is no suite to say (e.g. /v2/models/fraud/infer).
    #[arg(long, default_value = "")]
    pub path: String,
    /// The model server to validate (its base URL; the suite's request.path is appended).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Also run the stable version at this URL, for the "not worse than stable" requirements.
    #[arg(long, requires = "endpoint")]
    pub stable: Option<String>,
    /// Validate this rollout's candidate (and its stable version when a requirement compares) at the config's
    /// endpoints, and attach the results as evidence: validation.performance, validation.bias,
    /// validation.safety, validation.edge_cases (probed with every suite run) and, with --docs, the
    /// documentation gates.
    #[arg(long)]
    pub rollout: Option<String>,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub actor: ActorArgs,
    /// Write the cases, requirements, documents and probes as JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write the report as a self-contained HTML page here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum MonitoringCommand {
    /// Write rules.yml (recording and alerting rules over rollgate's metrics, thresholds from the service's
    /// plan; check with `promtool check rules`) and dashboard.json (a Grafana dashboard, canary vs stable)
    /// into a directory.
    Export {
        #[arg(long)]
        service: String,
        /// The directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "rollgate.toml", env = "ROLLGATE_CONFIG")]
        config: PathBuf,
        /// Alert when this share of the service's requests fails, whatever the version.
        #[arg(long, default_value_t = 0.05, value_parser = share)]
        max_error_rate: f64,
    },
}

fn protocol(text: &str) -> Result<rollgate_core::config::Protocol, String> {
    serde_json::from_value(serde_json::Value::String(text.into()))
        .map_err(|_| format!("`{text}` is not a protocol: json, kserve-v2, openai-chat or tf-serving"))
}

fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x > 0.0 && x < 1.0 => Ok(x),
        _ => Err(format!("`{text}` is not a share between 0 and 1 (e.g. 0.05 for 5%)")),
    }
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Check every file of an archive directory against its MANIFEST.json, the log's hash chain, and the
    /// rollout's state against a replay of the log. Exit code 3 names each file that is wrong.
    Verify {
        /// The archive directory (`rollgate rollout archive ID` says where it is).
        dir: PathBuf,
        /// The manifest's SHA-256 as the rollout's log recorded it: also checks that the manifest is that one.
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The leader, its token and the members, as the server at --server sees them.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every stream's hash chain (rollouts, tokens, registry); names the first edited, dropped or
    /// reordered event. With a head kept outside the database, also events cut off the end.
    Verify {
        #[arg(long)]
        json: bool,
        /// A head recorded earlier, STREAM:SEQ:HASH (as `audit verify` prints them): the stream must still reach it.
        #[arg(long = "expect-head", value_name = "STREAM:SEQ:HASH")]
        expect_head: Vec<String>,
        /// The signed head file `rollgate serve --head-file` keeps: its signature and every head in it are checked.
        #[arg(long, value_name = "FILE")]
        head_file: Option<PathBuf>,
        /// The environment variable holding the head file's signing key.
        #[arg(long, default_value = "ROLLGATE_HEAD_KEY")]
        head_key_env: String,
    },
    /// Print a rollout's events with their hashes.
    Log {
        rollout: String,
        #[arg(long)]
        json: bool,
    },
}

/// Who is acting, and against which config (without a server).
#[derive(Debug, Clone, Args)]
pub struct ActorArgs {
    /// Without a server: the person acting; their roles come from [roles] in the config.
    /// With a server, the token says who is acting.
    #[arg(long = "as", env = "ROLLGATE_USER")]
    pub user: Option<String>,
    #[arg(long, default_value = "rollgate.toml", env = "ROLLGATE_CONFIG")]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Start rolling out a version of a service on its plan.
    Start {
        #[command(flatten)]
        actor: ActorArgs,
        #[arg(long)]
        service: String,
        /// The version to roll out; the service's stable version is replaced.
        #[arg(long)]
        candidate: String,
        /// Skip the shadow stage (refused if the plan requires it).
        #[arg(long)]
        skip_shadow: bool,
        /// The rollout's id (default: SERVICE-CANDIDATE-TIMESTAMP).
        #[arg(long)]
        id: Option<String>,
        /// The deployment ticket (a URL or a key such as OPS-42); closed through the `[tickets]` hook at the end.
        #[arg(long)]
        ticket: Option<String>,
    },
    /// List rollouts with their stage and weight.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a rollout: stage, traffic, gates and why, checklists, history.
    Status {
        rollout: String,
        #[arg(long)]
        json: bool,
        /// Follow the rollout live until it ends (with a server).
        #[arg(long)]
        watch: bool,
    },
    /// Record the result of a gate's check.
    Evidence {
        rollout: String,
        #[command(flatten)]
        actor: ActorArgs,
        /// The gate's id, e.g. validation.bias.
        #[arg(long)]
        gate: String,
        /// The check failed (default: it passed).
        #[arg(long)]
        failed: bool,
        #[arg(long)]
        summary: String,
        /// Details as JSON (e.g. the evaluation's numbers).
        #[arg(long)]
        details: Option<String>,
    },
    /// Approve a rollout as an approver of the given kind.
    Approve {
        rollout: String,
        #[command(flatten)]
        actor: ActorArgs,
        /// technical, ethics, security or stakeholder.
        #[arg(long)]
        kind: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Tick a checklist item by hand.
    Tick {
        rollout: String,
        #[command(flatten)]
        actor: ActorArgs,
        /// pre_deployment, deployment_day or post_deployment.
        #[arg(long)]
        checklist: String,
        #[arg(long)]
        item: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Move to the next stage now that its gates have passed.
    Promote {
        rollout: String,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Stop automatic promotion (the judge still rolls back); the reason is recorded.
    Pause {
        rollout: String,
        #[command(flatten)]
        actor: ActorArgs,
        #[arg(long)]
        reason: String,
    },
    /// Let a paused rollout move on again.
    Resume {
        rollout: String,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Cancel the rollout; traffic goes back to stable.
    Abort {
        rollout: String,
        #[command(flatten)]
        actor: ActorArgs,
        #[arg(long)]
        reason: String,
    },
    /// Roll back: traffic to stable at once (quick), or with --full also redeploy stable and retire the candidate.
    Rollback {
        rollout: String,
        #[command(flatten)]
        actor: ActorArgs,
        /// quality, complaints, harmful_outputs, security or other.
        #[arg(long)]
        category: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        full: bool,
    },
    /// Admins only: move on past gates that have not passed, with a reason that is recorded.
    ForcePromote {
        rollout: String,
        #[command(flatten)]
        actor: ActorArgs,
        #[arg(long)]
        reason: String,
    },
    /// Let time pass: end holds that are over and move through windows that opened (the server's controller does this on its own).
    Advance { rollout: String },
    /// Record that you did an action no hook did (redeploy, retire, archive; `rollout status` lists them).
    ConfirmEffect {
        rollout: String,
        /// The action's id, e.g. redeploy-v1.
        action: String,
        #[command(flatten)]
        actor: ActorArgs,
        /// What you did, in words: recorded in the log.
        #[arg(long)]
        note: String,
    },
    /// Where a finished rollout was archived, with the archive's SHA-256.
    Archive {
        rollout: String,
        #[arg(long)]
        json: bool,
    },
    /// The retrospective, written from the log: stages, gates and evidence, the judge's verdicts,
    /// the staging drill, the rollback, what is still open, and questions for the team.
    Retro {
        rollout: String,
        #[arg(long, value_enum, default_value_t = RetroFormat::Markdown)]
        format: RetroFormat,
        /// Write it to this file instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RetroFormat {
    Markdown,
    Html,
    Json,
}

impl RetroFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            RetroFormat::Markdown => "markdown",
            RetroFormat::Html => "html",
            RetroFormat::Json => "json",
        }
    }
}
