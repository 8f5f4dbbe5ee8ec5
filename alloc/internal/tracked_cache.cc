#include "alloc/internal/tracked_cache.h"

#include <atomic>

#include "alloc/internal/errors.h"
#include "alloc/internal/globals.h"
#include "alloc/internal/hooks.h"
#include "alloc/internal/size_classes.h"
#include "alloc/internal/span.h"
#include "concurrency/base/macros.h"
#include "concurrency/base/thread_exit.h"


namespace strata::tracked_cache {

using internal::ClassInfo;
using internal::ClassSize;
using internal::ErrorKind;
using internal::FreeObject;
using internal::g_tracked_central;
using internal::GetNext;
using internal::InstalledTrackingHooks;
using internal::kNumClasses;
using internal::ReportError;
using internal::SetNext;
using internal::TrackAll;
using internal::TrackingHooks;

namespace {

// One thread's lists. The slot is claimed by the thread at its first
// cached free or allocation and given back at its exit; statistics read
// `length` of every claimed slot.
struct Slot {
  std::atomic<bool> claimed{false};
  FreeObject* head[kNumClasses] = {};
  std::atomic<std::uint32_t> length[kNumClasses] = {};
  ThreadExitHook exit_hook{};
};

constinit Slot g_slots[kTrackedCacheSlots];
// Slots [0, g_slots_used) may be claimed (statistics walk no further).
constinit std::atomic<int> g_slots_used{0};

enum class SlotState : std::uint8_t { kNone = 0, kActive, kExited, kNoSlot };
struct ThreadState {
  Slot* slot;
  SlotState state;
};
constinit thread_local ThreadState tls_tracked STRATA_INITIAL_EXEC = {nullptr, SlotState::kNone};

// A cached block's second word holds its parked record (on_small_free's
// token; null for a block fresh from the pool): the allocation that takes
// the block back hands the record to on_small_allocate, and a block that
// leaves for the pool releases it. Every class is at least 16 bytes.
void*& Token(FreeObject* object) { return reinterpret_cast<void**>(object)[1]; }

// Objects a list of the class holds at most.
constexpr std::uint32_t MaxObjects(int size_class) {
  const std::size_t by_bytes = kTrackedCacheBytes / ClassSize(size_class);
  const std::size_t n = by_bytes < kTrackedCacheObjects ? by_bytes : kTrackedCacheObjects;
  return n < 1 ? 1 : static_cast<std::uint32_t>(n);
}

// Objects moved per refill or overflow.
constexpr int MoveObjects(int size_class) {
  std::uint32_t n = (MaxObjects(size_class) + 1) / 2;
  const std::uint32_t batch = ClassInfo(size_class).batch;
  if (n > batch) n = batch;
  return n < 1 ? 1 : static_cast<int>(n);
}

// Hands `n` objects from the head of the list of `c` back to the tracked
// pool, each losing its (parked) record first.
void ReturnToPool(Slot& slot, int c, std::uint32_t n) {
  const TrackingHooks* hooks = InstalledTrackingHooks();
  FreeObject* head = slot.head[c];
  FreeObject* last = head;
  for (std::uint32_t i = 0; i < n; ++i) {
    if (void* record = Token(last); record != nullptr) {
      hooks->on_small_release(record);
      Token(last) = nullptr;
    }
    if (i + 1 < n) last = GetNext(last);
  }
  slot.head[c] = GetNext(last);
  SetNext(last, nullptr);
  slot.length[c].store(slot.length[c].load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  g_tracked_central[c].Insert(c, head, static_cast<int>(n));
}

void ReturnListsAtExit(void* arg) {
  auto* slot = static_cast<Slot*>(arg);
  tls_tracked.state = SlotState::kExited;
  for (int c = 1; c < kNumClasses; ++c) {
    std::uint32_t n = slot->length[c].load(std::memory_order_relaxed);
    if (n > 0) ReturnToPool(*slot, c, n);
  }
  tls_tracked.slot = nullptr;
  // Release: the next owner's writes come after ours.
  slot->claimed.store(false, std::memory_order_release);
}

// Claims a slot for the calling thread; null when the thread is exiting or
// every slot is taken.
STRATA_NOINLINE Slot* ClaimSlot() {
  ThreadState& ts = tls_tracked;
  if (ts.state != SlotState::kNone) return nullptr;
  for (int i = 0; i < kTrackedCacheSlots; ++i) {
    Slot& s = g_slots[i];
    bool expected = false;
    if (s.claimed.load(std::memory_order_relaxed) ||
        !s.claimed.compare_exchange_strong(expected, true, std::memory_order_acquire, std::memory_order_relaxed)) {
      continue;
    }
    int used = g_slots_used.load(std::memory_order_relaxed);
    while (used < i + 1 &&
           !g_slots_used.compare_exchange_weak(used, i + 1, std::memory_order_relaxed, std::memory_order_relaxed)) {
    }
    s.exit_hook.fn = &ReturnListsAtExit;
    s.exit_hook.arg = &s;
    RegisterThreadExitHook(&s.exit_hook);
    ts.slot = &s;
    ts.state = SlotState::kActive;
    return &s;
  }
  ts.state = SlotState::kNoSlot;
  return nullptr;
}

// The calling thread's slot, claimed at first use; null when the thread is
// exiting or every slot is taken.
STRATA_ALWAYS_INLINE Slot* CurrentSlot() {
  ThreadState& ts = tls_tracked;
  if (STRATA_PREDICT_TRUE(ts.state == SlotState::kActive)) return ts.slot;
  return ClaimSlot();
}

// One block from the pool, recorded (no cache, or a sample whose list is
// empty).
void* AllocateFromPool(const TrackingHooks* hooks, std::size_t size, int size_class, bool sampled) {
  FreeObject* object = nullptr;
  if (g_tracked_central[size_class].Remove(size_class, 1, &object) == 0) return nullptr;
  SetNext(object, nullptr);
  hooks->on_small_allocate(object, size_class, size, sampled, nullptr);
  return object;
}

}  // namespace

void* TrackedCacheAllocate(std::size_t size, int size_class, bool sampled) {
  const TrackingHooks* hooks = InstalledTrackingHooks();
  Slot* slot = CurrentSlot();
  if (STRATA_PREDICT_FALSE(slot == nullptr)) return AllocateFromPool(hooks, size, size_class, sampled);
  FreeObject* object = slot->head[size_class];
  std::uint32_t length = slot->length[size_class].load(std::memory_order_relaxed);
  if (object == nullptr) {
    if (sampled) return AllocateFromPool(hooks, size, size_class, sampled);
    length = static_cast<std::uint32_t>(
        g_tracked_central[size_class].Remove(size_class, MoveObjects(size_class), &object));
    if (length == 0) return nullptr;
    // Fresh blocks: no parked record.
    FreeObject* o = object;
    for (std::uint32_t i = 0; i < length; ++i, o = GetNext(o)) Token(o) = nullptr;
  }
  FreeObject* next = GetNext(object);
  slot->head[size_class] = next;
  // The next allocation of the class reads next's link and token, often a
  // cache miss (the block was freed long ago): start that load now, as the
  // fast path does. A prefetch of null does not fault.
  __builtin_prefetch(next);
  // The list's link would otherwise stay in the block's first word: the
  // leak checker would read it as a pointer to the next cached (or, once
  // handed out, live) block, and a block leaked with it would look
  // indirectly lost instead of definitely.
  SetNext(object, nullptr);
  void* record = Token(object);
  Token(object) = nullptr;
  slot->length[size_class].store(length - 1, std::memory_order_relaxed);
  hooks->on_small_allocate(object, size_class, size, sampled, record);
  return object;
}

void TrackedCacheFree(void* ptr, int size_class) {
  const TrackingHooks* hooks = InstalledTrackingHooks();
  auto* object = static_cast<FreeObject*>(ptr);
  const bool track_all = TrackAll();
  Slot* slot = CurrentSlot();
  // Every block is cached when every allocation is tracked (lists bounded
  // per class); a sampled block only while the small sampled bound allows.
  const bool park = slot != nullptr &&
                    (track_all || slot->length[size_class].load(std::memory_order_relaxed) < kSampledCacheObjects);
  void* record = nullptr;
  const int done = hooks->on_small_free(ptr, size_class, park, &record);
  if (done < 0) {
    // Its record says it is free already: in a tracked cache, or back in
    // the pool.
    ReportError(ErrorKind::kDoubleFree, ptr, 0);
    return;
  }
  if (done == 0 || !park) {
    // No record (the pool's span checks catch a second free), past the
    // sampled bound, or no cache: straight back to the pool.
    SetNext(object, nullptr);
    g_tracked_central[size_class].Insert(size_class, object, 1);
    return;
  }
  const std::uint32_t length = slot->length[size_class].load(std::memory_order_relaxed);
  SetNext(object, slot->head[size_class]);
  Token(object) = record;
  slot->head[size_class] = object;
  slot->length[size_class].store(length + 1, std::memory_order_relaxed);
  if (length + 1 > MaxObjects(size_class)) ReturnToPool(*slot, size_class, static_cast<std::uint32_t>(MoveObjects(size_class)));
}

std::uint64_t TrackedCachedObjects(int size_class) {
  std::uint64_t n = 0;
  const int used = g_slots_used.load(std::memory_order_relaxed);
  for (int i = 0; i < used; ++i) {
    if (g_slots[i].claimed.load(std::memory_order_relaxed)) {
      n += g_slots[i].length[size_class].load(std::memory_order_relaxed);
    }
  }
  return n;
}

}  // namespace strata::tracked_cache
