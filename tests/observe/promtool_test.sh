#!/usr/bin/env bash
# tests/observe/promtool_test.sh: `promtool check metrics` (Debian
# prometheus) reads GET /metrics of a program on strata and reports no
# error and no lint warning. Skips (passing, with a message) where promtool
# is not installed; tools/setup.sh installs it, so CI runs it.
source "${TEST_SRCDIR:-$PWD}/${TEST_WORKSPACE:-strata}/tests/observe/observed_lib.sh"
need_tool promtool prometheus
start_program --seconds=60 --live-mib=16 --monitor
sleep 0.5  # a few monitor ticks: alerts and levels are set
fetch /metrics "$WORK/metrics.txt"
cp "$WORK/metrics.txt" "$OUTPUTS/metrics.txt"
grep -q '^strata_live_bytes [0-9]' "$WORK/metrics.txt" || fail "no strata_live_bytes in /metrics"
set +e
promtool check metrics < "$WORK/metrics.txt" > "$WORK/promtool.out" 2>&1
rc=$?
set -e
cat "$WORK/promtool.out"
[ "$rc" = 0 ] || fail "promtool check metrics exited $rc"
[ ! -s "$WORK/promtool.out" ] || fail "promtool check metrics printed problems (above)"
echo "promtool check metrics: clean ($(grep -c '^strata_' "$WORK/metrics.txt") series, $(grep -c '^# TYPE' "$WORK/metrics.txt") families)"
