#include "alloc/tracking/block_records.h"

#include "alloc/internal/page_map.h"
#include "concurrency/base/raw_memory.h"

namespace strata::tracking {
namespace {

using internal::kSliceSize;

struct alignas(64) SliceRecords {
  std::uintptr_t base = 0;       // the slice's address
  SliceRecords* next = nullptr;  // the list of every array (written before it is published)
  // Records [0, limit) may have been written: the most blocks of any class
  // that had a tracked span at this slice (readers walk no further).
  std::atomic<std::uint32_t> limit{0};
  BlockRecord records[kRecordsPerSlice];
};

// Every tracked span's blocks fit its slice's array.
constexpr bool TrackedSpansFit() {
  for (int c = 1; c < internal::kNumClasses; ++c) {
    if (internal::SpanObjects(c, true) > kRecordsPerSlice) return false;
    // Above one slice a tracked span holds one block, at its start.
    if (internal::SpanSlices(c, true) > 1 && internal::SpanObjects(c, true) != 1) return false;
  }
  return true;
}
static_assert(TrackedSpansFit(), "a tracked span's blocks must fit its first slice's record array");

// Slice -> its record array: 2^31 slices, 2^15 root entries, 512 KiB
// leaves (zero pages until a slice of theirs is used).
constinit internal::RadixMap<SliceRecords*, internal::kSliceShift, 16> g_arrays;
constinit std::atomic<SliceRecords*> g_list{nullptr};
constinit std::atomic<std::size_t> g_slices{0};

STRATA_ALWAYS_INLINE std::uint32_t Index(std::uintptr_t ptr, int size_class) {
  return static_cast<std::uint32_t>(internal::BlockIndex(ptr & (kSliceSize - 1), size_class));
}

STRATA_NOINLINE SliceRecords* MapArray(std::uintptr_t ptr) {
  const std::uintptr_t base = ptr & ~(kSliceSize - 1);
  if (!g_arrays.Ensure(base, kSliceSize)) return nullptr;
  auto* fresh = static_cast<SliceRecords*>(RawMap(sizeof(SliceRecords)));
  if (fresh == nullptr) return nullptr;
  fresh->base = base;
  // RawMap's memory is zeroed: every record and the limit start at 0.
  if (!g_arrays.Cas(base, nullptr, fresh)) {
    RawUnmap(fresh, sizeof(SliceRecords));  // another thread mapped it first
    return g_arrays.Get(base);
  }
  SliceRecords* head = g_list.load(std::memory_order_relaxed);
  do {
    fresh->next = head;
    // Release publishes `base` and `next` to walkers.
  } while (!g_list.compare_exchange_weak(head, fresh, std::memory_order_release, std::memory_order_relaxed));
  g_slices.fetch_add(1, std::memory_order_relaxed);
  return fresh;
}

}  // namespace

BlockRecord* BlockRecordFor(std::uintptr_t ptr, int size_class) {
  SliceRecords* a = g_arrays.Get(ptr);
  if (STRATA_PREDICT_FALSE(a == nullptr)) {
    a = MapArray(ptr);
    if (a == nullptr) return nullptr;
  }
  const std::uint32_t objects = internal::SpanObjects(size_class, true);
  std::uint32_t limit = a->limit.load(std::memory_order_relaxed);
  // Release: a walker that reads the new limit (acquire) also sees `base`.
  while (limit < objects &&
         !a->limit.compare_exchange_weak(limit, objects, std::memory_order_release, std::memory_order_relaxed)) {
  }
  return &a->records[Index(ptr, size_class)];
}

BlockRecord* FindBlockRecord(std::uintptr_t ptr, int size_class) {
  SliceRecords* a = g_arrays.Get(ptr);
  return a == nullptr ? nullptr : &a->records[Index(ptr, size_class)];
}

LiveInfo BlockRecordInfo(const BlockRecord& r, std::uintptr_t ptr, std::uint32_t state) {
  return LiveInfo{ptr,
                  r.size.load(std::memory_order_relaxed),
                  internal::ClassSize(StateClass(state)),
                  r.stack.load(std::memory_order_relaxed),
                  r.time_ns.load(std::memory_order_relaxed),
                  state & 0xff};
}

void ForEachBlockRecord(void (*fn)(const LiveInfo& info, void* arg), void* arg) {
  // Acquire pairs with the release CAS that published each array.
  for (SliceRecords* a = g_list.load(std::memory_order_acquire); a != nullptr; a = a->next) {
    const std::uint32_t limit = a->limit.load(std::memory_order_acquire);
    for (std::uint32_t i = 0; i < limit; ++i) {
      const BlockRecord& r = a->records[i];
      const std::uint32_t state = r.state.load(std::memory_order_acquire);
      if (!StateLive(state)) continue;
      const int c = StateClass(state);
      if (c <= 0 || c >= internal::kNumClasses) continue;
      fn(BlockRecordInfo(r, a->base + static_cast<std::uintptr_t>(i) * internal::ClassSize(c), state), arg);
    }
  }
}

std::size_t BlockRecordSlices() { return g_slices.load(std::memory_order_relaxed); }

BlockRecordCounts CountBlockRecords() {
  BlockRecordCounts counts{0, 0, 0};
  for (SliceRecords* a = g_list.load(std::memory_order_acquire); a != nullptr; a = a->next) {
    const std::uint32_t limit = a->limit.load(std::memory_order_acquire);
    for (std::uint32_t i = 0; i < limit; ++i) {
      const std::uint32_t state = a->records[i].state.load(std::memory_order_acquire);
      if (StateLive(state)) {
        ++counts.live;
      } else if ((state & kParked) != 0) {
        ++counts.parked;
      } else if ((state & kFreed) != 0) {
        ++counts.freed;
      }
    }
  }
  return counts;
}

}  // namespace strata::tracking
