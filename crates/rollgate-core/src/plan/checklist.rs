//! The three checklists of our users' guide. Items the system can prove
//! name their proof (gates, approvals, the judge) and tick themselves;
//! the rest need a named person's tick.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChecklistKind {
    PreDeployment,
    DeploymentDay,
    PostDeployment,
}

impl ChecklistKind {
    pub const ALL: [ChecklistKind; 3] =
        [ChecklistKind::PreDeployment, ChecklistKind::DeploymentDay, ChecklistKind::PostDeployment];

    pub fn as_str(self) -> &'static str {
        match self {
            ChecklistKind::PreDeployment => "pre_deployment",
            ChecklistKind::DeploymentDay => "deployment_day",
            ChecklistKind::PostDeployment => "post_deployment",
        }
    }
}

impl fmt::Display for ChecklistKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChecklistKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ChecklistKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a checklist: use pre_deployment, deployment_day or post_deployment"))
    }
}

/// Proof that ticks an item by itself: a gate id that passed, `approvals`
/// (every required approval given) or `judge` (the judge reports healthy).
pub const PROOF_APPROVALS: &str = "approvals";
pub const PROOF_JUDGE: &str = "judge";
/// Proof of an item done after the rollout ends: its ticket closed by the ticket hook.
/// Such an item never holds the rollout (it cannot be done before the end).
pub const PROOF_TICKET: &str = "ticket";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    pub id: String,
    pub text: String,
    /// Everything listed must hold for the item to tick itself; empty means a person ticks it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proof: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Checklists {
    pub pre_deployment: Vec<ChecklistItem>,
    pub deployment_day: Vec<ChecklistItem>,
    pub post_deployment: Vec<ChecklistItem>,
}

impl Checklists {
    pub fn list(&self, kind: ChecklistKind) -> &[ChecklistItem] {
        match kind {
            ChecklistKind::PreDeployment => &self.pre_deployment,
            ChecklistKind::DeploymentDay => &self.deployment_day,
            ChecklistKind::PostDeployment => &self.post_deployment,
        }
    }
}

fn item(id: &str, text: &str, proof: &[&str]) -> ChecklistItem {
    ChecklistItem { id: id.into(), text: text.into(), proof: proof.iter().map(|p| (*p).to_string()).collect() }
}

impl Default for Checklists {
    /// Every item of the guide's three checklists, word for word.
    fn default() -> Self {
        Checklists {
            pre_deployment: vec![
                item(
                    "model_validation",
                    "Model validation complete and passing",
                    &["validation.performance", "validation.edge_cases"],
                ),
                item("bias_testing", "Bias testing complete and acceptable", &["validation.bias"]),
                item("safety_testing", "Safety testing complete and passing", &["validation.safety"]),
                item("performance_benchmarks", "Performance benchmarks met", &["validation.performance"]),
                item(
                    "documentation_complete",
                    "Documentation complete",
                    &[
                        "documentation.model_card",
                        "documentation.runbook",
                        "documentation.monitoring_plan",
                        "documentation.rollback_plan",
                    ],
                ),
                item("rollback_plan", "Rollback plan documented and tested", &[]),
                item("monitoring_dashboards_ready", "Monitoring dashboards ready", &[]),
                item("alerting_configured", "Alerting configured", &[]),
                item("approvals_obtained", "Required approvals obtained", &[PROOF_APPROVALS]),
            ],
            deployment_day: vec![
                item("team_available", "Team available for deployment window", &[]),
                item("communication_channels_open", "Communication channels open", &[]),
                item("rollback_procedure_verified", "Rollback procedure verified", &["staging.rollback_drill"]),
                item("monitoring_dashboards_open", "Monitoring dashboards open", &[]),
                item("previous_artifacts_available", "Previous deployment artifacts available", &[]),
                item("stakeholders_notified", "Stakeholders notified", &[]),
            ],
            post_deployment: vec![
                item("metrics_in_range", "All metrics within acceptable ranges", &["post_deployment.metrics_stable"]),
                item("no_elevated_errors", "No elevated error rates", &[PROOF_JUDGE]),
                item("no_user_complaints", "No user complaints", &["post_deployment.metrics_stable"]),
                item(
                    "monitoring_working",
                    "Monitoring working correctly",
                    &["infrastructure.monitoring_instrumented", "documentation.monitoring_plan"],
                ),
                item("documentation_updated", "Documentation updated", &[]),
                item("retrospective_scheduled", "Deployment retrospective scheduled", &[]),
                item("ticket_closed", "Deployment ticket closed", &[PROOF_TICKET]),
            ],
        }
    }
}
