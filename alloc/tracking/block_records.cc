#include "alloc/tracking/block_records.h"

#include <atomic>

#include "alloc/internal/page_map.h"
#include <new>

#include "alloc/tracking/slice_arrays.h"

namespace strata::tracking {
namespace {

using internal::kSliceSize;

// A slice's record array: the header, then `capacity` records (the most
// blocks of a tracked span of the class it was made for). A slice that
// takes a span of a class with more blocks gets a bigger array (the old one,
// all its records free by then, stays in the walk list). Arrays come from
// their own record arena, packed (a big class's array is one record: 128
// bytes, where a whole slice's array would take a page of its own, a page
// fault and a mapping per slice).
//
// Walks (ForEach, the peak tracker's snapshots among them) visit only the
// parts of an array whose records were ever written: `written` has a bit
// per run of 2^run_shift records (at most 64 runs), set before the first
// record of the run is (BlockRecordFor). A tracked span's blocks are
// carved from a colour offset of their own (central_pool.h), so those of
// a span that served a few are a few runs; a 16-byte class's whole array
// is 96 KiB, which every snapshot read (and, untouched, mapped: a zero
// page fault a page).
struct alignas(64) SliceRecords {
  std::uintptr_t base;   // the slice's address
  SliceRecords* next;    // the list of every array (written before it is published)
  std::uint32_t capacity;
  std::uint32_t run_shift;
  std::atomic<std::uint64_t> written{0};
  BlockRecord* records() { return reinterpret_cast<BlockRecord*>(this + 1); }
};
static_assert(sizeof(SliceRecords) == 64);

constexpr std::uint32_t RunShift(std::uint32_t capacity) {
  std::uint32_t shift = 0;
  while ((capacity + (std::uint32_t{1} << shift) - 1) >> shift > 64) ++shift;
  return shift;
}

// Calls fn(i) for the records of `a` in runs that were written.
template <typename Fn>
STRATA_ALWAYS_INLINE void ForEachWrittenIndex(const SliceRecords& a, Fn fn) {
  // Acquire: pairs with the release of the bit's writer (the run's records
  // are initialised before a walk can see the bit).
  std::uint64_t runs = a.written.load(std::memory_order_acquire);
  while (runs != 0) {
    const auto run = static_cast<std::uint32_t>(__builtin_ctzll(runs));
    runs &= runs - 1;
    const std::uint32_t begin = run << a.run_shift;
    std::uint32_t end = begin + (std::uint32_t{1} << a.run_shift);
    if (end > a.capacity) end = a.capacity;
    for (std::uint32_t i = begin; i < end; ++i) fn(i);
  }
}

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
static_assert(sizeof(SliceRecords) % alignof(BlockRecord) == 0);

// Slice -> its record array (slice_arrays.h).
constinit SliceArrays<SliceRecords> g_arrays;

STRATA_ALWAYS_INLINE std::uint32_t Index(std::uintptr_t ptr, int size_class) {
  return static_cast<std::uint32_t>(internal::BlockIndex(ptr & (kSliceSize - 1), size_class));
}

// Installs an array of `objects` records for the slice of `ptr` in place
// of `old` (null, or one too small); null when out of memory.
SliceRecords* MapArray(std::uintptr_t ptr, std::uint32_t objects, SliceRecords* old) {
  SliceRecords* a = g_arrays.Install(ptr, sizeof(SliceRecords) + objects * sizeof(BlockRecord), old,
                                     [objects](void* mem, std::uintptr_t base) {
                                       return new (mem) SliceRecords{base, nullptr, objects, RunShift(objects)};
                                     });
  return a != nullptr && a->capacity >= objects ? a : nullptr;
}

}  // namespace

BlockRecord* BlockRecordFor(std::uintptr_t ptr, int size_class) {
  SliceRecords* a = g_arrays.Get(ptr);
  const std::uint32_t objects = internal::SpanObjects(size_class, true);
  if (STRATA_PREDICT_FALSE(a == nullptr || a->capacity < objects)) {
    a = MapArray(ptr, objects, a);
    if (a == nullptr) return nullptr;
  }
  const std::uint32_t i = Index(ptr, size_class);
  const std::uint64_t bit = std::uint64_t{1} << (i >> a->run_shift);
  // Release: pairs with the walk's acquire (ForEachWrittenIndex).
  if ((a->written.load(std::memory_order_relaxed) & bit) == 0) a->written.fetch_or(bit, std::memory_order_release);
  return &a->records()[i];
}

BlockRecord* FindBlockRecord(std::uintptr_t ptr, int size_class) {
  SliceRecords* a = g_arrays.Get(ptr);
  if (a == nullptr) return nullptr;
  const std::uint32_t i = Index(ptr, size_class);
  // Beyond the array: a block whose record could not be mapped.
  return i < a->capacity ? &a->records()[i] : nullptr;
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
  for (SliceRecords* a = g_arrays.head(); a != nullptr; a = a->next) {
    BlockRecord* records = a->records();
    ForEachWrittenIndex(*a, [&](std::uint32_t i) {
      const BlockRecord& r = records[i];
      const std::uint32_t state = r.state.load(std::memory_order_acquire);
      if (!StateLive(state)) return;
      const int c = StateClass(state);
      if (c <= 0 || c >= internal::kNumClasses) return;
      fn(BlockRecordInfo(r, a->base + static_cast<std::uintptr_t>(i) * internal::ClassSize(c), state), arg);
    });
  }
}

std::size_t BlockRecordSlices() { return g_arrays.slices(); }

BlockRecordCounts CountBlockRecords() {
  BlockRecordCounts counts{0, 0, 0};
  for (SliceRecords* a = g_arrays.head(); a != nullptr; a = a->next) {
    ForEachWrittenIndex(*a, [&](std::uint32_t i) {
      const std::uint32_t state = a->records()[i].state.load(std::memory_order_acquire);
      if (StateLive(state)) {
        ++counts.live;
      } else if ((state & kParked) != 0) {
        ++counts.parked;
      } else if ((state & kFreed) != 0) {
        ++counts.freed;
      }
    });
  }
  return counts;
}

}  // namespace strata::tracking
