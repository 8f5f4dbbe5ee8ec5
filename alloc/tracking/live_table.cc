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

// Its sizes may be changing (Resize); the rest was written before the
// record was linked.
LiveInfo SnapshotRecord(const LiveRecord& r) {
  return LiveInfo{r.ptr, r.size.load(std::memory_order_relaxed), r.usable.load(std::memory_order_relaxed), r.stack,
                  r.time_ns, r.flags};
}

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

LiveRecord* LiveTable::SearchAll(std::uintptr_t key, int* tier, std::atomic<std::uintptr_t>** prev_link) {
  for (int t = 0; t < kTiers; ++t) {
    // Acquire pairs with the release store of `used` before the tier's
    // first insert; an insert the caller knows of (its block was handed
    // out) happened before, so its tier is seen as used. Tiers are taken
    // in order: past an unused tier, none was used.
    if (!tiers_[t].used.load(std::memory_order_acquire)) break;
    if (LiveRecord* r = Search(t, key, prev_link)) {
      *tier = t;
      return r;
    }
  }
  return nullptr;
}

LiveRecord* LiveTable::Search(int t, std::uintptr_t key, std::atomic<std::uintptr_t>** prev_link) {
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

bool LiveTable::Insert(const LiveInfo& info) {
  LiveRecord* r = NewRecord();
  if (r == nullptr) return false;
  r->ptr = info.ptr;
  r->size.store(info.size, std::memory_order_relaxed);
  r->usable.store(info.usable, std::memory_order_relaxed);
  r->stack = info.stack;
  r->time_ns = info.time_ns;
  r->flags = info.flags;
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
    *out = SnapshotRecord(*cur);
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
  *out = SnapshotRecord(*cur);
  return true;
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
        if (!Marked(next)) fn(*r, arg);
        link = next & ~kMark;
      }
    }
  }
}

}  // namespace strata::tracking
