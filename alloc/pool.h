// alloc/pool.h: object and buffer pools over strata (namespace strata):
// ObjectPool<T> and BufferPool. The declarations and their contracts live in
// alloc/pool/pool.h; this header only forwards (target //alloc:pool).
#ifndef STRATA_ALLOC_POOL_H_
#define STRATA_ALLOC_POOL_H_

#include "alloc/pool/pool.h"  // IWYU pragma: export

#endif  // STRATA_ALLOC_POOL_H_
