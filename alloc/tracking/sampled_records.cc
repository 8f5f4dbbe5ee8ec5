#include "alloc/tracking/sampled_records.h"

#include <new>

#include "alloc/internal/size_classes.h"
#include "alloc/tracking/slice_arrays.h"

namespace strata::tracking {
namespace {

struct alignas(64) SlotArray {
  std::uintptr_t base;  // the slice's address
  SlotArray* next;      // the list of every array (written before it is published)
  // Slot 0's record: in the slice's state (sampled_slices.h
  // FirstSlotRecord), on the line of the word that the mark and the
  // unmark take: a slice's first sampled block costs no line of the array.
  // Set at the array's making; walks read it through here.
  SampledRecord* first;
  SampledRecord rest[kSampledSlots - 1];  // slots 1 and up
  SampledLargeRecord large;               // four lines in all
};
static_assert(sizeof(SlotArray) == 256);
static_assert(sizeof(SampledRecord) <= sampled_slices::kFirstRecordBytes && alignof(SampledRecord) <= 8);

// Slot 0's record of the slice of `ptr` (its state exists: an array was
// made for the slice). The state's storage is zero until first written,
// the never-recorded state of every record (as the engine's radix maps,
// its atomics live in zeroed pages from the OS).
using SliceState = sampled_slices::detail::SliceState;
SampledRecord* FirstRecord(SliceState* state) { return reinterpret_cast<SampledRecord*>(state->first_record); }
SampledRecord* FirstRecord(std::uintptr_t ptr) { return FirstRecord(sampled_slices::StateOf(ptr)); }
SlotArray* ArrayOf(const SliceState* state) { return static_cast<SlotArray*>(state->records.load(std::memory_order_acquire)); }

// Slice -> its array: in the slice's state beside its word
// (sampled_slices.h), which the sample's mark and unmark have just read:
// no second radix walk to a line of its own.
struct InSliceStates {
  SlotArray* Get(std::uintptr_t ptr) const { return static_cast<SlotArray*>(sampled_slices::Records(ptr)); }
  bool Ensure(std::uintptr_t base, std::size_t) { return sampled_slices::EnsureState(base); }
  bool Cas(std::uintptr_t base, SlotArray* old, SlotArray* fresh) {
    return sampled_slices::InstallRecords(base, old, fresh);
  }
};
constinit SliceArrays<SlotArray, InSliceStates> g_arrays;

// A slot's record, through the array (walks).
const SampledRecord& Slot(const SlotArray& a, int slot) { return slot == 0 ? *a.first : a.rest[slot - 1]; }

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
    a = g_arrays.Install(ptr, sizeof(SlotArray), nullptr, [](void* mem, std::uintptr_t base) {
      return new (mem) SlotArray{base, nullptr, FirstRecord(base), {}, {}};
    });
  }
  return a;
}

}  // namespace

SampledRecord* SampledRecordFor(std::uintptr_t ptr, int slot) {
  // One walk to the state (its line is in the cache: the mark just took
  // it), which has slot 0's record and the array of the others.
  SliceState* state = sampled_slices::StateOf(ptr);
  SlotArray* a = state != nullptr ? ArrayOf(state) : nullptr;
  if (STRATA_PREDICT_FALSE(a == nullptr)) {
    a = ArrayFor(ptr);
    if (a == nullptr) return nullptr;
    state = sampled_slices::StateOf(ptr);
  }
  return slot == 0 ? FirstRecord(state) : &a->rest[slot - 1];
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
  SliceState* state = sampled_slices::StateOf(ptr);
  SlotArray* a = state != nullptr ? ArrayOf(state) : nullptr;
  if (a == nullptr) return nullptr;
  return slot == 0 ? FirstRecord(state) : &a->rest[slot - 1];
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
  for (int slot = 0; slot < kSampledSlots; ++slot) {
    const SampledRecord& s = Slot(*a, slot);
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
    for (int slot = 0; slot < kSampledSlots; ++slot) {
      const SampledRecord& s = Slot(*a, slot);
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
