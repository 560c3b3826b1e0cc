//! The demo's team, acting through the API as people and CI would: "ci"
//! runs `rollgate validate` (the suites, edge-case probes and document
//! checks) against the candidate and attaches the results, bob and carol
//! approve, alice ticks checklist items. The infrastructure, staging and
//! post-deployment evidence is the server's own; the team waits for it.

use super::files::SUITES;
use crate::cli::{ActorArgs, StoreArgs, Target, ValidateArgs};
use crate::client::Client;
use crate::commands::validate;
use anyhow::Context;
use rollgate_server::views::{GateView, RolloutView};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each member's own API client, by name.
pub struct Team {
    members: BTreeMap<&'static str, Client>,
    api: String,
    tokens: BTreeMap<&'static str, String>,
    /// The team's config; its suites, model cards and documents are beside it.
    config_file: PathBuf,
}

impl Team {
    pub fn new(api: &str, tokens: &BTreeMap<&'static str, String>, config_file: &Path) -> anyhow::Result<Team> {
        let mut members = BTreeMap::new();
        for (name, token) in tokens {
            members.insert(*name, Client::new(api, Some(token.clone()))?);
        }
        Ok(Team { members, api: api.into(), tokens: tokens.clone(), config_file: config_file.into() })
    }

    /// CI runs what `rollgate validate --rollout ID --suite S --html R` runs
    /// for each suite (the first with `--docs`), as its pipeline would, and
    /// posts each gate's result as its evidence.
    async fn validate(&self, id: &str) -> anyhow::Result<Vec<String>> {
        let dir = self.config_file.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut said = Vec::new();
        for (i, suite) in SUITES.iter().enumerate() {
            let name = suite.rsplit('/').next().unwrap_or(suite);
            let args = ValidateArgs {
                docs: i == 0,
                service: None,
                version: None,
                suite: Some(dir.join(suite)),
                edge_cases: false,
                protocol: None,
                path: String::new(),
                endpoint: None,
                stable: None,
                rollout: Some(id.into()),
                target: Target {
                    server: Some(self.api.clone()),
                    token: self.tokens.get("ci").cloned(),
                    store: StoreArgs { data_dir: dir.clone(), database: None },
                },
                actor: ActorArgs { user: None, config: self.config_file.clone() },
                junit: None,
                html: Some(dir.join(format!("reports/{id}-{name}.html"))),
                json: false,
            };
            if let Some(reports) = args.html.as_deref().and_then(Path::parent) {
                std::fs::create_dir_all(reports).with_context(|| format!("cannot make {}", reports.display()))?;
            }
            let outcome = validate::check(&args).await.with_context(|| format!("the demo's ci: validate {suite}"))?;
            validate::write_files(&args, &outcome)?;
            for e in validate::evidence(&outcome) {
                let body = json!({ "gate": e.gate, "passed": e.passed, "summary": e.summary, "details": e.details });
                self.post("ci", &format!("/api/v1/rollouts/{id}/evidence"), body).await?;
            }
            let shown = args.html.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
            said.push(format!(
                "{} ci ran `rollgate validate --rollout {id} --suite {suite}{}`: {} (report {shown})",
                if outcome.passed { "✓" } else { "✗" },
                if i == 0 { " --docs" } else { "" },
                if outcome.passed { "passed" } else { "FAILED" },
            ));
        }
        Ok(said)
    }

    fn member(&self, who: &str) -> anyhow::Result<&Client> {
        self.members.get(who).ok_or_else(|| anyhow::anyhow!("the demo has no team member `{who}`"))
    }

    async fn post(&self, who: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        self.member(who)?.post(path, &body).await.with_context(|| format!("the demo's {who}: POST {path}"))
    }

    pub async fn view(&self, id: &str) -> anyhow::Result<RolloutView> {
        self.member("alice")?.get(&format!("/api/v1/rollouts/{id}")).await
    }

    pub async fn events(&self, id: &str) -> anyhow::Result<Vec<Value>> {
        self.member("alice")?.get(&format!("/api/v1/rollouts/{id}/events")).await
    }

    pub async fn start(&self, candidate: &str, id: &str) -> anyhow::Result<()> {
        let body = json!({ "service": "fraud-scorer", "candidate": candidate, "id": id, "skip_shadow": true });
        self.post("alice", "/api/v1/rollouts", body).await.map(drop)
    }

    /// Brings what the open gates of the current stage ask for; returns what was done, in words.
    pub async fn answer_gates(&self, view: &RolloutView) -> anyhow::Result<Vec<String>> {
        let id = &view.id;
        let mut done = Vec::new();
        if let Some(failed) = view.gates.iter().find(|g| g.blocking && g.status == "failed") {
            let reason = format!("{} failed: {}", failed.gate, failed.detail);
            self.post("alice", &format!("/api/v1/rollouts/{id}/abort"), json!({ "reason": reason })).await?;
            return Ok(vec![format!("✗ alice aborts: {reason}")]);
        }
        // Infrastructure's, staging's and full deployment's checks are rollgate's own; the items they prove wait
        // for them.
        let rollgate_checks = |g: &&GateView| {
            ["infrastructure.", "staging.", "post_deployment."].iter().any(|stage| g.gate.starts_with(stage))
        };
        let rollgate_checking = view
            .gates
            .iter()
            .filter(rollgate_checks)
            .any(|g| g.blocking && g.kind == "evidence" && g.status == "pending");
        let pending = |g: &&GateView| g.blocking && g.status == "pending";
        let validated = |g: &&GateView| g.gate.starts_with("validation.") || g.gate.starts_with("documentation.");
        if view.gates.iter().filter(pending).any(|g| validated(&g)) {
            done.extend(self.validate(id).await?);
        }
        for gate in view.gates.iter().filter(pending) {
            match gate.kind.as_str() {
                "approval" => {
                    let kind = gate.gate.trim_start_matches("approval.");
                    let who = if kind == "technical" { "bob" } else { "carol" };
                    let body = json!({ "kind": kind, "comment": "looks good (demo)" });
                    self.post(who, &format!("/api/v1/rollouts/{id}/approvals"), body).await?;
                    done.push(format!("✓ {} by {who}", gate.gate));
                }
                "checklist" if !rollgate_checking => {
                    let name = gate.gate.trim_start_matches("checklist.");
                    let list = view.checklists.iter().find(|c| c.checklist == name);
                    for item in list.into_iter().flat_map(|c| &c.items).filter(|i| !i.done) {
                        let path = format!("/api/v1/rollouts/{id}/checklists/{name}/items/{}", item.id);
                        self.post("alice", &path, json!({ "note": "demo" })).await?;
                    }
                    done.push(format!("✓ {} ticked by alice", gate.gate));
                }
                _ => {}
            }
        }
        Ok(done)
    }
}
