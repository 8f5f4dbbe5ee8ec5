#!/usr/bin/env bash
# tests/install/bazel_consumer_test.sh: strata as a Bazel dependency, the way
# README.md's "Use strata in your project" tells a user.
#
# Copies examples/bazel_consumer to a temporary directory outside strata's
# tree and writes its WORKSPACE and .bazelrc from the README's code blocks
# (the strata path filled in), after checking that the example's own files
# say the same. Then, with a Bazel server of its own (--output_base in the
# temporary directory, removed at the end):
#   - bazel test //...   (GoogleTest with strata's leak listener)
#   - the leaking test, run on purpose, fails with the listener's message
#   - bazel-bin/server runs on strata: its self-check, and the stats report
#     that STRATA_SHOW_STATS=1 makes strata print at exit;
#   - the README's cc_binary lines, in a package of their own with a
#     minimal server.cc, build and run on strata too;
#   - a googletest the workspace declares before the macro is kept.
# Run by .ci/run after `bazel test //...` (Bazel inside a Bazel test sandbox
# is fragile); fails loudly (exit 1, FAIL line).
set -euo pipefail

# shellcheck source=tests/install/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
EXAMPLE="$ROOT/examples/bazel_consumer"
need bazel python3

tmp="$(mktemp -d "${TMPDIR:-/tmp}/strata-consumer.XXXXXX")"
output_base="$tmp/output_base"
cleanup() {
  if [ -d "$output_base" ]; then
    (cd "$tmp/consumer" 2>/dev/null && bazel --output_base="$output_base" shutdown) >/dev/null 2>&1 || true
    chmod -R u+w "$tmp" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# ---- the README's lines ---------------------------------------------------------
# Prints the first fenced block in README's "Use strata in your project"
# section that contains $1.
readme_block() {
  python3 - "$ROOT/README.md" "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"^## Use strata in your project\n(.*?)(?=^## )", text, re.M | re.S)
if not m:
    sys.exit("README.md has no '## Use strata in your project' section")
for block in re.findall(r"^```[a-z]*\n(.*?)^```", m.group(1), re.M | re.S):
    if sys.argv[2] in block:
        sys.stdout.write(block)
        sys.exit(0)
sys.exit("README.md's section has no code block with " + sys.argv[2])
PY
}
workspace="$(readme_block 'strata_dependencies()')" || fail "no WORKSPACE lines in the README"
build_file="$(readme_block 'malloc = "@strata//alloc:malloc"')" || fail "no cc_binary with malloc = in the README"
bazelrc="$(readme_block 'build --cxxopt=-std=c++20')" || fail "no .bazelrc lines in the README"
grep -q 'path = "/path/to/strata"' <<<"$workspace" || fail "the README's WORKSPACE does not use path = \"/path/to/strata\""
[ "$(sed 's|path = "\.\./\.\."|path = "/path/to/strata"|' "$EXAMPLE/WORKSPACE")" = "$workspace" ] ||
  fail "examples/bazel_consumer/WORKSPACE differs from the README's lines"
[ "$(cat "$EXAMPLE/.bazelrc")" = "$bazelrc" ] || fail "examples/bazel_consumer/.bazelrc differs from the README's lines"

ws="$tmp/consumer"
mkdir "$ws"
cp -R "$EXAMPLE/." "$ws/"
rm -f "$ws/WORKSPACE" "$ws/.bazelrc" "$ws"/bazel-*
printf '%s\n' "${workspace//\/path\/to\/strata/$ROOT}" >"$ws/WORKSPACE"
printf '%s\n' "$bazelrc" >"$ws/.bazelrc"
# The README's BUILD lines, in a package of their own, around a minimal
# server.cc that uses what they name.
mkdir "$ws/readme"
printf '%s\n' "$build_file" >"$ws/readme/BUILD.bazel"
cat >"$ws/readme/server.cc" <<'CC'
#include <cstdio>
#include <memory_resource>
#include <string>
#include <vector>

#include "alloc/pmr.h"

int main() {
  strata::pmr::PoolResource pool;
  std::pmr::vector<std::pmr::string> names(&pool);
  for (int i = 0; i < 100; ++i) names.emplace_back("a name long enough to allocate " + std::to_string(i));
  std::printf("readme server: %ld bytes live in the pool\n", static_cast<long>(pool.stats().live_bytes));
  return pool.stats().live_bytes > 0 ? 0 : 1;
}
CC
cd "$ws"
b() { bazel --output_base="$output_base" "$@"; }

# ---- build and test -------------------------------------------------------------
step "bazel test //... in a workspace outside strata's tree"
t0=$(date +%s)
b test --noshow_progress //... || fail "bazel test //... failed in the consumer workspace"
b build --noshow_progress //:server //readme:server || fail "bazel build //:server //readme:server failed"
step "built and tested in $(( $(date +%s) - t0 )) s"

step "the leak listener fails a leaking test"
set +e
bazel-bin/route_stats_test --gtest_also_run_disabled_tests --gtest_filter='*LeaksOnPurpose*' >leak.out 2>&1
rc=$?
set -e
[ "$rc" != 0 ] || fail "the leaking test passed: strata's leak listener did not catch it"
grep -q "strata: RouteStats.DISABLED_LeaksOnPurpose leaked [0-9]* byte" leak.out ||
  fail "no leak listener message: $(tail -20 leak.out)"

step "the server runs on strata"
STRATA_SHOW_STATS=1 bazel-bin/server 20000 4 >server.out 2>server.err || {
  cat server.out server.err >&2
  fail "server failed"
}
grep -q "^served 20000 requests" server.out || fail "server output: $(cat server.out)"
grep -q "^strata allocations: [1-9]" server.out || fail "server did not count strata allocations"
grep -q "strata memory statistics" server.err || fail "no strata stats report from the server (STRATA_SHOW_STATS=1)"
grep -q "on a strata PoolResource" server.out || fail "server printed no PoolResource stats"

step "the README's cc_binary runs on strata"
STRATA_SHOW_STATS=1 bazel-bin/readme/server >readme.out 2>readme.err || {
  cat readme.out readme.err >&2
  fail "the README's cc_binary failed"
}
grep -q "strata memory statistics" readme.err || fail "the README's cc_binary does not run on strata (no stats report)"

step "a repository the workspace declares itself is left alone by strata_dependencies()"
cat >"$ws/own_gtest.BUILD" <<'BUILD'
cc_library(
    name = "gtest",
    linkopts = ["-lgtest", "-lpthread"],
    visibility = ["//visibility:public"],
)
BUILD
{
  echo 'new_local_repository(name = "com_google_googletest", path = "/usr", build_file = "@//:own_gtest.BUILD")'
  cat "$ws/WORKSPACE"
} >"$ws/WORKSPACE.own"
mv "$ws/WORKSPACE.own" "$ws/WORKSPACE"
b query --output=build //external:com_google_googletest >own.out 2>own.err || fail "bazel query failed: $(tail -5 own.err)"
grep -q 'own_gtest.BUILD' own.out || fail "strata_dependencies() replaced the workspace's own googletest: $(cat own.out)"
b query --output=build //external:zlib >zlib.out 2>/dev/null || fail "bazel query //external:zlib failed"
grep -q 'third_party/system:zlib.BUILD' zlib.out || fail "strata_dependencies() did not declare zlib: $(cat zlib.out)"

echo "bazel_consumer_test: all checks passed (README's WORKSPACE, .bazelrc and BUILD lines, bazel test //..., leak listener, server on strata)"
