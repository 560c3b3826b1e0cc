#!/usr/bin/env bash
# The core must stay pure (DESIGN.md): no runtime, network or database
# crate among its normal dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden='^(tokio|hyper|hyper-util|sqlx|sqlx-core|reqwest|mio|socket2|axum|tower|libsqlite3-sys|async-std|smol)$'
found=$(cargo tree -p rollgate-core -e normal --prefix none --format '{p}' --locked | awk '{print $1}' | sort -u | grep -E "$forbidden" || true)
if [ -n "$found" ]; then
  echo "rollgate-core depends on I/O crates it must not use:" >&2
  echo "$found" >&2
  exit 1
fi
echo "rollgate-core is pure: $(cargo tree -p rollgate-core -e normal --prefix none --format '{p}' --locked | awk '{print $1}' | sort -u | wc -l) crates, none of them I/O"
