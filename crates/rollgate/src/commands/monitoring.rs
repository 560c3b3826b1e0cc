//! `rollgate monitoring export`: the service's rules and dashboard as files.

use super::config::load;
use crate::Refused;
use crate::cli::MonitoringCommand;
use anyhow::Context;
use rollgate_server::monitoring::{Limits, dashboard, rules};

pub fn run(command: MonitoringCommand) -> anyhow::Result<()> {
    let MonitoringCommand::Export { service, out, config: path, max_error_rate } = command;
    let config = load(&path)?;
    let Some(svc) = config.services.get(&service) else {
        let known = config.services.keys().cloned().collect::<Vec<_>>().join(", ");
        return Err(Refused(format!("no service `{service}` in {}; services: {known}", path.display())).into());
    };
    let plan = config
        .plan(svc.plan.get_ref())
        .with_context(|| format!("the service's plan `{}` is not in {}", svc.plan.get_ref(), path.display()))?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let files = [
        ("rules.yml", rules(&service, &plan, Limits { max_error_rate })),
        ("dashboard.json", serde_json::to_string_pretty(&dashboard(&service, &plan))? + "\n"),
    ];
    for (name, text) in files {
        let at = out.join(name);
        std::fs::write(&at, text).with_context(|| format!("cannot write {}", at.display()))?;
        println!("wrote {}", at.display());
    }
    println!(
        "check the rules with `promtool check rules {}`; import the dashboard in Grafana (Dashboards > New > Import) and \
         pick the Prometheus that scrapes the gateway's and the API's /metrics",
        out.join("rules.yml").display()
    );
    Ok(())
}
