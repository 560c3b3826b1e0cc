//! Injecting the drill's fault into the candidate's staging endpoints, and
//! clearing it: through the model simulator's control API, or by the user's
//! own commands.

use rollgate_core::plan::FaultInjection;
use serde_json::Value;

/// What it takes to put the endpoints back as they were.
pub enum Injected {
    /// Each endpoint's faults before the drill.
    Simulator(Vec<(String, Value)>),
    Command {
        clear: String,
    },
}

/// The candidate's staging endpoints, and how a fault is put into them.
pub struct Injector<'a> {
    pub http: &'a reqwest::Client,
    pub how: &'a FaultInjection,
    pub endpoints: Vec<String>,
    /// What a user's commands are told.
    pub env: Vec<(&'static str, String)>,
    pub error_rate: f64,
    /// How long a user's command may run before it is killed.
    pub command_limit: std::time::Duration,
}

impl Injector<'_> {
    pub async fn inject(&self) -> Result<Injected, String> {
        match self.how {
            FaultInjection::Simulator => {
                let mut before = Vec::new();
                for endpoint in &self.endpoints {
                    let url = format!("{}/_sim/faults", endpoint.trim_end_matches('/'));
                    let faults: Value = self
                        .http
                        .get(&url)
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status)
                        .map_err(|e| format!("{url}: {e} (is the endpoint a `rollgate sim model`?)"))?
                        .json()
                        .await
                        .map_err(|e| format!("{url}: {e}"))?;
                    // A drill killed mid-way left its fault in, with what was there before it: that is what
                    // this drill puts back, not the fault it finds.
                    let found = match faults.get("drill_before") {
                        Some(earlier) if earlier.is_object() => earlier.clone(),
                        _ => faults,
                    };
                    let mut faulty = found.clone();
                    faulty["error_rate"] = self.error_rate.into();
                    faulty["drill_before"] = found.clone();
                    put(self.http, &url, &faulty).await?;
                    before.push((url, found));
                }
                Ok(Injected::Simulator(before))
            }
            FaultInjection::Command { inject, clear } => {
                run_command(inject, &self.env, self.command_limit).await?;
                Ok(Injected::Command { clear: clear.clone() })
            }
        }
    }

    pub async fn clear(&self, injected: Injected) -> Result<(), String> {
        match injected {
            Injected::Simulator(before) => {
                for (url, faults) in before {
                    put(self.http, &url, &faults).await?;
                }
                Ok(())
            }
            Injected::Command { clear } => run_command(&clear, &self.env, self.command_limit).await,
        }
    }
}

async fn put(http: &reqwest::Client, url: &str, faults: &Value) -> Result<(), String> {
    http.put(url)
        .json(faults)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map(drop)
        .map_err(|e| format!("{url}: {e}"))
}

/// A user's command gets this long; then it is killed and the drill fails, rather than staging hanging.
pub const COMMAND_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

async fn run_command(command: &str, env: &[(&'static str, String)], limit: std::time::Duration) -> Result<(), String> {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(limit, status)
        .await
        .map_err(|_| format!("`{command}` did not finish within {:?}", limit))?
        .map_err(|e| format!("cannot run `{command}`: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`{command}` failed: {status}")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_drill_after_one_that_was_killed_puts_back_the_faults_from_before_both() {
        let faults = rollgate_sim::model::Faults { error_rate: 0.1, ..Default::default() };
        let model = rollgate_sim::model::serve("127.0.0.1:0".parse().unwrap(), "v2", 7, faults).await.unwrap();
        let http = reqwest::Client::new();
        let how = FaultInjection::Simulator;
        let injector = Injector {
            http: &http,
            how: &how,
            endpoints: vec![model.url()],
            env: Vec::new(),
            error_rate: 0.5,
            command_limit: COMMAND_LIMIT,
        };
        let now = || async {
            let url = format!("{}/_sim/faults", model.url());
            http.get(url).send().await.unwrap().json::<Value>().await.unwrap()
        };
        // The first drill is killed after it injected: its fault stays in.
        let _killed = injector.inject().await.unwrap();
        assert_eq!(now().await["error_rate"], 0.5);
        // The next drill injects and clears: the model is as it was before the first.
        let injected = injector.inject().await.unwrap();
        injector.clear(injected).await.unwrap();
        let after = now().await;
        assert_eq!(after["error_rate"], 0.1, "{after}");
        assert!(after.get("drill_before").is_none(), "{after}");
    }

    #[tokio::test]
    async fn a_command_that_hangs_is_killed_at_its_limit_and_a_failing_one_is_an_error() {
        let hangs = "sleep 30";
        let started = std::time::Instant::now();
        let err = run_command(hangs, &[], std::time::Duration::from_millis(200)).await.unwrap_err();
        assert!(err.contains("did not finish within 200ms"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "stopped at the limit, not after the sleep");
        let failed = run_command("exit 4", &[], COMMAND_LIMIT).await.unwrap_err();
        assert!(failed.contains("failed: exit status: 4"), "{failed}");
        assert!(run_command("test \"$X\" = yes", &[("X", "yes".into())], COMMAND_LIMIT).await.is_ok());
    }
}
