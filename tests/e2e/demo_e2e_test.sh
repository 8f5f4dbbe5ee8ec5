#!/usr/bin/env bash
# End to end: the bundled demo on strata with every report on, as
# tools/strata-run runs it. Checks the stats table, the leak report (the
# demo's three deliberate leaks, exactly), and the heap profile with both
# strata's heapdump and a real pprof reader (go tool pprof).
set -uo pipefail
DEMO="$1"
HEAPDUMP="$2"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

out=$(STRATA_SHOW_STATS=1 STRATA_LEAKCHECK=1 STRATA_LEAKCHECK_EXITCODE=0 \
      STRATA_HEAPPROFILE="$TMP/demo.heap" "$DEMO" 2>&1)
rc=$?
[ "$rc" = 0 ] || fail "demo exit code $rc"
grep -q "strata memory statistics" <<<"$out" || fail "no stats table"
grep -q "strata demo: 4 threads handled 12000 requests" <<<"$out" || fail "demo did not finish"
# Deliberate leaks: 3000 bytes lost in a thread, a list of 8 nodes of 56
# bytes (1 direct, 7 indirect), 4000 bytes lost after realloc.
# The scan is conservative: a stale word left in reused memory can keep the
# block lost after realloc "still reachable" (as it can under valgrind or
# LSan). The other two leaks are exact in every run; the realloc one is
# either reported with its site or counted as reachable, never miscounted.
if grep -q "definitely lost: 7056 bytes in 3 blocks" <<<"$out"; then
  grep -q "SUMMARY: strata: 7448 byte(s) leaked in 10 allocation(s)." <<<"$out" || fail "summary: $(grep SUMMARY <<<"$out")"
  grep -q "in demo::LoseAfterRealloc()" <<<"$out" || fail "realloc leak site not named"
else
  grep -q "definitely lost: 3056 bytes in 2 blocks" <<<"$out" || fail "definitely lost line: $(grep 'definitely lost' <<<"$out")"
  grep -q "SUMMARY: strata: 3448 byte(s) leaked in 9 allocation(s)." <<<"$out" || fail "summary: $(grep SUMMARY <<<"$out")"
  echo "note: the realloc leak was kept alive by a stale word this run"
fi
grep -q "indirectly lost: 392 bytes in 7 blocks" <<<"$out" || fail "indirectly lost line: $(grep 'indirectly lost' <<<"$out")"
grep -q "in demo::BuildList()" <<<"$out" || fail "list leak site not named"
grep -q "in demo::Worker()" <<<"$out" || fail "thread leak site not named"
[ -s "$TMP/demo.heap" ] || fail "no heap profile"
top=$("$HEAPDUMP" top --alloc_space "$TMP/demo.heap" 2>&1) || fail "heapdump top failed: $top"
grep -q "demo::HandleRequest" <<<"$top" || fail "heapdump top lacks HandleRequest"
GO=$(command -v go || echo /usr/lib/go/bin/go)
if [ -x "$GO" ]; then
  export HOME="$TMP" GOCACHE="$TMP/gocache" GOPATH="$TMP/gopath"
  pp=$("$GO" tool pprof -top -sample_index=alloc_space "$TMP/demo.heap" 2>&1) || fail "go tool pprof failed: $pp"
  first=$(grep -m1 -E '^ *[0-9.]+[kMG]?B ' <<<"$pp")
  grep -q "demo::HandleRequest" <<<"$first" || fail "go tool pprof top entry is not HandleRequest: $first"
else
  fail "go is not installed (tools/setup.sh installs golang-go)"
fi
# Every frame is named (issue 19): no report, profile or flame graph line
# is a bare address. A frame without a symbol names its module
# ("(/lib/x86_64-linux-gnu/libstdc++.so.6+0xd44a3)").
bare=$(grep -E '^ +#[0-9]+ 0x[0-9a-f]+ *$' <<<"$out")
[ -z "$bare" ] || fail "bare frames in the leak report: $bare"
grep -qE '^ +#0 0x[0-9a-f]+ in demo::BuildList\(\) \(/.*strata_demo\+0x[0-9a-f]+\)$' <<<"$out" ||
  fail "leak report frames lack the module+offset: $(grep -m1 'BuildList' <<<"$out")"
folded=$("$HEAPDUMP" folded --alloc_space "$TMP/demo.heap" 2>&1) || fail "heapdump folded failed: $folded"
bare=$(tr ';' '\n' <<<"$folded" | sed -E 's/ [0-9]+$//' | grep -E '^0x[0-9a-f]+$' | head -3)
[ -z "$bare" ] || fail "bare frames in the profile: $bare"
"$HEAPDUMP" svg --alloc_space -o "$TMP/demo.svg" "$TMP/demo.heap" || fail "heapdump svg failed"
bare=$(grep -oE '<title>0x[0-9a-f]+ ' "$TMP/demo.svg" | head -3)
[ -z "$bare" ] || fail "bare frames in the flame graph: $bare"
# file:line from the demo's debug info, in heapdump's views and through its
# report filter (what tools/strata-run pipes the reports through); off
# with --no-lines.
grep -q "demo::HandleRequest(int, strata::BufferPool&) tools/demo/strata_demo.cc:[0-9]" <<<"$top" ||
  grep -qE "demo::HandleRequest.* tools/demo/strata_demo.cc:[0-9]+" <<<"$top" || fail "heapdump top lacks file:line: $top"
plain=$("$HEAPDUMP" top --no-lines --alloc_space "$TMP/demo.heap" 2>&1)
grep -q "strata_demo.cc:" <<<"$plain" && fail "heapdump --no-lines shows lines"
symbolized=$("$HEAPDUMP" symbolize <<<"$out")
grep -qE '#0 0x[0-9a-f]+ in demo::BuildList\(\) tools/demo/strata_demo.cc:[0-9]+ \(/' <<<"$symbolized" ||
  fail "heapdump symbolize added no file:line: $(grep -m1 BuildList <<<"$symbolized")"
[ "$failures" = 0 ] || { echo "$out" | tail -60; }
echo "$((19 - failures)) passed, $failures failed"
[ "$failures" = 0 ]
