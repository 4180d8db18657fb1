#!/usr/bin/env bash
# The dashboard in a real headless browser: Debian's chromium and
# chromium-driver, driven by selenium (PyPI) from
# examples/server/tests/browser/dashboard.py against the running debug
# cairn-server: log in, start a backup and watch it reach 100%, browse a
# backup and download a file (bytes compared), restore after a dry run that
# lists a changed file, a read token with no restore control and refused
# posts, CSRF-less posts refused. Screenshots of each screen go to
# target/dashboard-screens/.
#
#   scripts/browser-test.sh
#
# chromium and chromium-driver are installed with apt-get when missing (as
# root), selenium into $CAIRN_TOOLS_DIR (default ~/.cache/cairn-tools). With
# CI=true a missing browser or selenium fails the run; otherwise it skips.
set -euo pipefail
cd "$(dirname "$0")/.."

SELENIUM_VERSION=4.38.0
TOOLS=${CAIRN_TOOLS_DIR:-$HOME/.cache/cairn-tools}
VENV=$TOOLS/selenium-$SELENIUM_VERSION
say() { printf 'browser-test: %s\n' "$*" >&2; }
missing() {
  say "$1"
  if [ "${CI:-}" = true ]; then exit 1; fi
  say "SKIPPED (not in CI)"
  exit 0
}

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing chromium and chromium-driver (Debian)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } ||
      missing "chromium could not be installed"
  else
    missing "missing: chromium and chromium-driver (Debian packages)"
  fi
fi
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import selenium' 2>/dev/null; then
  say "installing selenium $SELENIUM_VERSION into $VENV (PyPI)"
  mkdir -p "$TOOLS"
  if ! { python3 -m venv "$VENV" &&
    "$VENV/bin/pip" install -q --disable-pip-version-check "selenium==$SELENIUM_VERSION"; }; then
    rm -rf "$VENV"
    missing "selenium could not be installed"
  fi
fi

cargo build --quiet --locked -p cairn-server
. scripts/server.sh

work=$(mktemp -d)
server_pid=
trap 'stop_server || true; rm -rf "$work"' EXIT

mkdir -p "$work/home" "$work/svc/data/sub"
for i in 1 2 3; do head -c $((i * 4099)) /dev/urandom >"$work/svc/data/sub/f$i.bin"; done
printf 'the service readme\n' >"$work/svc/data/readme.txt"
admin=$(new_token cairn_admin)
reader=$(new_token cairn_reader)
cat >"$work/home/cairn.toml" <<EOF
[[target]]
name = "svc"
[[target.component]]
name = "data"
kind = "dir"
path = "$work/svc/data"

$(token_lines "$admin")
[[server.token]]
name = "reader"
sha256 = "$(printf %s "$reader" | sha256sum | cut -d' ' -f1)"
scopes = ["backups:read"]
EOF

start_server target/debug/cairn-server "$work/home/cairn.toml" "$work/home" "$work/server.log"
say "server on $addr"
shots=$PWD/target/dashboard-screens
if ! CAIRN_BASE="http://$addr" CAIRN_ADMIN="$admin" CAIRN_READER="$reader" \
  CAIRN_DATA="$work/svc/data" CAIRN_SHOTS="$shots" \
  "$VENV/bin/python" examples/server/tests/browser/dashboard.py; then
  say "the server's log:"
  tail -n 40 "$work/server.log" >&2
  exit 1
fi
stop_server
say "screenshots in $shots"
