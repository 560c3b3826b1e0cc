//! Turns tallies into the benchmark's figures and tables: rollback rates
//! with Wilson intervals, missed faults, time to detect (seconds and canary
//! requests), harm, and how rollgate's judge fares against each anchor.

use super::scenario::{ScenarioFile, Truth};
use super::{ANCHORS, CellSpec, JUDGES, ORACLE, ORACLE_NO_ONSET, RunResult, Tally};
use serde::Serialize;
use std::fmt::Write;

/// A judge's figures in one cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgeFigures {
    pub judge: &'static str,
    pub runs: usize,
    /// Runs rolled back, whether before a late fault's onset or after.
    pub rollbacks: usize,
    pub rollback_rate: f64,
    /// Share of runs rolled back before a late fault began (false rollbacks:
    /// they count as not detecting the fault).
    pub before_onset_rate: f64,
    /// Wilson 95% interval of the rollback rate.
    pub rollback_ci: (f64, f64),
    /// Time to detect over all runs, a missed fault counting as never
    /// (`None`): a median of `None` means more than half were missed.
    pub median_s: Option<u64>,
    pub p95_s: Option<u64>,
    pub median_canary_requests: Option<u64>,
    pub mean_harm: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellFigures {
    pub scenario: String,
    pub description: String,
    pub truth: &'static str,
    pub drift: bool,
    pub rate: u32,
    pub judges: Vec<JudgeFigures>,
}

