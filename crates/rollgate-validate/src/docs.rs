//! The documentation gates, checked: the model card (JSON, YAML, or
//! Markdown with YAML front matter) has the Model Card Toolkit's fields and
//! agrees with the version being deployed (its name and artifact hash); the
//! runbook, monitoring plan and rollback plan exist and have their required
//! sections. Every problem names its file, and its line where there is one.

pub use rollgate_core::plan::DocumentRules;
use serde::Serialize;
use serde_json::Value;

/// One problem in one document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// One document's check, for its gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocResult {
    /// The gate it is evidence for (`documentation.runbook`, …).
    pub gate: String,
    /// The file, when the config names one.
    pub file: Option<String>,
    pub findings: Vec<Finding>,
}

impl DocResult {
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
    }
}

/// The Model Card Toolkit's fields a card must fill, with what they mean.
const CARD_FIELDS: [(&str, &str); 7] = [
    ("/model_details/name", "model details: name"),
    ("/model_details/version/name", "model details: version"),
    ("/model_details/owners", "model details: owners"),
    ("/considerations/use_cases", "intended uses"),
    ("/considerations/limitations", "limitations"),
    ("/considerations/ethical_considerations", "ethical considerations"),
    ("/quantitative_analysis", "quantitative analysis"),
];

/// Markdown cards: front matter keys and body sections standing for the same fields.
const MARKDOWN_KEYS: [(&str, &str); 3] =
    [("name", "model details: name"), ("version", "model details: version"), ("owners", "model details: owners")];
const MARKDOWN_SECTIONS: [&str; 4] = ["Intended use", "Limitations", "Ethical considerations", "Quantitative analysis"];

fn present(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// The 1-based line where `needle` first appears in `text` (1 when it does not).
fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle).map_or(1, |at| text[..at].matches('\n').count() + 1)
}

/// Checks a model card for `version` (artifact `sha256`).
pub fn model_card(file: &str, text: &str, version: &str, sha256: &str) -> Vec<Finding> {
    let finding = |line, message: String| Finding { file: file.into(), line, message };
    let lower = file.to_lowercase();
    let (fields, body): (Value, Option<&str>) = if lower.ends_with(".json") {
        match serde_json::from_str(text) {
            Ok(v) => (v, None),
            Err(e) => return vec![finding(e.line(), format!("not JSON: {e}"))],
        }
    } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        match yaml_serde::from_str::<Value>(text) {
            Ok(v) => (v, None),
            Err(e) => return vec![finding(e.location().map_or(1, |l| l.line()), format!("not YAML: {e}"))],
        }
    } else {
        let Some(rest) = text.strip_prefix("---\n") else {
            return vec![finding(1, "a Markdown model card starts with YAML front matter between `---` lines".into())];
        };
        let Some(end) = rest.find("\n---") else {
            return vec![finding(1, "the front matter has no closing `---`".into())];
        };
        match yaml_serde::from_str::<Value>(&rest[..end]) {
            Ok(v) => (v, Some(&rest[end..])),
            Err(e) => {
                return vec![finding(
                    e.location().map_or(1, |l| l.line() + 1),
                    format!("the front matter is not YAML: {e}"),
                )];
            }
        }
    };
    let mut out = Vec::new();
    let (version_found, sha_found) = match body {
        None => {
            for (pointer, meaning) in CARD_FIELDS {
                if !present(fields.pointer(pointer)) {
                    out.push(finding(1, format!("missing {meaning} (`{pointer}`)")));
                }
            }
            (fields.pointer("/model_details/version/name"), fields.pointer("/model_details/artifact_sha256"))
        }
        Some(body) => {
            for (key, meaning) in MARKDOWN_KEYS {
                if !present(fields.get(key)) {
                    out.push(finding(1, format!("missing {meaning} (front matter `{key}`)")));
                }
            }
            // A missing section is reported at the body's first line, after the closing `---`.
            let body_start = (text.len() - body.len() + "\n---\n".len()).min(text.len());
            let line = text[..body_start].matches('\n').count() + 1;
            for missing in missing_sections(body, &MARKDOWN_SECTIONS.map(String::from)) {
                out.push(finding(line, format!("missing the section \"{missing}\"")));
            }
            (fields.get("version"), fields.get("artifact_sha256"))
        }
    };
    let as_text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    if let Some(found) = version_found.map(as_text).filter(|f| f != version) {
        out.push(finding(
            line_of(text, &found),
            format!("the card is for version `{found}`, but `{version}` is being deployed"),
        ));
    }
    if let Some(found) = sha_found.map(as_text).filter(|f| !f.eq_ignore_ascii_case(sha256)) {
        out.push(finding(
            line_of(text, &found),
            format!("the card's artifact sha256 is {found}, the version's is {sha256}"),
        ));
    }
    out
}

