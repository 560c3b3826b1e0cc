//! One module per group of subcommands; `run` dispatches.

mod archive;
mod audit;
mod bench;
mod capture;
mod cluster;
mod config;
mod demo;
mod flag;
mod gateway;
mod monitoring;
mod plan;
mod rehearse;
mod remote;
mod report;
mod rollout;
mod serve;
mod shadow;
mod sim;
mod token;
mod validate;

use crate::cli::{BenchCommand, CaptureCommand, Command};
use crate::client::Client;
use rollgate_core::Timestamp;

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init { path, force } => config::init(&path, force),
        Command::Check { file, config: flag, json } => {
            config::check(&file.or(flag).unwrap_or_else(|| "rollgate.toml".into()), json)
        }
        Command::Plan { command } => plan::run(command),
        Command::Rollout { target, command } => rollout_command(&target, command).await,
        Command::Cluster { target, command } => cluster::run(&target, command).await,
        Command::Audit { target, command } => match &target.server {
            Some(server) => remote::audit(&Client::new(server, target.token.clone())?, command).await,
            None => audit::run(&target.store, command).await,
        },
        Command::Archive { command } => archive::run(command),
        Command::Monitoring { command } => monitoring::run(command),
        Command::Validate(args) => validate::run(args).await,
        Command::Report { target, since, from, to, json } => report::run(&target, since, from, to, json).await,
        Command::Shadow { target, command } => shadow::run(&target, command).await,
        Command::Version { target, command } => match &target.server {
            Some(server) => remote::version(&Client::new(server, target.token.clone())?, command).await,
            None => {
                Err(crate::Refused("registering a version needs a server: pass --server or set ROLLGATE_SERVER".into())
                    .into())
            }
        },
        Command::Serve(args) => serve::run(args).await,
        Command::Gateway { config, listen, threads, capture_dir } => {
            gateway::run(&config, listen, threads, capture_dir).await
        }
        Command::Token { store, command } => token::run(&store, command).await,
        Command::Flag { target, command } => flag::run(&target, command).await,
        Command::Capture { command: CaptureCommand::Export { service, last, out, capture_dir } } => {
            let said = capture::export(&capture_dir, &service, last, &out, rollgate_core::Timestamp::now())?;
            println!("{said}");
            Ok(())
        }
        Command::Demo(args) => demo::run(args).await,
        Command::Rehearse { plan, config, scenario, scenarios, rate, seed, instances, json } => {
            let load = rollgate_sim::rehearse::Load { rate, seed, instances: usize::from(instances) };
            rehearse::run(&plan, &config, &scenario, scenarios.as_deref(), &load, json)
        }
        Command::Sim { command } => sim::run(command).await,
        Command::Bench { command: BenchCommand::Judge(args) } => bench::judge(args),
        Command::Bench { command: BenchCommand::Shadow(args) } => bench::shadow(&args),
    }
}

/// A rollout command, through the server when there is one, else on the store.
async fn rollout_command(target: &crate::cli::Target, command: crate::cli::RolloutCommand) -> anyhow::Result<()> {
    match &target.server {
        Some(server) => remote::rollout(&Client::new(server, target.token.clone())?, command).await,
        None => rollout::run(&target.store, command).await,
    }
}

/// Prints `text`, or writes it to `out` and says where.
pub fn write_out(text: &str, out: Option<&std::path::Path>) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            anyhow::Context::with_context(std::fs::write(path, text), || format!("cannot write {}", path.display()))?;
            println!("wrote {} ({} bytes)", path.display(), text.len());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// The current moment. `ROLLGATE_NOW` (RFC 3339) pretends it is another
/// moment: for rehearsals, and for tests that must not depend on the weekday.
pub fn now() -> anyhow::Result<Timestamp> {
    match std::env::var("ROLLGATE_NOW") {
        Ok(text) => text.parse().map_err(|e| {
            anyhow::anyhow!("ROLLGATE_NOW=`{text}` is not an RFC 3339 instant such as 2026-11-26T09:00:00Z: {e}")
        }),
        Err(_) => Ok(Timestamp::now()),
    }
}

/// Stops here if `ROLLGATE_FAILPOINT` names this point, so that a crash test
/// can kill the process at an exact place. Says so on stderr, then waits.
pub fn failpoint(name: &str) {
    if std::env::var("ROLLGATE_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name} reached");
        loop {
            std::thread::park();
        }
    }
}
