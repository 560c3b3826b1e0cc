//! `rollgate bench judge`: the judge benchmark, its cells spread over threads.

use crate::cli::BenchJudgeArgs;
use anyhow::Context;
use rollgate_judge::JudgeConfig;
use rollgate_judge::sim::report::{CellFigures, cell_figures, render, summarize};
use rollgate_judge::sim::scenario::{BUILT_IN, parse};
use rollgate_judge::sim::{cells, run_cell};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The error-rate scenarios, on which time to detect is compared with the oracle's.
const ERROR_SCENARIOS: [&str; 4] = ["P1", "P2", "P3", "P9"];

pub fn judge(args: BenchJudgeArgs) -> anyhow::Result<()> {
    if args.print_scenarios {
        print!("{BUILT_IN}");
        return Ok(());
    }
    let text = match &args.scenarios {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
        None => BUILT_IN.to_string(),
    };
    let source = args.scenarios.as_ref().map_or("the built-in scenarios".into(), |p| p.display().to_string());
    let mut file = parse(&text).map_err(|e| crate::Refused(format!("{source}: {e}")))?;
    if let Some(rates) = &args.rates {
        file.settings.rates.clone_from(rates);
    }
    let mut specs = cells(&file);
    if let Some(only) = &args.only {
        specs.retain(|s| only.iter().any(|id| id == &file.scenarios[s.scenario].id));
        if specs.is_empty() {
            let ids: Vec<&str> = file.scenarios.iter().map(|s| s.id.as_str()).collect();
            let wanted = only.join(" or ");
            return Err(crate::Refused(format!(
                "no scenario in {source} is called {wanted}; there are {}",
                ids.join(", ")
            ))
            .into());
        }
    }
    let config = JudgeConfig::default();
    let threads = args.threads.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |n| n.get());
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<CellFigures>>> = Mutex::new(vec![None; specs.len()]);
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&spec) = specs.get(i) else { break };
                    let tally = run_cell(&file, spec, args.runs, args.seed, &config);
                    let figures = cell_figures(&file, spec, &tally);
                    let mut done = done.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    done[i] = Some(figures);
                    let finished = done.iter().filter(|d| d.is_some()).count();
                    if !args.json {
                        eprint!("\r{finished}/{} cells ({:.0?})", specs.len(), started.elapsed());
                    }
                }
            });
        }
    });
    let cells: Vec<CellFigures> =
        done.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner).into_iter().flatten().collect();
    let summary = summarize(&cells, &ERROR_SCENARIOS, config.false_rollback_budget);
    if args.json {
        let out = serde_json::json!({ "runs": args.runs, "seed": args.seed, "cells": cells, "summary": summary });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        eprintln!();
        print!("{}", render(&cells, &summary, args.runs, args.seed));
        println!("  wall time: {:.1?} on {threads} threads", started.elapsed());
    }
    Ok(())
}
