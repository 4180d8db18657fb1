# Sourced by the benchmark scripts: make_dataset DIR SCALE writes into DIR
# the deterministic mixed dataset of SCALE MiB (gen-dataset's text, binaries
# and blobs, plus an SQLite database made with Python's sqlite3), or, for a
# SCALE of the form files=N, a tree of N small files. Needs $BIN/gen-dataset.
make_dataset() { # DIR SCALE
  local dir=$1 scale=$2
  rm -rf "$dir"
  if [[ $scale == files=* ]]; then
    "$BIN/gen-dataset" --files "${scale#files=}" "$dir" >/dev/null
    return
  fi
  "$BIN/gen-dataset" "$dir" "$scale" >/dev/null
  python3 - "$dir/app.db" "$scale" <<'PY'
import random, sqlite3, sys
random.seed(7)
path, scale = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(path)
db.execute("pragma journal_mode=off"); db.execute("pragma synchronous=off")
db.execute("create table events(id integer primary key, user text, kind text, payload blob, note text)")
target = scale * 1024 * 1024 // 5
kinds = ["login", "logout", "purchase", "view", "error", "deploy"]
i = 0
while True:
    rows = []
    for _ in range(10000):
        i += 1
        rows.append((i, "user%06d" % random.randrange(100000), random.choice(kinds),
                     random.randbytes(random.randrange(40, 200)), "note %d %s" % (i, random.choice(kinds) * 3)))
    db.executemany("insert into events values (?,?,?,?,?)", rows)
    db.commit()
    if db.execute("pragma page_count").fetchone()[0] * 4096 >= target:
        break
db.close()
PY
}
