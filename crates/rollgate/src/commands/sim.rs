//! `rollgate sim model` and `rollgate sim traffic`: the simulator's command line.

use crate::cli::SimCommand;
use anyhow::Context;
use rollgate_sim::model::{Faults, Schedule};
use rollgate_sim::traffic::{TrafficCounts, TrafficOptions};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub async fn run(command: SimCommand) -> anyhow::Result<()> {
    match command {
        SimCommand::Model { listen, name, seed, faults, schedule } => {
            let faults: Faults = serde_json::from_str(&faults).map_err(|e| {
                crate::Refused(format!("--faults is not a fault description: {e} (e.g. '{{\"error_rate\":0.05}}')"))
            })?;
            let schedule: Schedule = match schedule {
                Some(text) => text.parse().map_err(|e| crate::Refused(format!("--schedule: {e}")))?,
                None => Schedule::default(),
            };
            let model = rollgate_sim::model::serve(listen, &name, seed, faults)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            model.follow(schedule);
            println!("simulated model `{name}` on {} (faults: GET/PUT {}/_sim/faults)", model.url(), model.url());
            super::serve::shutdown_signal().await;
            model.stop();
            Ok(())
        }
        SimCommand::Traffic { url, rate, seconds, users, replay, feedback, rating_rate, complaint_rate } => {
            let bodies = match replay {
                Some(path) => rollgate_load::read_bodies(&path.to_string_lossy()).map_err(crate::Refused)?,
                None => Vec::new(),
            };
            let options = TrafficOptions {
                url,
                feedback_url: feedback,
                rate_per_s: rate,
                users,
                bodies,
                rating_rate,
                complaint_rate,
                max_in_flight: 1024,
            };
            let counts = Arc::new(TrafficCounts::default());
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(rollgate_sim::traffic::run(options, counts.clone(), stopped));
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            let _ = stop.send(true);
            let _ = task.await;
            let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            println!(
                "sent {}, ok {}, errors {}, dropped {}, feedback {}",
                load(&counts.sent),
                load(&counts.ok),
                load(&counts.errors),
                load(&counts.dropped),
                load(&counts.feedback)
            );
            if load(&counts.ok) == 0 {
                let first = counts.first_error.get().map_or("nothing was sent", String::as_str);
                return Err(crate::Refused(format!(
                    "no request succeeded (first failure: {first}); check the URL: the gateway answers 404 to a path no service's route matches"
                ))
                .into());
            }
            Ok(())
        }
    }
}
