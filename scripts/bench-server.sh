#!/usr/bin/env bash
# REST server benchmark with wrk on loopback (release build):
#   1. listing backups with BACKUPS (default 100000) records in the catalog:
#      the first page, a filtered page, and a page 90k rows deep (cursor);
#   2. polling one job's status from 200 concurrent connections while that
#      job, a backup of a SCALE MiB (default 2048) mixed dataset, runs; the
#      same backup without the load is timed first, for comparison;
#   3. the dashboard with FLEET_TARGETS (default 1000) targets holding
#      BACKUPS backups in the catalog: the overview and a target's first
#      page, server time (time to first byte on loopback) of 20 requests
#      each, median and slowest; the issue's budget is 300 ms.
#
#   scripts/bench-server.sh
#
# Prints requests per second, p50 and p99 latency, and errors of each load.
# wrk is installed from Debian's packages when missing (as root). Data lives
# in BENCH_DIR (default /dev/shm/cairn-server-bench); DURATION (default 10s)
# is each load's length. wrk and the server share the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."

BACKUPS=${BACKUPS:-100000}
SCALE=${SCALE:-2048}
DURATION=${DURATION:-10s}
BASE=${BENCH_DIR:-/dev/shm/cairn-server-bench}

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "missing: wrk (Debian package wrk)" >&2
    exit 2
  fi
fi
for tool in curl python3 sha256sum; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done
cargo build --quiet --release --locked -p cairn-server -p cairn-benches \
  --bin cairn-server --bin gen-dataset --bin seed-catalog
BIN=target/release
. scripts/dataset.sh
. scripts/server.sh

server_pid=
trap 'stop_server || true' EXIT

rm -rf "$BASE"
mkdir -p "$BASE/home"
echo "dataset: $SCALE MiB"
make_dataset "$BASE/svc" "$SCALE"
bytes=$(du -sb "$BASE/svc" | cut -f1)
token=$(new_token cairn_bench)
cat >"$BASE/home/cairn.toml" <<EOF
[[target]]
name = "svc"
[[target.component]]
name = "data"
kind = "dir"
path = "$BASE/svc"
# Keep every backup: retention must not touch the seeded records.
[target.retention]
keep_within = "36500d"

[server]
request_timeout = "60s"

$(token_lines "$token")
EOF
"$BIN/seed-catalog" "$BASE/home/catalog.db" svc "$BACKUPS"
start_server "$BIN/cairn-server" "$BASE/home/cairn.toml" "$BASE/home" "$BASE/server.log"
url="http://$addr"
auth="Authorization: Bearer $token"
api() { curl -sf -H "$auth" "$@"; }
field() { python3 -c "import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

results=$BASE/results
: >"$results"
# load NAME CONNECTIONS PATH: one wrk run, one line of results.
load() {
  local name=$1 conns=$2 path=$3 out
  out=$(wrk -t2 -c"$conns" -d"$DURATION" --latency -H "$auth" "$url$path")
  echo "$out" >"$BASE/wrk-$(echo "$name" | tr ' ,' '__').txt"
  echo "$out" | awk -v name="$name" -v conns="$conns" '
    /^ +50%/ { p50 = $2 }
    /^ +99%/ { p99 = $2 }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { bad += $NF }
    /Socket errors:/ { gsub(",", ""); bad += $4 + $6 + $8 + $10 }
    END { printf "%-44s %6d %10.0f %9s %9s %7d\n", name, conns, rps, p50, p99, bad }' >>"$results"
}

total=$(api "$url/v1/backups?limit=1" | field 'd["has_more"]')
echo "catalog: $BACKUPS seeded backups (more pages: $total)"
load "list first page (50 of ${BACKUPS})" 32 "/v1/backups?limit=50"
load "list kind=manual, target=svc (50)" 32 "/v1/backups?target=svc&kind=manual&limit=50"
cursor=
for _ in $(seq 1 90); do
  cursor=$(api "$url/v1/backups?limit=1000${cursor:+&cursor=$cursor}" | field 'd["next_cursor"]')
done
load "list 90k rows deep (50, cursor)" 32 "/v1/backups?limit=50&cursor=$cursor"

# The same backup without load, then under the polling load.
job_seconds() { # JOB_ID: waits for the job, prints its duration
  local id=$1 state
  while :; do
    state=$(api "$url/v1/jobs/$id" | field 'd["state"]')
    case $state in succeeded) break ;; failed | cancelled) echo "job $id $state" >&2; exit 1 ;; esac
    sleep 0.2
  done
  api "$url/v1/jobs/$id" | python3 -c '
