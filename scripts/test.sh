#!/usr/bin/env bash
# Everything CI checks, on a fresh machine too: installs and starts what the
# tests need (PostgreSQL), then format, lints, the purity guard and the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says when it started (seconds since this script did), so a slow CI run shows where its time went.
step() { printf '\n==> %s (at %d s)\n' "$*" "$SECONDS"; }

step "system packages"
missing=()
# prometheus brings promtool (the /metrics test) and the server the external-metrics test queries;
# nginx is the reference for sticky bucketing; libxml2-utils' xmllint checks the JUnit files against the schema;
# chromium and chromium-driver run the dashboard's browser tests.
for pkg in libssl-dev pkg-config curl prometheus nginx libxml2-utils chromium chromium-driver; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "ok: libssl-dev pkg-config curl prometheus nginx libxml2-utils chromium chromium-driver"

step "scipy and fairlearn (oracles of the Mann-Whitney test and the bias measures), the OpenFeature SDK with its OFREP provider, the OpenAI client"
python3 -c "import scipy" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore scipy
python3 -c "import fairlearn" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore fairlearn
python3 -c "import openfeature.contrib.provider.ofrep" 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore openfeature-sdk openfeature-provider-ofrep
python3 -c "import openai" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore openai
echo "ok: scipy $(python3 -c 'import scipy; print(scipy.__version__)'), fairlearn $(python3 -c 'import fairlearn; print(fairlearn.__version__)')"

step "PostgreSQL on 127.0.0.1:5432"
scripts/start-postgres.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the pure core depends on no I/O crate"
scripts/check-purity.sh

step "cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
count() { grep -Eo "^test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed" "$log" | awk -v f="$1" '{ s += $f } END { print s + 0 }'; }
passed=$(count 4)
failed=$(count 6)

step "schemathesis against a running server (every OpenAPI operation)"
scripts/fuzz-api.sh

# The closing line CI reads: every Rust test, summed over the test binaries.
echo
echo "all steps took $SECONDS s"
echo "tests: $passed passed, $failed failed"
