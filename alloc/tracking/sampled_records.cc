#include "alloc/tracking/sampled_records.h"

#include <new>

#include "alloc/internal/size_classes.h"
#include "alloc/tracking/slice_arrays.h"

namespace strata::tracking {
namespace {

struct alignas(64) SlotArray {
  std::uintptr_t base;  // the slice's address
  SlotArray* next;      // the list of every array (written before it is published)
  SampledRecord slots[kSampledSlots];
  SampledLargeRecord large;  // in what alignment left over: four lines in all
};
static_assert(sizeof(SlotArray) == 256);

// Slice -> its array: in the slice's state beside its word
// (sampled_slices.h), which the sample's mark and unmark have just read:
// no second radix walk to a line of its own.
struct InSliceStates {
  SlotArray* Get(std::uintptr_t ptr) const { return static_cast<SlotArray*>(sampled_slices::Records(ptr)); }
  bool Ensure(std::uintptr_t, std::size_t) { return true; }  // InstallRecords maps the state
  bool Cas(std::uintptr_t base, SlotArray* old, SlotArray* fresh) {
    return sampled_slices::InstallRecords(base, old, fresh);
  }
};
constinit SliceArrays<SlotArray, InSliceStates> g_arrays;

LiveInfo Info(const SampledRecord& s, std::uint32_t state) {
  return BlockRecordInfo(s.record, s.ptr.load(std::memory_order_relaxed), state);
}

LiveInfo LargeInfo(const SlotArray& a, std::uint32_t state) {
  const SampledLargeRecord& l = a.large;
  return LiveInfo{a.base,
                  l.size.load(std::memory_order_relaxed),
                  l.usable.load(std::memory_order_relaxed),
                  l.record.stack.load(std::memory_order_relaxed),
                  l.record.time_ns.load(std::memory_order_relaxed),
                  state & 0xff};
}

// A live large record's state (acquire: its fields are complete), or 0.
std::uint32_t LargeState(const SlotArray& a) {
  const std::uint32_t state = a.large.record.state.load(std::memory_order_acquire);
  return StateLive(state) && StateClass(state) == 0 ? state : 0;
}

SlotArray* ArrayFor(std::uintptr_t ptr) {
  SlotArray* a = g_arrays.Get(ptr);
  if (STRATA_PREDICT_FALSE(a == nullptr)) {
    a = g_arrays.Install(ptr, sizeof(SlotArray), nullptr,
                         [](void* mem, std::uintptr_t base) { return new (mem) SlotArray{base, nullptr, {}, {}}; });
  }
  return a;
}

}  // namespace

SampledRecord* SampledRecordFor(std::uintptr_t ptr, int slot) {
  SlotArray* a = ArrayFor(ptr);
  return a == nullptr ? nullptr : &a->slots[slot];
}

SampledLargeRecord* SampledLargeRecordFor(std::uintptr_t ptr) {
  if ((ptr & (internal::kSliceSize - 1)) != 0) return nullptr;
  SlotArray* a = ArrayFor(ptr);
  return a == nullptr ? nullptr : &a->large;
}

SampledLargeRecord* FindSampledLarge(std::uintptr_t ptr) {
  SlotArray* a = g_arrays.Get(ptr);
  return a != nullptr && a->base == ptr && LargeState(*a) != 0 ? &a->large : nullptr;
}

SampledRecord* FindSampledRecord(std::uintptr_t ptr, int slot) {
  SlotArray* a = g_arrays.Get(ptr);
  return a == nullptr ? nullptr : &a->slots[slot];
}

bool FindSampledLive(std::uintptr_t ptr, LiveInfo* out) {
  SlotArray* a = g_arrays.Get(ptr);
  if (a == nullptr) return false;
  if (a->base == ptr) {
    if (const std::uint32_t state = LargeState(*a); state != 0) {
      *out = LargeInfo(*a, state);
      return true;
    }
  }
  for (const SampledRecord& s : a->slots) {
    const std::uint32_t state = s.record.state.load(std::memory_order_acquire);
    if (StateLive(state) && s.ptr.load(std::memory_order_relaxed) == ptr) {
      *out = Info(s, state);
      return true;
    }
  }
  return false;
}

void ForEachSampledRecord(void (*fn)(const LiveInfo& info, void* arg), void* arg) {
  for (SlotArray* a = g_arrays.head(); a != nullptr; a = a->next) {
    for (const SampledRecord& s : a->slots) {
      const std::uint32_t state = s.record.state.load(std::memory_order_acquire);
      if (!StateLive(state)) continue;
      const int c = StateClass(state);
      if (c <= 0 || c >= internal::kNumClasses) continue;
      fn(Info(s, state), arg);
    }
    if (const std::uint32_t state = LargeState(*a); state != 0) fn(LargeInfo(*a, state), arg);
  }
}

std::size_t SampledRecordSlices() { return g_arrays.slices(); }

}  // namespace strata::tracking
