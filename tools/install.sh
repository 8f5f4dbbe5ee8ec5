#!/usr/bin/env bash
# tools/install.sh: build strata with Bazel and install it under PREFIX, for
# programs built without Bazel (make, CMake, Meson, plain cc).
#
#   tools/install.sh PREFIX               build, then install into PREFIX
#   tools/install.sh --uninstall PREFIX   remove exactly what the install put there
#
# What goes where (PREFIX may be any directory; nothing below records it, so
# the tree can be moved as a whole):
#   lib/libstrata.so.0, lib/libstrata.so   the drop-in malloc (LD_PRELOAD), also
#                                          linkable with -lstrata (SONAME libstrata.so.0)
#   lib/libstrata_malloc.a                 the overrides and runtime for linking
#                                          strata into a binary (one object:
#                                          no --whole-archive needed)
#   lib/libstrata_engine.a                 the engine and its C++ APIs (strata.h,
#                                          pmr, pools, stats, profiler, leak checker,
#                                          monitor), link after libstrata_malloc.a
#   include/strata/alloc/..., include/strata/concurrency/...
#                                          public headers, paths unchanged:
#                                          -I PREFIX/include/strata, #include "alloc/strata.h"
#   lib/pkgconfig/strata.pc                pkg-config modules: strata (-lstrata, shared),
#   lib/pkgconfig/strata-malloc.pc         strata-malloc (the static override and engine),
#   lib/pkgconfig/strata-engine.pc         strata-engine (the C++ APIs only, static)
#   lib/cmake/strata/strataConfig.cmake    find_package(strata CONFIG): targets
#   lib/cmake/strata/strataConfigVersion.cmake   strata::strata, strata::malloc,
#                                          strata::shared
#   bin/strata-run, bin/heapdump           the tools, working from PREFIX
#   libexec/strata/strata_demo             the demo bin/strata-run runs with no program
#   share/strata/install_manifest.txt      every file and directory installed,
#                                          relative to PREFIX (for --uninstall)
#
# Needs Bazel and the build packages (tools/setup.sh installs them). Extra
# Bazel options can be given in STRATA_BAZEL_FLAGS (e.g. "--config=hardened").
set -euo pipefail

VERSION="0.1.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MANIFEST_REL="share/strata/install_manifest.txt"

usage() {
  sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}
die() {
  echo "install.sh: $*" >&2
  exit 1
}

# The headers a user includes; everything they include (quoted includes,
# followed recursively) is installed with them.
PUBLIC_HEADERS=(
  alloc/strata.h
  alloc/stats.h
  alloc/stats_report.h
  alloc/pmr.h
  alloc/pool.h
  alloc/heap_profiler.h
  alloc/leak_check.h
  alloc/leak_check_gtest.h
  alloc/monitor.h
  alloc/pprof_http.h
  alloc/failure_injection.h
  alloc/override/strata_c.h
)

# ---- uninstall -------------------------------------------------------------

