//! A validation run as Markdown, for the self-contained HTML report: the
//! verdict, every metric with its interval, the groups, each requirement,
//! the documents, the edge-case probes, and every case that went wrong.

use crate::docs::DocResult;
use crate::edge::ProbeResult;
use crate::report::{Decision, Report};
use rollgate_core::markdown::escape;
use std::fmt::Write;

pub fn markdown(report: Option<&Report>, edge: &[ProbeResult], docs: &[DocResult]) -> String {
    let mut o = String::new();
    let passed = report.is_none_or(|r| r.passed) && edge.iter().all(|p| p.passed) && docs.iter().all(DocResult::passed);
    let name = report.map_or("validation".to_string(), |r| escape(&r.suite));
    let _ = writeln!(o, "# {name}: {}\n", if passed { "passed" } else { "**failed**" });
    if let Some(r) = report {
        let _ = writeln!(
            o,
            "Suite `{}`, {} cases ({} answered), {:.0}% intervals.\n\n## Metrics\n\n| metric | value | interval | stable |\n|---|---|---|---|",
            r.suite_sha256,
            r.cases,
            r.answered,
            r.confidence * 100.0
        );
        let number = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        for m in &r.metrics {
            let interval = m.interval.map_or("-".to_string(), |i| format!("{:.4} to {:.4}", i.low, i.high));
            let _ = writeln!(o, "| {} | {} | {interval} | {} |", m.metric, number(m.value), number(m.stable));
        }
        if let Some(b) = &r.bias {
            let _ = writeln!(
                o,
                "\n## Groups by {} (positive: {})\n\n| group | cases | selection rate | TPR | FPR | |\n|---|---|---|---|---|---|",
                escape(&b.attribute),
                escape(&b.positive)
            );
            for g in &b.groups {
                let small = if g.too_small { "too small" } else { "" };
                let _ = writeln!(
                    o,
                    "| {} | {} | {:.3} | {:.3} | {:.3} | {small} |",
                    escape(&g.group),
                    g.cases,
                    g.selection_rate,
                    g.true_positive_rate,
                    g.false_positive_rate
                );
            }
        }
        let _ = writeln!(o, "\n## Requirements\n\n| requirement | decision | why |\n|---|---|---|");
        for q in &r.requirements {
            let decision = match q.decision {
                Decision::Passed => "passed",
                Decision::Failed => "**failed**",
                Decision::TooSmallToDecide => "**too small to decide**",
            };
            let _ = writeln!(o, "| {} | {decision} | {} |", escape(&q.rule), escape(&q.why));
        }
        let wrong: Vec<_> = r.case_results.iter().filter(|c| !c.passed).collect();
        if !wrong.is_empty() {
            let _ = writeln!(
                o,
                "\n## Cases that went wrong ({})\n\n| case | expected | answered | error |\n|---|---|---|---|",
                wrong.len()
            );
            let shown = |v: &Option<serde_json::Value>| v.as_ref().map_or("-".to_string(), |v| escape(&v.to_string()));
            for c in wrong {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    escape(&c.id),
                    shown(&c.expected),
                    shown(&c.predicted),
                    escape(c.error.as_deref().unwrap_or(""))
                );
            }
        }
    }
    if !docs.is_empty() {
        let _ = writeln!(o, "\n## Documents\n\n| gate | file | problems |\n|---|---|---|");
        for d in docs {
            let problems = if d.passed() {
                "none".to_string()
            } else {
                d.findings.iter().map(|f| escape(&f.to_string())).collect::<Vec<_>>().join("; ")
            };
            let _ = writeln!(o, "| {} | {} | {problems} |", d.gate, escape(d.file.as_deref().unwrap_or("-")));
        }
    }
    if !edge.is_empty() {
        let _ = writeln!(o, "\n## Edge cases\n\n| probe | bytes | result |\n|---|---|---|");
        for p in edge {
            let _ = writeln!(
                o,
                "| {} | {} | {}{} |",
                p.probe,
                p.bytes,
                if p.passed { "" } else { "**failed**: " },
                escape(&p.why)
            );
        }
    }
    o
}
