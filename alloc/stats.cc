// GetStats(): sums per-thread counters (under the thread registry lock,
// which only thread creation and exit take) with the central pools' and the
// page heap's counters.
#include "alloc/stats.h"

#include <atomic>

#include "alloc/internal/cache_slots.h"
#include "alloc/internal/failure_injection.h"
#include "alloc/internal/globals.h"
#include "alloc/internal/sampled_slices.h"
#include "alloc/internal/thread_cache.h"
#include "alloc/internal/tracked_cache.h"
#include "alloc/os/os.h"

namespace strata {
namespace {

using internal::kNumClasses;

struct ThreadTotals {
  std::uint64_t allocs[kNumClasses];
  std::uint64_t cached[kNumClasses];
  // Remote frees sent minus received (alloc/internal/remote_free.h).
  std::int64_t in_flight[kNumClasses];
  std::size_t threads;
};

void AddThread(const internal::ThreadCache& tc, void* arg) {
  auto* t = static_cast<ThreadTotals*>(arg);
  auto& cache = const_cast<internal::ThreadCache&>(tc);
  for (int c = 1; c < kNumClasses; ++c) {
    t->allocs[c] += internal::RelaxedLoad(cache.lists[c].allocs);
    t->cached[c] += internal::ListLength(cache.lists[c]);
    if (c == sampled_slices::kSmallSampleClass) t->cached[c] += internal::RelaxedLoad(cache.sample_block_count);
    if constexpr (internal::kOwnerFreesBuilt) {
      t->in_flight[c] += static_cast<std::int64_t>(internal::RelaxedLoad(cache.remote[c].sent)) -
                         static_cast<std::int64_t>(internal::RelaxedLoad(cache.remote[c].received));
    }
  }
  ++t->threads;
}

constinit std::atomic<std::int64_t> g_peak_live{0};

}  // namespace

Stats GetStats() noexcept {
  // The walks below take engine locks (the registry, the page heap): the
  // process init registers their fork handlers first, also when this is
  // the program's first call into strata (EnsureProcessInit).
  internal::EnsureProcessInit();
  Stats s{};
  ThreadTotals t{};
  internal::ForEachThreadCache(&AddThread, &t);
  s.threads_with_cache = t.threads;
  s.num_size_classes = kNumClasses - 1;
  for (int c = 1; c < kNumClasses; ++c) {
    SizeClassStats& sc = s.size_classes[c - 1];
    std::size_t size = internal::ClassSize(c);
    sc.size = size;
    sc.allocations = internal::ExitedAllocations(c) + t.allocs[c];
    // Blocks freed to another thread and not yet back in a list or pool are
    // neither live nor in a list: counted with the thread caches.
    std::int64_t in_flight = internal::kOwnerFreesBuilt ? internal::RemoteInFlight(c, t.in_flight[c]) : 0;
    if (in_flight < 0) in_flight = 0;
    const std::uint64_t held = t.cached[c] + static_cast<std::uint64_t>(in_flight);
    std::int64_t live = internal::g_central[c].objects_out(c) - static_cast<std::int64_t>(held) +
                        internal::g_tracked_central[c].objects_out(c) -
                        static_cast<std::int64_t>(tracked_cache::TrackedCachedObjects(c));
    if (live < 0) live = 0;  // counters read at slightly different instants
    if (static_cast<std::uint64_t>(live) > sc.allocations) live = static_cast<std::int64_t>(sc.allocations);
    sc.live_objects = live;
    sc.frees = sc.allocations - static_cast<std::uint64_t>(live);
    sc.live_bytes = live * static_cast<std::int64_t>(size);
    sc.thread_cache_bytes = held * size;
    sc.central_bytes =
        (internal::g_central[c].free_objects(c) + internal::g_tracked_central[c].free_objects(c) +
         tracked_cache::TrackedCachedObjects(c)) * size;
    s.allocations += sc.allocations;
    s.frees += sc.frees;
    s.live_objects += sc.live_objects;
    s.live_bytes += sc.live_bytes;
    s.thread_cache_bytes += sc.thread_cache_bytes;
    s.central_cache_bytes += sc.central_bytes;
  }
  internal::PageHeapStats ph = internal::g_page_heap.Stats();
  s.large_allocations = ph.large_allocations;
  s.large_live_bytes = static_cast<std::int64_t>(ph.large_live_bytes);
  s.allocations += ph.large_allocations;
  s.frees += ph.large_frees;
  s.live_objects += static_cast<std::int64_t>(ph.large_allocations - ph.large_frees);
  s.live_bytes += s.large_live_bytes;
  s.arena_free_bytes = ph.free_committed_bytes;
  s.large_cache_bytes = ph.huge_cache_bytes;
  s.reserved_bytes = ph.reserved_bytes;
  s.committed_bytes = ph.committed_bytes;
  s.decommitted_bytes = ph.decommitted_bytes;
  // The page maps, and the thread caches' slot arrays (cache_slots.h).
  s.metadata_bytes = ph.metadata_bytes + internal::SlotRegionsMapped() * internal::kRegionBytes;
  s.fragmentation_bytes = static_cast<std::int64_t>(s.committed_bytes) - s.live_bytes;
  for (int k = 0; k < os::kNumFaultKinds; ++k) s.os_failures += os::FailureCount(static_cast<os::FaultKind>(k));
  s.injected_allocation_failures = failure_injection::InjectedFailures();
  std::int64_t peak = g_peak_live.load(std::memory_order_relaxed);
  while (s.live_bytes > peak &&
         !g_peak_live.compare_exchange_weak(peak, s.live_bytes, std::memory_order_relaxed)) {
  }
  s.peak_live_bytes = peak > s.live_bytes ? peak : s.live_bytes;
  return s;
}

}  // namespace strata
