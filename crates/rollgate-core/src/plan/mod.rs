//! A plan is a team's deployment process written down: which gates each
//! stage must pass, the canary steps and holds, the rollback triggers, the
//! checklists and the deploy window. The built-in default is the process
//! in our users' guide; a plan in `rollgate.toml` overrides any part of it.

mod checklist;
mod gates;
pub mod strategy;

pub use checklist::{ChecklistItem, ChecklistKind, Checklists, PROOF_APPROVALS, PROOF_JUDGE, PROOF_TICKET};
pub use gates::{
    Documentation, EvidenceSource, GateCategory, GateSet, GateSpec, Infrastructure, PostDeployment, ShadowChecks,
    StagingTests, Validation, ids as gate_ids,
};

use crate::hold::Hold;
use crate::roles::ApprovalKind;
use crate::weight::Weight;
use crate::window::DeployWindow;
use serde::{Deserialize, Serialize};

/// The name of the built-in plan.
pub const DEFAULT_PLAN: &str = "default";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Plan {
    pub description: String,
    /// Move on as soon as a stage's gates pass; when false every move needs a `promote`.
    pub auto_promote: bool,
    /// How traffic moves to the candidate: canary (the steps), blue-green
    /// (one switch) or rolling (instances replaced batch by batch).
    pub strategy: strategy::Strategy,
    pub blue_green: strategy::BlueGreen,
    pub rolling: strategy::Rolling,
    pub pre_deployment: PreDeployment,
    pub staging: Staging,
    pub shadow: Shadow,
    pub canary: Canary,
    pub rollback: RollbackTriggers,
    pub full: FullDeployment,
    pub checklists: Checklists,
    pub window: DeployWindow,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            description: "The deployment process of the AI deployment lifecycle guide: \
                          validate, stage, shadow, canary 1/5/25/50/100% over 48 hours, then full deployment."
                .into(),
            auto_promote: true,
            strategy: strategy::Strategy::Canary,
            blue_green: strategy::BlueGreen::default(),
            rolling: strategy::Rolling::default(),
            pre_deployment: PreDeployment::default(),
            staging: Staging::default(),
            shadow: Shadow::default(),
            canary: Canary::default(),
            rollback: RollbackTriggers::default(),
            full: FullDeployment::default(),
            checklists: Checklists::default(),
            window: DeployWindow::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreDeployment {
    pub validation: GateSet<Validation>,
    pub documentation: GateSet<Documentation>,
    pub infrastructure: GateSet<Infrastructure>,
    pub approvals: Approvals,
    /// The sections `rollgate validate --docs` requires of each document.
    pub documents: DocumentRules,
    /// The monitoring plan gate is rollgate's to check: it passes once the
    /// rules `rollgate monitoring export` writes for the service are loaded
    /// in the configured Prometheus (and full deployment checks them again).
    pub monitoring_rules: bool,
}

/// The sections each document must have (headings containing these words, case-insensitive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DocumentRules {
    pub runbook: Vec<String>,
    pub monitoring_plan: Vec<String>,
    pub rollback_plan: Vec<String>,
}

impl Default for DocumentRules {
    fn default() -> Self {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        DocumentRules {
            runbook: list(&["Deployment steps", "Rollback", "Contacts"]),
            monitoring_plan: list(&["Metrics", "Alerts", "Dashboards"]),
            rollback_plan: list(&["Triggers", "Procedure", "Verification"]),
        }
    }
}

/// Which approvals a rollout needs. Ethics and security reviews are
/// "if required" in the guide, so a plan turns them on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Approvals {
    pub technical: bool,
    pub ethics: bool,
    pub security: bool,
    pub stakeholder: bool,
}

impl Default for Approvals {
    fn default() -> Self {
        Approvals { technical: true, ethics: false, security: false, stakeholder: true }
    }
}

