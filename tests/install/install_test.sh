#!/usr/bin/env bash
# tests/install/install_test.sh: tools/install.sh into a temporary prefix,
# then, from a moved copy of that prefix (nothing may depend on where it was
# installed):
#   (a) a C program built with `cc $(pkg-config --cflags --libs strata)` runs
#       on strata (strata's own counter and its STRATA_SHOW_STATS report),
#       and so does the same program linked statically through the
#       strata-malloc module; a C++ program on strata-engine runs; every
#       public header compiles on its own with the installed -I;
#   (b) a CMake project with find_package(strata CONFIG REQUIRED) links
#       strata::malloc (its malloc and operator new are strata's) and
#       strata::strata (the engine API and pmr, malloc left to glibc);
#   (c) the installed strata-run --leaks exits 23 on an unrelated leaking
#       program and 0 on a clean one; --heap-profile/--svg use the installed
#       heapdump; with no program it runs the installed demo;
# and tools/install.sh --uninstall removes exactly what was installed.
# Run by .ci/run after `bazel test //...`; fails loudly (exit 1, FAIL line).
set -euo pipefail

# shellcheck source=tests/install/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
HERE="$ROOT/tests/install"

need cc c++ pkg-config cmake readelf nm

tmp="$(mktemp -d "${TMPDIR:-/tmp}/strata-install-test.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# ---- install (twice: a second install replaces the first) -------------------
prefix="$tmp/first prefix"   # a space in the path on purpose
mkdir -p "$prefix/lib"
echo "not strata's" >"$prefix/lib/unrelated.txt"
"$ROOT/tools/install.sh" "$prefix" || fail "tools/install.sh failed"
"$ROOT/tools/install.sh" "$prefix" || fail "tools/install.sh over an earlier install failed"

for f in lib/libstrata.so lib/libstrata.so.0 lib/libstrata_malloc.a lib/libstrata_engine.a \
  include/strata/alloc/strata.h include/strata/alloc/pmr.h include/strata/concurrency/base/macros.h \
  lib/pkgconfig/strata.pc lib/cmake/strata/strataConfig.cmake lib/cmake/strata/strataConfigVersion.cmake \
  bin/strata-run bin/heapdump libexec/strata/strata_demo share/strata/install_manifest.txt; do
  [ -e "$prefix/$f" ] || fail "$f was not installed"
