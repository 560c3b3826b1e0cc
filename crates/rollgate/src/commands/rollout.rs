//! `rollgate rollout …` on the data directory or database, without a
//! server. Every run first carries out effects left pending by a run that
//! died, then applies its command, then carries out the new effects.

use super::config::load;
use super::{failpoint, now};
use crate::Refused;
use crate::cli::{ActorArgs, RetroFormat, RolloutCommand, StoreArgs};
use crate::effects::Journal;
use crate::render;
use anyhow::Context;
use rollgate_core::config::Config;
use rollgate_core::roles::Actor;
use rollgate_core::rollout::{Command, Input, Rejection, Rollout};
use rollgate_core::routing::serving_version;
use rollgate_server::views::RolloutView;
use rollgate_store::{AnyStore, EventStore, Rollouts, SubmitError, carry_out_pending, is_rollout_stream};

pub async fn run(args: &StoreArgs, command: RolloutCommand) -> anyhow::Result<()> {
    let store = AnyStore::open(&args.location())
        .await
        .with_context(|| format!("cannot open the store at {}", args.location()))?;
    let rollouts = Rollouts::new(store);
    let journal = Journal::open(&args.data_dir)?;
    let resumed = carry_out_pending(&rollouts, &journal).await?;
    if resumed > 0 {
        eprintln!("carried out {resumed} effect(s) left pending by an earlier run");
    }
    let (id, command) = match command {
        RolloutCommand::List { json } => return list(&rollouts, json).await,
        RolloutCommand::Status { rollout, json, watch: _ } => return status(&rollouts, &rollout, json).await,
        RolloutCommand::Archive { rollout, json } => {
            let view = RolloutView::new(&load_rollout(&rollouts, &rollout).await?, now()?, &[]);
            return render::archive(&view, json);
        }
        RolloutCommand::Retro { rollout, format, out } => {
            let retro = rollgate_server::retro::build(rollouts.store(), &rollout).await?.ok_or_else(|| {
                Refused(format!("no rollout `{rollout}`; `rollgate rollout list` shows the ones there are"))
            })?;
            let text = match format {
                RetroFormat::Markdown => rollgate_server::retro::markdown(&retro),
                RetroFormat::Html => rollgate_server::retro::html(&retro),
                RetroFormat::Json => serde_json::to_string_pretty(&retro)? + "\n",
            };
            return super::write_out(&text, out.as_deref());
        }
        RolloutCommand::Start { actor, service, candidate, skip_shadow, id, ticket } => {
            let config = load(&actor.config)?;
            let who = resolve(&config, &actor)?;
            let all = all_rollouts(&rollouts).await?;
            let input = start_input(&config, &all, &service, &candidate, skip_shadow, id, ticket)?;
            let Input::Start { rollout_id, .. } = &input else { unreachable!("start_input builds a start") };
            (rollout_id.clone(), Command::new(who, input))
        }
        other => action(other)?,
    };
    let submitted = rollouts.submit(&id, &command, now()?).await.map_err(|e| refusal(&id, e))?;
    failpoint("after-append");
    carry_out_pending(&rollouts, &journal).await?;
    let view = RolloutView::new(&submitted.state, now()?, &[]);
    println!("{}: {} accepted; now {}", id, command.input.name(), render::stage_line(&view));
    for line in render::effects(&submitted.effects) {
        println!("  {line}");
    }
    Ok(())
}

/// Turns the rules' refusals into exit code 3, keeping store errors as errors.
fn refusal(id: &str, err: SubmitError) -> anyhow::Error {
    match err {
        SubmitError::Rejected(Rejection::NotStarted) => {
            Refused(format!("no rollout `{id}`; `rollgate rollout list` shows the ones there are")).into()
        }
        SubmitError::Rejected(rejection) => Refused(format!("refused: {rejection}")).into(),
        other => other.into(),
    }
}

fn resolve(config: &Config, args: &ActorArgs) -> anyhow::Result<Actor> {
    let Some(user) = &args.user else {
        return Err(
            Refused("say who is acting: --as NAME (or ROLLGATE_USER), or use a server with a token".into()).into()
        );
    };
    match config.roles.get(user) {
        Some(roles) => Ok(Actor::new(user.clone(), roles.iter().copied())),
        None => Err(Refused(format!(
            "`{user}` has no roles in [roles] of {}; add a line such as {user} = [\"deployer\"]",
            args.config.display()
        ))
        .into()),
    }
}

