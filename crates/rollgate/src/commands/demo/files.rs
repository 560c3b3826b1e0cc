//! What the demo's team keeps in its repository, written to the data
//! directory: the config, a model card for each version, the service's
//! runbook, monitoring plan and rollback plan, and two evaluation suites
//! (acceptance with bias groups, and safety) whose expected labels come from
//! the fraud model the versions were trained to match.

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};
use rollgate_sim::model::{Faults, serve};
use serde_json::json;
use std::path::{Path, PathBuf};

/// The demo's suites, by directory under the data directory.
pub const SUITES: [&str; 2] = ["suites/fraud-acceptance", "suites/fraud-safety"];
/// The groups of the acceptance suite's bias check.
const BANDS: [&str; 3] = ["18-25", "26-40", "41+"];
const ACCEPTANCE_CASES: usize = 3000;
const SAFETY_CASES: usize = 60;
/// Where the simulated models answer KServe v2 requests.
pub const INFER_PATH: &str = "/v2/models/fraud/infer";

/// Writes `contents` at `dir/relative`, making its directories.
fn put(dir: &Path, relative: &str, contents: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot make {}", parent.display()))?;
    }
    std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The config at `rollgate.toml`, for the commands the team runs against it.
pub fn write_config(dir: &Path, text: &str) -> anyhow::Result<PathBuf> {
    put(dir, "rollgate.toml", text)
}

/// A model card per version (Markdown with front matter) and the service's three documents.
pub fn write_documents(dir: &Path, versions: &[&str], sha256: &str) -> anyhow::Result<()> {
    for version in versions {
        let card = format!(
            "---\nname: fraud-scorer\nversion: {version}\nowners: [fraud-ml@example.com]\nartifact_sha256: {sha256}\n---\n\
             # fraud-scorer {version}\n\n## Intended use\nScores card payments for manual review; a person reviews every `review`.\n\n\
             ## Limitations\nTrained on 2025 European payments; amounts above 10,000 are rare in its data.\n\n\
             ## Ethical considerations\nAge band must not change the outcome: the acceptance suite checks equalized odds and the four-fifths rule by age band.\n\n\
             ## Quantitative analysis\nSee the acceptance suite's report attached to each rollout (accuracy, latency, bias by age band).\n"
        );
        put(dir, &format!("cards/fraud-{version}.md"), &card)?;
    }
    let documents = [
        (
            "docs/runbook.md",
            "# fraud-scorer runbook\n\n## Deployment steps\n`rollgate rollout start fraud-scorer VERSION`; rollgate runs the plan.\n\n\
             ## Rollback\n`rollgate rollout rollback ID --reason …`; the previous version stays warm.\n\n\
             ## Contacts\nfraud-ml@example.com, on call: #fraud-oncall\n",
        ),
        (
            "docs/monitoring-plan.md",
            "# fraud-scorer monitoring plan\n\n## Metrics\nError rate, p99 latency, bad-output ratings and complaints per version, at the gateway.\n\n\
             ## Alerts\nThe judge's triggers during a rollout; `rollgate monitoring export` for Prometheus afterwards.\n\n\
             ## Dashboards\nThe gateway's `/metrics` by service, version and arm.\n",
        ),
        (
            "docs/rollback-plan.md",
            "# fraud-scorer rollback plan\n\n## Triggers\nErrors above 2x baseline, latency above 1.5x, bad outputs, complaints, failed health checks.\n\n\
             ## Procedure\nThe judge rolls back on its own; a person runs `rollgate rollout rollback` with a reason.\n\n\
             ## Verification\nAll traffic on the previous version within one request; the judge keeps watching it.\n",
        ),
    ];
    for (path, text) in documents {
        put(dir, path, text)?;
    }
    Ok(())
}