impl Approvals {
    pub fn required(&self) -> Vec<ApprovalKind> {
        [
            (ApprovalKind::Technical, self.technical),
            (ApprovalKind::Ethics, self.ethics),
            (ApprovalKind::Security, self.security),
            (ApprovalKind::Stakeholder, self.stakeholder),
        ]
        .into_iter()
        .filter_map(|(kind, on)| on.then_some(kind))
        .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Staging {
    /// Where rollgate runs the staging checks itself. Unset: the staging
    /// evidence comes from outside (a CI job posts it), as for validation.
    pub environment: Option<StagingEnvironment>,
    /// The exit criteria: every required gate passed (no blocking issues,
    /// performance acceptable, all tests pass, monitoring working).
    pub gates: GateSet<StagingTests>,
}

/// The staging environment and what rollgate does in it: replay a traffic
/// sample at a realistic rate through the gateway to the candidate's staging
/// endpoints, check it, probe error handling, and run a timed fault drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StagingEnvironment {
    /// The gateway service that fronts each version's staging endpoints;
    /// `{service}` stands for the service being rolled out.
    pub service: String,
    /// Sanitized requests to replay: a JSONL file, one request body (a JSON
    /// value) per line. Unset: generated inputs.
    pub traffic: Option<String>,
    /// Path of the requests, under the staging service's route.
    pub path: String,
    /// The realistic rate, requests per second.
    pub rate: f64,
    /// How long the sample is replayed at that rate.
    pub duration: Hold,
    /// The load check's bounds at that rate.
    pub max_p99_ms: f64,
    pub max_error_rate: f64,
    pub drill: FaultDrill,
}

impl Default for StagingEnvironment {
    fn default() -> Self {
        StagingEnvironment {
            service: "{service}-staging".into(),
            traffic: None,
            path: String::new(),
            rate: 50.0,
            duration: Hold::from_secs(10),
            max_p99_ms: 500.0,
            max_error_rate: 0.05,
            drill: FaultDrill::default(),
        }
    }
}

impl StagingEnvironment {
    /// The gateway service of `service`'s staging environment.
    pub fn service_for(&self, service: &str) -> String {
        self.service.replace("{service}", service)
    }
}

/// The fault drill: the candidate is made to fail while staging traffic
/// flows half to it and half to the stable version; the judge must see it,
/// and the rollback must take the traffic off the candidate, in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultDrill {
    /// How the fault is injected and cleared.
    pub inject: FaultInjection,
    /// Share of the candidate's requests that fail during the drill.
    pub error_rate: f64,
    /// The drill fails if the judge has not rolled back by then.
    pub detect_within: Hold,
}

