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
};

// Slice -> its array (slice_arrays.h).
constinit SliceArrays<SlotArray> g_arrays;

LiveInfo Info(const SampledRecord& s, std::uint32_t state) {
  return BlockRecordInfo(s.record, s.ptr.load(std::memory_order_relaxed), state);
}

}  // namespace

SampledRecord* SampledRecordFor(std::uintptr_t ptr, int slot) {
  SlotArray* a = g_arrays.Get(ptr);
  if (STRATA_PREDICT_FALSE(a == nullptr)) {
    a = g_arrays.Install(ptr, sizeof(SlotArray), nullptr,
                         [](void* mem, std::uintptr_t base) { return new (mem) SlotArray{base, nullptr, {}}; });
    if (a == nullptr) return nullptr;
  }
  return &a->slots[slot];
}

SampledRecord* FindSampledRecord(std::uintptr_t ptr, int slot) {
  SlotArray* a = g_arrays.Get(ptr);
  return a == nullptr ? nullptr : &a->slots[slot];
}

bool FindSampledLive(std::uintptr_t ptr, LiveInfo* out) {
  SlotArray* a = g_arrays.Get(ptr);
  if (a == nullptr) return false;
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
  }
}

std::size_t SampledRecordSlices() { return g_arrays.slices(); }

}  // namespace strata::tracking
