//! `rollgate bench judge`: the judge benchmark, its cells spread over threads;
//! `rollgate bench shadow`: the shadow gate's.

use crate::cli::{BenchJudgeArgs, BenchShadowArgs};
use anyhow::Context;
use rollgate_judge::JudgeConfig;
use rollgate_judge::sim::report::{CellFigures, cell_figures, render, summarize};
use rollgate_judge::sim::scenario::{BUILT_IN, parse};
use rollgate_judge::sim::shadow::{ShadowCell, ShadowSettings};
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

/// The shadow gate's table: per noise floor and true excess, how often it
/// blocked, passed or stayed undecided, and the pairs its decisions took.
pub fn shadow(args: &BenchShadowArgs) -> anyhow::Result<()> {
    let sane = (0.0..1.0).contains(&args.bound)
        && args.alpha > 0.0
        && args.alpha < 1.0
        && args.noise_share > 0.0
        && args.noise_share <= 1.0;
    if !sane {
        let why = "--bound must be in [0, 1), --alpha in (0, 1) and --noise-share in (0, 1]";
        return Err(crate::Refused(why.into()).into());
    }
    let settings = ShadowSettings {
        bound: args.bound,
        alpha: args.alpha,
        min_pairs: args.min_pairs,
        max_pairs: args.max_pairs,
        look_every: 50,
        noise_share: args.noise_share,
    };
    let mut excesses = vec![0.0];
    for &e in std::iter::once(&args.bound).chain(&args.excess) {
        if !excesses.contains(&e) {
            excesses.push(e);
        }
    }
    let cells: Vec<ShadowCell> =
        args.noise.iter().flat_map(|&noise| excesses.iter().map(move |&excess| ShadowCell { noise, excess })).collect();
    let started = std::time::Instant::now();
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let seed = args.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                scope.spawn(move || rollgate_judge::sim::shadow::run_cell(*cell, &settings, args.runs, seed))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| unreachable!("a cell does not panic"))).collect()
    });
    println!(
        "shadow gate: allowed excess {:.1}%, false-block budget {}, copies to production on {:.0}% of pairs, at least {} pairs, looked at every 50 pairs, {} runs per cell (seed {:#x})",
        args.bound * 100.0,
        args.alpha,
        args.noise_share * 100.0,
        args.min_pairs,
        args.runs,
        args.seed
    );
    println!("\n noise  excess   blocked            passed   undecided   median pairs to decide");
    for o in &outcomes {
        let share = |n: u64| n as f64 / o.runs as f64 * 100.0;
        let blocked = rollgate_protocol::compare::wilson(o.blocked, o.runs);
        let kind = if o.cell.excess <= args.bound { "false" } else { "caught" };
        println!(
            "{:>5.1}%  {:>5.1}%   {:>5.1}% [{:>4.1}, {:>4.1}] {kind:<6}  {:>5.1}%   {:>5.1}%      {}",
            o.cell.noise * 100.0,
            o.cell.excess * 100.0,
            share(o.blocked),
            blocked.low * 100.0,
            blocked.high * 100.0,
            share(o.passed),
            share(o.runs - o.blocked - o.passed),
            o.median_pairs().map_or("-".to_string(), |n| n.to_string())
        );
    }
    let worst = outcomes
        .iter()
        .filter(|o| o.cell.excess <= args.bound)
        .map(|o| o.blocked as f64 / o.runs as f64)
        .fold(0.0, f64::max);
    println!(
        "\nworst false-block rate (excess within the bound): {:.2}% (budget {:.0}%); wall time {:.1}s",
        worst * 100.0,
        args.alpha * 100.0,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
