// alloc/leak_check.h: strata's leak checker, for ordinary optimised builds.
//
// How it works: with leak checking on (STRATA_LEAKCHECK=1 in the
// environment, or EnableLeakChecking()), every allocation is recorded with
// its size, call stack and time in the tracking layer's lock-free live
// table (alloc/tracking). The fast path is untouched: tracked blocks come
// from pools whose frees always reach the slow path (alloc/internal/
// hooks.h). A check then scans conservatively, as LeakSanitizer and
// valgrind do:
//   roots  - the writable segments of every loaded object (globals), every
//            thread's stack from its stack pointer (read from
//            /proc/self/task/*/syscall) up to the end of its mapping, which
//            for glibc threads includes their static TLS, the calling
//            thread's registers (spilled to its stack), and the brk heap
//            (the main thread's static TLS lives there);
//   heap   - every word of a reachable block that points into (or to the
//            start of) a tracked live block makes that block reachable.
// Unreachable blocks are "definitely lost" when nothing but other lost
// blocks points to them in a cycle-free way, and "indirectly lost" when
// they are reachable only from lost blocks (valgrind's clique rule: in a
// lost cycle one block is direct, the rest indirect). Reachable blocks are
// "still reachable" (not leaks).
//
// Reports group blocks by allocation stack, sorted by bytes, symbolized,
// with object counts and ages, and end with plain integers:
//   SUMMARY: strata: 4096 byte(s) leaked in 3 allocation(s).
// At exit (STRATA_LEAKCHECK=1) a report with leaks makes the process exit
// with code 23 (STRATA_LEAKCHECK_EXITCODE=N to change, 0 to keep the
// program's own code). Suppressions: STRATA_LEAK_SUPPRESSIONS=file, one
// pattern per line ("leak:<substring of a frame's function name>"; "#"
// comments), as LSan's.
//
// Limits (stated, not hidden): other threads should be quiescent during a
// check (at exit, or in a test); registers of threads other than the
// caller are not scanned; a block pointed to only from memory strata did
// not track (allocated before tracking began, or by another allocator) is
// reported as lost.
//
// Thread-safety: Check* functions are thread-safe with respect to each
// other (one check at a time, serialised) and never allocate through
// malloc.
#ifndef STRATA_ALLOC_LEAK_CHECK_H_
#define STRATA_ALLOC_LEAK_CHECK_H_

#include <cstddef>
#include <cstdint>

namespace strata {

// Turns recording of every allocation on (blocks allocated before stay
// untracked). Idempotent.
void EnableLeakChecking() noexcept;
bool LeakCheckingEnabled() noexcept;

struct LeakReport {
  std::uint64_t definite_bytes = 0;
  std::uint64_t definite_objects = 0;
  std::uint64_t indirect_bytes = 0;
  std::uint64_t indirect_objects = 0;
  std::uint64_t reachable_bytes = 0;   // still reachable (not leaks)
  std::uint64_t reachable_objects = 0;
  std::uint64_t suppressed_bytes = 0;
  std::uint64_t suppressed_objects = 0;
  // The innermost user frame of the largest lost site ("" when none).
  char top_site[256] = {};
  bool HasLeaks() const { return definite_objects + indirect_objects > 0; }
};

struct LeakCheckOptions {
  // Only blocks allocated at or after this time (NowNanos()-style
  // monotonic ns) are considered; 0 = all tracked blocks.
  std::uint64_t since_ns = 0;
  // Write the report here (-1: do not write).
  int report_fd = 2;
  // Also list still-reachable blocks by site.
  bool show_reachable = false;
  // Maximum number of sites listed per kind.
  int max_sites = 30;
};

// Runs a check now.
LeakReport CheckForLeaks(const LeakCheckOptions& options) noexcept;
LeakReport CheckForLeaks() noexcept;

// Monotonic time in ns, the clock of LeakCheckOptions::since_ns. Use this
// (not another clock) to start a window: blocks allocated after it returns
// are in the window, blocks allocated before are not (records carry a
// coarse time raised to the latest window start: alloc/tracking/tracker.h).
std::uint64_t LeakCheckClockNs() noexcept;

// A scoped check: the blocks allocated during the scope that are
// unreachable (or, with `live_is_leak`, merely still live) when Check()
// runs are reported.
class LeakCheck {
 public:
  LeakCheck() noexcept;
  LeakCheck(const LeakCheck&) = delete;
  LeakCheck& operator=(const LeakCheck&) = delete;

  // Checks the blocks allocated since construction.
  LeakReport Check(int report_fd = 2) noexcept;
  // Every block allocated since construction and not yet freed counts,
  // reachable or not.
  LeakReport CheckNoLiveBlocks(int report_fd = 2) noexcept;

 private:
  std::uint64_t start_ns_;
};

// The seed's ReferenceTracker: reports live tracked blocks older than
// `min_age_seconds`, grouped by allocation site. Returns the number of
// blocks reported.
std::size_t ReportOldAllocations(double min_age_seconds, int fd) noexcept;

}  // namespace strata

#endif  // STRATA_ALLOC_LEAK_CHECK_H_
