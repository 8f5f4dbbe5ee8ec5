#!/usr/bin/env bash
# The environment's failure injection (STRATA_FAIL_AFTER, STRATA_FAIL_RATE
# with STRATA_FAIL_SEED, STRATA_FAIL_MIN_SIZE) on a program linked with
# strata, through malloc and operator new; the stats report counts the
# injected failures; bad values are named and ignored.
set -uo pipefail
PROG="$1"
failures=0
checks=0
check() {  # check NAME EXPECTED ACTUAL
  checks=$((checks + 1))
  if [ "$2" != "$3" ]; then echo "FAIL: $1: want '$2', got '$3'"; failures=$((failures + 1)); fi
}
# Requests of 200000 bytes: the start-up's smaller allocations (libstdc++'s
# emergency pool, stdio) neither fail nor count with the minimum size.
env_min=(STRATA_FAIL_MIN_SIZE=200000)

out=$(env "${env_min[@]}" STRATA_FAIL_AFTER=7 "$PROG" count 200000)
check "malloc fails after N" "succeeded 7 errno ENOMEM" "$out"
out=$(env "${env_min[@]}" STRATA_FAIL_AFTER=0 "$PROG" count 200000)
check "STRATA_FAIL_AFTER=0" "succeeded 0 errno ENOMEM" "$out"
out=$(env "${env_min[@]}" STRATA_FAIL_AFTER=5 "$PROG" count 1000)
check "below the minimum size nothing fails" "succeeded 100000 errno other" "$out"
out=$(env "${env_min[@]}" STRATA_FAIL_AFTER=4 "$PROG" new 200000)
check "operator new: new_handler, then bad_alloc" "succeeded 4 handler 3 bad_alloc" "$out"

a=$(env "${env_min[@]}" STRATA_FAIL_RATE=0.3 STRATA_FAIL_SEED=11 "$PROG" pattern 200000 400)
b=$(env "${env_min[@]}" STRATA_FAIL_RATE=0.3 STRATA_FAIL_SEED=11 "$PROG" pattern 200000 400)
c=$(env "${env_min[@]}" STRATA_FAIL_RATE=0.3 STRATA_FAIL_SEED=12 "$PROG" pattern 200000 400)
check "same seed, same failures" "$a" "$b"
checks=$((checks + 1))
[ "$a" != "$c" ] || { echo "FAIL: another seed fails the same allocations"; failures=$((failures + 1)); }
ones=$(tr -cd 1 <<<"$a" | wc -c)
checks=$((checks + 1))
if [ "$ones" -lt 80 ] || [ "$ones" -gt 160 ]; then
  echo "FAIL: rate 0.3 failed $ones of 400"; failures=$((failures + 1))
fi

stats=$(env "${env_min[@]}" STRATA_FAIL_AFTER=3 STRATA_SHOW_STATS=1 "$PROG" count 200000 2>&1 >/dev/null)
line=$(grep "injected allocation failures" <<<"$stats" | tr -s ' ')
check "stats report" "injected allocation failures 1" "$line"

err=$(env STRATA_FAIL_AFTER=abc STRATA_FAIL_RATE=2 "$PROG" count 200000 10 2>&1 >/dev/null)
checks=$((checks + 1))
grep -q "STRATA_FAIL_AFTER=abc: not a non-negative integer" <<<"$err" &&
  grep -q "STRATA_FAIL_RATE=2: not a probability" <<<"$err" ||
  { echo "FAIL: bad values not named: $err"; failures=$((failures + 1)); }
out=$(env STRATA_FAIL_AFTER=abc "$PROG" count 200000 10 2>/dev/null)
check "a bad value is ignored" "succeeded 10 errno other" "$out"

echo "$((checks - failures)) passed, $failures failed"
[ "$failures" = 0 ]
