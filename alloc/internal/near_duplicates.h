// alloc/internal/near_duplicates.h: the double-free check of a batch of
// addresses a thread cache hands back.
//
// Contract: a block freed twice into one thread cache's list shows as the
// same address twice in the list's array. HasNearDuplicate(objects, n) is
// true exactly when some objects[i] == objects[j] with 0 < j - i <=
// kDuplicateWindow (the usual double free, `free(p)` again a few frees
// later, falls within it). It compares values already loaded and touches
// no block's memory. Copies further apart are caught when they reach
// their span (central_pool.h), unless a thread takes the block first.
//
// Cost: a consumer thread hands back every block it frees, so this runs
// over all of them. On x86-64 it compares two addresses at a time in SSE2
// (Equal64, sse2_lanes.h), without the flag-to-register chain of a scalar `|=` of
// compares; other targets, and the last few addresses, take the scalar
// loop.
//
// Thread-safety: a pure function of its arguments.
#ifndef STRATA_ALLOC_INTERNAL_NEAR_DUPLICATES_H_
#define STRATA_ALLOC_INTERNAL_NEAR_DUPLICATES_H_

#include <cstdint>

#include "alloc/internal/sse2_lanes.h"

namespace strata::internal {

inline constexpr std::uint32_t kDuplicateWindow = 4;

// The repeated address of the first such pair (the nearest distance first,
// then the lowest position), or nullptr: the scalar search, for the rare
// batch that has one (to name it in the report) and for what the vector
// loop leaves.
template <typename T>
T* FindNearDuplicate(T* const* objects, std::uint32_t n) {
  for (std::uint32_t d = 1; d <= kDuplicateWindow; ++d) {
    for (std::uint32_t i = 0; i + d < n; ++i) {
      if (objects[i] == objects[i + d]) return objects[i];
    }
  }
  return nullptr;
}

template <typename T>
bool HasNearDuplicate(T* const* objects, std::uint32_t n) {
  std::uint32_t i = 0;
  bool repeated = false;
#if defined(__SSE2__)
  static_assert(sizeof(T*) == 8, "two addresses per 16-byte vector");
  __m128i seen = _mm_setzero_si128();
  // Addresses i and i+1 against the kDuplicateWindow addresses after each.
  for (; i + kDuplicateWindow + 2 <= n; i += 2) {
    const __m128i here = _mm_loadu_si128(reinterpret_cast<const __m128i*>(objects + i));
#pragma GCC unroll 4
    for (std::uint32_t d = 1; d <= kDuplicateWindow; ++d) {
      const __m128i later = _mm_loadu_si128(reinterpret_cast<const __m128i*>(objects + i + d));
      seen = _mm_or_si128(seen, Equal64(here, later));
    }
  }
  repeated = _mm_movemask_epi8(seen) != 0;
#endif
  // The rest (the last few addresses; all of them without SSE2), against
  // the addresses that follow them.
  return repeated || FindNearDuplicate(objects + i, n - i) != nullptr;
}

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_NEAR_DUPLICATES_H_
