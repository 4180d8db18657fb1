#!/usr/bin/env bash
# What a changed SQLite database would cost an incremental backup, by how
# its changes are cut: the measurement that chooses the segment size of
# docs/incremental.md item 4 (segments with zstd patch-from).
#
#   scripts/measure-segments.sh [MIB]      (default: 1024)
#
# Makes an SQLite database of MIB MiB, snapshots it page for page (SQLite's
# online backup, as Cairn's snapshot does), updates one row on each of 1% of
# its pages chosen at random, snapshots it again, then prints for each cut
# the bytes a backup would add: 4 KiB pages stored whole when changed, and
# segments of 16, 32 and 64 MiB each stored as `zstd --patch-from` of the
# previous snapshot's same segment (level 3), with the time zstd took.
# Everything lives in BENCH_DIR (default /dev/shm/cairn-segments).
set -euo pipefail
MIB=${1:-1024}
BASE=${BENCH_DIR:-/dev/shm/cairn-segments}
for tool in python3 zstd cmp; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done
rm -rf "$BASE"; mkdir -p "$BASE"
python3 - "$BASE" "$MIB" <<'PY'
import os, random, sqlite3, sys
base, mib = sys.argv[1], int(sys.argv[2])
random.seed(3)
db = sqlite3.connect(os.path.join(base, "live.db"))
db.execute("pragma journal_mode=wal")
db.execute("create table events(id integer primary key, kind text, payload blob)")
i = 0
while True:
    rows = [(i + k, random.choice("abcdef") * 8, random.randbytes(random.randrange(60, 300))) for k in range(20000)]
    i += len(rows)
    db.executemany("insert into events values (?,?,?)", rows)
    db.commit()
    if db.execute("pragma page_count").fetchone()[0] * 4096 >= mib << 20:
        break
def snap(name):
    out = sqlite3.connect(os.path.join(base, name))
    db.backup(out)
    out.close()
snap("a.db")
pages = db.execute("pragma page_count").fetchone()[0]
ids = random.sample(range(i), pages // 100)
db.executemany("update events set payload = randomblob(length(payload)) where id = ?", [(k,) for k in ids])
db.commit()
snap("b.db")
PY
a=$BASE/a.db b=$BASE/b.db
size=$(stat -c %s "$b")
printf 'database %d bytes (%d pages of 4 KiB), 1%% of its pages changed\n' "$size" $((size / 4096))
printf '%-22s %14s %9s %9s\n' cut added of_db seconds
# 4 KiB pages stored whole (uncompressed: random rows barely compress).
changed=$({ cmp -l "$a" "$b" || true; } | awk '{print int(($1 - 1) / 4096)}' | uniq | sort -u | wc -l)
printf '%-22s %14d %8.2f%% %9s\n' "4 KiB pages, whole" $((changed * 4096)) \
  "$(awk -v c=$((changed * 4096)) -v s="$size" 'BEGIN {print 100 * c / s}')" "-"
for seg in 16 32 64; do
  bytes=$((seg << 20)); n=$(( (size + bytes - 1) / bytes )); total=0
  start=$(date +%s.%N)
  for k in $(seq 0 $((n - 1))); do
    dd if="$a" of="$BASE/old" bs=1M skip=$((k * seg)) count="$seg" status=none
    dd if="$b" of="$BASE/new" bs=1M skip=$((k * seg)) count="$seg" status=none
    if cmp -s "$BASE/old" "$BASE/new"; then continue; fi
    zstd -q -3 -f --patch-from="$BASE/old" "$BASE/new" -o "$BASE/patch" 2>/dev/null
    total=$((total + $(stat -c %s "$BASE/patch")))
  done
  secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.2f", e - s}')
  printf '%-22s %14d %8.2f%% %9s\n' "${seg} MiB, patch-from" "$total" \
    "$(awk -v c="$total" -v s="$size" 'BEGIN {print 100 * c / s}')" "$secs"
done
rm -rf "$BASE"
