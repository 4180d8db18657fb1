#!/usr/bin/env bash
# Upload/download throughput and upload memory of cairn-storage, on a local
# directory and on the S3 emulator (moto), for a SIZE_MIB object (default 1024).
#
#   scripts/bench-storage.sh [SIZE_MIB] [LOCAL_DIR]
#
# LOCAL_DIR defaults to a fresh directory under /tmp. Starts the emulators if
# they are not running (and stops them afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1024}
local_dir=${2:-$(mktemp -d /tmp/cairn-bench-store.XXXXXX)}
cargo build --release --locked -p cairn-benches --bin bench-storage
bin=target/release/bench-storage
if [ "$(scripts/emulators.sh status)" != $'moto up\nazurite up' ]; then
  trap 'scripts/emulators.sh stop' EXIT
  scripts/emulators.sh start
fi
eval "$(scripts/emulators.sh env)"
bucket=bench-$$
curl -fsS -X PUT "$CAIRN_TEST_S3_ENDPOINT/$bucket" >/dev/null
echo "== local directory ($local_dir)"
"$bin" "$local_dir/store" "$size"
echo "== S3 emulator (moto, $CAIRN_TEST_S3_ENDPOINT)"
AWS_ENDPOINT=$CAIRN_TEST_S3_ENDPOINT AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=bench \
  AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 "$bin" "s3://$bucket/p" "$size"
rm -rf "$local_dir"
