// alloc/stats.h: strata's counters, read as one snapshot.
//
// Contract: GetStats() is thread-safe and lock-free with respect to
// allocation: the fast path only bumps counters owned by the calling thread
// (relaxed stores, no shared writes); a reader sums every live thread's
// counters plus the total left by exited threads. The snapshot is therefore
// approximate while other threads run (each counter is exact on its own,
// the sum is not one instant) and exact when they are quiescent.
// GetStats() never allocates through malloc.
#ifndef STRATA_ALLOC_STATS_H_
#define STRATA_ALLOC_STATS_H_

#include <cstddef>
#include <cstdint>

namespace strata {

inline constexpr int kMaxReportedSizeClasses = 128;

struct SizeClassStats {
  std::size_t size = 0;            // block size of the class (0: unused)
  std::uint64_t allocations = 0;   // cumulative
  std::uint64_t frees = 0;         // cumulative
  std::int64_t live_objects = 0;   // allocations - frees
  std::int64_t live_bytes = 0;     // live_objects * size
  std::size_t thread_cache_bytes = 0;
  std::size_t central_bytes = 0;
};

struct Stats {
  // Totals over every size class and large allocations.
  std::uint64_t allocations = 0;
  std::uint64_t frees = 0;
  std::int64_t live_objects = 0;
  std::int64_t live_bytes = 0;        // usable bytes of live blocks
  std::int64_t peak_live_bytes = 0;   // high-water mark of live_bytes
  std::uint64_t large_allocations = 0;  // blocks above the largest class
  std::int64_t large_live_bytes = 0;
  // Where free memory sits.
  std::size_t thread_cache_bytes = 0;
  std::size_t central_cache_bytes = 0;
  std::size_t arena_free_bytes = 0;     // free, committed pages in spans
  std::size_t large_cache_bytes = 0;    // freed large blocks kept for reuse
  // Address space.
  std::size_t reserved_bytes = 0;
  std::size_t committed_bytes = 0;
  std::size_t decommitted_bytes = 0;    // cumulative bytes given back
  // Address space of the engine's own tables: the page maps, the thread
  // caches' slot arrays (reserved; their pages are used as lists grow).
  std::size_t metadata_bytes = 0;
  std::int64_t fragmentation_bytes = 0;  // committed - live
  std::size_t threads_with_cache = 0;
  // OS calls (mmap, madvise, munmap) that failed so far, real or injected
  // (alloc/os/os.h): the engine survives them, this makes them visible.
  std::uint64_t os_failures = 0;
  // Allocations made to fail on purpose (alloc/failure_injection.h).
  std::uint64_t injected_allocation_failures = 0;
  int num_size_classes = 0;
  SizeClassStats size_classes[kMaxReportedSizeClasses];
};

// A consistent-enough snapshot of every counter (see the contract above).
Stats GetStats() noexcept;

}  // namespace strata

#endif  // STRATA_ALLOC_STATS_H_