uninstall() {
  local prefix="$1" manifest="$1/$MANIFEST_REL" line
  [ -f "$manifest" ] || die "no strata install in $prefix (missing $MANIFEST_REL)"
  # Every line is checked before anything is removed.
  local files=() dirs=()
  while IFS= read -r line; do
    case "$line" in
      ?" /"*|?" ../"*|*"/../"*|*"/..") die "manifest line leaves the prefix: $line" ;;
      "f "*|"l "*) files+=("${line:2}") ;;
      "d "*) dirs+=("${line:2}") ;;
      "") ;;
      *) die "unreadable manifest line in $manifest: $line" ;;
    esac
  done <"$manifest"
  for line in "${files[@]}"; do
    rm -f -- "$prefix/$line"
  done
  rm -f -- "$manifest"
  # Directories the install created, deepest first, and only when empty: a
  # directory that holds something else now is left alone.
  local i
  for ((i = ${#dirs[@]} - 1; i >= 0; i--)); do
    rmdir -- "$prefix/${dirs[$i]}" 2>/dev/null || true
  done
  echo "install.sh: removed strata from $prefix" >&2
}

# ---- install ---------------------------------------------------------------

# Every header the public ones include, transitively (quoted includes only;
# system headers are the user's). Prints paths relative to ROOT.
header_closure() {
  local -A seen=()
  local queue=("${PUBLIC_HEADERS[@]}") h inc
  while [ "${#queue[@]}" -gt 0 ]; do
    h="${queue[0]}"
    queue=("${queue[@]:1}")
    [ -n "${seen[$h]:-}" ] && continue
    seen[$h]=1
    [ -f "$ROOT/$h" ] || die "header $h (included by a public header) is missing"
    echo "$h"
    while IFS= read -r inc; do
      queue+=("$inc")
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$ROOT/$h")
  done
}

installed=()   # manifest lines
created_dirs=()

make_dir() {   # make_dir REL: creates PREFIX/REL and its parents, recording new ones
  local rel="$1" path="" part
  local IFS=/
  for part in $rel; do
    path="${path:+$path/}$part"
    if [ ! -d "$PREFIX/$path" ]; then
      mkdir -- "$PREFIX/$path"
      created_dirs+=("d $path")
    fi
  done
}

put() {   # put SOURCE REL MODE
  local src="$1" rel="$2" mode="$3"
  make_dir "$(dirname "$rel")"
  rm -f -- "$PREFIX/$rel"
  install -m "$mode" -- "$src" "$PREFIX/$rel"
  installed+=("f $rel")
}

put_text() {   # put_text REL (content on stdin)
  local rel="$1"
  make_dir "$(dirname "$rel")"
  rm -f -- "$PREFIX/$rel"
  cat >"$PREFIX/$rel"
  chmod 644 -- "$PREFIX/$rel"
  installed+=("f $rel")
}

put_link() {   # put_link TARGET REL
  make_dir "$(dirname "$2")"
  rm -f -- "$PREFIX/$2"
  ln -s -- "$1" "$PREFIX/$2"
  installed+=("l $2")
}

write_pkgconfig() {
  put_text lib/pkgconfig/strata.pc <<EOF
# strata: lock-free concurrent memory allocator (installed by tools/install.sh).
# Relocatable: paths are relative to this file.
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include/strata

Name: strata
Description: Lock-free concurrent memory allocator with leak checker, heap profiler and stats (malloc replacement)
Version: $VERSION
Cflags: -I\${includedir}
Libs: -L\${libdir} -lstrata
Libs.private: -lpthread -ldl
EOF
  put_text lib/pkgconfig/strata-malloc.pc <<EOF
# strata linked into the program as its allocator (static; installed by
# tools/install.sh): the override and runtime object, then the engine.
# C programs need the C++ runtime strata is written against (-lstdc++).
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include/strata

Name: strata-malloc
Description: strata as the program's allocator, linked statically (operator new/delete, malloc family, STRATA_* runtime)
Version: $VERSION
Cflags: -I\${includedir}
Libs: -Wl,--undefined=malloc \${libdir}/libstrata_malloc.a \${libdir}/libstrata_engine.a -lstdc++ -lm -lpthread -ldl
EOF
  put_text lib/pkgconfig/strata-engine.pc <<EOF
# strata's C++ APIs without the malloc override (static; installed by
# tools/install.sh). The headers need C++20.
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include/strata

Name: strata-engine
Description: strata's engine and C++ APIs (strata.h, pmr, pools, stats, heap profiler, leak checker, monitor), malloc left alone
Version: $VERSION
Cflags: -I\${includedir}
Libs: \${libdir}/libstrata_engine.a -lpthread -ldl
EOF
}

write_cmake() {
  put_text lib/cmake/strata/strataConfig.cmake <<'EOF'
# strataConfig.cmake (installed by strata's tools/install.sh).
#
#   find_package(strata CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE strata::malloc)   # strata is app's allocator
#   target_link_libraries(app PRIVATE strata::strata)   # the C++ APIs only
#
# Imported targets:
#   strata::strata  libstrata_engine.a: the engine API (alloc/strata.h) and the
#                   libraries over it (stats, pmr, pools, heap profiler, leak
#                   checker, monitor); does not replace malloc. Requires C++20.
#   strata::malloc  libstrata_malloc.a: operator new/delete, the malloc family
#                   and the runtime (STRATA_* environment variables, exit
#                   reports) linked into the binary, over strata::strata.
#                   Compile options of strata::strata are not imposed on users
#                   of strata::malloc alone.
#   strata::shared  libstrata.so: the same override as a shared library
#                   (what LD_PRELOAD uses); exports only the C API.
# Relocatable: every path is computed from this file's location.
cmake_minimum_required(VERSION 3.14)

get_filename_component(_strata_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

include(CMakeFindDependencyMacro)
find_dependency(Threads)

foreach(_strata_file
    "${_strata_prefix}/lib/libstrata_engine.a"
    "${_strata_prefix}/lib/libstrata_malloc.a"
    "${_strata_prefix}/lib/libstrata.so.0"
    "${_strata_prefix}/include/strata/alloc/strata.h")
  if(NOT EXISTS "${_strata_file}")
    set(strata_FOUND FALSE)
    set(strata_NOT_FOUND_MESSAGE "strata install incomplete: missing ${_strata_file}")
    return()
  endif()
endforeach()

if(NOT TARGET strata::strata)
  add_library(strata::strata STATIC IMPORTED)
  set_target_properties(strata::strata PROPERTIES
    IMPORTED_LOCATION "${_strata_prefix}/lib/libstrata_engine.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES CXX
    INTERFACE_INCLUDE_DIRECTORIES "${_strata_prefix}/include/strata"
    INTERFACE_COMPILE_FEATURES cxx_std_20
    INTERFACE_LINK_LIBRARIES "Threads::Threads;${CMAKE_DL_LIBS}")

  # One relocatable object in the archive: any reference to malloc or
  # operator new links all of it, its load-time constructor included. The
  # --undefined makes that so even for a program that never calls them.
  add_library(strata::malloc STATIC IMPORTED)
  set_target_properties(strata::malloc PROPERTIES
    IMPORTED_LOCATION "${_strata_prefix}/lib/libstrata_malloc.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES CXX
    INTERFACE_INCLUDE_DIRECTORIES "${_strata_prefix}/include/strata"
    INTERFACE_LINK_OPTIONS "LINKER:--undefined=malloc"
    INTERFACE_LINK_LIBRARIES "$<LINK_ONLY:strata::strata>;Threads::Threads;${CMAKE_DL_LIBS}")

  add_library(strata::shared SHARED IMPORTED)
  set_target_properties(strata::shared PROPERTIES
    IMPORTED_LOCATION "${_strata_prefix}/lib/libstrata.so.0"
    IMPORTED_SONAME "libstrata.so.0"
    INTERFACE_INCLUDE_DIRECTORIES "${_strata_prefix}/include/strata")
endif()

unset(_strata_prefix)
unset(_strata_file)
EOF
  put_text lib/cmake/strata/strataConfigVersion.cmake <<EOF
# strataConfigVersion.cmake (installed by strata's tools/install.sh).
# Compatible with a requested version of the same major version that is not
# newer (while the major version is 0, the minor version must match too);
# 64-bit only.
set(PACKAGE_VERSION "$VERSION")
EOF
  cat >>"$PREFIX/lib/cmake/strata/strataConfigVersion.cmake" <<'EOF'
if(NOT CMAKE_SIZEOF_VOID_P STREQUAL "8")
  set(PACKAGE_VERSION "${PACKAGE_VERSION} (64-bit)")
  set(PACKAGE_VERSION_UNSUITABLE TRUE)
  return()
endif()
set(PACKAGE_VERSION_COMPATIBLE FALSE)
if(NOT PACKAGE_FIND_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
elseif(NOT PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  string(REGEX MATCH "^([0-9]+)\\.([0-9]+)" _strata_mm "${PACKAGE_VERSION}")
  set(_strata_major "${CMAKE_MATCH_1}")
  set(_strata_minor "${CMAKE_MATCH_2}")
  if(PACKAGE_FIND_VERSION_MAJOR STREQUAL _strata_major AND
     (NOT _strata_major STREQUAL "0" OR PACKAGE_FIND_VERSION_MINOR STREQUAL _strata_minor))
    set(PACKAGE_VERSION_COMPATIBLE TRUE)
  endif()
endif()
if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
  set(PACKAGE_VERSION_EXACT TRUE)
endif()
EOF
}

install_all() {
  command -v bazel >/dev/null 2>&1 || die "bazel not found: run tools/setup.sh first"
  local targets=(
    //alloc:libstrata.so
    //alloc:engine_archive
    //alloc:malloc_archive
    //tools/heapdump:heapdump
    //tools/demo:strata_demo
  )
  echo "install.sh: building ${targets[*]}" >&2
  # shellcheck disable=SC2086  # STRATA_BAZEL_FLAGS is a list of options
  (cd "$ROOT" && bazel build --noshow_progress ${STRATA_BAZEL_FLAGS:-} "${targets[@]}") ||
    die "the Bazel build failed"
  local bin
  # shellcheck disable=SC2086
  bin="$(cd "$ROOT" && bazel info ${STRATA_BAZEL_FLAGS:-} bazel-bin 2>/dev/null)"
  [ -d "$bin" ] || die "bazel info bazel-bin gave no directory"

  mkdir -p -- "$PREFIX" || die "cannot create $PREFIX"
  PREFIX="$(cd "$PREFIX" && pwd)"
  # An earlier install is replaced as a whole (files it had that this one
  # does not are removed too).
  if [ -f "$PREFIX/$MANIFEST_REL" ]; then
    uninstall "$PREFIX"
  fi

  put "$bin/alloc/libstrata.so" lib/libstrata.so.0 755
  put_link libstrata.so.0 lib/libstrata.so
  put "$bin/alloc/libstrata_malloc.a" lib/libstrata_malloc.a 644
  put "$bin/alloc/libstrata_engine.a" lib/libstrata_engine.a 644
  local h headers
  headers="$(header_closure)" || exit 1
  while IFS= read -r h; do
    put "$ROOT/$h" "include/strata/$h" 644
  done <<<"$headers"
  write_pkgconfig
  write_cmake
  put "$ROOT/tools/strata-run" bin/strata-run 755
  put "$bin/tools/heapdump/heapdump" bin/heapdump 755
  put "$bin/tools/demo/strata_demo" libexec/strata/strata_demo 755

  make_dir "$(dirname "$MANIFEST_REL")"
  {
    printf '%s\n' "${created_dirs[@]}"
    printf '%s\n' "${installed[@]}"
  } >"$PREFIX/$MANIFEST_REL"
  echo "install.sh: installed strata $VERSION into $PREFIX (${#installed[@]} files; manifest $MANIFEST_REL)" >&2
}

# ---- arguments -------------------------------------------------------------

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  --uninstall)
    [ $# -eq 2 ] || die "usage: tools/install.sh --uninstall PREFIX"
    [ -d "$2" ] || die "$2 is not a directory"
    uninstall "$(cd "$2" && pwd)"
    ;;
  ""|-*) usage >&2; exit 2 ;;
  *)
    [ $# -eq 1 ] || die "usage: tools/install.sh PREFIX (one argument)"
    PREFIX="$1"
    install_all
    ;;
esac
