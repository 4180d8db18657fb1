#!/usr/bin/env bash
# End-to-end archive benchmark: Cairn against `tar | zstd -3 -T0` on the same data.
#
#   scripts/bench-archive.sh [SCALE ...]      (default: 1024)
#
# A SCALE is MiB of the mixed dataset (small text files, partly compressible
# binaries, incompressible blobs, an SQLite database), or files=N for a tree
# of N small files (30-50 bytes, 1,000 to a folder), where per-file costs
# dominate: `scripts/bench-archive.sh files=200000 files=1000000`.
# For each scale, generates the dataset in tmpfs,
# then runs ROUNDS (default 5) interleaved rounds of:
#   peer pack     tar --format=posix -cf - | zstd -3 -T0
#   cairn pack    examples/pack (hashes every entry and the archive, signs),
#                 once per manifest format in FORMATS (default "1 2")
#   peer unpack   zstd -dc | tar -xf -
#   cairn unpack  examples/unpack (verifies every entry and the signature)
#   cairn age     the format 2 pack and unpack encrypted to an age recipient
#                 (cairn-crypt's examples age-pack and age-unpack: the stored
#                 file is an age file; unpack authenticates every chunk)
# and prints median throughput, the ratio to the peer, compressed size and peak
# RSS. Needs GNU tar, zstd, age-keygen, python3 and /usr/bin/time; builds in
# release mode.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
read -r -a FORMATS <<< "${FORMATS:-1 2}"
SCALES=("$@")
[ ${#SCALES[@]} -eq 0 ] && SCALES=(1024)
BASE=${BENCH_DIR:-/dev/shm/cairn-bench}
for tool in tar zstd age-keygen python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done

cargo build --quiet --release -p cairn-archive -p cairn-crypt --examples
cargo build --quiet --release -p cairn-benches --bin gen-dataset
BIN=target/release
TIME=/usr/bin/time

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

. scripts/dataset.sh

run() { # LABEL LOG COMMAND...: appends "seconds maxrss_kb" to LOG
  local log=$2; shift 2
  "$TIME" -f "%e %M" -a -o "$log" "$@" >/dev/null 2>&1
}

printf '%-8s %-18s %10s %10s %8s %14s %10s\n' scale operation seconds MB/s ratio compressed peakRSS
for scale in "${SCALES[@]}"; do
  work="$BASE/$scale"
  label=$([[ $scale == files=* ]] && echo "${scale#files=}f" || echo "${scale}M")
  mkdir -p "$work"
  make_dataset "$work/data" "$scale"
  bytes=$(du -sb "$work/data" | cut -f1)
  rm -f "$work/key.pem" "$work/key.pem.pub"
  "$BIN/examples/pack" --key "$work/key.pem" "$work/data" /dev/null >/dev/null 2>&1
  rm -f "$work/age.txt"; age-keygen -o "$work/age.txt" 2>/dev/null
  recipient=$(age-keygen -y "$work/age.txt")
  logs="$work/logs"; rm -rf "$logs"; mkdir -p "$logs"
  for _ in $(seq "$ROUNDS"); do
    run peer "$logs/peer-pack" bash -c "tar --format=posix -cf - -C '$work/data' . | zstd -3 -T0 -q -f -o '$work/peer.tar.zst'"
    for f in "${FORMATS[@]}"; do
      run cairn "$logs/v$f-pack" "$BIN/examples/pack" --key "$work/key.pem" --format "$f" "$work/data" "$work/cairn-v$f.tar.zst"
    done
    run cairn "$logs/age-pack" "$BIN/examples/age-pack" --key "$work/key.pem" --to "$recipient" "$work/data" "$work/cairn-age.tar.zst.age"
    rm -rf "$work/out"; mkdir -p "$work/out"
    run peer "$logs/peer-unpack" bash -c "zstd -dc '$work/peer.tar.zst' | tar -xf - -C '$work/out'"
    for f in "${FORMATS[@]}"; do
      rm -rf "$work/out"
      run cairn "$logs/v$f-unpack" "$BIN/examples/unpack" --public-key "$work/key.pem.pub" "$work/cairn-v$f.tar.zst" "$work/out"
      # Unpacked trees must be identical to the source.
      diff -r "$work/data" "$work/out/data" >/dev/null || { echo "unpacked tree (format $f) differs from the source" >&2; exit 1; }
    done
    rm -rf "$work/out"
    run cairn "$logs/age-unpack" "$BIN/examples/age-unpack" --public-key "$work/key.pem.pub" --identity "$work/age.txt" "$work/cairn-age.tar.zst.age" "$work/out"
    diff -r "$work/data" "$work/out/data" >/dev/null || { echo "unpacked tree (encrypted) differs from the source" >&2; exit 1; }
  done
  size_peer=$(stat -c %s "$work/peer.tar.zst")
  for op in pack unpack; do
    peer=$(cut -d' ' -f1 "$logs/peer-$op" | median)
    peer_rss=$(cut -d' ' -f2 "$logs/peer-$op" | median)
    printf '%-8s %-18s %10s %10.0f %8s %14s %8.1fMB\n' "$label" "peer $op" "$peer" "$(awk -v b="$bytes" -v s="$peer" 'BEGIN {print b/s/1e6}')" "" "$([ $op = pack ] && echo "$size_peer" || echo -)" "$(awk -v k="$peer_rss" 'BEGIN {print k/1024}')"
    for f in "${FORMATS[@]}" age; do
      name=$([ "$f" = age ] && echo "v2+age" || echo "v$f")
      file=$([ "$f" = age ] && echo "$work/cairn-age.tar.zst.age" || echo "$work/cairn-v$f.tar.zst")
      log=$([ "$f" = age ] && echo "$logs/age-$op" || echo "$logs/v$f-$op")
      cairn=$(cut -d' ' -f1 "$log" | median)
      cairn_rss=$(cut -d' ' -f2 "$log" | median)
      ratio=$(awk -v p="$peer" -v c="$cairn" 'BEGIN {printf "%.2f", p / c}')
      size_cairn=$(stat -c %s "$file")
      printf '%-8s %-18s %10s %10.0f %8s %14s %8.1fMB\n' "$label" "cairn $name $op" "$cairn" "$(awk -v b="$bytes" -v s="$cairn" 'BEGIN {print b/s/1e6}')" "${ratio}x" "$([ $op = pack ] && echo "$size_cairn" || echo -)" "$(awk -v k="$cairn_rss" 'BEGIN {print k/1024}')"
    done
  done
  for f in "${FORMATS[@]}"; do
    awk -v p="$size_peer" -v c="$(stat -c %s "$work/cairn-v$f.tar.zst")" -v b="$bytes" -v f="$f" \
      'BEGIN {printf "%-8s dataset %d bytes; the format %d archive is %.2fx the size of the peer'"'"'s\n", "", b, f, c / p}'
  done
  rm -rf "$work/out"
done
echo "(ratio = peer seconds / cairn seconds: above 1.00 Cairn is faster; medians of $ROUNDS interleaved rounds)"
