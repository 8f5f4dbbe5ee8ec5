#!/usr/bin/env bash
# tools/fuzz/build_and_run.sh: builds strata's libFuzzer targets with clang
# (Bazel's toolchain here is gcc, which has no libFuzzer) straight from the
# sources, and runs each for a while.
#
#   tools/fuzz/build_and_run.sh [options] [fuzzer...]
#     --seconds N     run each fuzzer N seconds (default 60)
#     --out DIR       build and working directory (default /tmp/strata-fuzz)
#     --jobs N        parallel compiles (default: nproc)
#     --merge         afterwards, merge the new inputs into the checked-in
#                     corpus (tests/fuzz/corpus/<fuzzer>), minimised
#     --build-only    compile and stop
#     --src DIR       source tree (default: this script's repository)
#   fuzzers: ops ops_hardened size_class central_pool page_heap epoch
#            profile_reader http_request (default: all); ops_hardened is ops_fuzz run
#            with STRATA_HARDENED=1 (same corpus)
#
# Each target is tests/fuzz/<name>_fuzz.cc, compiled with
# -fsanitize=fuzzer,address,undefined together with the sources it tests;
# the same file is replayed over its corpus by a gcc cc_test in CI
# (//tests/fuzz:<name>_fuzz_replay). New corpus inputs go to
# DIR/corpus/<name>; crashes to DIR/artifacts/<name>/.
#
# Exits 0 when every fuzzer ran its time without a crash, 1 when one
# crashed, 77 (skipped) when clang++ or libFuzzer is not installed (CI
# installs clang through tools/setup.sh).
set -euo pipefail

SECONDS_EACH=60
OUT=/tmp/strata-fuzz
JOBS=$(nproc 2>/dev/null || echo 2)
MERGE=0
BUILD_ONLY=0
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FUZZERS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --merge) MERGE=1; shift ;;
    --build-only) BUILD_ONLY=1; shift ;;
    --src) SRC=$2; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) FUZZERS+=("$1"); shift ;;
  esac
done
if [ ${#FUZZERS[@]} -eq 0 ]; then
  FUZZERS=(ops ops_hardened size_class central_pool page_heap epoch profile_reader http_request)
fi

CXX=${CXX:-clang++}
if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "build_and_run: SKIPPED: $CXX not found (apt-get install clang)" >&2
  exit 77
fi
# libFuzzer ships with clang as -fsanitize=fuzzer: check that it links.
mkdir -p "$OUT/obj" "$OUT/bin"
probe="$OUT/obj/probe.cc"
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe"
if ! "$CXX" -fsanitize=fuzzer "$probe" -o "$OUT/obj/probe" >/dev/null 2>&1; then
  echo "build_and_run: SKIPPED: $CXX cannot link -fsanitize=fuzzer (libFuzzer missing)" >&2
  exit 77
fi

# -fsanitize=fuzzer-no-link instruments the libraries for coverage; the
# target file gets -fsanitize=fuzzer at link time.
COMMON=(-std=c++20 -O1 -g -fno-omit-frame-pointer -I"$SRC" -DSTRATA_FUZZ_BUILD=1
        -fsanitize=address,undefined -fno-sanitize-recover=undefined -Wno-unused-command-line-argument)
LIBFLAGS=("${COMMON[@]}" -fsanitize=fuzzer-no-link)

ENGINE=(alloc/strata.cc alloc/stats.cc alloc/internal/block_lookup.cc alloc/internal/cache_slots.cc
        alloc/internal/central_pool.cc
        alloc/internal/errors.cc alloc/internal/hardening.cc alloc/internal/hooks.cc
        alloc/internal/page_heap.cc alloc/internal/page_map.cc alloc/internal/remote_free.cc
        alloc/internal/sampled_slices.cc alloc/internal/thread_cache.cc
        alloc/internal/tracked_cache.cc alloc/internal/failure_injection.cc alloc/os/os_linux.cc
        alloc/internal/staged_init.cc alloc/internal/fork_handler_set.cc
        concurrency/base/raw_log.cc concurrency/base/raw_memory.cc concurrency/base/thread_exit.cc)
EPOCH=(concurrency/epoch/collector.cc concurrency/thread_registry.cc
       concurrency/base/raw_log.cc concurrency/base/raw_memory.cc concurrency/base/thread_exit.cc)
READER=(tools/heapdump/profile_reader.cc)
HTTP_REQUEST=(alloc/http/request.cc)

sources_for() {
  case "$1" in
    ops|ops_hardened|size_class|central_pool|page_heap) echo "${ENGINE[@]}" ;;
    epoch) echo "${EPOCH[@]}" ;;
    profile_reader) echo "${READER[@]}" ;;
    http_request) echo "${HTTP_REQUEST[@]}" ;;
    *) echo "build_and_run: unknown fuzzer $1" >&2; exit 2 ;;
  esac
}
libs_for() {
  case "$1" in
    profile_reader) echo "-lz" ;;
    *) echo "-lpthread" ;;
  esac
}

