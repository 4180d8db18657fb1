#!/usr/bin/env bash
# What following the store costs a catalog (issue 21): requests counted by
# the S3 emulator and the time of a sync, for a target with BACKUPS backups
# after NEW new ones and CHANGES shared decisions by another host.
#
#   scripts/bench-sync.sh [BACKUPS] [NEW] [CHANGES]      (default: 10000 10 5)
#
# Runs its own moto (installed by scripts/emulators.sh) on a spare loopback
# port with its request recorder on, and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
backups=${1:-10000}; new=${2:-10}; changes=${3:-5}
port=${BENCH_SYNC_PORT:-5099}
dir=${CAIRN_EMULATORS_DIR:-$HOME/.cache/cairn-emulators}
cargo build --quiet --release --locked -p cairn-benches --bin bench-sync
[ -x "$dir/venv/bin/moto_server" ] || scripts/emulators.sh start >/dev/null  # installs moto
work=$(mktemp -d /tmp/cairn-bench-sync.XXXXXX)
# (moto writes its recording into its working directory)
(cd "$work" && exec env MOTO_ENABLE_RECORDING=True "$dir/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >moto.log 2>&1) &
moto=$!
trap 'kill $moto 2>/dev/null; rm -rf "$work"' EXIT
endpoint=http://127.0.0.1:$port
for _ in $(seq 50); do curl -fsS "$endpoint/moto-api/" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS -X PUT "$endpoint/bench" >/dev/null
AWS_ENDPOINT=$endpoint AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench \
  AWS_REGION=us-east-1 target/release/bench-sync "s3://bench/p" "$endpoint/moto-api/recorder" \
  "$work" "$backups" "$new" "$changes"
