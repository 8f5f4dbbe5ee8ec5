#!/usr/bin/env bash
# tests/override/exports_test.sh LIBSTRATA
# Checks that libstrata.so exports (defines, with default visibility) every
# entry point a complete malloc replacement needs, and the strata_c.h API.
set -euo pipefail
lib="$1"
defined="$(nm -D --defined-only "$lib" | awk '{print $NF}')"
missing=0
check() {
  if grep -qx -- "$1" <<<"$defined"; then
    echo "PASS: exports $1"
  else
    echo "FAIL: does not export $1"
    missing=$((missing + 1))
  fi
}
for sym in malloc free calloc realloc reallocarray posix_memalign aligned_alloc \
           memalign valloc pvalloc malloc_usable_size free_sized free_aligned_sized cfree \
           __libc_malloc __libc_free __libc_calloc __libc_realloc __libc_memalign \
           __libc_valloc __libc_pvalloc mallinfo mallinfo2 malloc_trim malloc_stats \
           malloc_info mallopt \
           strata_stats_allocations strata_stats_frees strata_stats_live_bytes \
           strata_release_memory; do
  check "$sym"
done
# The 20 replaceable operator new/delete forms (Itanium mangling, size_t = m).
for sym in _Znwm _Znam _ZnwmRKSt9nothrow_t _ZnamRKSt9nothrow_t \
           _ZnwmSt11align_val_t _ZnamSt11align_val_t \
           _ZnwmSt11align_val_tRKSt9nothrow_t _ZnamSt11align_val_tRKSt9nothrow_t \
           _ZdlPv _ZdaPv _ZdlPvRKSt9nothrow_t _ZdaPvRKSt9nothrow_t _ZdlPvm _ZdaPvm \
           _ZdlPvSt11align_val_t _ZdaPvSt11align_val_t \
           _ZdlPvSt11align_val_tRKSt9nothrow_t _ZdaPvSt11align_val_tRKSt9nothrow_t \
           _ZdlPvmSt11align_val_t _ZdaPvmSt11align_val_t; do
  check "$sym"
done
if [ "$missing" -ne 0 ]; then
  echo "$missing symbol(s) missing"
  exit 1
fi