import json, re, sys
from datetime import datetime
d = json.load(sys.stdin)
t = lambda s: datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", s).replace("Z", "+00:00"))
print((t(d["finished_at"]) - t(d["started_at"])).total_seconds())'
}
start_backup() { api -X POST -H 'content-type: application/json' -d '{}' "$url/v1/targets/svc/backups" | field 'd["id"]'; }
quiet=$(job_seconds "$(start_backup)")
job=$(start_backup)
load "job status, backup running" 200 "/v1/jobs/$job"
still=$(api "$url/v1/jobs/$job" | field 'd["state"]')
loaded=$(job_seconds "$job")
stop_server || true

# 3. The dashboard over a fleet: FLEET_TARGETS targets in the catalog.
FLEET_TARGETS=${FLEET_TARGETS:-1000}
rm -rf "$BASE/fleet"
mkdir -p "$BASE/fleet"
cp "$BASE/home/cairn.toml" "$BASE/fleet/cairn.toml"
"$BIN/seed-catalog" "$BASE/fleet/catalog.db" node "$BACKUPS" "$FLEET_TARGETS"
start_server "$BIN/cairn-server" "$BASE/fleet/cairn.toml" "$BASE/fleet" "$BASE/fleet.log"
url="http://$addr"
cookie=$(curl -s -i -X POST --data-urlencode "token=$token" "$url/login" |
  sed -n 's/^set-cookie: \(cairn_session=[0-9a-f]*\).*/\1/p')
[ -n "$cookie" ] || { echo "the dashboard login failed" >&2; exit 1; }
# page NAME PATH: 20 requests; the median and slowest time to first byte.
page() {
  local name=$1 path=$2 times
  curl -s -o /dev/null -b "$cookie" "$url$path" # warm
  times=$(for _ in $(seq 1 20); do
    curl -s -o /dev/null -b "$cookie" -w '%{http_code} %{time_connect} %{time_starttransfer} %{size_download}\n' "$url$path"
  done)
  local bad size
  bad=$(echo "$times" | awk '$1 != 200 { n++ } END { print n + 0 }')
  size=$(echo "$times" | awk 'END { print $4 }')
  echo "$times" | awk '{ printf "%.1f\n", ($3 - $2) * 1000 }' | sort -n | awk -v name="$name" \
    -v size="$size" -v bad="$bad" '{ t[NR] = $1 }
    END { printf "%-44s %8.1f %8.1f %9d %7d\n", name, t[int((NR + 1) / 2)], t[NR], size, bad }' \
    >>"$BASE/pages"
}
: >"$BASE/pages"
page "overview ($FLEET_TARGETS targets)" "/"
page "a target's first page (node-1)" "/targets/node-1"
page "jobs" "/jobs"
stop_server || true

printf '\n%-44s %6s %10s %9s %9s %7s\n' load conns req/s p50 p99 errors
cat "$results"
printf '\nbackup of %s MiB: %.1f s alone (%.0f MB/s), %.1f s under the polling load (%.0f MB/s)\n' \
  "$SCALE" "$quiet" "$(awk -v b="$bytes" -v s="$quiet" 'BEGIN {print b/s/1e6}')" \
  "$loaded" "$(awk -v b="$bytes" -v s="$loaded" 'BEGIN {print b/s/1e6}')"
printf '\n%-44s %8s %8s %9s %7s\n' "dashboard page (server time, ms)" median slowest bytes errors
cat "$BASE/pages"
if [ "$still" != running ]; then
  echo "warning: the backup had ended ($still) before the polling load did; raise SCALE" >&2
fi
