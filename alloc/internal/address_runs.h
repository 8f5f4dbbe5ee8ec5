// alloc/internal/address_runs.h: how many runs of neighbouring blocks a
// batch of block addresses holds.
//
// Contract: CountAddressRuns(objects, n, stride) returns the number of
// maximal stretches of objects[0, n) in which each address is its
// predecessor's plus or minus `stride` (the class size): 0 for an empty
// batch, 1 for blocks that lie back to back in either direction, n when no
// two consecutive entries are neighbours. It compares the addresses only
// and touches no block's memory.
//
// What it is for (central_pool.h, "ordered batches"): blocks that a
// program allocated one after another and frees in the same order come
// back as a few long runs. A batch made of many shorter runs is such an
// order cut into pieces by batch boundaries that did not line up; the
// central pool then puts it back together in its spans instead of passing
// the pieces on.
//
// Cost: a producer/consumer program's consumer hands back every block it
// frees, so this runs over all of them. On x86-64 it tests two neighbours
// at a time in SSE2 (a 64-bit difference against `stride` and `-stride`,
// Equal64 in sse2_lanes.h) and counts them with a lane subtraction; the
// last addresses, and other targets, take the scalar loop.
//
// Thread-safety: a pure function of its arguments.
#ifndef STRATA_ALLOC_INTERNAL_ADDRESS_RUNS_H_
#define STRATA_ALLOC_INTERNAL_ADDRESS_RUNS_H_

#include <cstddef>
#include <cstdint>

#include "alloc/internal/sse2_lanes.h"

namespace strata::internal {

template <typename T>
std::uint32_t CountAddressRuns(T* const* objects, std::uint32_t n, std::size_t stride) {
  if (n == 0) return 0;
  const auto up = static_cast<std::uint64_t>(stride);
  const std::uint64_t down = 0 - up;
  // Neighbours counted: consecutive pairs (i - 1, i) that are adjacent.
  std::uint64_t adjacent = 0;
  std::uint32_t i = 1;
#if defined(__SSE2__)
  static_assert(sizeof(T*) == 8, "two addresses per 16-byte vector");
  const __m128i up_v = _mm_set1_epi64x(static_cast<long long>(up));
  const __m128i down_v = _mm_set1_epi64x(static_cast<long long>(down));
  __m128i count = _mm_setzero_si128();
  // Pairs (i - 1, i) and (i, i + 1).
  for (; i + 2 <= n; i += 2) {
    const __m128i here = _mm_loadu_si128(reinterpret_cast<const __m128i*>(objects + i));
    const __m128i before = _mm_loadu_si128(reinterpret_cast<const __m128i*>(objects + i - 1));
    const __m128i diff = _mm_sub_epi64(here, before);
    // A matching lane is all ones (-1): subtracting it counts one.
    count = _mm_sub_epi64(count, _mm_or_si128(Equal64(diff, up_v), Equal64(diff, down_v)));
  }
  alignas(16) std::uint64_t lanes[2];
  _mm_store_si128(reinterpret_cast<__m128i*>(lanes), count);
  adjacent = lanes[0] + lanes[1];
#endif
  for (; i < n; ++i) {
    const std::uint64_t d = reinterpret_cast<std::uintptr_t>(objects[i]) - reinterpret_cast<std::uintptr_t>(objects[i - 1]);
    adjacent += (d == up) | (d == down);
  }
  return n - static_cast<std::uint32_t>(adjacent);
}

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_ADDRESS_RUNS_H_
