#!/bin/sh
# Runs a Python script of this workspace from the runfiles with the system
# python3: `python3.sh bench/compare/compare.py ARGS...`.
#
# Why not py_binary: Bazel 4.2.3's Python stub starts with
# `#!/usr/bin/env python`, and Debian has no `python` (only python3) on the
# PATH that tests see under --incompatible_strict_action_env.
set -eu
script="$1"
shift
for root in "${RUNFILES_DIR:+$RUNFILES_DIR/strata}" "$0.runfiles/strata" \
            "${TEST_SRCDIR:+$TEST_SRCDIR/strata}" "$PWD"; do
  if [ -n "$root" ] && [ -f "$root/$script" ]; then
    exec python3 "$root/$script" "$@"
  fi
done
echo "python3.sh: $script not found in the runfiles of $0" >&2
exit 2
