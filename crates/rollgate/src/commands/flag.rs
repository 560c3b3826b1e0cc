//! `rollgate flag create|set|kill|enable|show|list|eval|rollout`: feature flags through a
//! server (the token says who), or directly on the data directory (the
//! operating-system user). Every change is a record in the audit log.

use crate::Refused;
use crate::cli::{FlagCommand, FlagShape, Target};
use crate::client::Client;
use anyhow::Context;
use rollgate_flags::flag::Kind;
use rollgate_flags::{Flag, Strategy};
use rollgate_server::flags::{self, Change, FlagError, FlagHistory, FlagRecord};
use rollgate_server::views::RolloutView;
use rollgate_store::{AnyStore, EventStore};
use serde_json::json;
use std::collections::BTreeMap;

/// Where the flags are: a server, or the store itself.
enum Place {
    Server(Client),
    Store(AnyStore),
}

pub async fn run(target: &Target, command: FlagCommand) -> anyhow::Result<()> {
    let place = match &target.server {
        Some(server) => Place::Server(Client::new(server, target.token.clone())?),
        None => {
            let location = target.store.location();
            Place::Store(
                AnyStore::open(&location).await.with_context(|| format!("cannot open the store at {location}"))?,
            )
        }
    };
    match command {
        FlagCommand::Create { name, shape } => {
            let flag = shape.build(&name, None)?;
            show_change(&place.change(&name, Change::Create(flag), None).await?);
        }
        FlagCommand::Set { name, shape } => {
            if shape.file.is_none() && shape.rollout.is_none() {
                return Err(Refused(format!(
                    "nothing to change: give `{name}` a new rollout (--rollout PCT) or definition (--file FILE)"
                ))
                .into());
            }
            let current = place.history(&name).await?.current.flag;
            let flag = shape.build(&name, Some(current))?;
            show_change(&place.change(&name, Change::Update(flag), None).await?);
        }
        FlagCommand::Rollout { name, plan, id } => {
            let Place::Server(client) = &place else {
                return Err(Refused(format!(
                    "a flag's rollout is run by a server (its judge reads the outcomes applications report to it): \
                     give --server URL to roll out `{name}`"
                ))
                .into());
            };
            let view: RolloutView =
                client.post(&format!("/api/v1/flags/{name}/rollouts"), &json!({ "plan": plan, "id": id })).await?;
            println!("{}: started; now {}", view.id, crate::render::stage_line(&view));
            println!(
                "  the flag's rollout percentage follows the plan's canary steps; applications report outcomes to \
                 POST /api/v1/flags/{name}/outcomes; a rollback kills the flag"
            );
        }
        FlagCommand::Kill { name, reason } => show_change(&place.change(&name, Change::Kill, Some(reason)).await?),
        FlagCommand::Enable { name, reason } => show_change(&place.change(&name, Change::Enable, Some(reason)).await?),
        FlagCommand::Show { name, json } => {
            let history = place.history(&name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&history)?);
                return Ok(());
            }
            println!("{}", serde_json::to_string_pretty(&history.current.flag)?);
            println!("\nhistory:");
            for r in &history.history {
                println!("  {r}", r = line(r));
            }
        }
        FlagCommand::Eval { name, key, attrs } => {
            let mut context: serde_json::Map<String, serde_json::Value> =
                attrs.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
            if let Some(key) = key {
                context.insert("targetingKey".into(), key.into());
            }
            let answer = place.evaluate(&name, context).await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            if answer.get("errorCode").is_some() {
                return Err(Refused(String::new()).into());
            }
        }
        FlagCommand::List { json } => {
            let flags = place.list().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&flags)?);
            }
            for r in flags.iter().filter(|_| !json) {
                println!(
                    "{}\t{}\t{}\t{}",
                    r.flag.name,
                    r.flag.kind.as_str(),
                    if r.flag.enabled { "on" } else { "KILLED" },
                    line(r)
                );
            }
        }
    }
    Ok(())
}

fn line(r: &FlagRecord) -> String {
    let why = r.reason.as_deref().map_or(String::new(), |why| format!(": {why}"));
    format!("{} {} by {}{why} → {}", r.at, r.action.as_str(), r.by, flags::summary(&r.flag))
}