# Compile every library source once (in parallel), then link each target.
declare -A NEEDED=()
for f in "${FUZZERS[@]}"; do
  for s in $(sources_for "$f"); do NEEDED[$s]=1; done
done
obj_of() { echo "$OUT/obj/$(echo "$1" | tr '/' '_').o"; }
export CXX OUT SRC
printf '%s\n' "${!NEEDED[@]}" | xargs -P "$JOBS" -I{} sh -c \
  'o="$OUT/obj/$(echo {} | tr / _).o"; if [ ! -f "$o" ] || [ "$SRC/{}" -nt "$o" ]; then '"$CXX"' '"${LIBFLAGS[*]}"' -c "$SRC/{}" -o "$o" || exit 255; fi'

target_of() { echo "${1%_hardened}"; }  # ops_hardened runs ops_fuzz
build() {
  local f=$1 objs=()
  for s in $(sources_for "$f"); do objs+=("$(obj_of "$s")"); done
  "$CXX" "${COMMON[@]}" -fsanitize=fuzzer "$SRC/tests/fuzz/${f}_fuzz.cc" "${objs[@]}" $(libs_for "$f") \
    -o "$OUT/bin/${f}_fuzz"
}
pids=()
declare -A BUILT=()
for f in "${FUZZERS[@]}"; do
  t=$(target_of "$f")
  [ -n "${BUILT[$t]:-}" ] && continue
  BUILT[$t]=1
  build "$t" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
echo "build_and_run: built ${FUZZERS[*]} in $OUT/bin"
[ "$BUILD_ONLY" = 1 ] && exit 0

status=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for f in "${FUZZERS[@]}"; do
  t=$(target_of "$f")
  seeds="$SRC/tests/fuzz/corpus/${t}_fuzz"
  work="$OUT/corpus/$f"
  mkdir -p "$work" "$OUT/artifacts/$f"
  args=(-max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1
        -artifact_prefix="$OUT/artifacts/$f/" "$work")
  [ -d "$seeds" ] && args+=("$seeds")
  mode=()
  [ "$f" != "$t" ] && mode=(env STRATA_HARDENED=1)
  echo "build_and_run: running ${f} (${t}_fuzz${mode:+ hardened}) for ${SECONDS_EACH}s"
  if ! "${mode[@]}" "$OUT/bin/${t}_fuzz" "${args[@]}" > "$OUT/$f.log" 2>&1; then
    echo "build_and_run: ${f} FAILED (log: $OUT/$f.log, inputs: $OUT/artifacts/$f/)" >&2
    tail -40 "$OUT/$f.log" >&2
    status=1
    continue
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/$f.log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$OUT/$f.log" | tail -1 | grep -o '[0-9]*' || echo "?")
  echo "build_and_run: ${f} ok: ${SECONDS_EACH}s, $runs runs, coverage $cov"
  if [ "$MERGE" = 1 ]; then
    mkdir -p "$seeds"
    "${mode[@]}" "$OUT/bin/${t}_fuzz" -merge=1 "$seeds" "$work" > "$OUT/$f.merge.log" 2>&1
    echo "build_and_run: merged into $seeds ($(ls "$seeds" | wc -l) inputs)"
  fi
done
exit $status
