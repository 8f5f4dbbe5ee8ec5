#!/usr/bin/env bash
# tests/fuzz/fuzz_smoke_test.sh: builds every libFuzzer target with clang
# (tools/fuzz/build_and_run.sh) and runs each for a few seconds
# (FUZZ_SECONDS, default 3) from the checked-in corpus. Passes with
# "SKIPPED" where clang or libFuzzer is not installed.
#
# Sources: the runfiles hold the engine's sources; tools/heapdump keeps its
# own private, so the source tree is found through the runfiles' symlinks
# (local and sandboxed runs link back into the workspace). Where that fails
# (remote execution), the runfiles are used and profile_reader is skipped.
set -euo pipefail
RUNFILES=${TEST_SRCDIR:-$PWD}/${TEST_WORKSPACE:-strata}
OUT=${TEST_TMPDIR:-/tmp}/fuzz
SRC=$(cd "$(dirname "$(readlink -f "$RUNFILES/tests/fuzz/fuzz_input.h")")/../.." && pwd)
FUZZERS=()
if [ ! -f "$SRC/tools/heapdump/profile_reader.cc" ]; then
  SRC=$RUNFILES
  FUZZERS=(ops ops_hardened size_class central_pool page_heap epoch)
  echo "fuzz_smoke_test: heap profile reader sources not reachable: profile_reader skipped"
fi
set +e
bash "$RUNFILES/tools/fuzz/build_and_run.sh" --src "$SRC" --out "$OUT" --seconds "${FUZZ_SECONDS:-3}" "${FUZZERS[@]}"
status=$?
set -e
if [ "$status" = 77 ]; then
  echo "fuzz_smoke_test: SKIPPED (no clang/libFuzzer here)"
  exit 0
fi
exit "$status"
