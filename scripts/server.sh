# Sourced by the scripts that drive a real cairn-server (api-conformance.sh,
# bench-server.sh).
#
#   new_token PREFIX          prints a fresh bearer token
#   token_lines TOKEN         prints the [[server.token]] lines (admin scope)
#   start_server BIN CONFIG HOME LOG
#                             starts BIN on a free loopback port; sets
#                             $server_pid and $addr (host:port), or fails
#                             with the log
#   stop_server               SIGTERM, then waits up to 30 s; returns the
#                             exit status (124 if it did not stop)

new_token() {
  printf '%s_%s\n' "$1" "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
}

token_lines() {
  printf '[[server.token]]\nname = "scripts"\nsha256 = "%s"\nscopes = ["backups:admin"]\n' \
    "$(printf %s "$1" | sha256sum | cut -d' ' -f1)"
}

start_server() { # BIN CONFIG HOME LOG
  local bin=$1 config=$2 home=$3 log=$4
  CAIRN_HOME="$home" "$bin" --config "$config" --listen 127.0.0.1:0 >"$log" 2>&1 &
  server_pid=$!
  addr=
  for _ in $(seq 1 100); do
    addr=$(sed -n 's/.*listening local=\([0-9.:]*\).*/\1/p' "$log" | head -n1)
    [ -n "$addr" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "the server did not start:" >&2
  cat "$log" >&2
  return 1
}

stop_server() {
  [ -n "${server_pid:-}" ] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  local status=0
  for _ in $(seq 1 300); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      wait "$server_pid" || status=$?
      server_pid=
      return "$status"
    fi
    sleep 0.1
  done
  kill -9 "$server_pid" 2>/dev/null || true
  server_pid=
  return 124
}
