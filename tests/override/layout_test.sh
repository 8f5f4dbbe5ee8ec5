#!/usr/bin/env bash
# tests/override/layout_test.sh LIBSTRATA ORDER_FILE CHECK_PROGRAM
# The code layout of libstrata.so (alloc/libstrata_order.txt):
#  1. every function the order file names exactly still exists (a renamed
#     function would silently fall back to the default place);
#  2. a program that only allocates leaves a whole 64 KiB window of
#     strata's code unmapped (code_layout_check.cc).
set -euo pipefail
lib="$1"
order="$2"
check="$3"
symbols="$(nm "$lib" | awk '$2 ~ /^[tT]$/ {print $3}')"
stale=0
while IFS= read -r entry; do
  case "$entry" in
    .text.startup.* | .text.exit.*) name="${entry#.text.*.}" ;;
    .text.*) name="${entry#.text.}" ;;
    *) continue ;;
  esac
  case "$name" in *[*?[]*) continue ;; esac  # a pattern, not a name
  if ! grep -qxF -- "$name" <<<"$symbols"; then
    echo "FAIL: $order names $entry, but libstrata.so has no function $name"
    stale=$((stale + 1))
  fi
done <"$order"
if [ "$stale" -gt 0 ]; then
  echo "FAIL: $stale stale entries: update $order"
  exit 1
fi
echo "PASS: every name in the order file exists"
lib_abs="$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")"
LD_PRELOAD="$lib_abs" "$check"
