#!/usr/bin/env bash
# tests/override/no_extra_fd_test.sh LIBSTRATA FD_LIST
# An unmodified program run on strata finds exactly the file descriptors it
# would find on glibc's malloc: strata keeps a private copy of stderr only
# when an exit report is asked for (programs list their descriptors, close
# them, or pass them all to children, as CPython's subprocess tests check).
set -euo pipefail
lib="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
fd_list="$2"
plain="$("$fd_list")"
preloaded="$(LD_PRELOAD="$lib" "$fd_list")"
if [ "$plain" != "$preloaded" ]; then
  echo "FAIL: descriptors without strata: $(echo $plain); with strata: $(echo $preloaded)"
  exit 1
fi
echo "PASS: same descriptors with and without strata: $(echo $plain)"
# With an exit report asked for, the private copy is there (and is not
# inherited: close-on-exec).
reporting="$(STRATA_SHOW_STATS=1 LD_PRELOAD="$lib" "$fd_list" 2>/dev/null)"
if [ "$reporting" = "$plain" ]; then
  echo "FAIL: STRATA_SHOW_STATS=1 did not keep a copy of stderr"
  exit 1
fi
echo "PASS: with STRATA_SHOW_STATS=1: $(echo $reporting)"
