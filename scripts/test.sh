#!/usr/bin/env bash
# The one test command: everything CI checks, from a clean clone.
#
#   scripts/test.sh
#
# Formatting, lints (warnings are errors), the dependency rules, documentation,
# every test of the workspace (unit, integration, doc tests, examples built,
# benches run once in test mode), the REST server checked against its OpenAPI
# document by schemathesis, the dashboard driven in headless Chromium and
# Firefox, and the fuzz properties as a bounded smoke run.
# External tools the interop tests need are installed first when missing, and the
# storage emulators (moto for S3, Azurite for Azure) are installed and started on
# loopback, then stopped at the end unless they were already running. With
# CI=true a test that needs a missing tool or emulator fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }

# A CI run builds once from a clean clone: incremental compilation would only
# add gigabytes of disk (a CI run once failed for lack of space).
if [ "${CI:-}" = "true" ]; then
  export CARGO_INCREMENTAL=0
fi

step "tools"
scripts/ensure-tools.sh

step "storage emulators"
if [ "$(scripts/emulators.sh status)" = $'moto up\nazurite up' ]; then
  echo "already running; left running afterwards"
else
  trap 'scripts/emulators.sh stop' EXIT
  scripts/emulators.sh start
fi
eval "$(scripts/emulators.sh env)"

step "format"
cargo fmt --all -- --check
cargo fmt --all --manifest-path fuzz/Cargo.toml -- --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "dependency rules"
scripts/check-deps.sh

step "documentation"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "tests"
cargo test --workspace --locked
cargo test --workspace --benches --locked

step "API conformance (schemathesis against the running server)"
scripts/api-conformance.sh

step "the dashboard in real browsers (chromium and firefox over WebDriver)"
scripts/browser-test.sh

step "fuzz properties (smoke run on stable)"
cargo clippy --manifest-path fuzz/Cargo.toml --no-default-features --all-targets --locked -- -D warnings
cargo test --manifest-path fuzz/Cargo.toml --no-default-features --locked

printf '\nall checks passed\n'
