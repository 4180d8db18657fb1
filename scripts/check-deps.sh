#!/usr/bin/env bash
# Checks the dependency rules of docs/architecture.md with `cargo tree`:
# the format crates stay synchronous and small (no async runtime, storage,
# SQLite, HTTP or CLI crates), and no library depends on the test kit or on an
# example binary.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
forbidden='^(tokio|object_store|rusqlite|libsqlite3-sys|axum|hyper|reqwest|clap|tower|tower-http)$'
for crate in cairn-integrity cairn-manifest cairn-archive cairn-retention cairn-job; do
  deps=$(cargo tree -p "$crate" -e normal --prefix none --format '{p}' --locked | awk '{print $1}' | sort -u)
  bad=$(grep -E "$forbidden" <<<"$deps" || true)
  if [ -n "$bad" ]; then
    echo "dependency rule broken: $crate pulls in $(tr '\n' ' ' <<<"$bad")" >&2
    status=1
  fi
  if grep -qx 'cairn-testkit' <<<"$deps"; then
    echo "dependency rule broken: $crate depends on cairn-testkit outside dev-dependencies" >&2
    status=1
  fi
done
# The leaves stay leaves, and storage knows nothing of the archive format.
for pair in "cairn-integrity:cairn-manifest" "cairn-integrity:cairn-archive" "cairn-manifest:cairn-archive" \
  "cairn-retention:cairn-integrity" "cairn-retention:cairn-manifest" "cairn-retention:cairn-job" \
  "cairn-job:cairn-integrity" "cairn-job:cairn-manifest" "cairn-job:cairn-retention" \
  "cairn-storage:cairn-archive" "cairn-catalog:tokio" "cairn-catalog:object_store" \
  "cairn-catalog:cairn-storage" "cairn-source:tokio" "cairn-source:object_store" \
  "cairn-source:cairn-storage"; do
  crate=${pair%%:*}; above=${pair##*:}
  if cargo tree -p "$crate" -e normal --prefix none --format '{p}' --locked | awk '{print $1}' | grep -qx "$above"; then
    echo "dependency rule broken: $crate depends on $above" >&2
    status=1
  fi
done
[ $status = 0 ] && echo "dependency rules hold"
exit $status
