#!/usr/bin/env bash
# tools/stress/run_long.sh: the stress test (tests/stress/stress_test.cc)
# for as long as you like, by hand, in normal and hardened mode, optionally
# under a sanitizer. Prints the test's "stress:" summary line per run.
#
#   tools/stress/run_long.sh [--seconds N] [--threads N] [--slots N]
#                            [--config asan|tsan|ubsan] [--mode normal|hardened|both]
#
# Defaults: 600 seconds per mode, 16 threads, 4096 slots, both modes, the
# default (optimised) build. Exit status: 0 when every run passed.
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_EACH=600
THREADS=16
SLOTS=4096
CONFIG=()
MODE=both
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --slots) SLOTS=$2; shift 2 ;;
    --config) CONFIG=(--config="$2"); shift 2 ;;
    --mode) MODE=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run_long: unknown option $1" >&2; exit 2 ;;
  esac
done

targets=()
case "$MODE" in
  normal) targets=(//tests/stress:stress_test) ;;
  hardened) targets=(//tests/stress:stress_hardened_test) ;;
  both) targets=(//tests/stress:stress_test //tests/stress:stress_hardened_test) ;;
  *) echo "run_long: --mode normal|hardened|both" >&2; exit 2 ;;
esac

status=0
for t in "${targets[@]}"; do
  echo "run_long: $t for ${SECONDS_EACH}s, $THREADS threads, $SLOTS slots ${CONFIG[*]:-}"
  # Each run gets the time it asks for plus a margin before Bazel kills it.
  if ! bazel test "${CONFIG[@]}" "$t" --test_output=all --cache_test_results=no \
      --test_timeout=$((SECONDS_EACH + 300)) \
      --test_env=STRATA_STRESS_SECONDS="$SECONDS_EACH" \
      --test_env=STRATA_STRESS_THREADS="$THREADS" \
      --test_env=STRATA_STRESS_SLOTS="$SLOTS" \
      --test_env=STRATA_STRESS_ROUNDS=1000000 2>&1 | grep -E "^stress:|PASSED|FAILED|Failure|Expected|Which is"; then
    status=1
  fi
  # grep succeeds on FAILED lines too: look at the test's own verdict.
  log="bazel-testlogs/${t#//}"
  log="${log/://}/test.log"
  if ! grep -q "^\[  PASSED  \]" "$log"; then status=1; fi
done
exit $status
