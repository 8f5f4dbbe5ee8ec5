// concurrency/cache_padded.h: CachePadded<T> keeps a value alone on its
// cache lines.
//
// Why 128 bytes: on x86-64 the L2 "adjacent cache line" prefetcher fetches
// 64-byte lines in aligned 128-byte pairs, so two values written by
// different cores that share a 128-byte pair still ping-pong between cores
// (false sharing), even when they sit on different 64-byte lines. Intel's
// optimisation manual and crossbeam-utils both pad to 128 for this reason.
//
// Contract: CachePadded<T> is aligned to and a multiple of kCacheLineSize.
// Thread-safety is that of T.
#ifndef STRATA_CONCURRENCY_CACHE_PADDED_H_
#define STRATA_CONCURRENCY_CACHE_PADDED_H_

#include <utility>

#include "concurrency/base/macros.h"

namespace strata {

template <typename T>
struct alignas(kCacheLineSize) CachePadded {
  constexpr CachePadded() = default;
  template <typename... Args>
  constexpr explicit CachePadded(Args&&... args) : value(std::forward<Args>(args)...) {}

  T& operator*() { return value; }
  const T& operator*() const { return value; }
  T* operator->() { return &value; }
  const T* operator->() const { return &value; }

  T value{};
};

static_assert(alignof(CachePadded<char>) == kCacheLineSize);
static_assert(sizeof(CachePadded<char>) == kCacheLineSize);
static_assert(sizeof(CachePadded<char[129]>) == 2 * kCacheLineSize);

}  // namespace strata

#endif  // STRATA_CONCURRENCY_CACHE_PADDED_H_
