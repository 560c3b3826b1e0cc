//! `rollgate audit verify|log`.

use crate::Refused;
use crate::cli::{AuditCommand, StoreArgs};
use anyhow::Context;
use rollgate_core::audit::verify_stream;
use rollgate_store::{AnyStore, EventStore};

pub async fn run(args: &StoreArgs, command: AuditCommand) -> anyhow::Result<()> {
    let store = AnyStore::open(&args.location())
        .await
        .with_context(|| format!("cannot open the store at {}", args.location()))?;
    match command {
        AuditCommand::Verify { json } => verify(&store, json).await,
        AuditCommand::Log { rollout, json } => log(&store, &rollout, json).await,
    }
}

async fn verify(store: &AnyStore, json: bool) -> anyhow::Result<()> {
    let mut verified = Vec::new();
    for stream in store.streams().await? {
        let events = store.read(&stream).await?;
        match verify_stream(&events) {
            Ok(Some(ok)) => verified.push(ok),
            Ok(None) => {}
            Err(failure) => {
                if json {
                    println!("{}", serde_json::json!({ "ok": false, "failure": failure, "verified": verified }));
                }
                return Err(Refused(format!("audit chain broken: {failure}")).into());
            }
        }
    }
    if json {
        println!("{}", serde_json::json!({ "ok": true, "verified": verified }));
    } else {
        for v in &verified {
            println!("{}\t{} events\thead {}", v.stream, v.events, v.head);
        }
        println!(
            "ok: {} stream(s), {} event(s), every chain intact",
            verified.len(),
            verified.iter().map(|v| v.events).sum::<u64>()
        );
    }
    Ok(())
}

async fn log(store: &AnyStore, rollout: &str, json: bool) -> anyhow::Result<()> {
    let events = store.read(rollout).await?;
    if events.is_empty() {
        return Err(Refused(format!(
            "no rollout `{rollout}` in the log; `rollgate rollout list` shows the ones there are"
        ))
        .into());
    }
    for event in &events {
        if json {
            println!("{}", serde_json::to_string(event)?);
            continue;
        }
        match event.decode() {
            Ok(body) => println!(
                "{:>4}  {}  {:<14} {:<24} {} effect(s)  {}",
                event.seq,
                body.at,
                body.command.input.name(),
                body.command.actor.name,
                body.effects.len(),
                &event.hash[..16]
            ),
            Err(e) => println!("{:>4}  unreadable body: {e}", event.seq),
        }
    }
    Ok(())
}
