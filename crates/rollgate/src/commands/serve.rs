//! `rollgate serve`: the control plane until SIGTERM or Ctrl-C.

use super::config::load_source;
use crate::cli::ServeArgs;
use anyhow::Context;
use rollgate_core::clock::Clock;
use rollgate_server::clock::{ScaledClock, SystemClock};
use rollgate_server::dataplane::InProcess;
use rollgate_server::head::HeadFile;
use rollgate_server::notify::{Hook, RetryPolicy};
use rollgate_server::shadow::ShadowPairs;
use rollgate_server::{ServerOptions, start};
use rollgate_store::AnyStore;
use std::io::Write;
use std::sync::Arc;

/// One `rollgate serve` per SQLite data directory: two would both run the
/// reconciler (the judge, deploy hooks, webhooks) on one log. An exclusive
/// lock on `DATA_DIR/serve.lock`, holding the owner's pid for the message.
fn lock_data_dir(data_dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join("serve.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            write!(file, "{}", std::process::id())?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let owner = std::fs::read_to_string(&path).unwrap_or_default();
            Err(crate::Refused(format!(
                "another rollgate serve (pid {}) already runs on {}: on SQLite one server owns a data directory; \
                 run several replicas on PostgreSQL (--database postgres://…)",
                owner.trim(),
                data_dir.display()
            ))
            .into())
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::new(e).context(format!("cannot lock {}", path.display())))
        }
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // PostgreSQL's notices (a replica finding the schema already migrated: "already exists, skipping") are not news.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx::postgres::notice=warn".into());
    // Colours on a terminal only: a log file or journald gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
    if args.lease_renew >= args.lease {
        return Err(crate::Refused(format!(
            "--lease-renew ({:?}) must be shorter than --lease ({:?}): the leader renews its lease before it runs out \
             (e.g. --lease 5s --lease-renew 1s)",
            args.lease_renew, args.lease
        ))
        .into());
    }
    let source = load_source(&args.config)?;
    // Held until the process ends (the kernel releases it however it ends).
    let _one_server = match &args.store.database {
        None => Some(lock_data_dir(&args.store.data_dir)?),
        Some(_) => None,
    };
    let location = args.store.location();
    let store = AnyStore::open(&location).await.with_context(|| format!("cannot open the store at {location}"))?;
    let clock: Arc<dyn Clock> = match &args.clock {
        Some(spec) => Arc::new(spec.parse::<ScaledClock>()?),
        None => Arc::new(SystemClock),
    };
    let hooks = Hook::from_config(&source.config).map_err(crate::Refused)?;
    let shadow = ShadowPairs::new();
    let gateway = super::gateway::start(
        &source.config,
        args.gateway_listen,
        args.gateway_threads,
        shadow.clone(),
        Some(args.store.data_dir.join("capture")),
    )
    .await?;
    let dataplane = InProcess::new(gateway.gateway.clone(), format!("http://{}", gateway.addr));
    let archive_dir = args.archive_dir.clone().unwrap_or_else(|| args.store.data_dir.join("archive"));
    let head_file = match &args.head_file {
        Some(path) => {
            let key = std::env::var(&args.head_key_env).map_err(|_| {
                crate::Refused(format!(
                    "--head-file {} needs a signing key: set {} (or name another variable with --head-key-env)",
                    path.display(),
                    args.head_key_env
                ))
            })?;
            Some(HeadFile { path: path.clone(), key: key.into_bytes() })
        }
        None => None,
    };
    let options = ServerOptions {
        config: source,
        store,
        listen: args.listen,
        clock,
        tick: args.tick,
        hooks,
        dataplane: Some(Arc::new(dataplane)),
        retry: RetryPolicy::default(),
        archive_dir,
        head_file,
        shadow,
        cluster: rollgate_server::cluster::ClusterSettings { lease: args.lease, renew: args.lease_renew },
    };
    let server = start(options).await?;
    println!("rollgate API listening on http://{}", server.addr);
    println!("OpenAPI document: http://{}/api/v1/openapi.json", server.addr);
    println!("dashboard: http://{}/ (sign in with an API token)", server.addr);
    println!("rollgate gateway listening on http://{}", gateway.addr);
    std::io::stdout().flush()?;
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = hangups.recv() => match server.reload_config() {
                Ok(()) => eprintln!("SIGHUP: {} reloaded and in force", args.config.display()),
                Err(e) => eprintln!("SIGHUP: {e}"),
            },
        }
    }
    eprintln!("shutting down: finishing requests in flight");
    server.shutdown().await;
    gateway.shutdown().await;
    Ok(())
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