/// Wilson score interval at 95%.
pub fn wilson(successes: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (z, n, p) = (1.959_964, n as f64, successes as f64 / n as f64);
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The q-quantile (nearest rank) of values where `None` sorts last (never).
fn quantile(values: &mut [Option<u64>], q: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by_key(|v| v.unwrap_or(u64::MAX));
    let rank = ((values.len() as f64) * q).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn figures(judge: &'static str, runs: &[RunResult]) -> JudgeFigures {
    let rollbacks = runs.iter().filter(|r| r.detected_after_s.is_some() || r.rolled_back_before_onset).count();
    let before_onset = runs.iter().filter(|r| r.rolled_back_before_onset).count();
    let mut seconds: Vec<Option<u64>> = runs.iter().map(|r| r.detected_after_s).collect();
    let mut requests: Vec<Option<u64>> = runs.iter().map(|r| r.detected_after_s.map(|_| r.canary_requests)).collect();
    JudgeFigures {
        judge,
        runs: runs.len(),
        rollbacks,
        rollback_rate: rollbacks as f64 / runs.len().max(1) as f64,
        rollback_ci: wilson(rollbacks, runs.len()),
        before_onset_rate: before_onset as f64 / runs.len().max(1) as f64,
        median_s: quantile(&mut seconds, 0.5),
        p95_s: quantile(&mut seconds, 0.95),
        median_canary_requests: quantile(&mut requests, 0.5),
        mean_harm: runs.iter().map(|r| r.harm).sum::<f64>() / runs.len().max(1) as f64,
    }
}

pub fn cell_figures(file: &ScenarioFile, spec: CellSpec, tally: &Tally) -> CellFigures {
    let sc = &file.scenarios[spec.scenario];
    CellFigures {
        scenario: sc.id.clone(),
        description: sc.description.clone(),
        truth: match sc.truth {
            Truth::Negative => "negative",
            Truth::Boundary => "boundary",
            Truth::Positive => "positive",
        },
        drift: spec.drift,
        rate: spec.rate,
        judges: JUDGES.iter().zip(&tally.results).map(|(j, runs)| figures(j, runs)).collect(),
    }
}

/// How rollgate's judge did against the targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Highest false-rollback rate on a negative cell, and that cell.
    pub worst_false_rollback: (f64, String),
    /// Highest rollback rate on a boundary cell.
    pub worst_boundary: (f64, String),
    /// Per anchor: positive cells where rollgate's median time to detect is
    /// shorter (an anchor's miss counts as slower), and all positive cells.
    pub faster_than: Vec<(&'static str, usize, usize)>,
    /// The same for the oracle SPRT (which knows the fault and its onset):
    /// where even it is not faster than an anchor, no valid judge is.
    pub oracle_faster_than: Vec<(&'static str, usize, usize)>,
    /// Cells where rollgate is faster than every anchor, of all positive cells.
    pub faster_than_all: (usize, usize),
    /// The same, but an anchor that rolls back more than `credible_limit` of
    /// healthy canaries at that rate and drift does not count as detecting:
    /// its quick rollbacks happen whether or not there is a fault.
    pub faster_than_credible: Vec<(&'static str, usize, usize)>,
    pub faster_than_all_credible: (usize, usize),
    pub credible_limit: f64,
    /// Median rollgate time to detect ÷ the oracle SPRT's, on error scenarios, worst cell.
    pub worst_oracle_ratio_on_errors: Option<(f64, String)>,
    /// The same against the oracle that knows the fault but not its onset.
    pub worst_no_onset_ratio_on_errors: Option<(f64, String)>,
}

fn faster(ours: Option<u64>, theirs: Option<u64>) -> bool {
    match (ours, theirs) {
        (Some(a), Some(b)) => a < b,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Whether judge `j`'s rollbacks at this rate and drift mean anything: at most
/// `limit` of healthy (negative) canaries rolled back there.
fn credible(cells: &[CellFigures], at: &CellFigures, j: usize, limit: f64) -> bool {
    cells
        .iter()
        .filter(|c| c.truth == "negative" && c.rate == at.rate && c.drift == at.drift)
        .all(|c| c.judges[j].rollback_rate <= limit)
}

pub fn summarize(cells: &[CellFigures], error_scenarios: &[&str], credible_limit: f64) -> Summary {
    let label = |c: &CellFigures| format!("{} {} {} rps", c.scenario, if c.drift { "drift" } else { "flat" }, c.rate);
    let worst = |truth: &str| {
        cells.iter().filter(|c| c.truth == truth).fold((0.0, String::new()), |acc, c| {
            let rate = c.judges[0].rollback_rate;
            if rate >= acc.0 { (rate, label(c)) } else { acc }
        })
    };
    let positives: Vec<&CellFigures> = cells.iter().filter(|c| c.truth == "positive").collect();
    let wins = |judge: usize, anchor: usize| {
        let n = positives.iter().filter(|c| faster(c.judges[judge].median_s, c.judges[anchor].median_s)).count();
        (JUDGES[anchor], n, positives.len())
    };
    let all_wins = positives
        .iter()
        .filter(|c| ANCHORS.clone().all(|j| faster(c.judges[0].median_s, c.judges[j].median_s)))
        .count();
    let beats = |c: &CellFigures, j: usize| {
        faster(c.judges[0].median_s, c.judges[j].median_s)
            || (!credible(cells, c, j, credible_limit) && c.judges[0].median_s.is_some())
    };
    let faster_than_credible =
        ANCHORS.map(|j| (JUDGES[j], positives.iter().filter(|c| beats(c, j)).count(), positives.len())).collect();
    let all_credible = positives.iter().filter(|c| ANCHORS.clone().all(|j| beats(c, j))).count();
    let worst_ratio_on_errors = |oracle: usize| {
        positives
            .iter()
            .filter(|c| error_scenarios.contains(&c.scenario.as_str()))
            .filter_map(|c| {
                let ours = c.judges[0].median_s? as f64;
                let best = c.judges[oracle].median_s? as f64;
                Some((ours / best, label(c)))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
    };
    Summary {
        worst_false_rollback: worst("negative"),
        worst_boundary: worst("boundary"),
        faster_than: ANCHORS.map(|j| wins(0, j)).collect(),
        oracle_faster_than: ANCHORS.map(|j| wins(ORACLE, j)).collect(),
        faster_than_all: (all_wins, positives.len()),
        faster_than_credible,
        faster_than_all_credible: (all_credible, positives.len()),
        credible_limit,
        worst_oracle_ratio_on_errors: worst_ratio_on_errors(ORACLE),
        worst_no_onset_ratio_on_errors: worst_ratio_on_errors(ORACLE_NO_ONSET),
    }
}

fn seconds(v: Option<u64>) -> String {
    v.map_or("miss".into(), |s| s.to_string())
}

/// The tables a person reads.
pub fn render(cells: &[CellFigures], summary: &Summary, runs: u64, seed: u64) -> String {
    let mut o = String::new();
    let _ =
        writeln!(o, "rollgate bench judge: {runs} runs per cell, seed {seed:#x}; every judge sees the same streams");
    let _ = writeln!(o, "judges: {}", JUDGES.join(", "));
    let _ = writeln!(o, "\nRollback rate on healthy (negative) and boundary canaries [Wilson 95%]:");
    let _ = write!(o, "{:<5} {:<5} {:>5}", "scen", "drift", "rps");
    for j in JUDGES {
        let _ = write!(o, " {j:>22}");
    }
    let _ = writeln!(o);
    for c in cells.iter().filter(|c| c.truth != "positive") {
        let _ = write!(o, "{:<5} {:<5} {:>5}", c.scenario, if c.drift { "yes" } else { "no" }, c.rate);
        for j in &c.judges {
            let cell = format!(
                "{:.1}% [{:.1},{:.1}]",
                j.rollback_rate * 100.0,
                j.rollback_ci.0 * 100.0,
                j.rollback_ci.1 * 100.0
            );
            let _ = write!(o, " {cell:>22}");
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(
        o,
        "\nFaulty (positive) canaries: median / p95 seconds to detect (miss = not detected by the end), missed %, median canary requests, mean harm; e = rolled back before the fault began (a false rollback, not a detection):"
    );
    let _ = write!(o, "{:<5} {:<5} {:>5}", "scen", "drift", "rps");
    for j in JUDGES {
        let _ = write!(o, " {j:>30}");
    }
    let _ = writeln!(o);
    for c in cells.iter().filter(|c| c.truth == "positive") {
        let _ = write!(o, "{:<5} {:<5} {:>5}", c.scenario, if c.drift { "yes" } else { "no" }, c.rate);
        for j in &c.judges {
            let mut cell = format!(
                "{}/{} {:.0}% r{} h{:.0}",
                seconds(j.median_s),
                seconds(j.p95_s),
                (1.0 - j.rollback_rate) * 100.0,
                j.median_canary_requests.map_or("-".into(), |r| r.to_string()),
                j.mean_harm
            );
            if j.before_onset_rate > 0.0 {
                let _ = write!(cell, " e{:.1}%", j.before_onset_rate * 100.0);
            }
            let _ = write!(o, " {cell:>30}");
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "\nSummary for rollgate's judge:");
    let (rate, at) = &summary.worst_false_rollback;
    let _ = writeln!(o, "  worst false-rollback rate on a healthy canary: {:.2}% ({at})", rate * 100.0);
    let (rate, at) = &summary.worst_boundary;
    let _ = writeln!(o, "  worst rollback rate exactly at a trigger's limit: {:.2}% ({at})", rate * 100.0);
    for ((anchor, wins, total), (_, oracle_wins, _)) in summary.faster_than.iter().zip(&summary.oracle_faster_than) {
        let _ = writeln!(
            o,
            "  faster median time to detect than {anchor}: {wins} of {total} positive cells (the oracle SPRT: {oracle_wins})"
        );
    }
    let (wins, total) = summary.faster_than_all;
    let _ = writeln!(o, "  faster than every anchor: {wins} of {total} positive cells");
    let _ = writeln!(
        o,
        "  counting an anchor's rollbacks only where it rolls back at most {:.0}% of healthy canaries at that rate:",
        summary.credible_limit * 100.0
    );
    for (anchor, wins, total) in &summary.faster_than_credible {
        let _ = writeln!(o, "    faster than {anchor}: {wins} of {total} positive cells");
    }
    let (wins, total) = summary.faster_than_all_credible;
    let _ = writeln!(o, "    faster than every anchor: {wins} of {total} positive cells");
    let oracles = [
        ("oracle SPRT's", &summary.worst_oracle_ratio_on_errors),
        ("that of the oracle not told the onset", &summary.worst_no_onset_ratio_on_errors),
    ];
    for (oracle, worst) in oracles {
        if let Some((ratio, at)) = worst {
            let _ = writeln!(o, "  median time to detect / {oracle} on error faults, worst cell: {ratio:.2}x ({at})");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_matches_the_textbook() {
        // 10 of 100: Wilson 95% is about [5.5%, 17.4%].
        let (lo, hi) = wilson(10, 100);
        assert!((lo - 0.0552).abs() < 5e-4 && (hi - 0.1744).abs() < 5e-4, "{lo} {hi}");
        let (lo, hi) = wilson(0, 2000);
        assert_eq!(lo, 0.0);
        assert!(hi < 0.002);
    }

    #[test]
    fn misses_count_as_never_in_the_median() {
        let mut v = vec![Some(5), None, None];
        assert_eq!(quantile(&mut v, 0.5), None);
        let mut v = vec![Some(5), Some(9), None];
        assert_eq!(quantile(&mut v, 0.5), Some(9));
    }
}