/// A KServe v2 request for a payment.
fn request(amount: usize, band: &str, note: &str) -> serde_json::Value {
    json!({ "inputs": [
        { "name": "amount", "shape": [1], "datatype": "FP32", "data": [amount as f64] },
        { "name": "age_band", "shape": [1], "datatype": "BYTES", "data": [band] },
        { "name": "note", "shape": [1], "datatype": "BYTES", "data": [note] }
    ] })
}

/// Both suites. The acceptance suite's expected labels are what the fraud
/// model answers without faults (a model server started for this and
/// stopped): the versions were trained to match it, so what they get wrong
/// is what their faults break.
pub async fn write_suites(dir: &Path, seed: u64) -> anyhow::Result<()> {
    let instant = Faults { latency_ms: 0.0, ..Faults::default() };
    let reference = serve("127.0.0.1:0".parse()?, "reference", seed, instant).await?;
    let url = format!("{}{INFER_PATH}", reference.url());
    let http = reqwest::Client::new();
    let ask = |i: usize| {
        let (http, url) = (&http, &url);
        async move {
            let band = BANDS[i % BANDS.len()];
            let input = request(10 + i * 37 % 5000, band, "");
            let answer: serde_json::Value =
                http.post(url).json(&input).send().await?.error_for_status()?.json().await?;
            let case = json!({ "id": format!("a{i}"), "input": input, "expected": answer["outputs"][1]["data"][0], "group": { "age_band": band } });
            Ok::<_, reqwest::Error>(format!("{case}\n"))
        }
    };
    let lines: Vec<String> = futures_util::stream::iter(0..ACCEPTANCE_CASES)
        .map(ask)
        .buffered(32)
        .try_collect()
        .await
        .context("the reference model did not answer")?;
    let cases = lines.concat();
    reference.stop();
    put(dir, &format!("{}/cases.jsonl", SUITES[0]), &cases)?;
    put(
        dir,
        &format!("{}/suite.toml", SUITES[0]),
        &format!(
            "name = \"fraud-acceptance\"\ntask = \"classification\"\npositive = \"approve\"\n\
             [request]\npath = \"{INFER_PATH}\"\n[run]\nconcurrency = 32\n[response]\nprediction = \"/outputs/1/data/0\"\nscore = \"/outputs/0/data/0\"\n\
             [[metrics]]\nmetric = \"accuracy\"\nmin = 0.8\n[[metrics]]\nmetric = \"latency_p99_ms\"\nmax = 250\n\
             [bias]\nattribute = \"age_band\"\nmin_group_size = 100\nmin_demographic_parity_ratio = 0.8\n\
             max_equalized_odds_difference = 0.15\n"
        ),
    )?;
    // Payments whose notes carry personal data the answer must never echo, and an answer that keeps its shape.
    let notes = ["card 4111 1111 1111 1111", "mail me at bob@example.com", "token sk-live-0123456789abcdef"];
    let shape = json!({
        "type": "object", "required": ["name", "data"],
        "properties": { "data": { "type": "array", "items": { "enum": ["approve", "review"] } } }
    });
    let safety: String = (0..SAFETY_CASES)
        .map(|i| {
            let input = request(20 + i * 53 % 3000, BANDS[i % BANDS.len()], notes[i % notes.len()]);
            let case =
                json!({ "id": format!("s{i}"), "input": input, "expect": { "json_schema": shape, "max_length": 200 } });
            format!("{case}\n")
        })
        .collect();
    put(dir, &format!("{}/cases.jsonl", SUITES[1]), &safety)?;
    put(
        dir,
        &format!("{}/suite.toml", SUITES[1]),
        &format!(
            "name = \"fraud-safety\"\ntask = \"classification\"\n\
             [request]\npath = \"{INFER_PATH}\"\n[response]\nprediction = \"/outputs/1\"\n\
             # A request the model fails counts as a failing case; the demo's models fail 5% (v3 15%) of requests.\n\
             [safety]\nmax_failures = 15\n"
        ),
    )?;
    Ok(())
}
