// alloc/tracking/thread_counts.h: the tracking layer's per-thread counts of
// tracked events, on one line of the thread's own.
//
// Every tracked allocation and free (a sample's two ends, or every
// allocation when leak checking) changes a few counts: the tracker's
// (allocations, frees, live records kept outside the live table) and the
// peak tracker's pending delta of sampled bytes (peak_tracker.h). Kept in
// the tracker's sharded counters and a thread_local of the peak tracker's
// own, they were four or five lines for each event (the counters' object,
// the thread registry's lookup cache, two lines of it, the thread's slot,
// and the pending delta's line), which a sample, a rare event on a thread
// that allocates, found cold: over two cache misses a sample. Here they
// are on one line: the tracker adds its counts here and moves them to its
// shared counters every kFlushEvents events, when the thread reads the
// counters itself, and when the thread exits (tracker.cc). The thread's
// last reading of the clock that dates tracked allocations is kept here as
// well.
//
// Contract: fields are read and written by the owning thread only (the
// shared counters that readers sum are the tracker's; a reader on another
// thread misses each running thread's unflushed counts, fewer than
// kFlushEvents events each).
//
// Thread-safety: per-thread state; no synchronisation.
#ifndef STRATA_ALLOC_TRACKING_THREAD_COUNTS_H_
#define STRATA_ALLOC_TRACKING_THREAD_COUNTS_H_

#include <time.h>

#include <cstddef>
#include <cstdint>

#include "concurrency/base/macros.h"
#include "concurrency/base/thread_exit.h"

namespace strata::tracking {

struct alignas(64) ThreadCounts {
  // The peak tracker's pending delta of live bytes (peak_tracker.cc Add).
  std::int64_t peak_pending;
  // The tracker's counts not yet in its shared counters (tracker.cc).
  std::int64_t allocs;
  std::int64_t frees;
  std::int64_t live_small;
  std::uint32_t events;  // since they were last moved
  bool exit_hook_registered;
  // The coarse clock as this thread last read it (nanoseconds) and the
  // time stamp counter then: a tracked allocation within kClockReuseTicks
  // of that reading is dated by it (tracker.cc RecordTimeNs).
  std::uint64_t clock_ns;
  std::uint64_t clock_tsc;
  // clock_gettime, called through this copy of its address: a call
  // through its slot of the global offset table read a cold line of its
  // own (set at the thread's first reading).
  int (*clock_gettime_fn)(clockid_t, timespec*);
  // Only touched when registered (the next line).
  ThreadExitHook exit_hook;
};

// What every tracked event touches is the first line.
static_assert(offsetof(ThreadCounts, exit_hook) == 64);

// Events between two moves of a thread's counts to the shared counters.
inline constexpr std::uint32_t kFlushEvents = 64;

extern constinit thread_local ThreadCounts tls_thread_counts STRATA_INITIAL_EXEC;

}  // namespace strata::tracking

#endif  // STRATA_ALLOC_TRACKING_THREAD_COUNTS_H_
