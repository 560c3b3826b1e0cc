#!/usr/bin/env bash
# Everything CI checks, on a fresh machine too: installs and starts what the
# tests need (PostgreSQL), then format, lints, the purity guard and the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "PostgreSQL on 127.0.0.1:5432"
scripts/start-postgres.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the pure core depends on no I/O crate"
scripts/check-purity.sh

step "cargo test"
cargo test --workspace --locked

step "schemathesis against a running server (every OpenAPI operation)"
scripts/fuzz-api.sh
