#!/usr/bin/env bash
# The pure crates (DESIGN.md) must stay pure: no runtime, network or
# database crate among their normal dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden='^(tokio|hyper|hyper-util|sqlx|sqlx-core|reqwest|mio|socket2|axum|tower|libsqlite3-sys|async-std|smol)$'
for crate in rollgate-core rollgate-judge rollgate-protocol rollgate-validate rollgate-flags; do
  deps=$(cargo tree -p "$crate" -e normal --prefix none --format '{p}' --locked | awk '{print $1}' | sort -u)
  found=$(echo "$deps" | grep -E "$forbidden" || true)
  if [ -n "$found" ]; then
    echo "$crate depends on I/O crates it must not use:" >&2
    echo "$found" >&2
    exit 1
  fi
  echo "$crate is pure: $(echo "$deps" | wc -l) crates, none of them I/O"
done
