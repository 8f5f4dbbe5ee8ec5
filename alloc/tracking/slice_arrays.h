// alloc/tracking/slice_arrays.h: per-slice record arrays of the tracking
// layer, found from a block's address.
//
// The records of tracked small blocks (block_records.h) and of sampled
// blocks kept in place (sampled_records.h) sit in arrays made per 64 KiB
// slice: found through a radix map keyed by the slice (two loads), made at
// a slice's first use from a record arena of their own (zeroed: every
// record starts never recorded), kept for the process's life (type
// stable) and linked in a list that walks read. An Array is a struct whose
// first members are `std::uintptr_t base` (the slice) and `Array* next`.
//
// The map from a slice to its array is a radix map of its own by default;
// `Map` may name another with the same Get, Ensure and Cas (the sampled
// records' arrays sit in the slice states of sampled_slices.h, beside the
// slice's word).
//
// Thread-safety: lock-free (an array is installed with a CAS; the list is
// pushed with a CAS and only grows). Never allocates through malloc.
#ifndef STRATA_ALLOC_TRACKING_SLICE_ARRAYS_H_
#define STRATA_ALLOC_TRACKING_SLICE_ARRAYS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/internal/page_map.h"
#include "alloc/internal/size_classes.h"
#include "concurrency/base/macros.h"
#include "concurrency/base/raw_memory.h"

namespace strata::tracking {

template <typename Array, typename Map = internal::RadixMap<Array*, internal::kSliceShift, 16>>
class SliceArrays {
 public:
  constexpr SliceArrays() = default;

  // The array of the slice of `ptr` (null: none yet).
  STRATA_ALWAYS_INLINE Array* Get(std::uintptr_t ptr) const { return map_.Get(ptr); }

  // Installs a fresh array of `bytes` for the slice of `ptr` in place of
  // `old` (null, or one the caller outgrew), made by `make(memory, base)`
  // on zeroed memory. Returns it, or when another thread installed one
  // first the slice's array now (which the caller checks), or null when
  // out of memory.
  template <typename Make>
  STRATA_NOINLINE Array* Install(std::uintptr_t ptr, std::size_t bytes, Array* old, Make make) {
    const std::uintptr_t base = ptr & ~(internal::kSliceSize - 1);
    if (!map_.Ensure(base, internal::kSliceSize)) return nullptr;
    void* mem = arena_.Allocate(bytes, alignof(Array));
    if (mem == nullptr) return nullptr;
    Array* fresh = make(mem, base);
    // A lost race leaves `fresh` unused in the arena (rare: a slice's
    // first use by two threads at once).
    if (!map_.Cas(base, old, fresh)) return map_.Get(base);
    Array* head = list_.load(std::memory_order_relaxed);
    do {
      fresh->next = head;
      // Release publishes the array to walkers.
    } while (!list_.compare_exchange_weak(head, fresh, std::memory_order_release, std::memory_order_relaxed));
    slices_.fetch_add(1, std::memory_order_relaxed);
    return fresh;
  }

  // Every array ever installed (acquire: pairs with Install's release).
  Array* head() const { return list_.load(std::memory_order_acquire); }
  std::size_t slices() const { return slices_.load(std::memory_order_relaxed); }

 private:
  // The default: 2^31 slices, 2^15 root entries, 512 KiB leaves (zero pages
  // until a slice of theirs is used).
  Map map_;
  std::atomic<Array*> list_{nullptr};
  RawRecordArena arena_;
  std::atomic<std::size_t> slices_{0};
};

}  // namespace strata::tracking

#endif  // STRATA_ALLOC_TRACKING_SLICE_ARRAYS_H_
