#include "alloc/tracking/peak_tracker.h"

#include <sched.h>

#include <atomic>
#include <cstring>

#include "alloc/internal/hooks.h"
#include "alloc/tracking/live_table.h"
#include "alloc/tracking/thread_counts.h"
#include "alloc/tracking/tracker.h"
#include "concurrency/base/fast_math.h"
#include "concurrency/base/macros.h"
#include "concurrency/base/raw_memory.h"
#include "concurrency/base/spin_lock.h"

namespace strata::tracking {
namespace {

// size / (1 - e^-x) with x = size/rate is size + rate * x / (e^x - 1).
// For x < 1 (every small block at the default rate) x / (e^x - 1) is its
// Bernoulli series, 1 - x/2 + x^2/12 - x^4/720 + x^6/30240 (within 1e-7
// there): multiplies only, where a division costs a sampled event some 15
// cycles. Beyond, 1 / (1 + x/2 + x^2/6 + x^3/24 + x^4/120), truncated where
// the terms dropped only matter where that fraction is small beside x.
// Both within 1% of RecordWeight.
// `inv_rate`: 1 / rate (a multiply where a division would cost some 15
// cycles of the chain).
// The constants come from the sample constants' lines (alloc/internal/hooks.h).
//
// Most samples are blocks far below the stride: for x <= 1/8 the weight is
// rate + size/2 + size^2/(12 rate) - ..., within 0.14% (x^2/12) of rate +
// size/2, which integers give with no constant and no line of them
// (SmallSampledBytes; a sample's free then reads neither constants' line).
STRATA_ALWAYS_INLINE bool FarBelowStride(std::size_t size, std::int64_t rate) {
  return rate > 1 && size <= static_cast<std::uint64_t>(rate) / 8;
}
STRATA_ALWAYS_INLINE std::int64_t SmallSampledBytes(std::size_t size, std::int64_t rate) {
  return rate + static_cast<std::int64_t>(size / 2);
}

STRATA_ALWAYS_INLINE double ApproxSampledBytesInline(std::size_t size, std::int64_t rate, double inv_rate) {
  using namespace internal::hooks_detail;  // NOLINT: the constants' names
  if (FarBelowStride(size, rate)) return static_cast<double>(SmallSampledBytes(size, rate));
  const double s = static_cast<double>(size);
  if (rate <= 1) return s;
  const double* k = SampleConstants();
  const double one = k[kOne];
  const double r = static_cast<double>(rate);
  const double x = s * inv_rate;
  if (x < one) {
    const double x2 = x * x;
    return s + r * (one - k[kHalf] * x + x2 * (k[kTwelfth] - x2 * (k[k720th] - x2 * k[k30240th])));
  }
  return s + r / (one + x * (k[kHalf] + x * (k[kSixth] + x * (k[k24th] + x * k[k120th]))));
}

// Slots: one per distinct stack (the stack table's capacity and its
// overflow entry). The index is a power of two at least twice the number
// of stacks, sized at each snapshot, so a snapshot clears and touches only
// what the stacks in use need.
constexpr std::size_t kMaxSites = StackTable::kSlots + 1;
constexpr std::size_t kMaxIndex = 2 * StackTable::kSlots * 2;  // power of two > 2 * kMaxSites
constexpr std::uint32_t kEmpty = ~std::uint32_t{0};

// The shared running estimate (bytes), the threshold of the next snapshot
// and the highest estimate seen, on one line of their own: a flush adds to
// the estimate and reads the other two (a sample's allocation and its free
// each flush: its weight is the stride), so one line comes in, not three.
struct alignas(64) Estimate {
  std::atomic<std::int64_t> bytes{0};
  std::atomic<std::int64_t> next_threshold{kMinMarginBytes};
  std::atomic<std::uint64_t> highest{0};
};
constinit Estimate g_peak;
constinit std::atomic<std::int64_t>& g_estimate = g_peak.bytes;
constinit std::atomic<std::int64_t>& g_next_threshold = g_peak.next_threshold;
constinit std::atomic<std::uint64_t>& g_highest = g_peak.highest;

// The calling thread's pending delta: ThreadCounts::peak_pending, on the
// line of the tracker's per-thread counts (thread_counts.h).

// The snapshot, written and read under g_lock.
constinit SpinLock g_lock;
struct Snapshot {
  PeakSite* sites = nullptr;    // kMaxSites, mapped at the first snapshot
  std::uint32_t* index = nullptr;  // kMaxIndex
  std::size_t index_size = 0;   // used part of index (power of two)
  std::size_t count = 0;
  double total_bytes = 0;
  std::uint64_t time_ns = 0;
  std::int64_t rate = 0;
  std::uint64_t taken = 0;
  bool truncated = false;
  bool map_failed = false;
};
constinit Snapshot g_snap STRATA_GUARDED_BY(g_lock);

std::int64_t CurrentRate() {
  if (internal::TrackAllInline()) return 1;
  std::int64_t rate = internal::SampleRateInline();
  return rate <= 0 ? 1 : rate;
}

// The least margin over the last snapshot (peak_tracker.h), at sampling
// stride `rate` (1 when every allocation is tracked).
std::int64_t MinMargin(std::int64_t rate) {
  return rate > kMinMarginBytes / kMarginStrides ? kMarginStrides * rate : kMinMarginBytes;
}

// The modes read inline (one line, alloc/internal/hooks.h), the weight
// computed here: no calls on a sample's way. *bound: how far the calling
// thread's pending delta may go either way before it is added to the
// shared estimate (peak_tracker.h FlushBound).
STRATA_ALWAYS_INLINE std::int64_t WeightBytes(std::size_t size, std::uint32_t flags, std::int64_t* bound) {
  *bound = kFlushBytes;
  if ((flags & kSampled) == 0 || internal::TrackAllInline()) return static_cast<std::int64_t>(size);
  const std::int64_t rate = internal::SampleRateInline();
  *bound = FlushBound(rate);
  if (STRATA_PREDICT_TRUE(FarBelowStride(size, rate))) return SmallSampledBytes(size, rate);
  double inv_rate = internal::InvSampleRateInline();
  // The rate changed between the two reads: its own inverse. (Off by more
  // than 1e-6, in the sample constants' terms: no constant of its own.)
  const double* k = internal::hooks_detail::SampleConstants();
  const double off = inv_rate * static_cast<double>(rate) - k[internal::hooks_detail::kOne];
  if (STRATA_PREDICT_FALSE(!(off * off < k[internal::hooks_detail::kInverseCheck]))) {
    inv_rate = 1.0 / static_cast<double>(rate);
  }
  return static_cast<std::int64_t>(ApproxSampledBytesInline(size, rate, inv_rate));
}

bool MapSnapshot() STRATA_REQUIRES(g_lock) {
  if (g_snap.sites != nullptr) return true;
  if (g_snap.map_failed) return false;
  // Pages are touched as slots are used: a few KiB for a typical profile.
  void* sites = RawMap(kMaxSites * sizeof(PeakSite));
  void* index = RawMap(kMaxIndex * sizeof(std::uint32_t));
  if (sites == nullptr || index == nullptr) {
    RawUnmap(sites, kMaxSites * sizeof(PeakSite));
    RawUnmap(index, kMaxIndex * sizeof(std::uint32_t));
    g_snap.map_failed = true;
    return false;
  }
  g_snap.sites = static_cast<PeakSite*>(sites);
  g_snap.index = static_cast<std::uint32_t*>(index);
  return true;
}

struct Walk {
  std::int64_t rate;
};

// Adds one live record to its stack's slot.
void AddRecord(const LiveInfo& r, void* arg) STRATA_NO_THREAD_SAFETY_ANALYSIS {
  const auto* walk = static_cast<const Walk*>(arg);
  Snapshot& s = g_snap;
  double objects, bytes;
  RecordWeight(r.size, r.flags, walk->rate, &objects, &bytes);
  s.total_bytes += bytes;
  StackEntry* const stack = r.stack;
  const std::size_t mask = s.index_size - 1;
  std::size_t i = static_cast<std::size_t>((reinterpret_cast<std::uintptr_t>(stack) >> 4) *
                                           0x9E3779B97F4A7C15ull >> 20) & mask;
  for (std::size_t probes = 0; probes <= mask; ++probes, i = (i + 1) & mask) {
    std::uint32_t slot = s.index[i];
    if (slot == kEmpty) {
      if (s.count == kMaxSites) break;
      slot = static_cast<std::uint32_t>(s.count++);
      s.index[i] = slot;
      s.sites[slot] = PeakSite{stack, 0, 0, {}};
    } else if (s.sites[slot].stack != stack) {
      continue;
    }
    s.sites[slot].inuse_objects += objects;
    s.sites[slot].inuse_bytes += bytes;
    return;
  }
  s.truncated = true;  // more stacks than the index was sized for
}

void TakeSnapshot() STRATA_REQUIRES(g_lock) {
  Snapshot& s = g_snap;
  std::size_t want = 2 * (GlobalStackTable().size() + 2);
  std::size_t size = 1024;
  while (size < want && size < kMaxIndex) size <<= 1;
  s.index_size = size;
  std::memset(s.index, 0xff, size * sizeof(std::uint32_t));
  s.count = 0;
  s.total_bytes = 0;
  s.truncated = false;
  Walk walk{CurrentRate()};
  ForEachLive(&AddRecord, &walk);
  FlushThreadSiteCounts();
  for (std::size_t i = 0; i < s.count; ++i) s.sites[i].counts = CountsOf(*s.sites[i].stack);
  s.time_ns = NowNs();
  s.rate = walk.rate;
  ++s.taken;
  // The next threshold: from the larger of the exact total and the running
  // estimate (should the estimate have drifted high, the next allocation
  // does not take another snapshot at once).
  std::int64_t base = static_cast<std::int64_t>(s.total_bytes);
  std::int64_t estimate = g_estimate.load(std::memory_order_relaxed);
  if (estimate > base) base = estimate;
  std::int64_t margin = base / kMarginDivisor;
  if (margin < MinMargin(walk.rate)) margin = MinMargin(walk.rate);
  g_next_threshold.store(base + margin, std::memory_order_relaxed);
}

STRATA_NOINLINE void MaybeSnapshot() {
  if (!g_lock.TryLock()) return;  // a snapshot (or a reader) is in progress
  if (g_estimate.load(std::memory_order_relaxed) >= g_next_threshold.load(std::memory_order_relaxed) &&
      MapSnapshot()) {
    TakeSnapshot();
  }
  g_lock.Unlock();
}

void NoteHighest(std::int64_t total) {
  if (total <= 0) return;
  const auto v = static_cast<std::uint64_t>(total);
  std::uint64_t seen = g_highest.load(std::memory_order_relaxed);
  while (v > seen && !g_highest.compare_exchange_weak(seen, v, std::memory_order_relaxed)) {
  }
}

void Add(std::int64_t delta, std::int64_t bound) {
  std::int64_t& t_pending = tls_thread_counts.peak_pending;
  std::int64_t pending = t_pending + delta;
  if (pending < bound && pending > -bound) {
    t_pending = pending;
    return;
  }
  t_pending = 0;
  const std::int64_t total = g_estimate.fetch_add(pending, std::memory_order_relaxed) + pending;
  if (delta <= 0) return;
  NoteHighest(total);
  if (STRATA_PREDICT_FALSE(total >= g_next_threshold.load(std::memory_order_relaxed))) MaybeSnapshot();
}

}  // namespace

StackCounts CountsOf(const StackEntry& e) {
  // Each sampled allocation counts in sampled_alloc_* only (two locked adds
  // per sample, not four): the totals add them back.
  const std::uint64_t sampled_count = e.sampled_alloc_count.load(std::memory_order_relaxed);
  const std::uint64_t sampled_bytes = e.sampled_alloc_bytes.load(std::memory_order_relaxed);
  return StackCounts{e.alloc_count.load(std::memory_order_relaxed) + sampled_count,
                     e.alloc_bytes.load(std::memory_order_relaxed) + sampled_bytes, sampled_count, sampled_bytes};
}

void RecordWeight(std::size_t size, std::uint32_t flags, std::int64_t rate, double* objects, double* bytes) {
  const double s = static_cast<double>(size);
  if ((flags & kSampled) != 0 && rate > 1 && size > 0) {
    // As profile::ScaleSample for one object: divided by the probability
    // that a block of this size is sampled.
    const double p = base::OneMinusExpNeg(s / static_cast<double>(rate));
    if (p > 0.0) {
      *objects = 1.0 / p;
      *bytes = s / p;
      return;
    }
  }
  *objects = 1;
  *bytes = s;
}

double ApproxSampledBytes(std::size_t size, std::int64_t rate) {
  return ApproxSampledBytesInline(size, rate, 1.0 / static_cast<double>(rate));
}

void PeakOnAllocate(std::size_t size, std::uint32_t flags) {
  std::int64_t bound;
  const std::int64_t weight = WeightBytes(size, flags, &bound);
  Add(weight, bound);
}
void PeakOnFree(std::size_t size, std::uint32_t flags) {
  std::int64_t bound;
  const std::int64_t weight = WeightBytes(size, flags, &bound);
  Add(-weight, bound);
}

void PeakForkChild() STRATA_NO_THREAD_SAFETY_ANALYSIS { g_lock.ResetAfterFork(); }

bool ReadPeakSnapshot(void (*fn)(const PeakSite& site, void* arg), void* arg, PeakInfo* info) {
  // A snapshot holds the lock for one walk of the live table: wait for it,
  // but not forever (a fork child whose parent was mid-snapshot is reset
  // by PeakForkChild; anything else holding it this long is stuck).
  int tries = 0;
  while (!g_lock.TryLock()) {
    if (++tries > 100000) return false;
    sched_yield();
  }
  const Snapshot& s = g_snap;
  for (std::size_t i = 0; i < s.count; ++i) fn(s.sites[i], arg);
  info->snapshots = s.taken;
  info->snapshot_bytes = static_cast<std::uint64_t>(s.total_bytes + 0.5);
  info->snapshot_time_ns = s.time_ns;
  info->snapshot_rate = s.rate;
  info->sites = s.count;
  info->truncated = s.truncated;
  g_lock.Unlock();
  info->highest_estimate = g_highest.load(std::memory_order_relaxed);
  info->estimate = g_estimate.load(std::memory_order_relaxed);
  info->next_threshold = g_next_threshold.load(std::memory_order_relaxed);
  return true;
}

void ResetPeak() {
  SpinLockHolder h(&g_lock);
  g_snap.count = 0;
  g_snap.total_bytes = 0;
  g_snap.taken = 0;
  g_snap.truncated = false;
  std::int64_t estimate = g_estimate.load(std::memory_order_relaxed);
  if (estimate < 0) estimate = 0;
  g_highest.store(static_cast<std::uint64_t>(estimate), std::memory_order_relaxed);
  g_next_threshold.store(estimate + MinMargin(CurrentRate()), std::memory_order_relaxed);
}

}  // namespace strata::tracking