/// The required sections that no Markdown heading of `text` names.
fn missing_sections(text: &str, required: &[String]) -> Vec<String> {
    let headings: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .map(|h| h.trim_start_matches('#').trim().to_lowercase())
        .collect();
    required.iter().filter(|r| !headings.iter().any(|h| h.contains(&r.to_lowercase()))).cloned().collect()
}

/// Checks a document (runbook, monitoring plan, rollback plan) for its sections.
pub fn document(file: &str, text: &str, required: &[String]) -> Vec<Finding> {
    if text.trim().is_empty() {
        return vec![Finding { file: file.into(), line: 1, message: "the document is empty".into() }];
    }
    missing_sections(text, required)
        .into_iter()
        .map(|s| Finding {
            file: file.into(),
            line: 1,
            message: format!("missing the section \"{s}\" (a heading naming it)"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "aaaa";

    #[test]
    fn a_complete_card_in_each_format_passes_and_a_gap_is_named() {
        let json = r#"{"model_details":{"name":"fraud","version":{"name":"v2"},"owners":[{"name":"ml"}]},
            "considerations":{"use_cases":["scoring"],"limitations":["new merchants"],"ethical_considerations":[{"name":"fairness"}]},
            "quantitative_analysis":{"performance_metrics":[{"type":"auc","value":0.93}]}}"#;
        assert_eq!(model_card("card.json", json, "v2", SHA), []);
        let yaml = "model_details:\n  name: fraud\n  version:\n    name: v2\n  owners: [ml]\nconsiderations:\n  use_cases: [scoring]\n  limitations: [x]\n  ethical_considerations: [y]\nquantitative_analysis: {auc: 0.93}\n";
        assert_eq!(model_card("card.yaml", yaml, "v2", SHA), []);
        let md = "---\nname: fraud\nversion: v2\nowners: [ml]\nartifact_sha256: AAAA\n---\n# Fraud v2\n## Intended use\n…\n## Limitations\n…\n## Ethical considerations\n…\n## Quantitative analysis\nAUC 0.93\n";
        assert_eq!(model_card("card.md", md, "v2", SHA), []);
        let gap = md.replace("## Ethical considerations\n", "");
        let found = model_card("card.md", &gap, "v2", SHA);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].to_string(), "card.md:7: missing the section \"Ethical considerations\"");
    }

    #[test]
    fn a_card_for_another_version_or_artifact_is_caught_at_its_line() {
        let md = "---\nname: fraud\nversion: v1\nowners: [ml]\nartifact_sha256: bbbb\n---\n## Intended use\n## Limitations\n## Ethical considerations\n## Quantitative analysis\n";
        let found: Vec<String> = model_card("card.md", md, "v2", SHA).iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "card.md:3: the card is for version `v1`, but `v2` is being deployed",
                "card.md:5: the card's artifact sha256 is bbbb, the version's is aaaa"
            ]
        );
        let missing = model_card("card.json", "{\"model_details\":{}}", "v2", SHA);
        assert_eq!(missing.len(), 7, "{missing:?}");
        assert!(model_card("card.md", "# no front matter", "v2", SHA)[0].message.contains("front matter"));
    }

    #[test]
    fn documents_need_their_sections() {
        let rules = DocumentRules::default();
        let runbook = "# Runbook\n## Deployment steps\n1. …\n## Rollback\n…\n## Contacts\n…";
        assert_eq!(document("runbook.md", runbook, &rules.runbook), []);
        let found = document("runbook.md", "# Runbook\n## Deployment steps\n", &rules.runbook);
        assert_eq!(
            found.iter().map(|f| f.message.as_str()).collect::<Vec<_>>(),
            [
                "missing the section \"Rollback\" (a heading naming it)",
                "missing the section \"Contacts\" (a heading naming it)"
            ]
        );
        assert_eq!(document("x.md", "  \n", &rules.runbook)[0].message, "the document is empty");
    }
}
