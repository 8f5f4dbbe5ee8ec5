// alloc/pmr.h: std::pmr memory resources over strata (namespace
// strata::pmr): GlobalResource(), PoolResource, MonotonicArena,
// ConcurrentMonotonicArena. The declarations and their contracts live in
// alloc/pmr/pmr.h; this header only forwards (target //alloc:pmr).
#ifndef STRATA_ALLOC_PMR_H_
#define STRATA_ALLOC_PMR_H_

#include "alloc/pmr/pmr.h"  // IWYU pragma: export

#endif  // STRATA_ALLOC_PMR_H_
