// alloc/tracking/tracker.h: records tracked allocations (sampled for the
// heap profiler, or all of them for the leak checker) with their stacks.
//
// The engine routes tracked allocations to its slow path (see
// alloc/internal/hooks.h); this layer's hooks capture the call stack
// (internal::CaptureStack: frame pointers, which strata builds keep), intern
// it, and keep a record per tracked block until it is freed: at the block's
// place for small blocks (block_records.h), per slice for sampled blocks
// kept in place and sampled large and huge blocks (sampled_records.h), in
// the live table for the other large and huge ones (live_table.h).
//
// Error reports (alloc/internal/errors.h): installing the hooks also
// installs an error describer, so a report about a tracked block (live, or
// freed recently: a double free) ends with the stack that allocated it, as
// addresses and symbolized, formatted without allocating.
//
// Settings (read once at process init, also settable at run time):
//   STRATA_SAMPLE_RATE=bytes  mean sampling stride; default 524288 (512 KiB,
//                             as Go's MemProfileRate); 1 records every
//                             allocation; 0 turns sampling off.
//   STRATA_LEAKCHECK=1        track every allocation (leak checking).
//
// Thread-safety: everything here is thread-safe and never allocates
// through malloc.
#ifndef STRATA_ALLOC_TRACKING_TRACKER_H_
#define STRATA_ALLOC_TRACKING_TRACKER_H_

#include <cstddef>
#include <cstdint>

#include "alloc/tracking/live_table.h"
#include "alloc/tracking/stack_table.h"

namespace strata::tracking {

inline constexpr std::int64_t kDefaultSampleRate = 512 * 1024;

// Installs the hooks and applies the environment; idempotent (one acquire
// load once done). The layer's one-time init: the engine's process init
// runs it as its last step (so it is done before any thread's first
// allocation returns); a call here first runs the engine's. Its state
// names the process running it and the step reached (its fork handlers,
// then the install), so a fork child whose parent was inside it on
// another thread finishes it (internal/staged_init.h).
void EnsureTrackingInstalled();

// For tests: where the init stands when the observer is called, on the
// thread running it (in a fork child that took the init over, on that
// child's thread).
enum class TrackingInitPoint {
  kForkHandlers,            // before this layer's fork handlers
  kForkHandlersRegistered,  // pthread_atfork returned (this run registered them)
  kInstall,                 // handlers in place, the hooks and settings next
};
// Installs `fn` (nullptr: none), called at each point above. Set it before
// the process's first allocation; it must not allocate through strata.
void SetTrackingInitObserverForTesting(void (*fn)(TrackingInitPoint point));
// How many times this layer's fork prepare handler ran in this process
// (its children inherit the count): one per fork once registered once.
std::uint64_t TrackingForkPrepareRuns();

void SetSampleRate(std::int64_t bytes);
std::int64_t SampleRate();
// Turns tracking of every allocation on or off (the leak checker).
void SetTrackAll(bool on);
bool TrackAll();

// Monotonic nanoseconds (CLOCK_MONOTONIC).
std::uint64_t NowNs();

// A record's time_ns: the coarse monotonic clock (4 ms ticks, a quarter of
// the precise clock's cost on every tracked allocation) as the thread last
// read it (again once 2^22 ticks of the CPU's time stamp counter have
// passed, under 4.2 ms; tracker.cc), raised to the start of the latest
// window. Exact for windows: a block allocated after WindowStartNs()
// returned T has time_ns >= T, one allocated before has time_ns < T (the
// coarse clock, and an earlier reading of it, never runs ahead of the
// precise one, and the floor it is raised to was an earlier window's
// start). Ages are reported from it (to some 8 ms).
std::uint64_t RecordTimeNs();
// NowNs() as the start of a window (the leak checker's since_ns):
// raises RecordTimeNs()'s floor to it.
std::uint64_t WindowStartNs();

// Live tracked blocks: small ones from their records at the block's place
// (block_records.h), sampled ones from their slices' arrays
// (sampled_records.h), the other large and huge ones from the live table.
// Calls fn with a copy of each live record (see the walks' contracts in
// block_records.h and live_table.h: blocks live for the whole walk are
// visited once).
void ForEachLive(void (*fn)(const LiveInfo& info, void* arg), void* arg);
// The live record of the tracked block that starts at `ptr`.
bool FindLive(std::uintptr_t ptr, LiveInfo* out);
// Live tracked blocks (a sum of per-thread counts, which reach the sum in
// batches, thread_counts.h: exact for the calling thread and for threads
// that exited; up to 63 tracked events late for each other running
// thread).
std::size_t LiveCount();

// Adds the calling thread's pending per-site counts to the stack entries
// (StackEntry::alloc_count and alloc_bytes of tracked, unsampled
// allocations reach them in per-thread batches: at most 256 allocations
// late per running thread, exact for the calling thread after this and
// for threads that exited). Profile writers call it first.
void FlushThreadSiteCounts();

// Totals since start: tracked allocations and frees seen (batched as
// LiveCount's counts are).
struct TrackerCounters {
  std::uint64_t tracked_allocations;
  std::uint64_t tracked_frees;
  std::uint64_t record_failures;  // no memory for a record
};
TrackerCounters Counters();

}  // namespace strata::tracking

#endif  // STRATA_ALLOC_TRACKING_TRACKER_H_
