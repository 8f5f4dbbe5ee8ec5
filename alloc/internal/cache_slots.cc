#include "alloc/internal/cache_slots.h"

#include <atomic>

#include "alloc/os/os.h"
#include "concurrency/base/macros.h"
#include "concurrency/treiber_stack.h"

namespace strata::internal {

namespace {

// The first line of an idle region (its header slots).
struct IdleRegion {
  IdleRegion* next;
};
static_assert(sizeof(IdleRegion) <= cache_slots_detail::kHeaderSlots * sizeof(void*));

constinit TreiberStack<IdleRegion> g_idle_regions;
constinit std::atomic<std::uint64_t> g_mapped{0};
constinit std::atomic<std::uint64_t> g_idle{0};
constinit std::atomic<std::uint32_t> g_fail_next{0};

bool TakeInjectedFailure() {
  std::uint32_t n = g_fail_next.load(std::memory_order_relaxed);
  while (n != 0 && !g_fail_next.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) {
  }
  return n != 0;
}

}  // namespace

void** AcquireSlotRegion() {
  if (STRATA_PREDICT_FALSE(g_fail_next.load(std::memory_order_relaxed) != 0) && TakeInjectedFailure()) {
    return nullptr;
  }
  if (IdleRegion* r = g_idle_regions.Pop()) {
    g_idle.fetch_sub(1, std::memory_order_relaxed);
    return reinterpret_cast<void**>(r);
  }
  void* p = os::Reserve(kRegionBytes, os::kPageSize);
  if (p == nullptr) return nullptr;
  g_mapped.fetch_add(1, std::memory_order_relaxed);
  return static_cast<void**>(p);
}

void ReleaseSlotRegion(void** region) {
  if (region == nullptr) return;
  g_idle.fetch_add(1, std::memory_order_relaxed);
  g_idle_regions.Push(reinterpret_cast<IdleRegion*>(region));
}

std::uint64_t SlotRegionsMapped() { return g_mapped.load(std::memory_order_relaxed); }
std::uint64_t SlotRegionsIdle() { return g_idle.load(std::memory_order_relaxed); }

void FailSlotRegionsForTesting(std::uint32_t count) { g_fail_next.store(count, std::memory_order_relaxed); }

}  // namespace strata::internal
