#!/usr/bin/env bash
# The GoogleTest leak listener fails the leaking test (naming its site) and
# only that one.
set -uo pipefail
out=$("$1" 2>&1)
rc=$?
failures=0
check() { if ! grep -q -- "$1" <<<"$out"; then echo "FAIL: missing: $1"; failures=$((failures + 1)); fi; }
[ "$rc" != 0 ] || { echo "FAIL: the leaking test did not fail the binary"; failures=$((failures + 1)); }
check "\[       OK \] ListenerDemo.CleanTest"
check "\[  FAILED  \] ListenerDemo.LeakyTest"
check "ListenerDemo.LeakyTest leaked 400 byte(s) in 1 object(s), largest site: user_code::LeakSomeInts()"
check "Direct leak of 400 byte(s) in 1 object(s)"
if grep -q "FAILED  \] ListenerDemo.CleanTest" <<<"$out"; then echo "FAIL: clean test failed"; failures=$((failures + 1)); fi
[ "$failures" = 0 ] || echo "$out"
echo "$((5 - failures)) passed, $failures failed"
[ "$failures" = 0 ]
