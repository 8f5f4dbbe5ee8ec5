// alloc/tracking/peak_tracker.h: the sampled heap as it was when it peaked
// (the peak heap profile's data; written by alloc/heap_profiler.h).
//
// What is kept: a running estimate of the tracked live bytes (each sampled
// record weighs its unsampled estimate, size / (1 - exp(-size/rate)), as
// the heap profile scales it; a record of leak-checking mode weighs its
// size), and a *snapshot*: the live set aggregated by allocation stack
// (in-use objects and bytes, unsampled, plus the stack's cumulative
// counters at that moment), taken when the estimate passes the previous
// snapshot by a margin.
//
// Cost: the hooks run only for tracked allocations and frees, which are
// already off the fast path (alloc/internal/hooks.h): a weight
// (ApproxSampledBytes, a few instructions), an add to a per-thread pending
// delta, and when it reaches FlushBound either way (kFlushBytes, two
// strides for sampled records) an
// atomic add to the shared estimate and a compare with the next threshold.
// A snapshot walks the live records once (O(record arrays + buckets used
// + live records)) and aggregates into a preallocated, mmap'd table (one slot per distinct
// stack, bounded by the stack table), so it never allocates through
// malloc and its memory is bounded. It runs under a try-lock (a thread
// that finds it busy goes on) when the estimate reaches
//   previous snapshot + max(previous / kMarginDivisor, kMinMarginBytes,
//                           kMarginStrides * sampling stride)
// (the stride term only when sampling: a sampled estimate moves a stride
// at a time, and by some sqrt(samples) strides of noise, so highs a stride
// or two past the last snapshot are mostly noise; at the default 512 KiB
// it takes mstress from 17 snapshots to 10). That margin is the rate limit,
// in bytes rather than time: between two
// snapshots of a heap of N records the heap must grow by N/16 records'
// worth (or the least margin), so a snapshot's walk is paid for by the allocations
// that led to it (about 16 record visits per new record, amortized), the
// number of snapshots grows with the log of the heap's growth (about 12
// per doubling), and a heap that stays below its peak takes none. A time
// limit was tried and dropped: it misses exactly the short spikes an
// out-of-memory investigation is after (a 100 MB burst allocated and
// freed within the cooldown left no snapshot).
//
// Accuracy: the snapshot is the live set at a moment when the estimate
// had just passed the threshold. The true sampled peak may be higher than
// the snapshot by up to the margin (1/16, or for small heaps 1 MiB, or
// four strides when sampling), and by what the threads' pending deltas
// hold back (each under FlushBound: kFlushBytes, or two strides when
// sampling). The
// running estimate may drift from the table by each exited thread's
// unflushed delta (under FlushBound), by blocks grown in place (their
// record's size changes, their weight in the estimate does not), by a rate
// change between a block's allocation and its free, and by up to
// FlushBound per thread of pending deltas; it only decides *when* to
// snapshot: a snapshot's total is computed from the records themselves.
// Readers compare the snapshot with the current live set and keep the
// larger (alloc/heap_profiler.cc).
//
// Thread-safety: the hooks are thread-safe and lock-free but for the
// snapshot's try-lock; ReadPeakSnapshot waits (spinning, yielding) for a
// snapshot in progress, at most about a second, then gives up. Nothing
// here allocates through malloc.
#ifndef STRATA_ALLOC_TRACKING_PEAK_TRACKER_H_
#define STRATA_ALLOC_TRACKING_PEAK_TRACKER_H_

#include <cstddef>
#include <cstdint>

#include "alloc/tracking/stack_table.h"

namespace strata::tracking {

inline constexpr std::int64_t kFlushBytes = 256 * 1024;
// How far a thread's pending delta may go either way before it reaches the
// shared estimate, for a sampled record at sampling stride `rate`: two
// strides, at least kFlushBytes. A sampled record weighs about a stride,
// so with kFlushBytes alone every sample's allocation and free took a
// locked add on the shared estimate's line (its compares and the highest
// seen with it); with two strides a sample and its free cancel in the
// thread's own delta, and about one sampled event in four reaches the
// estimate (mstress). The estimate trails by under two strides a thread,
// half the least margin of four (and a sampled estimate's own noise is
// some sqrt(samples) strides).
constexpr std::int64_t FlushBound(std::int64_t rate) {
  return rate > kFlushBytes / 2 ? 2 * rate : kFlushBytes;
}
inline constexpr std::int64_t kMinMarginBytes = 1 << 20;
inline constexpr std::int64_t kMarginDivisor = 16;
inline constexpr std::int64_t kMarginStrides = 4;

// A stack's cumulative counters, copied at one moment: alloc_* are the
// totals (every tracked allocation, sampled or not), sampled_alloc_* the
// sampled part.
struct StackCounts {
  std::uint64_t alloc_count = 0;
  std::uint64_t alloc_bytes = 0;
  std::uint64_t sampled_alloc_count = 0;
  std::uint64_t sampled_alloc_bytes = 0;
};
StackCounts CountsOf(const StackEntry& e);

// One allocation site of a snapshot.
struct PeakSite {
  StackEntry* stack;
  double inuse_objects;  // unsampled estimates
  double inuse_bytes;
  StackCounts counts;    // the stack's counters when the snapshot was taken
};

// The unsampled weight of one live record of `size` bytes (flags: the
// record's kSampled/kTracked) at sampling stride `rate`: the objects and
// bytes it stands for, as the heap profile scales it.
void RecordWeight(std::size_t size, std::uint32_t flags, std::int64_t rate, double* objects, double* bytes);

// RecordWeight's bytes of a sampled record, approximated within 1% in a
// few instructions (one division; no exponential): what the running
// estimate adds per tracked allocation and free.
double ApproxSampledBytes(std::size_t size, std::int64_t rate);

// Hooks (tracker.cc): a tracked block was recorded / its record removed.
void PeakOnAllocate(std::size_t size, std::uint32_t flags);
void PeakOnFree(std::size_t size, std::uint32_t flags);
// fork() child: the snapshot lock may have been held by another thread.
void PeakForkChild();

struct PeakInfo {
  std::uint64_t snapshots = 0;       // taken so far
  std::uint64_t snapshot_bytes = 0;  // the last snapshot's in-use bytes (unsampled)
  std::uint64_t snapshot_time_ns = 0;
  std::int64_t snapshot_rate = 0;    // sampling stride when it was taken
  std::uint64_t highest_estimate = 0;  // highest running estimate seen (bytes)
  std::int64_t estimate = 0;         // the running estimate (bytes; flushed deltas)
  std::int64_t next_threshold = 0;   // the estimate that takes the next snapshot (bytes)
  std::uint64_t sites = 0;           // sites in the snapshot
  bool truncated = false;            // some records found no slot (never expected)
};

// Calls fn for every site of the last snapshot, under the snapshot lock
// (fn must be quick and must not allocate through malloc), and fills
// *info. False when a snapshot stayed in progress too long (busy).
bool ReadPeakSnapshot(void (*fn)(const PeakSite& site, void* arg), void* arg, PeakInfo* info);

// Forgets the snapshot and the estimate's peak (the next threshold starts
// from the current estimate): for tests, and for programs that want the
// peak of a phase.
void ResetPeak();

}  // namespace strata::tracking

#endif  // STRATA_ALLOC_TRACKING_PEAK_TRACKER_H_
