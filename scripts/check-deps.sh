#!/usr/bin/env bash
# Checks the dependency rules of docs/architecture.md with `cargo tree`:
# the format crates stay synchronous and small (no async runtime, storage,
# SQLite, HTTP or CLI crates), no library depends on the test kit or on an
# example binary, and the binaries reach the engine only through `cairn` and
# `cairn-config` (never the store or the catalog underneath).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
forbidden='^(tokio|object_store|rusqlite|libsqlite3-sys|axum|hyper|reqwest|clap|tower|tower-http)$'
for crate in cairn-integrity cairn-manifest cairn-archive cairn-crypt cairn-retention cairn-job; do
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
  "cairn-job:cairn-integrity" "cairn-job:cairn-manifest" "cairn-job:cairn-catalog" \
  "cairn-storage:cairn-archive" "cairn-catalog:tokio" "cairn-catalog:object_store" \
  "cairn-catalog:cairn-storage" "cairn-source:tokio" "cairn-source:object_store" \
  "cairn-source:cairn-storage" "cairn-archive:cairn-crypt" "cairn-crypt:cairn-storage"; do
  crate=${pair%%:*}; above=${pair##*:}
  if cargo tree -p "$crate" -e normal --prefix none --format '{p}' --locked | awk '{print $1}' | grep -qx "$above"; then
    echo "dependency rule broken: $crate depends on $above" >&2
    status=1
  fi
done
# The binaries are thin: their direct dependencies among Cairn's crates are
# the engine and the configuration format, and their code never reaches for
# the store or the catalog through the engine.
for bin in cairn-cli cairn-server; do
  direct=$(cargo tree -p "$bin" -e normal --depth 1 --prefix none --format '{p}' --locked |
    awk '{print $1}' | grep -E '^cairn-' | grep -vxE "$bin|cairn|cairn-config" || true)
  if [ -n "$direct" ]; then
    echo "dependency rule broken: $bin depends directly on $(tr '\n' ' ' <<<"$direct")(use the cairn crate's re-exports)" >&2
    status=1
  fi
done
reach=$(grep -rnE 'cairn_(archive|catalog|crypt|integrity|job|manifest|retention|source|storage)::|\.(store|catalog)\(\)\.' \
  examples/cli/src examples/server/src || true)
if [ -n "$reach" ]; then
  echo "dependency rule broken: a binary reaches under the engine:" >&2
  echo "$reach" >&2
  status=1
fi
[ $status = 0 ] && echo "dependency rules hold"
exit $status
