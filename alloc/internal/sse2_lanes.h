// alloc/internal/sse2_lanes.h: a 64-bit lane compare in SSE2.
//
// Contract: Equal64(a, b) returns, per 64-bit lane, all ones when the
// lanes of a and b are equal and zero otherwise: SSE2 has no 64-bit
// compare (pcmpeqq is SSE4.1), so the lane is equal when both of its
// 32-bit halves are (pcmpeqd, pshufd swapping the halves, pand). Used by
// the batch scans of near_duplicates.h and address_runs.h. Only where
// __SSE2__ is defined (every x86-64 target).
//
// Thread-safety: a pure function of its arguments.
#ifndef STRATA_ALLOC_INTERNAL_SSE2_LANES_H_
#define STRATA_ALLOC_INTERNAL_SSE2_LANES_H_

#if defined(__SSE2__)
#include <emmintrin.h>

namespace strata::internal {

inline __m128i Equal64(__m128i a, __m128i b) {
  const __m128i halves = _mm_cmpeq_epi32(a, b);
  return _mm_and_si128(halves, _mm_shuffle_epi32(halves, 0xb1));
}

}  // namespace strata::internal
#endif

#endif  // STRATA_ALLOC_INTERNAL_SSE2_LANES_H_