fn show_change(r: &FlagRecord) {
    let off = if r.flag.enabled { "" } else { " (every evaluation answers DISABLED)" };
    println!("{}: {}{off}", r.flag.name, line(r));
}

impl FlagShape {
    /// The definition these options give: the file's, or `base` (a new boolean flag when none) with
    /// the rollout percentage and stickiness set on its gradual-rollout strategy.
    fn build(&self, name: &str, base: Option<Flag>) -> anyhow::Result<Flag> {
        let mut flag = match &self.file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Refused(format!("cannot read {}: {e}", path.display())))?;
                serde_json::from_str::<Flag>(&text)
                    .map_err(|e| Refused(format!("{}:{}:{}: {e}", path.display(), e.line(), e.column())))?
            }
            None => base.unwrap_or_else(|| Flag {
                name: name.to_string(),
                description: String::new(),
                enabled: true,
                kind: Kind::Boolean,
                strategies: Vec::new(),
                variants: Vec::new(),
            }),
        };
        if let Some(percent) = self.rollout {
            let at = match flag.strategies.iter().position(|s| s.name == "flexibleRollout") {
                Some(at) => at,
                None => {
                    flag.strategies.push(Strategy {
                        name: "flexibleRollout".into(),
                        parameters: BTreeMap::from([
                            ("groupId".into(), json!(name)),
                            ("stickiness".into(), json!("default")),
                        ]),
                        constraints: Vec::new(),
                        variants: Vec::new(),
                    });
                    flag.strategies.len() - 1
                }
            };
            let parameters = &mut flag.strategies[at].parameters;
            parameters.insert("rollout".into(), json!(percent.to_string()));
            if let Some(stickiness) = &self.stickiness {
                parameters.insert("stickiness".into(), json!(stickiness));
            }
        }
        Ok(flag)
    }
}

impl Place {
    async fn change(&self, name: &str, change: Change, reason: Option<String>) -> anyhow::Result<FlagRecord> {
        let path = format!("/api/v1/flags/{name}");
        match self {
            Place::Server(client) => match change {
                Change::Create(flag) => client.post("/api/v1/flags", &flag).await,
                Change::Update(flag) => client.put(&path, &flag).await,
                Change::Kill => client.post(&format!("{path}/kill"), &json!({ "reason": reason })).await,
                Change::Enable => client.post(&format!("{path}/enable"), &json!({ "reason": reason })).await,
                Change::Rollout(_) => Err(Refused("a plan's step is recorded by the server running it".into()).into()),
            },
            Place::Store(store) => {
                let by = super::token::operator();
                flags::change(store, name, change, &by, reason, super::now()?).await.map_err(refused)
            }
        }
    }

    async fn history(&self, name: &str) -> anyhow::Result<FlagHistory> {
        match self {
            Place::Server(client) => client.get(&format!("/api/v1/flags/{name}")).await,
            Place::Store(store) => flags::history(&store.read(flags::FLAGS_STREAM).await?, name).map_err(refused),
        }
    }

    /// The OFREP answer for `context`: the server's, or evaluated here from the store's flags.
    async fn evaluate(
        &self,
        name: &str,
        context: serde_json::Map<String, serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        match self {
            Place::Server(client) => client.ofrep(name, &json!({ "context": context })).await,
            Place::Store(_) => {
                let flags = flags::current(self.list().await?);
                let mut random = || fastrand::u32(..);
                let mut env = rollgate_flags::Env { now: super::now()?, random: &mut random };
                let answer = rollgate_flags::ofrep::resolve(flags.get(name).map(|r| &r.flag), name, &context, &mut env);
                Ok(answer.map_or_else(serde_json::to_value, serde_json::to_value)?)
            }
        }
    }

    async fn list(&self) -> anyhow::Result<Vec<FlagRecord>> {
        match self {
            Place::Server(client) => client.get("/api/v1/flags").await,
            Place::Store(store) => {
                Ok(flags::current(flags::records(&store.read(flags::FLAGS_STREAM).await?)).into_values().collect())
            }
        }
    }
}

fn refused(e: FlagError) -> anyhow::Error {
    match e {
        FlagError::Store(store) => store.into(),
        other => Refused(other.to_string()).into(),
    }
}
