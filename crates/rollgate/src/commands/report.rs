//! `rollgate report`: a period across rollouts, from a server or the store.

use super::now;
use crate::Refused;
use crate::cli::Target;
use crate::client::Client;
use anyhow::Context;
use rollgate_core::Timestamp;
use rollgate_core::hold::Hold;
use rollgate_store::AnyStore;

pub async fn run(
    target: &Target,
    since: Hold,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    json: bool,
) -> anyhow::Result<()> {
    let to = match to {
        Some(to) => to,
        None => now()?,
    };
    let from = match from {
        Some(from) => from,
        None => to.checked_sub(since.duration()).with_context(|| format!("--since {since} before {to}"))?,
    };
    if from >= to {
        return Err(Refused(format!("the period is empty: --from {from} is not before --to {to}")).into());
    }
    let text = match &target.server {
        Some(server) => {
            let format = if json { "json" } else { "markdown" };
            let path = format!("/api/v1/report?from={from}&to={to}&format={format}");
            Client::new(server, target.token.clone())?.get_text(&path).await?
        }
        None => {
            let location = target.store.location();
            let store =
                AnyStore::open(&location).await.with_context(|| format!("cannot open the store at {location}"))?;
            let report = rollgate_server::report::build(&store, from, to).await?;
            if json {
                serde_json::to_string_pretty(&report)? + "\n"
            } else {
                rollgate_server::report::markdown(&report)
            }
        }
    };
    print!("{text}");
    Ok(())
}
