//! `rollgate init` and `rollgate check`.

use crate::Refused;
use anyhow::Context;
use rollgate_core::config::{Config, Diagnostic, EXAMPLE};
use rollgate_server::ConfigSource;
use std::path::Path;

pub fn init(path: &Path, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        return Err(Refused(format!("{} already exists; pass --force to overwrite it", path.display())).into());
    }
    std::fs::write(path, EXAMPLE).with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {}: an example with two versions of one service and a plan; check it with `rollgate check {}`",
        path.display(),
        path.display()
    );
    Ok(())
}

/// Reads and parses a config, turning problems into one refusal listing them all.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    load_source(path).map(|source| source.config)
}

/// [`load`], keeping the text and the file (for reloads and archives).
pub fn load_source(path: &Path) -> anyhow::Result<ConfigSource> {
    let text = read(path)?;
    let config = Config::parse(&path.display().to_string(), &text).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        Refused(format!("{}\n{} problem(s) in {}", list.join("\n"), problems.len(), path.display()))
    })?;
    Ok(ConfigSource { config, text, path: Some(path.to_path_buf()) })
}

fn read(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            anyhow::Error::new(Refused(format!("{} does not exist; `rollgate init` writes an example", path.display())))
        }
        _ => anyhow::anyhow!("cannot read {}: {e}", path.display()),
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        Refused(format!("{}: byte {at} is not valid UTF-8; a config file must be UTF-8 text", path.display())).into()
    })
}

/// What `serve` would refuse, or fail at, in this environment: signing keys
/// the config names that are not set.
fn environment_problems(path: &Path, text: &str, config: &Config) -> Vec<Diagnostic> {
    config
        .needed_secrets()
        .into_iter()
        .filter(|s| std::env::var_os(&s.var).is_none())
        .map(|s| {
            let message = format!("the environment variable {} is not set: it holds {}", s.var, s.what);
            let hint = format!("export {}=… in the environment `rollgate serve` runs in", s.var);
            Diagnostic::at(&path.display().to_string(), text, s.span, message, hint)
        })
        .collect()
}

pub fn check(path: &Path, json: bool) -> anyhow::Result<()> {
    let text = read(path)?;
    let parsed = Config::parse(&path.display().to_string(), &text).and_then(|config| {
        match environment_problems(path, &text, &config) {
            problems if problems.is_empty() => Ok(config),
            problems => Err(problems),
        }
    });
    match parsed {
        Ok(config) => {
            if json {
                println!("{}", serde_json::json!({ "ok": true, "problems": [] }));
            } else {
                let versions: usize = config.services.values().map(|s| s.versions.len()).sum();
                println!(
                    "{}: ok ({} service(s), {versions} version(s), plans: {})",
                    path.display(),
                    config.services.len(),
                    config.plan_names().join(", ")
                );
            }
            Ok(())
        }
        Err(problems) => {
            if json {
                println!("{}", serde_json::json!({ "ok": false, "problems": problems }));
                return Err(Refused(String::new()).into());
            }
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            Err(Refused(format!("{}\n{} problem(s) in {}", list.join("\n"), problems.len(), path.display())).into())
        }
    }
}
