//! The `rollgate` binary: parses the command line and wires the crates
//! together. The decisions live in rollgate-core; the log in rollgate-store.

mod cli;
mod client;
mod commands;
mod effects;
mod render;

use clap::Parser;

/// mimalloc keeps per-thread heaps small and returns memory to the system,
/// where glibc's arenas grow under many short-lived connection buffers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

/// A run that did its job but must report a refusal (exit code 3): a config
/// with problems, a blocked or forbidden action, a broken audit chain.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<Refused>() {
            Some(refused) => {
                // `--json` refusals have said everything on stdout already.
                if !refused.0.is_empty() {
                    eprintln!("{refused}");
                }
                ExitCode::from(3)
            }
            None => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}
