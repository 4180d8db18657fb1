#!/usr/bin/env bash
# Loopback storage emulators for Cairn's tests: moto (S3) and Azurite (Azure Blob).
#
#   scripts/emulators.sh start    install if missing, start, wait until they answer
#   scripts/emulators.sh stop     stop what `start` started
#   scripts/emulators.sh status   say what runs
#   scripts/emulators.sh env      print the `export` lines the tests read
#
# Installs go to $CAIRN_EMULATORS_DIR (default ~/.cache/cairn-emulators): moto from
# PyPI into a venv, Azurite from npm. Both listen on 127.0.0.1 only. Ports:
# CAIRN_S3_PORT (default 9000), CAIRN_AZURE_PORT (default 10000).
#
# If an emulator cannot be installed or started, `start` says so loudly and, with
# CI=true, fails; otherwise it carries on and the tests that need it skip.
set -euo pipefail

DIR=${CAIRN_EMULATORS_DIR:-$HOME/.cache/cairn-emulators}
S3_PORT=${CAIRN_S3_PORT:-9000}
AZ_PORT=${CAIRN_AZURE_PORT:-10000}
AZURITE_VERSION=3.37.0
MOTO_SPEC='moto[s3]>=5.2,<6'
mkdir -p "$DIR"

say() { printf 'emulators: %s\n' "$*" >&2; }
alive() { [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }
answers() { curl -s -o /dev/null --max-time 1 "$1"; }
wait_for() { # any HTTP answer, even an error status, means the server is up
  for _ in $(seq 1 150); do answers "$1" && return 0; sleep 0.2; done
  return 1
}
problem() {
  if [ "${CI:-}" = "true" ]; then
    say "FAILED: $*"
    exit 1
  fi
  say "=============================================================="
  say "SKIPPING: $* -- the tests that need it will be skipped"
  say "=============================================================="
}

install_moto() {
  [ -x "$DIR/venv/bin/moto_server" ] && return 0
  say "installing moto into $DIR/venv (PyPI)"
  python3 -m venv "$DIR/venv" &&
    "$DIR/venv/bin/pip" install -q --disable-pip-version-check "$MOTO_SPEC" flask flask-cors
}

install_azurite() {
  [ -x "$DIR/node_modules/.bin/azurite-blob" ] && return 0
  say "installing azurite@$AZURITE_VERSION into $DIR (npm)"
  npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION"
}

start_moto() {
  if alive moto; then return 0; fi
  if answers "http://127.0.0.1:$S3_PORT/"; then
    problem "port $S3_PORT is taken by another program (set CAIRN_S3_PORT)"
    return 0
  fi
  if ! install_moto; then problem "moto could not be installed"; return 0; fi
  nohup "$DIR/venv/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$DIR/moto.log" 2>&1 &
  echo $! >"$DIR/moto.pid"
  wait_for "http://127.0.0.1:$S3_PORT/" || problem "moto did not answer on :$S3_PORT (see $DIR/moto.log)"
}

start_azurite() {
  if alive azurite; then return 0; fi
  if answers "http://127.0.0.1:$AZ_PORT/"; then
    problem "port $AZ_PORT is taken by another program (set CAIRN_AZURE_PORT)"
    return 0
  fi
  if ! install_azurite; then problem "Azurite could not be installed"; return 0; fi
  # In memory (it would otherwise write its database into the current
  # directory); telemetry off (it would otherwise try to reach the internet).
  nohup "$DIR/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$AZ_PORT" \
    --inMemoryPersistence --disableTelemetry --skipApiVersionCheck --loose --silent \
    >"$DIR/azurite.log" 2>&1 &
  echo $! >"$DIR/azurite.pid"
  wait_for "http://127.0.0.1:$AZ_PORT/devstoreaccount1?comp=list" ||
    problem "Azurite did not answer on :$AZ_PORT (see $DIR/azurite.log)"
}

case "${1:-}" in
  start)
    start_moto
    start_azurite
    alive moto && say "moto on 127.0.0.1:$S3_PORT (pid $(cat "$DIR/moto.pid"))"
    alive azurite && say "Azurite on 127.0.0.1:$AZ_PORT (pid $(cat "$DIR/azurite.pid"))"
    true
    ;;
  stop)
    for p in moto azurite; do
      if alive "$p"; then kill "$(cat "$DIR/$p.pid")" && say "stopped $p"; fi
      rm -f "$DIR/$p.pid"
    done
    ;;
  status)
    for p in moto azurite; do
      if alive "$p"; then echo "$p up"; else echo "$p down"; fi
    done
    ;;
  env)
    if alive moto; then echo "export CAIRN_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT"; fi
    if alive azurite; then
      echo "export CAIRN_TEST_AZURE_ENDPOINT=http://127.0.0.1:$AZ_PORT/devstoreaccount1"
    fi
    ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
