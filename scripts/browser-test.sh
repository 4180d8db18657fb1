#!/usr/bin/env bash
# The dashboard in real headless browsers: Debian's chromium (with
# chromium-driver) and firefox-esr (with geckodriver, built from crates.io),
# each driven by selenium (PyPI) from
# examples/server/tests/browser/dashboard.py against the running debug
# cairn-server: log in, start a backup and watch it reach 100%, browse a
# backup and download a file (bytes compared), restore after a dry run that
# lists a changed file, a read token with no restore control and refused
# posts, CSRF-less posts refused. Screenshots of each screen go to
# target/dashboard-screens/<browser>/.
#
#   scripts/browser-test.sh [chromium] [firefox]     (default: both)
#
# The browsers are installed with apt-get when missing (as root), selenium
# and geckodriver into $CAIRN_TOOLS_DIR (default ~/.cache/cairn-tools). With
# CI=true a missing browser, driver or selenium fails the run; otherwise
# that browser is skipped.
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

GECKODRIVER_VERSION=0.37.1
GECKO=$TOOLS/geckodriver-$GECKODRIVER_VERSION
browsers=("$@")
[ ${#browsers[@]} -gt 0 ] || browsers=(chromium firefox)

# apt_get PACKAGE...: installs Debian packages (as root), or fails.
apt_get() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
}
# ready BROWSER: its browser and WebDriver are there (installed if missing).
ready() {
  case $1 in
  chromium)
    [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && return 0
    say "installing chromium and chromium-driver (Debian)"
    apt_get chromium chromium-driver
    ;;
  firefox)
    if [ ! -x /usr/bin/firefox-esr ]; then
      say "installing firefox-esr (Debian)"
      apt_get firefox-esr || return 1
    fi
    [ -x "$GECKO/bin/geckodriver" ] && return 0
    say "building geckodriver $GECKODRIVER_VERSION into $GECKO (crates.io)"
    CARGO_TARGET_DIR=$TOOLS/geckodriver-build cargo install --quiet --locked \
      geckodriver --version "$GECKODRIVER_VERSION" --root "$GECKO" &&
      rm -rf "$TOOLS/geckodriver-build"
    ;;
  *) say "unknown browser $1"; return 1 ;;
  esac
}
run=()
for b in "${browsers[@]}"; do
  if ready "$b"; then
    run+=("$b")
  elif [ "${CI:-}" = true ]; then
    say "$b could not be installed"
    exit 1
  else
    say "$b could not be installed: SKIPPED (not in CI)"
  fi
done
[ ${#run[@]} -gt 0 ] || missing "no browser to test with"
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
for b in "${run[@]}"; do
  if ! CAIRN_BROWSER=$b CAIRN_GECKODRIVER="$GECKO/bin/geckodriver" CAIRN_BASE="http://$addr" \
    CAIRN_ADMIN="$admin" CAIRN_READER="$reader" CAIRN_DATA="$work/svc/data" CAIRN_SHOTS="$shots" \
    "$VENV/bin/python" examples/server/tests/browser/dashboard.py; then
    say "the server's log:"
    tail -n 40 "$work/server.log" >&2
    exit 1
  fi
done
stop_server
say "screenshots in $shots/{$(IFS=,; echo "${run[*]}")}"
