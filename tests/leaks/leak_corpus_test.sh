#!/usr/bin/env bash
# The leak checker against known truth and against valgrind memcheck.
# Each row: mode, definitely lost bytes/blocks, indirectly lost bytes/blocks.
set -uo pipefail
PROG="$1"
LIB="$2"
VALGRIND="${VALGRIND:-valgrind}"

TRUTH="
direct    300 3    0   0
list       32 1  128   4
container  16 1  400   1
cycle      32 1   32   1
thread    128 2    0   0
realloc  2000 1    0   0
reachable   0 0    0   0
clean_mt    0 0    0   0
"

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Prints "definite_bytes definite_blocks indirect_bytes indirect_blocks"
# from a report in the valgrind/strata format ("definitely lost: N bytes in
# M blocks"; valgrind prints thousands separators).
parse() {
  local text="$1"
  local d i
  d=$(grep -o 'definitely lost: [0-9,]* bytes in [0-9,]* blocks' <<<"$text" | tail -1 | tr -d ,)
  i=$(grep -o 'indirectly lost: [0-9,]* bytes in [0-9,]* blocks' <<<"$text" | tail -1 | tr -d ,)
  set -- $d
  local db="${3:-0}" dn="${6:-0}"
  set -- $i
  echo "$db $dn ${3:-0} ${6:-0}"
}

if ! command -v "$VALGRIND" >/dev/null 2>&1; then
  echo "FAIL: valgrind is not installed (tools/setup.sh installs it)"
  exit 1
fi

while read -r mode db dn ib in; do
  [ -z "$mode" ] && continue
  want="$db $dn $ib $in"
  out=$(STRATA_LEAKCHECK=1 LD_PRELOAD="$LIB" "$PROG" "$mode" 2>&1)
  rc=$?
  got=$(parse "$out")
  if [ "$got" != "$want" ]; then
    fail "strata $mode: got '$got', want '$want'"
    echo "$out" | tail -30
  fi
  if [ "$db$ib" = "00" ]; then
    [ "$rc" = 0 ] || fail "strata $mode: exit code $rc, want 0"
    grep -q "SUMMARY: strata: no leaks." <<<"$out" || fail "strata $mode: no clean summary"
  else
    [ "$rc" = 23 ] || fail "strata $mode: exit code $rc, want 23"
    grep -q "SUMMARY: strata: $((db + ib)) byte(s) leaked in $((dn + in)) allocation(s)." <<<"$out" ||
      fail "strata $mode: SUMMARY line"
  fi
  vout=$("$VALGRIND" --leak-check=full --error-exitcode=23 --errors-for-leak-kinds=definite,indirect "$PROG" "$mode" 2>&1)
  vgot=$(parse "$vout")
  if [ "$vgot" != "$got" ]; then
    fail "valgrind $mode: got '$vgot', strata got '$got'"
    echo "$vout" | tail -20
  fi
  echo "ok: $mode strata='$got' valgrind='$vgot'"
done <<<"$TRUTH"

n=$(grep -c . <<<"$TRUTH")
echo "$((n - failures)) passed, $failures failed"
[ "$failures" = 0 ]
