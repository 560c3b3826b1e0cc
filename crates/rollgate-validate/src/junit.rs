//! The report as JUnit XML, so any CI shows the cases: one test case per
//! suite case, one per requirement and one per edge-case probe, in the
//! common (Jenkins / Ant) schema.

use crate::docs::DocResult;
use crate::edge::ProbeResult;
use crate::report::{Decision, Report};
use std::fmt::Write;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no place for other control characters.
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The suite's report, the edge-case probes and the documents, any of which may be absent.
pub fn junit(report: Option<&Report>, edge: &[ProbeResult], docs: &[DocResult]) -> String {
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    if let Some(r) = report {
        suite_part(&mut o, r);
    }
    if !docs.is_empty() {
        let failures = docs.iter().filter(|d| !d.passed()).count();
        let _ = writeln!(
            o,
            "  <testsuite name=\"documentation\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"0\">",
            docs.len()
        );
        for d in docs {
            let _ = write!(o, "    <testcase classname=\"documentation\" name=\"{}\" time=\"0\"", escape(&d.gate));
            if d.passed() {
                o.push_str("/>\n");
            } else {
                let all: Vec<String> = d.findings.iter().map(ToString::to_string).collect();
                let _ = writeln!(
                    o,
                    ">\n      <failure message=\"{}\" type=\"incomplete\"/>\n    </testcase>",
                    escape(&all.join("; "))
                );
            }
        }
        o.push_str("  </testsuite>\n");
    }
    if !edge.is_empty() {
        let failures = edge.iter().filter(|p| !p.passed).count();
        let _ = writeln!(
            o,
            "  <testsuite name=\"edge-cases\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"0\">",
            edge.len()
        );
        for p in edge {
            let _ = write!(o, "    <testcase classname=\"edge-cases\" name=\"{}\" time=\"0\"", escape(p.probe));
            if p.passed {
                o.push_str("/>\n");
            } else {
                let _ = writeln!(
                    o,
                    ">\n      <failure message=\"{}\" type=\"probe failed\"/>\n    </testcase>",
                    escape(&p.why)
                );
            }
        }
        o.push_str("  </testsuite>\n");
    }
    o.push_str("</testsuites>\n");
    o
}

fn suite_part(o: &mut String, r: &Report) {
    let suite = escape(&r.suite);
    // A case the model did not answer failed it too (a `<failure>` of type "no answer": the
    // Jenkins xunit schema CI servers read has no `<error>` element).
    let case_failures = r.case_results.iter().filter(|c| !c.passed).count();
    let requirement_failures = r.requirements.iter().filter(|q| q.decision != Decision::Passed).count();
    let seconds = |ms: Option<f64>| ms.unwrap_or(0.0) / 1000.0;
    let _ = writeln!(
        o,
        "  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{case_failures}\" errors=\"0\" skipped=\"0\" time=\"{:.3}\">",
        r.case_results.len(),
        r.case_results.iter().map(|c| seconds(c.latency_ms)).sum::<f64>()
    );
    let _ = writeln!(o, "    <properties><property name=\"suite_sha256\" value=\"{}\"/></properties>", r.suite_sha256);
    for c in &r.case_results {
        let _ = write!(
            o,
            "    <testcase classname=\"{suite}.cases\" name=\"{}\" time=\"{:.3}\"",
            escape(&c.id),
            seconds(c.latency_ms)
        );
        let shown = |v: &Option<serde_json::Value>| v.as_ref().map_or("-".into(), |v| v.to_string());
        match (&c.error, c.passed) {
            (Some(e), _) => {
                let _ =
                    writeln!(o, ">\n      <failure message=\"{}\" type=\"no answer\"/>\n    </testcase>", escape(e));
            }
            (None, false) => {
                let message = format!("expected {}, got {}", shown(&c.expected), shown(&c.predicted));
                let _ = writeln!(
                    o,
                    ">\n      <failure message=\"{}\" type=\"wrong answer\"/>\n    </testcase>",
                    escape(&message)
                );
            }
            (None, true) => o.push_str("/>\n"),
        }
    }
    o.push_str("  </testsuite>\n");
    let _ = writeln!(
        o,
        "  <testsuite name=\"{suite}.requirements\" tests=\"{}\" failures=\"{requirement_failures}\" errors=\"0\" skipped=\"0\" time=\"0\">",
        r.requirements.len()
    );
    for q in &r.requirements {
        let _ = write!(o, "    <testcase classname=\"{suite}.requirements\" name=\"{}\" time=\"0\"", escape(&q.rule));
        match q.decision {
            Decision::Passed => {
                let _ = writeln!(o, ">\n      <system-out>{}</system-out>\n    </testcase>", escape(&q.why));
            }
            Decision::Failed | Decision::TooSmallToDecide => {
                let kind = if q.decision == Decision::Failed { "not met" } else { "too small to decide" };
                let _ =
                    writeln!(o, ">\n      <failure message=\"{}\" type=\"{kind}\"/>\n    </testcase>", escape(&q.why));
            }
        }
    }
    o.push_str("  </testsuite>\n");
}