fn start_input(
    config: &Config,
    all: &[Rollout],
    service: &str,
    candidate: &str,
    skip_shadow: bool,
    id: Option<String>,
    ticket: Option<String>,
) -> anyhow::Result<Input> {
    let known = || config.services.keys().cloned().collect::<Vec<_>>().join(", ");
    let spec = config
        .services
        .get(service)
        .ok_or_else(|| Refused(format!("no service `{service}` in the config; services: {}", known())))?;
    if !spec.versions.contains_key(candidate) {
        let versions = spec.versions.keys().cloned().collect::<Vec<_>>().join(", ");
        return Err(Refused(format!("service `{service}` has no version `{candidate}`; versions: {versions}")).into());
    }
    let plan_name = spec.plan.get_ref().clone();
    let plan = config.plan(&plan_name).ok_or_else(|| Refused(format!("plan `{plan_name}` is not defined")))?;
    let stamp = now()?.strftime("%Y%m%d%H%M%S").to_string();
    let stable = serving_version(config, all, service).unwrap_or_else(|| spec.stable.get_ref().clone());
    // Each version's own instances: a finished rolling rollout's pool, or else the config's endpoints.
    let endpoints = |version: &str| {
        rollgate_core::rollout::own_endpoints(all, service, version).unwrap_or_else(|| {
            spec.versions
                .get(version)
                .map(|v| v.endpoints.iter().map(|e| e.get_ref().clone()).collect())
                .unwrap_or_default()
        })
    };
    let pool = rollgate_core::rollout::pool_for(config, service, &plan, endpoints(&stable), &endpoints(candidate))
        .map_err(Refused)?;
    Ok(Input::Start {
        rollout_id: id.unwrap_or_else(|| format!("{service}-{candidate}-{stamp}")),
        service: service.to_string(),
        candidate: candidate.to_string(),
        stable,
        plan_name,
        plan: Box::new(plan),
        skip_shadow,
        ticket,
        pool,
    })
}

/// The command behind each action subcommand, with its acting person.
fn action(command: RolloutCommand) -> anyhow::Result<(String, Command)> {
    let with = |rollout: String, args: &ActorArgs, input: Input| -> anyhow::Result<(String, Command)> {
        let config = load(&args.config)?;
        Ok((rollout, Command::new(resolve(&config, args)?, input)))
    };
    match command {
        RolloutCommand::Evidence { rollout, actor, gate, failed, summary, details } => {
            let details = match details {
                Some(text) => {
                    serde_json::from_str(&text).map_err(|e| Refused(format!("--details is not JSON: {e}")))?
                }
                None => serde_json::Value::Null,
            };
            with(rollout, &actor, Input::Evidence { gate, passed: !failed, summary, details })
        }
        RolloutCommand::Approve { rollout, actor, kind, comment } => {
            let kind = parse_arg("kind", &kind)?;
            with(rollout, &actor, Input::Approve { kind, comment })
        }
        RolloutCommand::Tick { rollout, actor, checklist, item, note } => {
            let checklist = parse_arg("checklist", &checklist)?;
            with(rollout, &actor, Input::Tick { checklist, item, note })
        }
        RolloutCommand::Promote { rollout, actor } => with(rollout, &actor, Input::Promote),
        RolloutCommand::Pause { rollout, actor, reason } => with(rollout, &actor, Input::Pause { reason }),
        RolloutCommand::Resume { rollout, actor } => with(rollout, &actor, Input::Resume),
        RolloutCommand::Abort { rollout, actor, reason } => with(rollout, &actor, Input::Abort { reason }),
        RolloutCommand::Rollback { rollout, actor, category, reason, full } => {
            let category = serde_json::from_value(serde_json::Value::String(category.clone())).map_err(|_| {
                Refused(format!("--category {category}: use quality, complaints, harmful_outputs, security or other"))
            })?;
            with(rollout, &actor, Input::Rollback { category, reason, full })
        }
        RolloutCommand::ForcePromote { rollout, actor, reason } => {
            with(rollout, &actor, Input::ForcePromote { reason })
        }
        RolloutCommand::Advance { rollout } => Ok((rollout, Command::new(Actor::system(), Input::Timer))),
        RolloutCommand::ConfirmEffect { rollout, action, actor, note } => {
            with(rollout, &actor, Input::ConfirmAction { action, note })
        }
        RolloutCommand::Start { .. }
        | RolloutCommand::List { .. }
        | RolloutCommand::Status { .. }
        | RolloutCommand::Archive { .. }
        | RolloutCommand::Retro { .. } => {
            unreachable!("handled by run")
        }
    }
}

fn parse_arg<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, Refused>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| Refused(format!("--{flag} {text}: {e}")))
}

async fn load_rollout(rollouts: &Rollouts<AnyStore>, id: &str) -> anyhow::Result<Rollout> {
    rollouts
        .load(id)
        .await?
        .ok_or_else(|| Refused(format!("no rollout `{id}`; `rollgate rollout list` shows the ones there are")).into())
}

async fn status(rollouts: &Rollouts<AnyStore>, id: &str, json: bool) -> anyhow::Result<()> {
    let view = RolloutView::new(&load_rollout(rollouts, id).await?, now()?, &[]);
    if json {
        println!("{}", serde_json::to_string(&view)?);
    } else {
        print!("{}", render::status(&view));
    }
    Ok(())
}

async fn all_rollouts(rollouts: &Rollouts<AnyStore>) -> anyhow::Result<Vec<Rollout>> {
    let mut all = Vec::new();
    for id in rollouts.store().streams().await?.into_iter().filter(|s| is_rollout_stream(s)) {
        all.push(load_rollout(rollouts, &id).await?);
    }
    Ok(all)
}

async fn list(rollouts: &Rollouts<AnyStore>, json: bool) -> anyhow::Result<()> {
    let all = all_rollouts(rollouts).await?;
    if json {
        println!("{}", serde_json::to_string(&all)?);
        return Ok(());
    }
    if all.is_empty() {
        println!("no rollouts yet; start one with `rollgate rollout start --service S --candidate V --as NAME`");
    }
    let at = now()?;
    for r in &all {
        let view = RolloutView::new(r, at, &[]);
        println!("{}\t{} {} → {}\t{}", r.id, r.service, r.stable, r.candidate, render::stage_line(&view));
    }
    Ok(())
}
