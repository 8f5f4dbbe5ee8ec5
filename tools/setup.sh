#!/usr/bin/env bash
# Installs every Debian package strata's build, tests, tools and benchmarks
# need. Idempotent: when everything is present it only runs dpkg queries.
set -euo pipefail

PACKAGES=(
  # build (libdw-dev: DWARF line tables for tools/heapdump's file:line)
  bazel-bootstrap bazel-platforms g++ libabsl-dev libtbb-dev libgtest-dev
  libbenchmark-dev zlib1g-dev libdw-dev
  # tools and tests: pprof reader, leak truth, real programs under LD_PRELOAD,
  # libFuzzer (clang)
  golang-go valgrind python3 python3.11 libpython3.11-testsuite sqlite3 git
  clang procps
  # tests/install: strata used from CMake and pkg-config projects
  cmake pkg-config
  # the observability endpoint's real clients (tests/observe): promtool and
  # a Prometheus server, headless Chromium for the dashboard
  prometheus chromium
  # benchmark peers
  libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0 libtbbmalloc2
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
