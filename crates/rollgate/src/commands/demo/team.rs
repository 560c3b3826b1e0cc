//! The demo's team, acting through the API as people would: bob and carol
//! approve, alice ticks checklist items. Every piece of evidence is the
//! server's own (it runs the service's suites and checks its documents,
//! proves the infrastructure, runs staging and watches full deployment);
//! the team waits for it.

use crate::client::Client;
use anyhow::Context;
use rollgate_server::views::RolloutView;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Each member's own API client, by name.
pub struct Team {
    members: BTreeMap<&'static str, Client>,
}

impl Team {
    pub fn new(api: &str, tokens: &BTreeMap<&'static str, String>) -> anyhow::Result<Team> {
        let mut members = BTreeMap::new();
        for (name, token) in tokens {
            members.insert(*name, Client::new(api, Some(token.clone()))?);
        }
        Ok(Team { members })
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
        // Every piece of evidence is rollgate's own; the checklist items it proves wait for it.
        let rollgate_checking = view.gates.iter().any(|g| g.blocking && g.kind == "evidence" && g.status == "pending");
        for gate in view.gates.iter().filter(|g| g.blocking && g.status == "pending") {
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
