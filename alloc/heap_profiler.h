// alloc/heap_profiler.h: strata's sampling heap profiler (public API).
//
// What is recorded: allocations chosen by an exponentially distributed
// byte stride with mean SampleRate() bytes (STRATA_SAMPLE_RATE, default
// 512 KiB as Go's runtime.MemProfileRate; 1 records every allocation, 0
// turns sampling off), each with its call stack, tracked until freed. The
// fast path pays nothing for it (a byte countdown it keeps anyway); see
// alloc/internal/hooks.h. While the leak checker tracks every allocation,
// profiles are exact (period 1). realloc: a block that moves is a new
// allocation at the realloc's stack; a sampled block that grows in place
// keeps its allocation stack and is counted in use at its new size (its
// alloc_* values stay those of the original allocation).
//
// Output: a gzipped pprof profile.proto with sample types alloc_objects,
// alloc_space, inuse_objects, inuse_space, values unsampled as pprof
// expects (scale 1/(1-exp(-size/rate))), functions symbolized and mappings
// included so `pprof -symbolize=force` can add file:line. Read it with
// `go tool pprof -top FILE` or tools/heapdump.
//
// Peak heap profile: the same profile (format, sample types, scaling) of
// the sampled heap as it was when its in-use bytes peaked, not as it is
// now: what a program that ran out of memory, or came close, held at its
// worst, and from where. The tracking layer snapshots the sampled live set
// (aggregated by stack) each time its estimate passes the previous
// snapshot by 1/16 (at least 1 MiB), off the fast path (that margin bounds
// the snapshots' cost by the allocations that cause them); a peak profile
// is the last snapshot, or the current heap when that holds as much or
// more. It may miss the top of the peak by up to the margin: see
// alloc/tracking/peak_tracker.h for the cost and accuracy.
//
// Environment: STRATA_HEAPPROFILE=path writes a profile at exit (and, with
// STRATA_HEAPPROFILE_SIGNAL=N, on signal N, as path.<count>);
// STRATA_PEAK_HEAPPROFILE=path writes the peak profile at exit; handled by
// the runtime layer (alloc/runtime.h). The HTTP endpoint serves both
// (/debug/pprof/heap, /debug/pprof/peak: docs/MONITOR.md).
//
// Thread-safety: all functions are thread-safe. Writing never allocates
// through malloc, so it is safe at exit and in a fork child; it must not
// run while the caller holds a lock a thread inside dlopen may wait for.
#ifndef STRATA_ALLOC_HEAP_PROFILER_H_
#define STRATA_ALLOC_HEAP_PROFILER_H_

#include <cstddef>
#include <cstdint>

namespace strata {

// Writes the current heap profile to `path` (atomically: a temporary file
// renamed into place). Returns 0, or an errno-style code on failure.
int WriteHeapProfile(const char* path) noexcept;
// The same, to an open file descriptor (e.g. an HTTP response).
int WriteHeapProfileToFd(int fd) noexcept;

// Writes the peak heap profile (see above) to `path` (atomically) or to an
// open file descriptor. Returns 0, or an errno-style code on failure (EBUSY
// when a snapshot in progress did not finish within about a second).
int WritePeakHeapProfile(const char* path) noexcept;
int WritePeakHeapProfileToFd(int fd) noexcept;

// Mean sampling stride in bytes (0: off, 1: every allocation).
void SetProfileSampleRate(std::int64_t bytes) noexcept;
std::int64_t ProfileSampleRate() noexcept;

// Summary of what the profiler holds now (unsampled estimates).
struct HeapProfileSummary {
  std::size_t sites;           // distinct allocation stacks
  std::size_t live_records;    // tracked live blocks
  std::uint64_t inuse_bytes;   // estimated in-use bytes
  std::uint64_t inuse_objects;
  std::uint64_t alloc_bytes;   // estimated bytes ever allocated
  std::uint64_t alloc_objects;
};
HeapProfileSummary GetHeapProfileSummary() noexcept;

// What a peak heap profile written now would hold.
struct PeakHeapProfileSummary {
  HeapProfileSummary profile;            // its totals (live_records unset)
  std::uint64_t snapshots;               // peak snapshots taken so far
  std::uint64_t highest_estimate_bytes;  // highest running estimate of in-use bytes seen
};
PeakHeapProfileSummary GetPeakHeapProfileSummary() noexcept;

}  // namespace strata

#endif  // STRATA_ALLOC_HEAP_PROFILER_H_
