//! `rollgate plan show|list`.

use super::config::load;
use crate::Refused;
use crate::cli::{PlanCommand, PlanFormat};
use crate::render;
use rollgate_core::config::Config;
use rollgate_core::plan::Plan;
use std::path::Path;

pub fn run(command: PlanCommand) -> anyhow::Result<()> {
    match command {
        PlanCommand::Show { name, config, format } => {
            let plan = find(&name, &config)?;
            match format {
                PlanFormat::Text => print!("{}", render::plan(&name, &plan)),
                PlanFormat::Toml => print!("{}", toml::to_string_pretty(&plan)?),
                PlanFormat::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
            }
            Ok(())
        }
        PlanCommand::List { config } => {
            let config = optional_config(&config)?;
            for name in config.plan_names() {
                let plan = config.plan(&name).unwrap_or_default();
                println!("{name}\t{}", plan.description);
            }
            Ok(())
        }
    }
}

/// The built-in default needs no config file; other plans come from it.
pub fn find(name: &str, path: &Path) -> anyhow::Result<Plan> {
    let config = optional_config(path)?;
    config.plan(name).ok_or_else(|| {
        Refused(format!("no plan named `{name}` in {}; plans: {}", path.display(), config.plan_names().join(", ")))
            .into()
    })
}

fn optional_config(path: &Path) -> anyhow::Result<Config> {
    if path.exists() { load(path) } else { Ok(Config::default()) }
}
