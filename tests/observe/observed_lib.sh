# tests/observe/observed_lib.sh: shared by the tests that point real
# clients at tests/observe:observed_program. Source it; then
#   need_tool NAME PACKAGE     exit 0 with "SKIPPED: ..." when NAME is missing
#   start_program ARGS...      start the program, wait for its port: $PORT
#   fetch PATH [OUT]           GET http://127.0.0.1:$PORT/PATH (python3)
#   free_port                  print a free loopback port
# Every process started is killed on exit; every wait is bounded.
set -euo pipefail
RUNFILES=${TEST_SRCDIR:-$PWD}/${TEST_WORKSPACE:-strata}
WORK=$(mktemp -d "${TEST_TMPDIR:-/tmp}/observe.XXXXXX")
OUTPUTS=${TEST_UNDECLARED_OUTPUTS_DIR:-$WORK/outputs}
mkdir -p "$OUTPUTS"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

need_tool() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "SKIPPED: $1 not found; install Debian's $2 (tools/setup.sh does)"
    exit 0
  fi
}

start_program() {
  local port_file="$WORK/port"
  rm -f "$port_file"
  "$RUNFILES/tests/observe/observed_program" --port-file="$port_file" "$@" 2>"$WORK/program.err" &
  PIDS+=($!)
  for _ in $(seq 1 200); do
    [ -s "$port_file" ] && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || fail "observed_program exited: $(cat "$WORK/program.err")"
    sleep 0.05
  done
  [ -s "$port_file" ] || fail "observed_program wrote no port in 10 s"
  PORT=$(cat "$port_file")
}

fetch() {
  python3 - "http://127.0.0.1:$PORT$1" "${2:-/dev/stdout}" <<'PY'
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=20) as r, open(sys.argv[2], "wb") as out:
    out.write(r.read())
PY
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
