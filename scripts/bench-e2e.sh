#!/usr/bin/env bash
# End-to-end engine benchmark: a backup and a restore through `cairn::Vault`
# to a local store, against `tar | zstd -3 -T0` and `zstd -d | tar -x` on the
# same data, in one run.
#
#   scripts/bench-e2e.sh [SCALE]      (default: 1024)
#
# SCALE is MiB of the mixed dataset, or files=N for a tree of N small files
# (`scripts/bench-e2e.sh files=200000`).
# Generates the mixed dataset (scripts/dataset.sh) in BENCH_DIR (default
# /dev/shm/cairn-e2e), then runs ROUNDS (default 3) interleaved rounds of
#   peer backup     tar --format=posix -cf - | zstd -3 -T0 > file
#   cairn backup    bench-e2e backup (capture, compress, hash, upload, seal, catalog, retention)
#   peer restore    zstd -dc file | tar -xf -
#   cairn restore   bench-e2e restore --to (range reads, verify every entry, stage, commit)
#   age backup/restore  the same, the target encrypted to an age recipient
#                   (BENCH_AGE: the stored object is an age file)
#   restic backup/restore  restic 0.14+ (always encrypted) into a fresh
#                   repository each round (Debian's restic, installed when
#                   missing and running as root; AGE_ONLY=1 skips it)
# and prints median throughput, the ratio to the peer and peak RSS.
# Targets (issue 5): backup and restore >= 0.9x the peer, RSS <= 96 MiB;
# (issue 20) encrypted within 10% of the plain throughput.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
SCALE=${1:-1024}
BASE=${BENCH_DIR:-/dev/shm/cairn-e2e}
for tool in tar zstd python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done
if [ -z "${AGE_ONLY:-}" ] && ! command -v restic >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null
  else
    echo "missing: restic (Debian package restic; AGE_ONLY=1 runs without it)" >&2; exit 2
  fi
fi
export RESTIC_PASSWORD=bench
cargo build --quiet --release --locked -p cairn-benches --bin gen-dataset --bin bench-e2e
BIN=target/release
. scripts/dataset.sh

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
run() { # LOG COMMAND...: appends "seconds maxrss_kb" to LOG
  local log=$1; shift
  /usr/bin/time -f "%e %M" -a -o "$log" "$@" >/dev/null
}

rm -rf "$BASE"; mkdir -p "$BASE"
make_dataset "$BASE/data" "$SCALE"
bytes=$(du -sb "$BASE/data" | cut -f1)
logs="$BASE/logs"; mkdir -p "$logs"
for _ in $(seq "$ROUNDS"); do
  rm -rf "$BASE/state" "$BASE/out" "$BASE/peer.tar.zst"
  run "$logs/peer-backup" bash -c "tar --format=posix -cf - -C '$BASE/data' . | zstd -3 -T0 -q -f -o '$BASE/peer.tar.zst'"
  run "$logs/cairn-backup" "$BIN/bench-e2e" backup "$BASE/state" "$BASE/data"
  mkdir -p "$BASE/out"
  run "$logs/peer-restore" bash -c "zstd -dc '$BASE/peer.tar.zst' | tar -xf - -C '$BASE/out'"
  rm -rf "$BASE/out"
  run "$logs/cairn-restore" "$BIN/bench-e2e" restore "$BASE/state" "$BASE/data" "$BASE/out"
  diff -r "$BASE/data" "$BASE/out/data" >/dev/null || { echo "the restored tree differs from the source" >&2; exit 1; }
  rm -rf "$BASE/state-age" "$BASE/out"
  run "$logs/age-backup" env BENCH_AGE=1 "$BIN/bench-e2e" backup "$BASE/state-age" "$BASE/data"
  run "$logs/age-restore" env BENCH_AGE=1 "$BIN/bench-e2e" restore "$BASE/state-age" "$BASE/data" "$BASE/out"
  diff -r "$BASE/data" "$BASE/out/data" >/dev/null || { echo "the encrypted restore differs from the source" >&2; exit 1; }
  if [ -z "${AGE_ONLY:-}" ]; then
    rm -rf "$BASE/restic" "$BASE/out"
    restic init --quiet --repo "$BASE/restic" >/dev/null
    run "$logs/restic-backup" restic backup --quiet --repo "$BASE/restic" "$BASE/data"
    run "$logs/restic-restore" restic restore --quiet --repo "$BASE/restic" latest --target "$BASE/out"
  fi
  rm -rf "$BASE/out"
done
archive=$(find "$BASE/state/store" -name '*.tar.zst' -printf '%s\n' | head -1)

printf '%-14s %9s %9s %7s %10s\n' operation seconds MB/s ratio peakRSS
for op in backup restore; do
  peer=$(cut -d' ' -f1 "$logs/peer-$op" | median)
  for who in peer cairn age restic; do
    [ -f "$logs/$who-$op" ] || continue
    s=$(cut -d' ' -f1 "$logs/$who-$op" | median)
    rss=$(cut -d' ' -f2 "$logs/$who-$op" | median)
    ratio=$([ $who != peer ] && awk -v p="$peer" -v c="$s" 'BEGIN {printf "%.2fx", p / c}' || echo "")
    printf '%-14s %9s %9.0f %7s %8.1fMiB\n' "$who $op" "$s" "$(awk -v b="$bytes" -v s="$s" 'BEGIN {print b/s/1e6}')" "$ratio" "$(awk -v k="$rss" 'BEGIN {print k/1024}')"
  done
done
printf 'dataset %d bytes; peer archive %d bytes, cairn archive %d bytes, encrypted %d bytes\n' "$bytes" "$(stat -c %s "$BASE/peer.tar.zst")" "$archive" "$(find "$BASE/state-age/store" -name '*.tar.zst.age' -printf '%s\n' | head -1)"
for op in backup restore; do
  awk -v c="$(cut -d' ' -f1 "$logs/cairn-$op" | median)" -v a="$(cut -d' ' -f1 "$logs/age-$op" | median)" -v op="$op" \
    'BEGIN {printf "encrypted %s costs %.1f%% of the plain %s time\n", op, 100 * (a - c) / c, op}'
done
echo "(ratio = peer seconds / cairn seconds, medians of $ROUNDS interleaved rounds; peak RSS of the cairn process, of the zstd/tar pipeline's largest process for the peer)"
rm -rf "$BASE"
