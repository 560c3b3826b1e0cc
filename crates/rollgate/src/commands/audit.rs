//! `rollgate audit verify|log`.

use crate::Refused;
use crate::cli::{AuditCommand, StoreArgs};
use anyhow::Context;
use rollgate_core::audit::{AuditFailure, StreamHead, VerifiedStream, check_head, verify_stream};
use rollgate_server::head::SignedHead;
use rollgate_store::{AnyStore, EventStore};

pub async fn run(args: &StoreArgs, command: AuditCommand) -> anyhow::Result<()> {
    let store = AnyStore::open(&args.location())
        .await
        .with_context(|| format!("cannot open the store at {}", args.location()))?;
    match command {
        AuditCommand::Verify { json, expect_head, head_file, head_key_env } => {
            let mut heads: Vec<StreamHead> = expect_head.iter().map(|h| parse_head(h)).collect::<Result<_, _>>()?;
            if let Some(path) = head_file {
                heads.extend(signed_heads(&path, &head_key_env)?);
            }
            verify(&store, json, &heads).await
        }
        AuditCommand::Log { rollout, json } => log(&store, &rollout, json).await,
    }
}

/// `STREAM:SEQ:HASH` as `audit verify` prints a head.
fn parse_head(text: &str) -> Result<StreamHead, Refused> {
    let mut parts = text.rsplitn(3, ':');
    let (hash, seq, stream) = (parts.next(), parts.next().and_then(|s| s.parse().ok()), parts.next());
    match (stream, seq, hash) {
        (Some(stream), Some(seq), Some(hash)) if hash.len() == 64 => {
            Ok(StreamHead { stream: stream.into(), seq, hash: hash.into() })
        }
        _ => Err(Refused(format!("--expect-head {text}: write it as STREAM:SEQ:HASH, as `audit verify` prints heads"))),
    }
}

/// The heads in a signed head file, once its signature is checked.
fn signed_heads(path: &std::path::Path, key_env: &str) -> Result<Vec<StreamHead>, Refused> {
    let head = SignedHead::read(path).map_err(Refused)?;
    let key = std::env::var(key_env).map_err(|_| {
        Refused(format!("{} is signed: set {key_env} to the key `rollgate serve` signs it with", path.display()))
    })?;
    if !head.signed_by(key.as_bytes()) {
        return Err(Refused(format!(
            "{}: the signature does not match (another key, or the file was edited): its heads cannot be trusted",
            path.display()
        )));
    }
    Ok(head.streams)
}

async fn verify(store: &AnyStore, json: bool, expected: &[StreamHead]) -> anyhow::Result<()> {
    let refuse = |failure: AuditFailure, verified: &[VerifiedStream]| -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::json!({ "ok": false, "failure": failure, "verified": verified }));
        }
        Err(Refused(format!("audit chain broken: {failure}")).into())
    };
    let mut verified = Vec::new();
    let mut streams = store.streams().await?;
    streams.extend(expected.iter().map(|h| h.stream.clone()).filter(|s| !streams.contains(s)).collect::<Vec<_>>());
    for stream in streams {
        let events = store.read(&stream).await?;
        match verify_stream(&events) {
            Ok(Some(ok)) => verified.push(ok),
            Ok(None) => {}
            Err(failure) => return refuse(failure, &verified),
        }
        for head in expected.iter().filter(|h| h.stream == stream) {
            if let Err(failure) = check_head(head, &events) {
                return refuse(failure, &verified);
            }
        }
    }
    if json {
        println!("{}", serde_json::json!({ "ok": true, "verified": verified }));
    } else {
        for v in &verified {
            println!("{}\t{} events\thead {}:{}:{}", v.stream, v.events, v.stream, v.events, v.head);
        }
        if !expected.is_empty() {
            println!("every stream reaches the {} head(s) recorded outside the database", expected.len());
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
