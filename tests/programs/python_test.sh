#!/usr/bin/env bash
# tests/programs/python_test.sh LIBSTRATA
#
# CPython 3.11 runs ten modules of its own test suite with every allocation
# going through malloc (PYTHONMALLOC=malloc), once on glibc's malloc and
# once with strata preloaded. Both runs must pass and report the same
# per-test results.
set -euo pipefail
source "${TEST_SRCDIR}/${TEST_WORKSPACE}/tests/programs/common.sh"

PYTHON=/usr/bin/python3.11
require "$PYTHON" python3.11
require /usr/lib/python3.11/test/test_list.py libpython3.11-testsuite
strata_setup "$1"

MODULES=(test_list test_dict test_set test_unicode test_json test_re test_bytes
         test_collections test_heapq test_bisect)

# run_suite LABEL WRAPPER: runs the modules; leaves $WORK/LABEL.results (the
# sorted per-test result lines) and $WORK/LABEL.log.
run_suite() {
  local label="$1" wrapper="$2"
  local dir="$WORK/$label"
  mkdir -p "$dir/tmp" "$dir/home"
  local rc=0
  (cd "$dir" && HOME="$dir/home" TMPDIR="$dir/tmp" PYTHONMALLOC=malloc \
     PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 \
     "$wrapper" "$PYTHON" -m test -v "${MODULES[@]}") > "$WORK/$label.log" 2>&1 || rc=$?
  grep -E ' \.\.\. (ok|FAIL|ERROR|skipped.*|expected failure|unexpected success)$' \
    "$WORK/$label.log" | LC_ALL=C sort > "$WORK/$label.results"
  echo "$label: exit $rc, $(wc -l < "$WORK/$label.results") test results," \
       "$(grep -c ' \.\.\. ok$' "$WORK/$label.results") ok"
  grep -E '^(== )?Tests result:|^All [0-9]+ tests OK' "$WORK/$label.log" || true
  if [ "$rc" -ne 0 ]; then
    tail -40 "$WORK/$label.log"
    fail "python -m test failed ($label)"
  fi
}

run_suite glibc without_strata
run_suite strata with_strata
[ "$(wc -l < "$WORK/glibc.results")" -gt 1000 ] || fail "too few test results parsed"
compare_outputs python-test-results "$WORK/glibc.results" "$WORK/strata.results"
strata_check_report 1