done
readelf -d "$prefix/lib/libstrata.so.0" | grep -q 'SONAME.*\[libstrata.so.0\]' || fail "libstrata.so.0 has no SONAME libstrata.so.0"
nm -D --defined-only "$prefix/lib/libstrata.so.0" | grep -qw malloc || fail "libstrata.so does not export malloc"
# Every header at the top of alloc/ is public (alloc/runtime.h only serves
# the override); one added later must be added to tools/install.sh.
for h in "$ROOT"/alloc/*.h; do
  rel="alloc/$(basename "$h")"
  [ "$rel" = alloc/runtime.h ] && continue
  [ -f "$prefix/include/strata/$rel" ] || fail "$rel is not installed: add it to PUBLIC_HEADERS in tools/install.sh"
done
if grep -rlF "$tmp" "$prefix" >/dev/null; then
  fail "installed files record the install path: $(grep -rlF "$tmp" "$prefix" | tr '\n' ' ')"
fi
if grep -rlF "$ROOT" "$prefix/lib/pkgconfig" "$prefix/lib/cmake" "$prefix/bin/strata-run" >/dev/null; then
  fail "installed text files record the checkout's path"
fi

# The loader cannot preload from a path with a space: strata-run says so
# rather than running the program without strata.
set +e
"$prefix/bin/strata-run" -- true 2>"$tmp/space.err"
rc=$?
set -e
[ "$rc" = 2 ] && grep -q "LD_PRELOAD splits paths" "$tmp/space.err" ||
  fail "strata-run from a prefix with a space: exit $rc, $(cat "$tmp/space.err")"

# Everything below runs from a moved copy of the prefix.
p="$tmp/moved"
mv "$prefix" "$p"
export PKG_CONFIG_PATH="$p/lib/pkgconfig"
work="$tmp/work"
mkdir -p "$work"
cd "$work"

# ---- (a) pkg-config and a C program -----------------------------------------
step "(a) pkg-config"
[ "$(pkg-config --modversion strata)" != "" ] || fail "pkg-config does not know strata"
[ "$(pkg-config --variable=includedir strata)" -ef "$p/include/strata" ] ||
  fail "pkg-config includedir is $(pkg-config --variable=includedir strata), not under the moved prefix"
# shellcheck disable=SC2046  # pkg-config's output is a list of options
cc -std=c11 -Wall -Werror -o c_program "$HERE/c_program.c" $(pkg-config --cflags --libs strata) ||
  fail "cc \$(pkg-config --cflags --libs strata) failed"
readelf -d c_program | grep -q 'NEEDED.*\[libstrata.so.0\]' || fail "c_program does not need libstrata.so.0"
LD_LIBRARY_PATH="$p/lib" STRATA_SHOW_STATS=1 ./c_program >c.out 2>c.err || {
  cat c.out c.err >&2
  fail "c_program failed"
}
grep -q "^c_program: strata served [1-9]" c.out || fail "c_program did not run on strata: $(cat c.out)"
grep -q "strata memory statistics" c.err || fail "no strata stats report from c_program (STRATA_SHOW_STATS=1)"
# The same program linked statically through strata-malloc: no libstrata.so
# at run time, strata still the allocator, runtime included.
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror -o c_static "$HERE/c_program.c" $(pkg-config --cflags --libs strata-malloc) ||
  fail "cc \$(pkg-config --cflags --libs strata-malloc) failed"
if readelf -d c_static | grep -q 'NEEDED.*libstrata'; then fail "c_static needs libstrata.so"; fi
STRATA_SHOW_STATS=1 ./c_static >cs.out 2>cs.err || {
  cat cs.out cs.err >&2
  fail "c_static failed"
}
grep -q "^c_program: strata served [1-9]" cs.out || fail "c_static did not run on strata: $(cat cs.out)"
grep -q "strata memory statistics" cs.err || fail "no strata stats report from c_static (STRATA_SHOW_STATS=1)"
# The engine alone through strata-engine (the CMake project's app_engine.cc).
# shellcheck disable=SC2046
c++ -std=c++20 -o engine_pc "$HERE/cmake_project/app_engine.cc" $(pkg-config --cflags --libs strata-engine) ||
  fail "c++ \$(pkg-config --cflags --libs strata-engine) failed"
./engine_pc | grep -q "^app_engine: ok" || fail "the strata-engine program failed"
# Every public header (alloc/*.h and strata_c.h) compiles alone.
while IFS= read -r h; do
  rel="${h#"$p/include/strata/"}"
  printf '#include "%s"\nint main() { return 0; }\n' "$rel" >header.cc
  # shellcheck disable=SC2046
  c++ -std=c++20 -fsyntax-only $(pkg-config --cflags strata) header.cc 2>header.err ||
    fail "installed header $rel does not compile alone: $(head -5 header.err)"
done < <(find "$p/include/strata/alloc" -maxdepth 1 -name '*.h'; echo "$p/include/strata/alloc/override/strata_c.h")

# ---- (b) CMake ----------------------------------------------------------------
step "(b) CMake find_package(strata CONFIG REQUIRED)"
cmake -S "$HERE/cmake_project" -B cmake_build -DCMAKE_PREFIX_PATH="$p" -DCMAKE_BUILD_TYPE=Release >cmake.log 2>&1 || {
  cat cmake.log >&2
  fail "cmake configure failed"
}
cmake --build cmake_build -j2 >>cmake.log 2>&1 || {
  cat cmake.log >&2
  fail "cmake build failed"
}
STRATA_SHOW_STATS=1 ./cmake_build/app_malloc >app.out 2>app.err || {
  cat app.out app.err >&2
  fail "app_malloc (strata::malloc) failed"
}
grep -q "^app_malloc: malloc and operator new are strata's" app.out || fail "app_malloc: $(cat app.out)"
grep -q "strata memory statistics" app.err || fail "no stats report from app_malloc: strata::malloc lacks the runtime"
./cmake_build/app_engine >engine.out 2>&1 || {
  cat engine.out >&2
  fail "app_engine (strata::strata) failed"
}
grep -q "^app_engine: ok" engine.out || fail "app_engine: $(cat engine.out)"

# ---- (c) the installed strata-run ---------------------------------------------
step "(c) installed strata-run"
cc -O1 -o leaky "$HERE/leaky.c"
cc -O1 -o clean -DNO_LEAK "$HERE/leaky.c"
set +e
"$p/bin/strata-run" --leaks -- ./leaky >leaky.out 2>leaky.err
rc=$?
set -e
[ "$rc" = 23 ] || {
  cat leaky.err >&2
  fail "strata-run --leaks on a leaking program exited $rc, not 23"
}
grep -q "Direct leak of" leaky.err || fail "no leak report from strata-run --leaks"
grep -q "leak_here" leaky.err || fail "the leak report does not name the leaking function: $(grep -A3 'Direct leak' leaky.err)"
"$p/bin/strata-run" --leaks -- ./clean >clean.out 2>clean.err || {
  cat clean.err >&2
  fail "strata-run --leaks on a clean program failed"
}
"$p/bin/strata-run" --sample-rate 1 --heap-profile prof.heap --svg prof.svg -- ./clean >/dev/null 2>svg.err ||
  fail "strata-run --heap-profile --svg failed: $(cat svg.err)"
[ -s prof.heap ] || fail "no heap profile written"
"$p/bin/strata-run" --peak-profile peak.heap -- ./clean >/dev/null 2>peak.err ||
  fail "strata-run --peak-profile failed: $(cat peak.err)"
[ -s peak.heap ] || fail "no peak heap profile written"
grep -q "<svg" prof.svg || fail "no flame graph drawn by the installed heapdump"
"$p/bin/heapdump" top prof.heap >top.out || fail "installed heapdump top failed"
"$p/bin/strata-run" >demo.out 2>demo.err || {
  cat demo.err >&2
  fail "installed strata-run with no program (the demo) failed"
}
grep -q "Direct leak of" demo.err || fail "the installed demo printed no leak report"
[ -s strata-demo.svg ] || fail "the installed demo drew no flame graph"

# ---- uninstall -----------------------------------------------------------------
step "uninstall"
"$ROOT/tools/install.sh" --uninstall "$p" || fail "tools/install.sh --uninstall failed"
left="$(cd "$p" && find . -mindepth 1 | sort | tr '\n' ' ')"
[ "$left" = "./lib ./lib/unrelated.txt " ] || fail "after --uninstall the prefix holds: $left (expected only ./lib/unrelated.txt)"
if "$ROOT/tools/install.sh" --uninstall "$p" 2>/dev/null; then fail "a second --uninstall succeeded"; fi

echo "install_test: all checks passed (pkg-config C program, CMake strata::malloc and strata::strata, installed strata-run, uninstall)"
