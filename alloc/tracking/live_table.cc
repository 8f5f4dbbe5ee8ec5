#include "alloc/tracking/live_table.h"

#include <new>

#include "concurrency/base/macros.h"
#include "concurrency/base/raw_memory.h"
#include "concurrency/epoch/collector.h"

namespace strata::tracking {
namespace {

constexpr std::uintptr_t kMark = 1;

inline LiveRecord* Ptr(std::uintptr_t link) { return reinterpret_cast<LiveRecord*>(link & ~kMark); }
inline bool Marked(std::uintptr_t link) { return (link & kMark) != 0; }

// A copy of a linked record's fields (its sizes may be changing: Resize).
LiveInfo Snapshot(const LiveRecord& r) {
  return LiveInfo{r.ptr,
                  r.size.load(std::memory_order_relaxed),
                  r.usable.load(std::memory_order_relaxed),
                  r.stack.load(std::memory_order_relaxed),
                  r.time_ns.load(std::memory_order_relaxed),
                  r.flags.load(std::memory_order_acquire)};
}

bool IsParked(const LiveRecord& r) { return (r.flags.load(std::memory_order_acquire) & kParked) != 0; }

// Where tier t's buckets start in the bucket array.
constexpr std::size_t TierOffset(int t) {
  std::size_t offset = 0;
  for (int i = 0; i < t; ++i) offset += std::size_t{1} << LiveTable::kTierLog2[i];
  return offset;
}

constinit LiveTable g_live_table;
constinit SpinLock g_free_lock;
constinit LiveRecord* g_free_records STRATA_GUARDED_BY(g_free_lock) = nullptr;

epoch::Collector& Ebr() { return epoch::GlobalCollector(); }

}  // namespace

LiveTable& GlobalLiveTable() { return g_live_table; }

void RecycleRecord(void* record, void*) {
  auto* r = static_cast<LiveRecord*>(record);
  SpinLockHolder h(&g_free_lock);
  r->free_next = g_free_records;
  g_free_records = r;
}

void LiveTableForkPrepare() STRATA_NO_THREAD_SAFETY_ANALYSIS { g_free_lock.Lock(); }
void LiveTableForkParent() STRATA_NO_THREAD_SAFETY_ANALYSIS { g_free_lock.Unlock(); }
void LiveTableForkChild() STRATA_NO_THREAD_SAFETY_ANALYSIS { g_free_lock.ResetAfterFork(); }

LiveRecord* LiveTable::NewRecord() {
  {
    SpinLockHolder h(&g_free_lock);
    if (LiveRecord* r = g_free_records) {
      g_free_records = r->free_next;
      return r;
    }
  }
  void* mem = GlobalRecordArena().Allocate(sizeof(LiveRecord), alignof(LiveRecord));
  return mem == nullptr ? nullptr : new (mem) LiveRecord();
}

STRATA_ALWAYS_INLINE std::atomic<std::uintptr_t>& LiveTable::BucketFor(int t, std::uintptr_t key) {
  const std::uint64_t h = (key >> 4) * 0x9E3779B97F4A7C15ull;
  return buckets_[TierOffset(t) + static_cast<std::size_t>(h >> (64 - kTierLog2[t]))];
}

STRATA_ALWAYS_INLINE LiveRecord* LiveTable::SearchAllInline(std::uintptr_t key, int* tier,
                                                            std::atomic<std::uintptr_t>** prev_link) {
  for (int t = 0; t < kTiers; ++t) {
    // Acquire pairs with the release store of `used` before the tier's
    // first insert; an insert the caller knows of (its block was handed
    // out) happened before, so its tier is seen as used. Tiers are taken
    // in order: past an unused tier, none was used.
    if (!tiers_[t].used.load(std::memory_order_acquire)) break;
    if (LiveRecord* r = SearchInline(t, key, prev_link)) {
      *tier = t;
      return r;
    }
  }
  return nullptr;
}

STRATA_ALWAYS_INLINE LiveRecord* LiveTable::SearchInline(int t, std::uintptr_t key,
                                                         std::atomic<std::uintptr_t>** prev_link) {
retry:
  std::atomic<std::uintptr_t>* prev = &BucketFor(t, key);
  // Acquire pairs with the release CAS that linked each record.
  std::uintptr_t cur_link = prev->load(std::memory_order_acquire);
  for (;;) {
    LiveRecord* cur = Ptr(cur_link);
    if (cur == nullptr) {
      *prev_link = prev;
      return nullptr;
    }
    std::uintptr_t next = cur->next.load(std::memory_order_acquire);
    if (Marked(next)) {
      // `cur` is logically deleted: help unlink it. Only the winner of
      // this CAS retires it.
      std::uintptr_t expected = reinterpret_cast<std::uintptr_t>(cur);
      if (!prev->compare_exchange_strong(expected, next & ~kMark, std::memory_order_acq_rel,
                                         std::memory_order_acquire)) {
        goto retry;
      }
      tiers_[t].size.fetch_sub(1, std::memory_order_relaxed);
      Ebr().Retire(cur, &RecycleRecord);
      cur_link = next & ~kMark;
      continue;
    }
    if (cur->ptr == key) {
      *prev_link = prev;
      return cur;
    }
    prev = &cur->next;
    cur_link = next;
  }
}

LiveRecord* LiveTable::SearchAll(std::uintptr_t key, int* tier, std::atomic<std::uintptr_t>** prev_link) {
  return SearchAllInline(key, tier, prev_link);
}

LiveRecord* LiveTable::Search(int t, std::uintptr_t key, std::atomic<std::uintptr_t>** prev_link) {
  return SearchInline(t, key, prev_link);
}

bool LiveTable::Insert(const LiveInfo& info) {
  LiveRecord* r = NewRecord();
  if (r == nullptr) return false;
  r->ptr = info.ptr;
  r->size.store(info.size, std::memory_order_relaxed);
  r->usable.store(info.usable, std::memory_order_relaxed);
  r->stack.store(info.stack, std::memory_order_relaxed);
  r->time_ns.store(info.time_ns, std::memory_order_relaxed);
  r->flags.store(info.flags & ~static_cast<std::uint32_t>(kParked), std::memory_order_relaxed);
  r->scan_mark = 0;
  // The first tier with room (the last takes every record past that).
  int t = 0;
  while (t + 1 < kTiers &&
         tiers_[t].size.load(std::memory_order_relaxed) >= kRecordsPerBucket << kTierLog2[t]) {
    ++t;
  }
  if (!tiers_[t].used.load(std::memory_order_relaxed)) tiers_[t].used.store(true, std::memory_order_release);
  // Pushing at the head reads no other record: no epoch guard needed.
  std::atomic<std::uintptr_t>& head = BucketFor(t, info.ptr);
  // The first access is the CAS, guessing an empty bucket (most are): a
  // plain load first would map the shared zero page on the bucket array's
  // untouched pages, and the write that follows would then copy it and
  // flush the TLB on every CPU the process runs on (an IPI per page).
  std::uintptr_t first = 0;
  do {
    r->next.store(first & ~kMark, std::memory_order_relaxed);
    // Release publishes the record's fields with the link.
  } while (!head.compare_exchange_weak(first, reinterpret_cast<std::uintptr_t>(r),
                                       std::memory_order_release, std::memory_order_relaxed));
  tiers_[t].size.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool LiveTable::Remove(std::uintptr_t ptr, LiveInfo* out) {
  auto guard = Ebr().Pin();
  for (;;) {
    std::atomic<std::uintptr_t>* prev;
    int t = 0;
    LiveRecord* cur = SearchAll(ptr, &t, &prev);
    if (cur == nullptr) return false;
    std::uintptr_t next = cur->next.load(std::memory_order_acquire);
    if (Marked(next)) continue;  // someone else is deleting it; search again
    // Logical deletion: mark cur's link so no insert can follow it.
    if (!cur->next.compare_exchange_strong(next, next | kMark, std::memory_order_acq_rel,
                                           std::memory_order_acquire)) {
      continue;
    }
    *out = Snapshot(*cur);
    if ((out->flags & kParked) != 0) parked_.Decrement();
    std::uintptr_t expected = reinterpret_cast<std::uintptr_t>(cur);
    if (prev->compare_exchange_strong(expected, next, std::memory_order_acq_rel, std::memory_order_acquire)) {
      tiers_[t].size.fetch_sub(1, std::memory_order_relaxed);
      Ebr().Retire(cur, &RecycleRecord);
    } else {
      Search(t, ptr, &prev);  // helps unlink (and retire) the marked record
    }
    return true;
  }
}

bool LiveTable::Find(std::uintptr_t ptr, LiveInfo* out) {
  auto guard = Ebr().Pin();
  std::atomic<std::uintptr_t>* prev;
  int t = 0;
  LiveRecord* cur = SearchAll(ptr, &t, &prev);
  if (cur == nullptr) return false;
  *out = Snapshot(*cur);
  return (out->flags & kParked) == 0;
}

bool LiveTable::FindAny(std::uintptr_t ptr, LiveInfo* out) {
  auto guard = Ebr().Pin();
  std::atomic<std::uintptr_t>* prev;
  int t = 0;
  LiveRecord* cur = SearchAll(ptr, &t, &prev);
  if (cur == nullptr) return false;
  *out = Snapshot(*cur);
  return true;
}

// Park and Unpark are every free and allocation of full tracking: the
// lookup is inlined into them, not into the rest (the code the sampler
// runs stays small: alloc/libstrata_order.txt).
LiveTable::ParkResult LiveTable::Park(std::uintptr_t ptr, LiveInfo* out, LiveRecord** record) {
  auto guard = Ebr().Pin();
  std::atomic<std::uintptr_t>* prev;
  int t = 0;
  LiveRecord* cur = SearchAllInline(ptr, &t, &prev);
  if (cur == nullptr) return ParkResult::kNotFound;
  std::uint32_t flags = cur->flags.load(std::memory_order_relaxed);
  do {
    if ((flags & kParked) != 0) return ParkResult::kAlreadyParked;
    // A CAS: two threads freeing the same block at once (a double free)
    // must not both park it. Acquire/release: pairs with the readers'
    // acquire loads of `flags` (and Unpark's release store).
  } while (!cur->flags.compare_exchange_weak(flags, flags | kParked, std::memory_order_acq_rel,
                                             std::memory_order_relaxed));
  parked_.Increment();
  if (record != nullptr) *record = cur;
  if (out != nullptr) {
    *out = Snapshot(*cur);
    out->flags = flags;
  }
  return ParkResult::kParked;
}

bool LiveTable::Unpark(const LiveInfo& info) {
  // The guard keeps the record from being recycled by a racing Remove (a
  // program error: a free of a block that is not live).
  auto guard = Ebr().Pin();
  std::atomic<std::uintptr_t>* prev;
  int t = 0;
  LiveRecord* cur = SearchAllInline(info.ptr, &t, &prev);
  if (cur == nullptr || !IsParked(*cur)) return false;
  UnparkRecord(cur, info);
  return true;
}

void LiveTable::UnparkRecord(LiveRecord* cur, const LiveInfo& info) {
  cur->size.store(info.size, std::memory_order_relaxed);
  cur->usable.store(info.usable, std::memory_order_relaxed);
  cur->stack.store(info.stack, std::memory_order_relaxed);
  cur->time_ns.store(info.time_ns, std::memory_order_relaxed);
  cur->scan_mark = 0;
  // Release: a walker that sees the record live (acquire) sees its fields.
  cur->flags.store(info.flags & ~static_cast<std::uint32_t>(kParked), std::memory_order_release);
  parked_.Decrement();
}

bool LiveTable::Resize(std::uintptr_t ptr, std::size_t size, std::size_t usable) {
  // The guard keeps the record from being recycled while it is written
  // (only a racing free of the same block, a program error, could retire it).
  auto guard = Ebr().Pin();
  std::atomic<std::uintptr_t>* prev;
  int t = 0;
  LiveRecord* cur = SearchAll(ptr, &t, &prev);
  if (cur == nullptr) return false;
  cur->size.store(size, std::memory_order_relaxed);
  cur->usable.store(usable, std::memory_order_relaxed);
  return true;
}

LiveRecord* LiveTable::FindRecordUnguarded(std::uintptr_t ptr) {
  std::atomic<std::uintptr_t>* prev;
  int t = 0;
  return SearchAll(ptr, &t, &prev);
}

void LiveTable::ForEach(void (*fn)(LiveRecord& record, void* arg), void* arg) {
  auto guard = Ebr().Pin();
  for (int t = 0; t < kTiers; ++t) {
    // A tier never used has no records (and its pages stay untouched).
    if (!tiers_[t].used.load(std::memory_order_acquire)) continue;
    const std::size_t first = TierOffset(t);
    const std::size_t end = first + (std::size_t{1} << kTierLog2[t]);
    for (std::size_t b = first; b < end; ++b) {
      std::uintptr_t link = buckets_[b].load(std::memory_order_acquire);
      while (Ptr(link) != nullptr) {
        LiveRecord* r = Ptr(link);
        std::uintptr_t next = r->next.load(std::memory_order_acquire);
        if (!Marked(next) && !IsParked(*r)) fn(*r, arg);
        link = next & ~kMark;
      }
    }
  }
}

}  // namespace strata::tracking
