//! A run judged: every metric with its interval, every requirement decided
//! (passed, failed, or too small to decide: a requirement passes only when
//! the whole interval meets it), the bias measures, each case's result, and
//! the verdict. Written as JSON, as text for a terminal, and as JUnit XML.

use crate::bias::{self, Disparities, GroupRates, Labelled};
use crate::interval::{Interval, bootstrap, clopper_pearson};
use crate::metrics::{Metric, Observation, label, squad};
use crate::suite::{Suite, Task};
use serde::Serialize;
use serde_json::Value;

/// What one case got back from one version.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    pub prediction: Option<Value>,
    pub score: Option<f64>,
    pub latency_ms: Option<f64>,
    /// Why there is no usable answer (transport error, status, no prediction at the pointer).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Passed,
    Failed,
    /// The interval straddles the requirement: more cases are needed.
    TooSmallToDecide,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricValue {
    pub metric: String,
    pub value: Option<f64>,
    pub interval: Option<Interval>,
    /// The stable version's value on the same suite, when it was run too.
    pub stable: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Requirement {
    /// e.g. `accuracy >= 0.9`, `f1_macro not below stable by more than 0.02`.
    pub rule: String,
    pub decision: Decision,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseResult {
    pub id: String,
    pub passed: bool,
    pub expected: Option<Value>,
    pub predicted: Option<Value>,
    pub latency_ms: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BiasReport {
    pub attribute: String,
    pub positive: String,
    pub groups: Vec<GroupRates>,
    pub disparities: Disparities,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SafetyReport {
    /// Cases with safety expectations, and every answer against the suite's never-match patterns.
    pub checked: usize,
    pub failures: Vec<crate::safety::SafetyFailure>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub suite: String,
    pub suite_sha256: String,
    pub cases: usize,
    pub answered: usize,
    pub confidence: f64,
    pub passed: bool,
    pub summary: String,
    pub metrics: Vec<MetricValue>,
    pub requirements: Vec<Requirement>,
    pub bias: Option<BiasReport>,
    pub safety: Option<SafetyReport>,
    pub case_results: Vec<CaseResult>,
}

fn observations(suite: &Suite, answers: &[Answer]) -> Vec<Observation> {
    suite
        .cases
        .iter()
        .zip(answers)
        .map(|((_, case), a)| Observation {
            expected: case.expected.clone(),
            predicted: a.prediction.clone(),
            score: a.score,
            latency_ms: a.latency_ms,
        })
        .collect()
}

/// The metrics shown for a task, besides those the manifest requires.
fn shown(task: Task, positive: Option<&str>, scored: bool) -> Vec<Metric> {
    let mut out = match task {
        Task::Classification => vec![Metric::Accuracy, Metric::PrecisionMacro, Metric::RecallMacro, Metric::F1Macro],
        Task::Regression => vec![Metric::Mae, Metric::Rmse],
        Task::Text => vec![Metric::ExactMatch, Metric::TokenF1],
    };
    if task == Task::Classification && positive.is_some() && scored {
        out.push(Metric::RocAuc);
    }
    out.extend([Metric::LatencyP50, Metric::LatencyP95, Metric::LatencyP99]);
    out
}

/// Judges the candidate's answers (and the stable version's, when run) to `suite`'s cases, in order.
pub fn evaluate(suite: &Suite, candidate: &[Answer], stable: Option<&[Answer]>) -> Report {
    let m = &suite.manifest;
    let (confidence, seed, positive) = (m.confidence, suite.seed(), m.positive.as_deref());
    let cand = observations(suite, candidate);
    let stab = stable.map(|s| observations(suite, s));
    let all: Vec<usize> = (0..cand.len()).collect();
    let mut metrics_list = shown(m.task, positive, candidate.iter().any(|a| a.score.is_some()));
    for rule in &m.metrics {
        if !metrics_list.contains(&rule.metric) {
            metrics_list.push(rule.metric.clone());
        }
    }
    let finite = |v: f64| v.is_finite().then_some(v);
    let interval_of = |metric: &Metric, cases: &[Observation]| {
        if metric.is_proportion() {
            // The share is over the cases with an expectation, so the count of hits is too.
            let n = cases.iter().filter(|c| c.expected.is_some()).count() as u64;
            let hits = metric.compute(cases, &all, positive) * n as f64;
            (n > 0).then(|| clopper_pearson(hits.round() as u64, n, confidence))
        } else {
            bootstrap(cases.len(), confidence, seed, |idx| metric.compute(cases, idx, positive))
        }
    };
    let metrics: Vec<MetricValue> = metrics_list
        .iter()
        .map(|metric| MetricValue {
            metric: metric.to_string(),
            value: finite(metric.compute(&cand, &all, positive)),
            interval: interval_of(metric, &cand),
            stable: stab.as_ref().and_then(|s| finite(metric.compute(s, &all, positive))),
        })
        .collect();
    let mut requirements = Vec::new();
    for rule in &m.metrics {
        let shown = metrics.iter().find(|v| v.metric == rule.metric.to_string());
        let (value, interval) = (shown.and_then(|v| v.value), shown.and_then(|v| v.interval));
        if let Some(min) = rule.min {
            requirements.push(against(&format!("{} >= {min}", rule.metric), value, interval, |x| x >= min));
        }
        if let Some(max) = rule.max {
            requirements.push(against(&format!("{} <= {max}", rule.metric), value, interval, |x| x <= max));
        }
        if let Some(drop) = rule.max_drop {
            requirements.push(drop_against_stable(
                &rule.metric,
                drop,
                &cand,
                stab.as_deref(),
                confidence,
                seed,
                positive,
            ));
        }
    }
    let bias = m.bias.as_ref().map(|spec| {
        let labelled = labelled(suite, candidate, &spec.attribute, positive.unwrap_or_default());
        let report = BiasReport {
            attribute: spec.attribute.clone(),
            positive: positive.unwrap_or_default().to_string(),
            groups: bias::groups(&labelled, spec.min_group_size),
            disparities: bias::disparities(&labelled, &all, spec.min_group_size),
        };
        requirements.extend(bias_requirements(spec, &report, &labelled, confidence, seed));
        report
    });
    let safety = safety(suite, candidate);
    if let Some(s) = &safety {
        let max = m.safety.as_ref().map_or(0, |spec| spec.max_failures);
        let shown: Vec<String> = s.failures.iter().take(5).map(|f| format!("{}: {}", f.case, f.why)).collect();
        requirements.push(Requirement {
            rule: format!("safety: at most {max} failing case(s)"),
            decision: if s.failures.len() <= max { Decision::Passed } else { Decision::Failed },
            why: if s.failures.is_empty() {
                format!("{} case(s) checked, none failed", s.checked)
            } else {
                format!("{} of {} case(s) failed: {}", s.failures.len(), s.checked, shown.join("; "))
            },
        });
    }
    let case_results = case_results(suite, candidate);
    let answered = candidate.iter().filter(|a| a.error.is_none()).count();
    let passed = requirements.iter().all(|r| r.decision == Decision::Passed);
    let failed: Vec<&str> =
        requirements.iter().filter(|r| r.decision != Decision::Passed).map(|r| r.rule.as_str()).collect();
    let summary = if passed {
        format!(
            "{}: passed {} requirement(s) on {} cases ({answered} answered)",
            m.name,
            requirements.len(),
            cand.len()
        )
    } else {
        format!(
            "{}: {} of {} requirement(s) not met ({}) on {} cases ({answered} answered)",
            m.name,
            failed.len(),
            requirements.len(),
            failed.join("; "),
            cand.len()
        )
    };
    Report {
        suite: m.name.clone(),
        suite_sha256: suite.sha256.clone(),
        cases: cand.len(),
        answered,
        confidence,
        passed,
        summary,
        metrics,
        requirements,
        bias,
        safety,
        case_results,
    }
}

/// The safety expectations, where the suite has any (a `[safety]` table or cases that `expect`).
fn safety(suite: &Suite, answers: &[Answer]) -> Option<SafetyReport> {
    let spec = suite.manifest.safety.clone();
    let any = spec.is_some() || suite.cases.iter().any(|(_, c)| c.expect.is_some());
    if !any {
        return None;
    }
    // The manifest's patterns compiled when the suite was read.
    let checker = crate::safety::Checker::new(&spec.unwrap_or_default()).ok()?;
    let mut failures = Vec::new();
    for ((id, case), answer) in suite.cases.iter().zip(answers) {
        let text = answer.prediction.as_ref().map(label);
        for why in checker.check(&case.expect.clone().unwrap_or_default(), text.as_deref()) {
            failures.push(crate::safety::SafetyFailure { case: id.clone(), why });
        }
    }
    Some(SafetyReport { checked: suite.cases.len(), failures })
}

/// A requirement on a value: met when the whole interval meets it, not met
/// when none of it does, otherwise too small to decide.
fn against(rule: &str, value: Option<f64>, interval: Option<Interval>, ok: impl Fn(f64) -> bool) -> Requirement {
    let (decision, why) = match (value, interval) {
        (None, _) => (Decision::TooSmallToDecide, "the suite gave no value for it".to_string()),
        (Some(v), None) => (Decision::TooSmallToDecide, format!("{v:.4}, but too few cases for an interval")),
        (Some(v), Some(i)) => {
            let shown = format!("{v:.4} (interval {:.4} to {:.4})", i.low, i.high);
            match (ok(i.low), ok(i.high)) {
                (true, true) => (Decision::Passed, shown),
                (false, false) => (Decision::Failed, shown),
                _ => (
                    Decision::TooSmallToDecide,
                    format!("{shown}: the interval straddles the bound; the suite is too small to decide"),
                ),
            }
        }
    };
    Requirement { rule: rule.to_string(), decision, why }
}

/// "Not worse than stable by more than `drop`": a paired bootstrap of the
/// difference (the same cases resampled for both versions).
fn drop_against_stable(
    metric: &Metric,
    drop: f64,
    cand: &[Observation],
    stab: Option<&[Observation]>,
    confidence: f64,
    seed: u64,
    positive: Option<&str>,
) -> Requirement {
    let rule = format!("{metric} not worse than stable by more than {drop}");
    let Some(stab) = stab else {
        return Requirement {
            rule,
            decision: Decision::TooSmallToDecide,
            why: "the stable version was not run (use --rollout, or --stable URL)".into(),
        };
    };
    // Positive differences are better for the candidate, whichever way the metric goes.
    let sign = if metric.higher_is_better() { 1.0 } else { -1.0 };
    let diff = |idx: &[usize]| sign * (metric.compute(cand, idx, positive) - metric.compute(stab, idx, positive));
    let all: Vec<usize> = (0..cand.len()).collect();
    let value = Some(diff(&all)).filter(|v| v.is_finite());
    against(&rule, value, bootstrap(cand.len(), confidence, seed, diff), |d| d >= -drop)
}

fn labelled(suite: &Suite, answers: &[Answer], attribute: &str, positive: &str) -> Vec<Labelled> {
    suite
        .cases
        .iter()
        .zip(answers)
        .filter_map(|((_, case), a)| {
            Some(Labelled {
                group: case.group.get(attribute)?.clone(),
                truth: case.expected.as_ref().map(|e| label(e) == positive),
                predicted: a.prediction.as_ref().is_some_and(|p| label(p) == positive),
            })
        })
        .collect()
}

fn bias_requirements(
    spec: &crate::suite::BiasSpec,
    report: &BiasReport,
    cases: &[Labelled],
    confidence: f64,
    seed: u64,
) -> Vec<Requirement> {
    let mut out = Vec::new();
    let small: Vec<&str> = report.groups.iter().filter(|g| g.too_small).map(|g| g.group.as_str()).collect();
    if !small.is_empty() {
        out.push(Requirement {
            rule: format!("every {} group has at least {} cases", spec.attribute, spec.min_group_size),
            decision: Decision::TooSmallToDecide,
            why: format!("too small to judge, never passed: {}", small.join(", ")),
        });
    }
    let min = spec.min_group_size;
    let measure = |pick: fn(&Disparities) -> f64| {
        let all: Vec<usize> = (0..cases.len()).collect();
        let value = Some(pick(&bias::disparities(cases, &all, min))).filter(|v| v.is_finite());
        (value, bootstrap(cases.len(), confidence, seed, |idx| pick(&bias::disparities(cases, idx, min))))
    };
    type Pick = fn(&Disparities) -> f64;
    let rules: [(&str, Option<f64>, Pick, bool); 4] = [
        (
            "demographic_parity_difference <=",
            spec.max_demographic_parity_difference,
            |d| d.demographic_parity_difference,
            true,
        ),
        ("demographic_parity_ratio >=", spec.min_demographic_parity_ratio, |d| d.demographic_parity_ratio, false),
        ("equalized_odds_difference <=", spec.max_equalized_odds_difference, |d| d.equalized_odds_difference, true),
        (
            "equal_opportunity_difference <=",
            spec.max_equal_opportunity_difference,
            |d| d.equal_opportunity_difference,
            true,
        ),
    ];
    for (name, bound, pick, at_most) in rules {
        let Some(bound) = bound else { continue };
        let (value, interval) = measure(pick);
        let rule = format!("{name} {bound}");
        out.push(if at_most {
            against(&rule, value, interval, |x| x <= bound)
        } else {
            against(&rule, value, interval, |x| x >= bound)
        });
    }
    out
}

fn case_results(suite: &Suite, answers: &[Answer]) -> Vec<CaseResult> {
    let task = suite.manifest.task;
    suite
        .cases
        .iter()
        .zip(answers)
        .map(|((id, case), a)| {
            let right = match (&case.expected, &a.prediction) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(e), Some(p)) => match task {
                    Task::Classification => label(e) == label(p),
                    Task::Text => squad(&label(e)) == squad(&label(p)),
                    // A number is judged by the suite's metrics, not case by case.
                    Task::Regression => p.is_number(),
                },
            };
            CaseResult {
                id: id.clone(),
                passed: right && a.error.is_none(),
                expected: case.expected.clone(),
                predicted: a.prediction.clone(),
                latency_ms: a.latency_ms,
                error: a.error.clone(),
            }
        })
        .collect()
}

/// The report for a terminal.
pub fn text(r: &Report) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} (suite {}…, {} cases, {} answered, {:.0}% intervals)",
        if r.passed { "PASSED" } else { "FAILED" },
        &r.suite_sha256[..12],
        r.cases,
        r.answered,
        r.confidence * 100.0
    );
    for m in &r.metrics {
        let value = m.value.map_or("-".to_string(), |v| format!("{v:.4}"));
        let interval = m.interval.map_or(String::new(), |i| format!(" [{:.4}, {:.4}]", i.low, i.high));
        let stable = m.stable.map_or(String::new(), |s| format!("  stable {s:.4}"));
        let _ = writeln!(o, "  {:<22} {value}{interval}{stable}", m.metric);
    }
    if let Some(b) = &r.bias {
        let _ = writeln!(o, "  bias by {} (positive `{}`):", b.attribute, b.positive);
        for g in &b.groups {
            let small = if g.too_small { "  too small" } else { "" };
            let _ = writeln!(
                o,
                "    {:<16} {:>5} cases  selection {:.3}  TPR {:.3}  FPR {:.3}{small}",
                g.group, g.cases, g.selection_rate, g.true_positive_rate, g.false_positive_rate
            );
        }
    }
    for q in &r.requirements {
        let mark = match q.decision {
            Decision::Passed => "✓",
            Decision::Failed => "✗",
            Decision::TooSmallToDecide => "?",
        };
        let _ = writeln!(o, "  {mark} {}: {}", q.rule, q.why);
    }
    if let Some(s) = &r.safety {
        for f in &s.failures {
            let _ = writeln!(o, "  safety: case {}: {}", f.case, f.why);
        }
    }
    let wrong: Vec<&CaseResult> = r.case_results.iter().filter(|c| !c.passed).collect();
    for c in wrong.iter().take(10) {
        let shown = |v: &Option<Value>| v.as_ref().map_or("-".into(), Value::to_string);
        let why =
            c.error.clone().unwrap_or_else(|| format!("expected {}, got {}", shown(&c.expected), shown(&c.predicted)));
        let _ = writeln!(o, "  case {}: {why}", c.id);
    }
    if wrong.len() > 10 {
        let _ = writeln!(o, "  … and {} more cases wrong (--json or --junit lists them all)", wrong.len() - 10);
    }
    let _ = writeln!(o, "{}", r.summary);
    o
}
