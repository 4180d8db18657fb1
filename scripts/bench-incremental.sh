#!/usr/bin/env bash
# Incremental backups, Cairn against restic on the same data, in one run:
#
#   scripts/bench-incremental.sh [SCALE]      (default: 1024)
#
# SCALE is MiB of the mixed dataset (scripts/dataset.sh, with its SQLite
# database app.db and a 20 MiB log), files=N for a tree of N small files,
# or db=N for one SQLite database of N MiB on its own (Cairn backs it up as
# a live database, through a snapshot; in BENCH_DIR, default
# /var/tmp/cairn-incr-db, on disk: it needs about 5 times N).
# Steps, each timed for both tools (wall seconds, bytes added to the store,
# peak RSS):
#   a  first backup
#   b  second backup of the unchanged tree
#   c  backup after changing 1% of app.db's pages at random, editing 100
#      small files and appending 10 MiB to the log (a tree of small files:
#      100 files edited)
#   d  five more backups with 10 small files edited each (Cairn's chain is
#      then 7 deep), then restore the newest: Cairn's from the chain, a full
#      Cairn backup of the same state restored the same way, and restic's
#      latest snapshot
# Cairn runs through `cairn::Vault` (bench-e2e), restic 0.14+ (Debian's
# package, installed when missing and running as root) with a local
# repository. Everything lives in BENCH_DIR (default /dev/shm/cairn-incr).
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=${1:-1024}
if [[ $SCALE == db=* ]]; then
  BASE=${BENCH_DIR:-/var/tmp/cairn-incr-db}
else
  BASE=${BENCH_DIR:-/dev/shm/cairn-incr}
fi
if ! command -v restic >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null
  else
    echo "missing: restic (Debian package restic)" >&2; exit 2
  fi
fi
for tool in python3 /usr/bin/time diff; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done
cargo build --quiet --release --locked -p cairn-benches --bin gen-dataset --bin bench-e2e
BIN=$PWD/target/release
. scripts/dataset.sh

