#!/usr/bin/env bash
# tests/override/run_preloaded.sh BINARY LIBSTRATA [ARGS...]
# Runs BINARY (built without strata) with strata preloaded.
set -euo pipefail
bin="$1"
lib="$2"
shift 2
lib_abs="$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")"
LD_PRELOAD="$lib_abs" "$bin" "$@"
