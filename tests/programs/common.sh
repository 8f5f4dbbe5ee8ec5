# tests/programs/common.sh: helpers for running real programs with strata
# preloaded. Sourced by the *_test.sh scripts (bash, set -euo pipefail).
#
#   strata_setup LIBSTRATA   resolves the library, checks that preloading it
#                            maps it into a process, prepares $WORK
#   with_strata CMD...       runs CMD with LD_PRELOAD=libstrata.so and
#                            STRATA_PRELOAD_CHECK=$WORK/strata-report (each
#                            process that exits normally appends a line
#                            "strata: pid=.. allocations=N ...")
#   without_strata CMD...    runs CMD with the system allocator
#   strata_check_report MIN  fails unless the report holds >= MIN process
#                            lines, each with allocations > 0
#   require FILE PACKAGE     fails with an install hint if FILE is missing

export PATH=/usr/bin:/bin
export LC_ALL=C.UTF-8

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

require() {
  [ -e "$1" ] || fail "$1 not found: install the Debian package '$2' (tools/setup.sh)"
}

strata_setup() {
  STRATA_LIB="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
  [ -f "$STRATA_LIB" ] || fail "no $STRATA_LIB"
  WORK="${TEST_TMPDIR:-$(mktemp -d)}/work"
  rm -rf "$WORK"
  mkdir -p "$WORK"
  STRATA_REPORT="$WORK/strata-report"
  : > "$STRATA_REPORT"
  # Interposition, seen from inside a process: the library is mapped.
  # (Through a file: with pipefail, `cat | grep -q` fails whenever grep
  # exits before cat has written everything.)
  LD_PRELOAD="$STRATA_LIB" /bin/cat /proc/self/maps > "$WORK/maps"
  grep -q 'libstrata\.so' "$WORK/maps" || fail "libstrata.so is not mapped into a preloaded process"
  echo "PASS: libstrata.so is mapped into preloaded processes"
}

with_strata() {
  LD_PRELOAD="$STRATA_LIB" STRATA_PRELOAD_CHECK="$STRATA_REPORT" "$@"
}

without_strata() {
  env -u LD_PRELOAD -u STRATA_PRELOAD_CHECK "$@"
}

strata_check_report() {
  local min="$1"
  local lines busy
  lines=$(grep -c '^strata: pid=' "$STRATA_REPORT" || true)
  busy=$(grep -Ec '^strata: pid=[0-9]+ allocations=[1-9]' "$STRATA_REPORT" || true)
  echo "strata report: $lines process(es), $busy with allocations > 0; first lines:"
  head -3 "$STRATA_REPORT"
  [ "$lines" -ge "$min" ] || fail "expected >= $min strata reports, got $lines"
  [ "$busy" -eq "$lines" ] || fail "a preloaded process made no allocation through strata"
  echo "PASS: strata served the program's allocations"
}

# compare_outputs NAME EXPECTED ACTUAL
compare_outputs() {
  if ! diff -u "$2" "$3" > "$WORK/$1.diff"; then
    head -50 "$WORK/$1.diff"
    fail "$1: output with strata differs from the output without it"
  fi
  echo "PASS: $1: identical output with and without strata ($(wc -l < "$2") lines)"
}
