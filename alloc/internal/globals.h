// alloc/internal/globals.h: the allocator's process-wide singletons.
//
// Contract: every global here is constinit with a trivial destructor, so it
// is usable before main(), during exit and in a fork child, in any order.
// Thread-safety: that of each type.
#ifndef STRATA_ALLOC_INTERNAL_GLOBALS_H_
#define STRATA_ALLOC_INTERNAL_GLOBALS_H_

#include "alloc/internal/central_pool.h"
#include "alloc/internal/page_heap.h"
#include "alloc/internal/size_classes.h"

namespace strata::internal {

extern constinit PageHeap g_page_heap;
extern constinit CentralPool g_central[kNumClasses];
extern constinit TrackedCentralPool g_tracked_central[kNumClasses];

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_GLOBALS_H_
