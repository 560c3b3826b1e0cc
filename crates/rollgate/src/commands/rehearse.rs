//! `rollgate rehearse`: a plan's whole timeline on a virtual clock.

use super::plan::find;
use crate::Refused;
use rollgate_judge::sim::scenario::{BUILT_IN, parse};
use rollgate_sim::rehearse::{Load, rehearse};
use std::path::Path;

pub fn run(
    plan_name: &str,
    config: &Path,
    scenario_id: &str,
    scenarios: Option<&Path>,
    load: &Load,
    json: bool,
) -> anyhow::Result<()> {
    let plan = find(plan_name, config)?;
    let text = match scenarios {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| Refused(format!("cannot read {}: {e}", path.display())))?
        }
        None => BUILT_IN.to_string(),
    };
    let file = parse(&text).map_err(|e| Refused(format!("scenarios: {e}")))?;
    let Some(scenario) = file.scenarios.iter().find(|s| s.id == scenario_id) else {
        let ids: Vec<&str> = file.scenarios.iter().map(|s| s.id.as_str()).collect();
        return Err(Refused(format!("no scenario `{scenario_id}`; there are {}", ids.join(", "))).into());
    };
    let wall = std::time::Instant::now();
    let done = rehearse(plan_name, &plan, &file.settings, scenario, load, super::now()?);
    if json {
        println!("{}", serde_json::to_string_pretty(&done)?);
        return Ok(());
    }
    println!(
        "rehearsing plan `{plan_name}` at {} requests a second, scenario {}: {}",
        load.rate, scenario.id, scenario.description
    );
    for m in &done.timeline {
        let note = if m.note.is_empty() { String::new() } else { format!("  — {}", m.note) };
        println!("  hour {:>6.2}  {:<18} {:>5.1}% on the candidate{note}", m.hour, m.stage, m.candidate_percent);
    }
    println!("outcome: {} ({} events, rehearsed in {:.0?} of wall time)", done.outcome, done.events, wall.elapsed());
    Ok(())
}