rm -rf "$BASE"; mkdir -p "$BASE"
data=$BASE/data
export RESTIC_PASSWORD=bench RESTIC_REPOSITORY=$BASE/restic RESTIC_CACHE_DIR=$BASE/restic-cache
results=$BASE/results; : > "$results"
size() { du -sb "$1" 2>/dev/null | cut -f1; }
# step TOOL STEP COMMAND...: times COMMAND, records seconds, bytes added, RSS.
step() {
  local tool=$1 name=$2; shift 2
  local store; store=$([ "$tool" = cairn ] && echo "$BASE/cairn/store" || echo "$BASE/restic")
  local before; before=$(size "$store" || echo 0); before=${before:-0}
  /usr/bin/time -f "%e %M" -o "$BASE/time" "$@" > "$BASE/out-$tool-$name.json"
  local after; after=$(size "$store")
  read -r secs rss < "$BASE/time"
  echo "$tool $name $secs $((after - before)) $rss" >> "$results"
}
# change_db FILE: rewrites one row on each of about 1% of its pages, at random.
change_db() {
  python3 - "$1" <<'PY'
import random, sqlite3, sys
random.seed(11)
db = sqlite3.connect(sys.argv[1])
pages = db.execute("pragma page_count").fetchone()[0]
rows = db.execute("select max(id) from events").fetchone()[0]
# One row on each of about 1% of the pages, chosen at random.
ids = random.sample(range(1, rows + 1), max(1, pages // 100))
db.executemany("update events set payload = randomblob(length(payload)) where id = ?", [(i,) for i in ids])
db.commit()
PY
}
if [[ $SCALE == db=* ]]; then
  mib=${SCALE#db=}
  mkdir -p "$data"
  # Rows of about 1 KiB, half hex text: it compresses about two to one.
  python3 - "$data/app.db" "$mib" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("pragma journal_mode=wal")
db.execute("create table events (id integer primary key, at integer, payload blob)")
rows = int(sys.argv[2]) * 1024 * 1024 // 1430
for start in range(0, rows, 100000):
    db.execute("""with recursive n(i) as (select ? union all select i + 1 from n where i < ?)
                  insert into events select i, i * 7, hex(randomblob(260)) || randomblob(500) from n""",
               (start + 1, min(rows, start + 100000)))
    db.commit()
db.execute("pragma wal_checkpoint(truncate)")
PY
  restic init --quiet >/dev/null
  db=$data/app.db
  step cairn a "$BIN/bench-e2e" backup "$BASE/cairn" "$db"
  step restic a restic backup --quiet "$db"
  step cairn b "$BIN/bench-e2e" backup "$BASE/cairn" "$db"
  step restic b restic backup --quiet "$db"
  change_db "$db"
  step cairn c "$BIN/bench-e2e" backup "$BASE/cairn" "$db"
  step restic c restic backup --quiet "$db"
  rm -rf "$BASE/r1"; step cairn restore-chain "$BIN/bench-e2e" restore "$BASE/cairn" "$db" "$BASE/r1"
  python3 - "$db" "$BASE/r1/db/app.db" <<'PY'
import sqlite3, sys
def rows(p):
    c = sqlite3.connect(p)
    assert c.execute("pragma integrity_check").fetchone()[0] == "ok"
    return c.execute("select count(*), sum(length(payload)), total(at) from events").fetchone(), \
        [r for r in c.execute("select hex(payload) from events where id % 9973 = 1")]
if rows(sys.argv[1]) != rows(sys.argv[2]):
    sys.exit("the restored database differs from the source")
PY
  rm -rf "$BASE/r1"
  step restic restore restic restore --quiet latest --target "$BASE/r3"
  rm -rf "$BASE/r3"
  bytes=$(size "$db")
  printf 'database %s MiB: %d bytes\n' "$mib" "$bytes"
  printf '%-14s %8s %14s %9s %9s %8s\n' step tool added_bytes of_db seconds peakRSS
  while read -r tool name secs added rss; do
    printf '%-14s %8s %14d %8.2f%% %9s %6.0fMiB\n' "$name" "$tool" "$added" \
      "$(awk -v a="$added" -v f="$bytes" 'BEGIN {print 100 * a / f}')" "$secs" \
      "$(awk -v k="$rss" 'BEGIN {print k / 1024}')"
  done < "$results"
  echo "(of_db = bytes added to the store / the database's size; c: 1% of its pages changed at random)"
  [ -n "${KEEP:-}" ] || rm -rf "$BASE"
  exit 0
fi
make_dataset "$data" "$SCALE"
if [[ $SCALE != files=* ]]; then
  python3 -c "import sys; sys.stdout.write(''.join('%08d request served in %d ms\n' % (i, i % 97) for i in range(600000)))" > "$data/app.log"
fi
# A service's files are older than its backup: let the clock move past them
# (Cairn trusts a file's times only once they are 2 s old).
sleep 3
restic init --quiet >/dev/null
cairn_backup() { step cairn "$1" "$BIN/bench-e2e" backup "$BASE/cairn" "$data" ${2:-}; }
restic_backup() { step restic "$1" restic backup --quiet "$data"; }

# edit N: appends a line to N of the smallest files (the same ones each run).
edit() {
  python3 - "$data" "$1" "$2" <<'PY'
import os, sys
root, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
skip = {os.path.join(root, 'app.db'), os.path.join(root, 'app.log')}
files = sorted((os.path.getsize(os.path.join(d, f)), os.path.join(d, f))
               for d, _, fs in os.walk(root) for f in fs if os.path.join(d, f) not in skip)
for _, p in files[:n]:
    with open(p, 'a') as f:
        f.write('edited %s\n' % tag)
PY
}

cairn_backup a; restic_backup a
cairn_backup b; restic_backup b
if [[ $SCALE != files=* ]]; then
  change_db "$data/app.db"
  python3 -c "import sys; sys.stdout.write(''.join('%08d appended line of the log %d\n' % (i, i % 89) for i in range(330000)))" >> "$data/app.log"
fi
edit 100 c
sleep 3
cairn_backup c; restic_backup c
for i in 1 2 3 4 5; do
  edit 10 "d$i"; sleep 3
  cairn_backup "d$i"; restic_backup "d$i"
done
depth=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get('depth', 0))" "$BASE/out-cairn-d5.json")
bytes=$(size "$data")
rm -rf "$BASE/r1"; step cairn restore-chain "$BIN/bench-e2e" restore "$BASE/cairn" "$data" "$BASE/r1"
diff -r "$data" "$BASE/r1/data" >/dev/null || { echo "the chain's restore differs from the source" >&2; exit 1; }
rm -rf "$BASE/r1"
cairn_backup full full
rm -rf "$BASE/r2"; step cairn restore-full "$BIN/bench-e2e" restore "$BASE/cairn" "$data" "$BASE/r2"
diff -r "$data" "$BASE/r2/data" >/dev/null || { echo "the full restore differs from the source" >&2; exit 1; }
rm -rf "$BASE/r2"
step restic restore restic restore --quiet latest --target "$BASE/r3"
rm -rf "$BASE/r3"

full_cairn=$(awk '$1 == "cairn" && $2 == "a" {print $4}' "$results")
full_restic=$(awk '$1 == "restic" && $2 == "a" {print $4}' "$results")
printf 'dataset %s: %d bytes; Cairn chain depth before the restore: %s\n' "$SCALE" "$bytes" "$depth"
printf '%-14s %8s %14s %9s %9s %8s  %s\n' step tool added_bytes of_full seconds peakRSS "cairn: depth, files reused"
while read -r tool name secs added rss; do
  full=$([ "$tool" = cairn ] && echo "$full_cairn" || echo "$full_restic")
  note=$([ "$tool" = cairn ] && python3 -c "import json,sys
r = json.load(open(sys.argv[1]))
print('depth %d, %d reused' % (r.get('depth', 0), r.get('reused_files', 0)) if 'backup_id' in r else '')" "$BASE/out-$tool-$name.json" || true)
  printf '%-14s %8s %14d %8.2f%% %9s %6.0fMiB  %s\n' "$name" "$tool" "$added" \
    "$(awk -v a="$added" -v f="$full" 'BEGIN {print f ? 100 * a / f : 0}')" "$secs" \
    "$(awk -v k="$rss" 'BEGIN {print k / 1024}')" "$note"
done < "$results"
sec() { awk -v t="$1" -v s="$2" '$1 == t && $2 == s {print $3}' "$results"; }
echo
printf 'b (unchanged): cairn %ss, restic %ss: cairn takes %s of restic'"'"'s time\n' \
  "$(sec cairn b)" "$(sec restic b)" "$(awk -v c="$(sec cairn b)" -v r="$(sec restic b)" 'BEGIN {printf "%.2f", c / r}')"
printf 'd (restore): chain %ss, full %ss: the chain restores at %sx the full one'"'"'s speed; restic %ss\n' \
  "$(sec cairn restore-chain)" "$(sec cairn restore-full)" \
  "$(awk -v c="$(sec cairn restore-chain)" -v f="$(sec cairn restore-full)" 'BEGIN {printf "%.2f", f / c}')" \
  "$(sec restic restore)"
echo "(of_full = bytes added / the tool's own first backup; Cairn verifies every restored byte against its manifest)"
[ -n "${KEEP:-}" ] || rm -rf "$BASE"
