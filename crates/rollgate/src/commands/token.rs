//! `rollgate token create|list|revoke`, directly on the store: how the
//! first admin token is made, with no server running.

use crate::Refused;
use crate::cli::{StoreArgs, TokenCommand};
use anyhow::Context;
use rollgate_server::auth::{AuthError, Ledger, create_token, parse_roles, revoke_token};
use rollgate_store::AnyStore;

pub async fn run(args: &StoreArgs, command: TokenCommand) -> anyhow::Result<()> {
    let store = AnyStore::open(&args.location())
        .await
        .with_context(|| format!("cannot open the store at {}", args.location()))?;
    match command {
        TokenCommand::Create { name, roles, json } => {
            let roles = parse_roles(&roles).map_err(refused)?;
            let created = create_token(&store, &name, &roles, &operator(), super::now()?).await.map_err(refused)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "id": created.record.id, "name": name, "roles": created.record.roles, "token": created.token })
                );
            } else {
                println!("{}", created.token);
                eprintln!(
                    "token {} for {name} ({}): shown once, stored only as a hash; use it as ROLLGATE_TOKEN",
                    created.record.id,
                    created.record.roles.join(", ")
                );
            }
        }
        TokenCommand::List { json } => {
            let tokens = Ledger::read(&store).await.map_err(refused)?.tokens();
            if json {
                let list: Vec<_> = tokens
                    .iter()
                    .map(|t| serde_json::json!({ "id": t.id, "name": t.name, "roles": t.roles, "created_at": t.created_at, "revoked_at": t.revoked_at }))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            }
            for t in tokens.iter().filter(|_| !json) {
                let state = t.revoked_at.as_ref().map_or("live".to_string(), |at| format!("revoked {at}"));
                println!("{}\t{}\t{}\t{}\t{state}", t.id, t.name, t.roles.join(","), t.created_at);
            }
        }
        TokenCommand::Revoke { id } => {
            if !revoke_token(&store, &id, &operator(), super::now()?).await.map_err(refused)? {
                return Err(Refused(format!("no live token `{id}`; `rollgate token list` shows them")).into());
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}

/// Who ran the command on the store directly: the operating-system user.
pub(super) fn operator() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    format!("{user} (local)")
}

fn refused(err: AuthError) -> anyhow::Error {
    match err {
        AuthError::Store(e) => e.into(),
        other => Refused(other.to_string()).into(),
    }
}