impl Default for FaultDrill {
    fn default() -> Self {
        FaultDrill { inject: FaultInjection::Simulator, error_rate: 0.5, detect_within: Hold::from_secs(30) }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultInjection {
    /// The candidate's endpoints are `rollgate sim model` servers: the fault
    /// is set through their control API (`PUT /_sim/faults`).
    Simulator,
    /// Shell commands that inject and clear the fault; they get
    /// `ROLLGATE_SERVICE`, `ROLLGATE_CANDIDATE`, `ROLLGATE_ENDPOINTS` and
    /// `ROLLGATE_ERROR_RATE` in their environment.
    Command { inject: String, clear: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShadowMode {
    /// Every rollout on this plan runs a shadow stage (new architectures, risk-sensitive services).
    Required,
    /// A rollout may skip shadow when it is started (a small change).
    Optional,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Shadow {
    pub mode: ShadowMode,
    /// How long real traffic is mirrored before the comparison may pass.
    pub duration: Hold,
    /// Share of the service's traffic copied to the candidate.
    pub mirror_percent: Weight,
    /// Share of those copies also sent to production a second time: how
    /// often production disagrees with itself (its noise floor), which the
    /// candidate is judged over. 0 for a deterministic model (decisions come
    /// soonest); more copies decide sooner at the price of production load
    /// (`rollgate bench shadow --noise-share` shows how much sooner).
    pub noise_percent: Weight,
    /// Paired answers needed before the comparison may decide.
    pub min_pairs: u64,
    /// How much more often than production disagrees with itself the candidate may disagree with it.
    pub max_excess_disagreement: f64,
    /// Chance of blocking a candidate that is within the bound (over the whole stage).
    pub false_block_budget: f64,
    /// The `model` field of shadow requests, for a candidate served under another model name (chat).
    pub model: Option<String>,
    /// How the answers are compared.
    pub compare: rollgate_protocol::compare::CompareConfig,
    /// Regular expressions whose matches are replaced by `[redacted]` in stored examples.
    pub redact: Vec<String>,
    /// The most divergent examples kept for the report.
    pub examples: usize,
    pub gates: GateSet<ShadowChecks>,
}

impl Default for Shadow {
    fn default() -> Self {
        Shadow {
            mode: ShadowMode::Optional,
            duration: Hold::from_hours(4),
            mirror_percent: Weight::FULL,
            noise_percent: Weight::from_basis_points(2500).unwrap_or(Weight::ZERO),
            min_pairs: 200,
            max_excess_disagreement: 0.02,
            false_block_budget: 0.05,
            model: None,
            compare: rollgate_protocol::compare::CompareConfig::default(),
            redact: crate::redact::BUILT_IN.iter().map(|p| p.to_string()).collect(),
            examples: 10,
            gates: GateSet::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryStep {
    /// The candidate's share of traffic during this step.
    pub percent: Weight,
    /// How long the step is held before the next one, if stable. The last step (100%) has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Canary {
    pub steps: Vec<CanaryStep>,
}

impl Default for Canary {
    /// Hour 0: 1%, hour 4: 5%, hour 12: 25%, hour 24: 50%, hour 48: 100%, each "if stable".
    fn default() -> Self {
        let step = |percent: f64, hours: Option<i64>| CanaryStep {
            percent: Weight::from_percent(percent).unwrap_or(Weight::FULL),
            hold: hours.map(Hold::from_hours),
        };
        Canary {
            steps: vec![
                step(1.0, Some(4)),
                step(5.0, Some(8)),
                step(25.0, Some(12)),
                step(50.0, Some(24)),
                step(100.0, None),
            ],
        }
    }
}

impl Canary {
    /// Hours from the canary's start at which each step begins.
    pub fn schedule(&self) -> Vec<(Weight, Hold)> {
        let mut at = 0;
        self.steps
            .iter()
            .map(|s| {
                let starts = Hold::from_secs(at);
                at += s.hold.map_or(0, Hold::as_secs);
                (s.percent, starts)
            })
            .collect()
    }
}

/// When the judge rolls a canary back. Ratios compare the canary with the
/// baseline; the false-rollback budget is shared among the statistical triggers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollbackTriggers {
    /// Canary error rate above this multiple of the baseline's.
    pub error_rate_ratio: f64,
    /// Canary latency at `latency_quantile` above this multiple of the baseline's.
    pub latency_ratio: f64,
    pub latency_quantile: f64,
    /// Bad-output (quality) rate above this multiple of the baseline's.
    pub quality_ratio: f64,
    /// Complaints per user above this multiple of the baseline's.
    pub complaint_ratio: f64,
    /// A chat model (protocol `openai-chat`): time to first token at
    /// `ttft_quantile` above this multiple of the baseline's.
    pub ttft_ratio: f64,
    pub ttft_quantile: f64,
    /// A chat model: output tokens per second of its slow answers (at
    /// 1 − `ttft_quantile`) below this multiple of the baseline's.
    pub tokens_per_second_ratio: f64,
    /// Consecutive failed health checks of the candidate's endpoints.
    pub health_check_failures: u32,
    /// Share of requests that time out or are refused for capacity (429/503).
    pub max_saturation: f64,
    /// Probability of rolling back a healthy canary, over the whole rollout.
    pub false_rollback_budget: f64,
    /// Redeploy the previous version instead of only moving traffic back.
    pub full_rollback: bool,
    /// After each weight change the latency trigger ignores this long (cold
    /// caches and new connections are slow without anything being wrong).
    /// Errors, bad outputs and complaints count from the first request.
    pub warm_up: Hold,
    /// After a rollback, how long the version that came back is watched against
    /// its own record from before (its error rate, latency, quality, health
    /// checks and, where the service says how, the version its endpoints report).
    /// 0 turns the watch off.
    pub watch: Hold,
    /// Canary events a statistical trigger needs before it may fire.
    pub min_canary_events: u32,
    /// Canary requests the judge wants to have seen before it calls the canary healthy.
    pub min_canary_requests: u64,
    /// Metrics computed elsewhere, read from Prometheus.
    pub external: Vec<ExternalMetric>,
}

/// A PromQL query judged per version: `{version}` in the query stands for
/// the version's name. Either an absolute bound on the canary's value
/// (`max`) or a bound on canary ÷ baseline (`max_ratio`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalMetric {
    pub name: String,
    pub query: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ratio: Option<f64>,
    /// How often it is queried.
    #[serde(default = "ExternalMetric::default_interval")]
    pub interval: Hold,
}

impl ExternalMetric {
    fn default_interval() -> Hold {
        Hold::from_secs(15)
    }
}

impl Default for RollbackTriggers {
    fn default() -> Self {
        RollbackTriggers {
            error_rate_ratio: 2.0,
            latency_ratio: 1.5,
            latency_quantile: 0.99,
            quality_ratio: 1.25,
            complaint_ratio: 2.0,
            ttft_ratio: 2.0,
            ttft_quantile: 0.9,
            tokens_per_second_ratio: 0.5,
            health_check_failures: 3,
            max_saturation: 0.05,
            false_rollback_budget: 0.05,
            full_rollback: false,
            warm_up: Hold::from_secs(30),
            watch: Hold::from_secs(30 * 60),
            min_canary_events: 3,
            min_canary_requests: 100,
            external: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FullDeployment {
    /// How long the previous version stays warm for an instant rollback.
    pub keep_warm: Hold,
    /// How long metrics are watched at 100% before the rollout is closed.
    pub observe: Hold,
    /// When rollgate's post-deployment check finds a regression against the
    /// previous version's record: roll back to it at once (true), or tell the
    /// team and let a person decide (false).
    pub rollback_on_regression: bool,
    pub gates: GateSet<PostDeployment>,
}

impl Default for FullDeployment {
    fn default() -> Self {
        FullDeployment {
            keep_warm: Hold::from_hours(72),
            observe: Hold::from_hours(24),
            rollback_on_regression: false,
            gates: GateSet::default(),
        }
    }
}

/// A problem with a plan's values, at a path of keys inside the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanProblem {
    pub path: Vec<String>,
    pub message: String,
    pub hint: String,
}

impl Plan {
    /// Every gate id the plan defines, in stage order.
    pub fn gate_ids(&self) -> Vec<String> {
        let p = &self.pre_deployment;
        p.validation
            .iter()
            .map(|(id, _)| id)
            .chain(p.documentation.iter().map(|(id, _)| id))
            .chain(p.infrastructure.iter().map(|(id, _)| id))
            .chain(self.staging.gates.iter().map(|(id, _)| id))
            .chain(self.shadow.gates.iter().map(|(id, _)| id))
            .chain(self.full.gates.iter().map(|(id, _)| id))
            .collect()
    }

    /// The spec of a gate by id (`validation.performance`).
    pub fn gate(&self, id: &str) -> Option<&GateSpec> {
        let (category, name) = id.split_once('.')?;
        let p = &self.pre_deployment;
        match category {
            Validation::NAME => p.validation.get(name),
            Documentation::NAME => p.documentation.get(name),
            Infrastructure::NAME => p.infrastructure.get(name),
            StagingTests::NAME => self.staging.gates.get(name),
            ShadowChecks::NAME => self.shadow.gates.get(name),
            PostDeployment::NAME => self.full.gates.get(name),
            _ => None,
        }
    }

    /// Checks the values that serde cannot check alone.
    pub fn problems(&self) -> Vec<PlanProblem> {
        let mut out = Vec::new();
        let mut problem = |path: &[&str], message: String, hint: &str| {
            out.push(PlanProblem {
                path: path.iter().map(|s| (*s).to_string()).collect(),
                message,
                hint: hint.to_string(),
            });
        };
        let steps = &self.canary.steps;
        let switched_once = [CanaryStep { percent: Weight::FULL, hold: None }];
        if self.strategy == strategy::Strategy::BlueGreen
            && *steps != Canary::default().steps
            && *steps != switched_once
        {
            problem(
                &["canary", "steps"],
                "a blue-green plan switches all traffic at once, so its canary steps would never run".into(),
                "remove the [canary] steps, or use strategy = \"canary\"",
            );
        }
        if self.strategy == strategy::Strategy::Rolling && *steps != Canary::default().steps {
            problem(
                &["canary", "steps"],
                "a rolling plan moves traffic by the share of instances replaced, so its canary steps would never run"
                    .into(),
                "remove the [canary] steps and set [rolling] max_unavailable and max_surge, or use strategy = \"canary\"",
            );
        }
        if self.strategy == strategy::Strategy::Rolling && self.rolling.max_unavailable + self.rolling.max_surge == 0 {
            problem(
                &["rolling", "max_unavailable"],
                "max_unavailable and max_surge are both 0, so no instance could ever be replaced".into(),
                "set max_unavailable = 1 (replace one at a time) or max_surge = 1 (start a new one first)",
            );
        }
        if self.strategy == strategy::Strategy::BlueGreen && self.blue_green.bake == Hold::ZERO {
            problem(
                &["blue_green", "bake"],
                "the bake is 0, so green would never be held to blue's record".into(),
                "give it a time such as bake = \"1h\"",
            );
        }
        if steps.is_empty() {
            problem(
                &["canary", "steps"],
                "the canary has no steps".into(),
                "list steps such as { percent = 1, hold = \"4h\" } ending with { percent = 100 }",
            );
        }
        for (i, pair) in steps.windows(2).enumerate() {
            if pair[1].percent <= pair[0].percent {
                problem(
                    &["canary", "steps"],
                    format!(
                        "canary steps must increase: step {} ({}) is not above step {} ({})",
                        i + 2,
                        pair[1].percent,
                        i + 1,
                        pair[0].percent
                    ),
                    "order the steps from the smallest share to 100%",
                );
            }
        }
        if let Some(last) = steps.last()
            && last.percent != Weight::FULL
        {
            problem(
                &["canary", "steps"],
                format!("the last canary step is {}, not 100%", last.percent),
                "end the steps with { percent = 100 } so the rollout can complete",
            );
        }
        for (i, step) in steps.iter().enumerate().take(steps.len().saturating_sub(1)) {
            if step.percent == Weight::ZERO {
                problem(
                    &["canary", "steps"],
                    format!("canary step {} sends no traffic to the candidate", i + 1),
                    "give every step a share above 0%",
                );
            }
            if step.hold.is_none() {
                problem(
                    &["canary", "steps"],
                    format!("canary step {} ({}) has no hold", i + 1, step.percent),
                    "give every step but the last a hold such as hold = \"4h\"",
                );
            }
        }
        if let Some(env) = &self.staging.environment {
            staging_problems(env, &mut problem);
        }
        let r = &self.rollback;
        for (key, value) in [
            ("error_rate_ratio", r.error_rate_ratio),
            ("latency_ratio", r.latency_ratio),
            ("quality_ratio", r.quality_ratio),
            ("complaint_ratio", r.complaint_ratio),
            ("ttft_ratio", r.ttft_ratio),
        ] {
            if !(value > 1.0 && value.is_finite()) {
                problem(
                    &["rollback", key],
                    format!(
                        "{key} is {value}, but a ratio at or below 1 would roll back a canary that is as good as the baseline"
                    ),
                    "use a ratio above 1, e.g. 2.0",
                );
            }
        }
        let sh = &self.shadow;
        let bounds: [(&[&str], f64, bool, &str); 7] = [
            (
                &["rollback", "ttft_quantile"],
                r.ttft_quantile,
                r.ttft_quantile > 0.0 && r.ttft_quantile < 1.0,
                "use a quantile strictly between 0 and 1, e.g. 0.9",
            ),
            (
                &["rollback", "tokens_per_second_ratio"],
                r.tokens_per_second_ratio,
                r.tokens_per_second_ratio > 0.0 && r.tokens_per_second_ratio < 1.0,
                "use a ratio strictly between 0 and 1 (the canary's rate as a share of the baseline's), e.g. 0.5",
            ),
            (
                &["rollback", "latency_quantile"],
                r.latency_quantile,
                r.latency_quantile > 0.0 && r.latency_quantile < 1.0,
                "use a quantile strictly between 0 and 1, e.g. 0.99",
            ),
            (
                &["rollback", "false_rollback_budget"],
                r.false_rollback_budget,
                r.false_rollback_budget > 0.0 && r.false_rollback_budget <= 0.5,
                "use a probability above 0 and at most 0.5, e.g. 0.05",
            ),
            (
                &["rollback", "max_saturation"],
                r.max_saturation,
                r.max_saturation > 0.0 && r.max_saturation <= 1.0,
                "use a share above 0 and at most 1, e.g. 0.05",
            ),
            (
                &["shadow", "max_excess_disagreement"],
                sh.max_excess_disagreement,
                (0.0..1.0).contains(&sh.max_excess_disagreement),
                "give a share in [0, 1), e.g. 0.02",
            ),
            (
                &["shadow", "false_block_budget"],
                sh.false_block_budget,
                sh.false_block_budget > 0.0 && sh.false_block_budget <= 0.5,
                "use a probability above 0 and at most 0.5, e.g. 0.05",
            ),
        ];
        for (at, value, ok, hint) in bounds {
            if !ok {
                problem(at, format!("{} is {value}", at[1]), hint);
            }
        }
        for (i, metric) in r.external.iter().enumerate() {
            let at = format!("{i}");
            let at: &[&str] = &["rollback", "external", &at];
            if !crate::config::is_slug(&metric.name) {
                problem(
                    at,
                    format!("external metric name `{}` is not a plain name", metric.name),
                    crate::config::SLUG_HINT,
                );
            }
            match (metric.max, metric.max_ratio) {
                (Some(_), Some(_)) | (None, None) => problem(
                    at,
                    format!("external metric `{}` needs exactly one of max and max_ratio", metric.name),
                    "max bounds the canary's value; max_ratio bounds canary / baseline",
                ),
                (None, Some(ratio)) if !metric.query.contains("{version}") || ratio.is_nan() || ratio <= 0.0 => {
                    problem(
                        at,
                        format!(
                            "external metric `{}` compares versions, so its query must name `{{version}}`",
                            metric.name
                        ),
                        "e.g. query = 'avg(gpu_memory_used{version=\"{version}\"})', max_ratio = 1.2",
                    )
                }
                _ => {}
            }
            if metric.interval.as_secs() < 1 {
                problem(
                    at,
                    format!("external metric `{}` is queried more than once a second", metric.name),
                    "use an interval of at least 1s, e.g. 15s",
                );
            }
        }
        for freeze in &self.window.freezes {
            if let Some(why) = freeze.problem(&self.window.timezone) {
                problem(&["window", "freezes"], why, "give `until` a later moment than `from`");
            }
        }
        for pattern in &sh.redact {
            if let Err(e) = regex::Regex::new(pattern) {
                problem(
                    &["shadow", "redact"],
                    format!("`{pattern}` is not a regular expression: {e}"),
                    "fix or remove the pattern",
                );
            }
        }
        if let Err(e) = rollgate_protocol::compare::Comparer::new(sh.compare.clone()) {
            problem(&["shadow", "compare"], e, "fix the pattern or the schema");
        }
        if self.shadow.mirror_percent == Weight::ZERO {
            problem(
                &["shadow", "mirror_percent"],
                "the shadow stage mirrors no traffic".into(),
                "mirror a share above 0%, e.g. 100",
            );
        }
        let known = self.gate_ids();
        for kind in ChecklistKind::ALL {
            for item in self.checklists.list(kind) {
                for proof in &item.proof {
                    let ok =
                        [PROOF_APPROVALS, PROOF_JUDGE, PROOF_TICKET].contains(&proof.as_str()) || known.contains(proof);
                    if !ok {
                        problem(
                            &["checklists", kind.as_str()],
                            format!("checklist item `{}` names an unknown proof `{proof}`", item.id),
                            "a proof is a gate id such as \"validation.bias\", \"approvals\", \"judge\" or \"ticket\"",
                        );
                    }
                }
            }
        }
        out
    }
}

/// Bounds a staging environment's numbers must keep to make sense.
fn staging_problems(env: &StagingEnvironment, problem: &mut impl FnMut(&[&str], String, &str)) {
    let path = |key: &'static str| ["staging", "environment", key];
    if !(env.rate > 0.0 && env.rate.is_finite()) {
        problem(&path("rate"), format!("staging rate is {}", env.rate), "give a rate in requests per second above 0");
    }
    if !(env.max_p99_ms > 0.0 && env.max_p99_ms.is_finite()) {
        problem(&path("max_p99_ms"), format!("max_p99_ms is {}", env.max_p99_ms), "give a bound above 0 ms");
    }
    if !(0.0..=1.0).contains(&env.max_error_rate) {
        problem(&path("max_error_rate"), format!("max_error_rate is {}", env.max_error_rate), "give a share 0..1");
    }
    if env.duration == Hold::ZERO {
        problem(&path("duration"), "the staging replay lasts no time".into(), "e.g. duration = \"5m\"");
    }
    let drill = &env.drill;
    if !(drill.error_rate > 0.0 && drill.error_rate <= 1.0) {
        problem(
            &["staging", "environment", "drill"],
            format!("the drill's error_rate is {}: the fault must fail some requests", drill.error_rate),
            "give a share above 0 and at most 1, e.g. 0.5",
        );
    }
    if drill.detect_within == Hold::ZERO {
        problem(&["staging", "environment", "drill"], "detect_within is 0".into(), "e.g. detect_within = \"30s\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_canary_starts_steps_at_the_guides_hours() {
        let hours: Vec<(String, i64)> =
            Plan::default().canary.schedule().into_iter().map(|(w, at)| (w.to_string(), at.as_secs() / 3600)).collect();
        let expected = [("1%", 0), ("5%", 4), ("25%", 12), ("50%", 24), ("100%", 48)];
        assert_eq!(hours, expected.map(|(w, h)| (w.to_string(), h)));
    }

    #[test]
    fn the_default_plan_has_no_problems_and_round_trips_through_toml() {
        let plan = Plan::default();
        assert_eq!(plan.problems(), []);
        let text = toml::to_string(&plan).unwrap();
        assert_eq!(toml::from_str::<Plan>(&text).unwrap(), plan);
    }

    #[test]
    fn a_plan_overrides_only_what_it_names() {
        let plan: Plan = toml::from_str(
            r#"
            [pre_deployment.approvals]
            security = true
            [rollback]
            error_rate_ratio = 1.5
            "#,
        )
        .unwrap();
        assert_eq!(plan.pre_deployment.approvals.required().len(), 3);
        assert_eq!(plan.rollback.error_rate_ratio, 1.5);
        assert_eq!(plan.rollback.latency_ratio, 1.5);
        assert_eq!(plan.canary, Canary::default());
    }

    #[test]
    fn problems_name_steps_that_do_not_increase_or_end_short() {
        let plan: Plan = toml::from_str(
            r#"
            [canary]
            steps = [{ percent = 5, hold = "1h" }, { percent = 5, hold = "1h" }, { percent = 50 }]
            "#,
        )
        .unwrap();
        let messages: Vec<String> = plan.problems().into_iter().map(|p| p.message).collect();
        assert!(messages.iter().any(|m| m.contains("step 2 (5%) is not above step 1 (5%)")), "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("last canary step is 50%")), "{messages:?}");
    }
}
