#include "alloc/tracking/tracker.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include <atomic>
#include <bit>

#include "alloc/internal/block_lookup.h"
#include "alloc/internal/errors.h"
#include "alloc/internal/fork_handler_set.h"
#include "alloc/internal/hardening.h"
#include "alloc/internal/hooks.h"
#include "alloc/internal/staged_init.h"
#include "alloc/internal/thread_cache.h"
#include "alloc/profile/system_libraries.h"
#include "alloc/tracking/block_records.h"
#include "alloc/tracking/peak_tracker.h"
#include "alloc/tracking/sampled_records.h"
#include "alloc/tracking/symbolize.h"
#include "alloc/tracking/thread_counts.h"
#include "concurrency/base/raw_log.h"
#include "concurrency/base/thread_exit.h"
#include "concurrency/sharded_counter.h"

namespace strata::tracking {

constinit thread_local ThreadCounts tls_thread_counts STRATA_INITIAL_EXEC = {};

namespace {

// The last WindowStartNs() (see tracker.h), on the mode line
// (alloc/internal/hooks.h).
constinit std::atomic<std::uint64_t>& g_window_floor = internal::hooks_detail::g_modes.window_floor;

// The time stamp counter (x86-64: rdtsc; elsewhere 0, and the clock is
// read every time).
STRATA_ALWAYS_INLINE std::uint64_t TimeStampCounter() {
#if defined(__x86_64__)
  return __builtin_ia32_rdtsc();
#else
  return 0;
#endif
}

// How long a thread's last reading of the coarse clock dates its tracked
// allocations: 2^22 ticks of the time stamp counter, under 4.2 ms at any
// counter rate of 1 GHz or more (1.7 ms here). Reading the clock was some
// 40 instructions and over one cache miss a sample (glibc's clock_gettime
// reads the vDSO's address from a line of the dynamic linker's, the vDSO
// its data page: bench/RESULTS.md, "Sampling cost"); the counter is one
// instruction on the thread's own line.
inline constexpr std::uint64_t kClockReuseTicks = std::uint64_t{1} << 22;

// Reads the coarse clock into the thread's line, with the counter `tsc`.
STRATA_NOINLINE std::uint64_t ReadRecordClock(ThreadCounts& t, std::uint64_t tsc) {
  auto* fn = t.clock_gettime_fn;
  if (STRATA_PREDICT_FALSE(fn == nullptr)) fn = t.clock_gettime_fn = &clock_gettime;
  timespec ts;
  fn(CLOCK_MONOTONIC_COARSE, &ts);
  t.clock_ns = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
  t.clock_tsc = tsc;
  return t.clock_ns;
}

// RecordTimeNs (tracker.h), inline in RecordAllocation: no call while the
// thread's last reading of the clock is recent (kClockReuseTicks; a counter
// that went backwards, after a move to a CPU whose counter is behind, reads
// the clock again too, and so does every allocation without a counter).
// An earlier reading never runs ahead of the clock, so windows stay exact;
// ages lose up to kClockReuseTicks.
STRATA_ALWAYS_INLINE std::uint64_t RecordTimeNsInline() {
  ThreadCounts& t = tls_thread_counts;
  const std::uint64_t tsc = TimeStampCounter();
  std::uint64_t coarse = t.clock_ns;
  if (STRATA_PREDICT_FALSE(tsc - t.clock_tsc >= kClockReuseTicks || tsc == 0)) coarse = ReadRecordClock(t, tsc);
  // Relaxed: a window's start is ordered before the allocations the caller
  // makes after it (program order, or whatever synchronises the threads).
  const std::uint64_t floor = g_window_floor.load(std::memory_order_relaxed);
  return coarse > floor ? coarse : floor;
}

// Per-thread slots (no locked RMW on every tracked allocation and free),
// which a thread's counts reach in batches (thread_counts.h; record
// failures directly). kLiveSmall: live records in the per-slice arrays
// (small blocks, block_records.h; sampled blocks kept in place and sampled
// large blocks, sampled_records.h).
enum Counter : std::size_t { kRecordFailures, kAllocs, kFrees, kLiveSmall, kNumCounters };
constinit ShardedCounterArray<kNumCounters> g_counters;

void OnAllocate(void* ptr, std::size_t requested, std::size_t usable, bool sampled);
void OnFree(void* ptr);
void OnResize(void* ptr, std::size_t requested, std::size_t usable);
void OnSmallAllocate(void* ptr, int size_class, std::size_t requested, bool sampled, void* record);
int OnSmallFree(void* ptr, int size_class, bool park, void** record);
void OnSmallRelease(void* record);
bool OnSampledAllocate(void* ptr, int size_class, std::size_t requested, int slot, const void* frame);
bool OnSampledFree(void* ptr, int size_class, int slot);

constinit internal::TrackingHooks g_hooks = {&OnAllocate,      &OnFree,         &OnResize,
                                             &OnSmallAllocate, &OnSmallFree,    &OnSmallRelease,
                                             &OnSampledAllocate, &OnSampledFree};

// Captures the stack from the live frame `start` up (RecordAllocation's,
// or the frame of the engine function that called a hook: the frames of
// this layer's calls below it are not walked), the engine's other frames
// included: skipping a fixed number of frames is fragile across inlining,
// so the readers (profile writer, leak report) drop the leading allocator
// frames by symbol name (see alloc/tracking/symbolize.h). Folds the
// stack's hash in as it goes (*hash, for StackTable::Intern).
//
// Full tracking walks a stack on every allocation, so the walk takes the
// fast road where it can: frames that lie in the range of this thread's
// stack that the engine's careful walker (internal::CaptureStack: bounded
// by memory it verified readable, never allocating) has verified already
// are read directly, with the same stopping rules; a frame outside that
// range sends the whole walk to the careful walker, which extends the
// range (so the next walk is fast again) or stops where it must. Both give
// the same frames (the careful one, which walks from its own frame, drops
// those below `start`'s return address).
STRATA_NOINLINE int CaptureStack(void** frames, std::uint64_t* hash, const void* start) {
  const internal::ThreadCache& tc = internal::tls_cache;
  const std::uintptr_t lo = tc.stack_lo;
  const std::uintptr_t hi = tc.stack_hi;
  auto fp = reinterpret_cast<std::uintptr_t>(start);
  std::uint64_t h = kStackHashSeed;
  int n = 0;
  if (hi >= 16 && fp >= lo && (fp & 7) == 0) {
    // A frame's two words lie below `last` (hi - 16: no add a frame).
    const std::uintptr_t last = hi - 16;
    void** out = frames;
    void** const end = frames + kMaxStackDepth;
    for (;;) {
      // Frames go up the stack: fp >= lo holds for every later one.
      if (fp > last) goto careful;  // not verified yet
      const auto* frame = reinterpret_cast<const std::uintptr_t*>(fp);
      const std::uintptr_t next = frame[0];
      const std::uintptr_t ret = frame[1];
      if (ret < 4096) break;
      *out++ = reinterpret_cast<void*>(ret);
      h = HashStackStep(h, reinterpret_cast<void*>(ret));
      // The careful walk's stopping rules: the next frame must be above
      // this one by at most 1 MiB and 8-aligned. fp is 8-aligned, so
      // next - fp - 8 must be a multiple of 8 below 1 MiB: rotated right
      // by 3, its low bits land on top, and one unsigned compare checks
      // both (next <= fp wraps around to the top too).
      if (out == end || std::rotr(next - fp - 8, 3) >= (std::uintptr_t{1} << 17)) break;
      fp = next;
    }
    n = static_cast<int>(out - frames);
    *hash = HashStackEnd(h, n);
    return n;
  }
careful:
  n = internal::CaptureStack(frames, kMaxStackDepth, 1);
  // `start` is a live frame of this thread's stack, below which only this
  // layer's frames lie: its return address is among the frames walked.
  const void* first = reinterpret_cast<void* const*>(start)[1];
  for (int i = 0; i < n; ++i) {
    if (frames[i] == first) {
      n -= i;
      for (int j = 0; j < n; ++j) frames[j] = frames[j + i];
      break;
    }
  }
  *hash = HashStack(frames, n);
  return n;
}

// The walk of CaptureStack's fast road without the frames: the stack's
// depth, its hash (*hash) and its leaf frame (*leaf), all that
// StackTable::Find needs to find a stack seen before, with no frame
// written anywhere (the frames array lies below the frames of a sample's
// calls, on lines of the stack that the program rarely reaches, and
// writing it cost a sample more than one cache miss). -1 where
// CaptureStack would take the careful road (a frame outside the verified
// range: that walk extends the range). The same frames, stopping rules and
// hash as CaptureStack's fast road, so an entry either created is found.
STRATA_ALWAYS_INLINE int HashStackFrom(const void* start, std::uint64_t* hash, const void** leaf) {
  const internal::ThreadCache& tc = internal::tls_cache;
  const std::uintptr_t lo = tc.stack_lo;
  const std::uintptr_t hi = tc.stack_hi;
  auto fp = reinterpret_cast<std::uintptr_t>(start);
  if (hi < 16 || fp < lo || (fp & 7) != 0) return -1;
  const std::uintptr_t last = hi - 16;
  std::uint64_t h = kStackHashSeed;
  int n = 0;
  for (;;) {
    if (fp > last) return -1;  // not verified yet
    const auto* frame = reinterpret_cast<const std::uintptr_t*>(fp);
    const std::uintptr_t next = frame[0];
    const std::uintptr_t ret = frame[1];
    if (ret < 4096) break;
    ++n;
    h = HashStackStep(h, reinterpret_cast<const void*>(ret));
    if (n == kMaxStackDepth || std::rotr(next - fp - 8, 3) >= (std::uintptr_t{1} << 17)) break;
    fp = next;
  }
  *hash = HashStackEnd(h, n);
  // The first frame walked is `start`'s (read above): its return address.
  *leaf = reinterpret_cast<const void* const*>(start)[1];
  return n;
}

// A stack that HashStackFrom could not find: walked again into an array,
// interned. Not inlined: the array (320 bytes) is in this frame only, not
// in the frame of every walk.
STRATA_NOINLINE StackEntry* InternStackFrom(const void* start) {
  void* frames[kMaxStackDepth];
  std::uint64_t hash = 0;
  const int depth = CaptureStack(frames, &hash, start);
  return GlobalStackTable().Intern(frames, depth, hash);
}

// --- Per-site totals, batched per thread ----------------------------------
//
// Every tracked allocation adds to its stack entry's cumulative count and
// bytes. Two locked adds on each allocation were a tenth of full tracking's
// CPU time (perf, churn): a thread keeps its deltas for the last few
// stacks it allocated from (direct-mapped by entry) and adds them to the
// entries when a slot is taken by another stack, every kFlushEvery tracked
// allocations, when it writes a profile itself (FlushThreadSiteCounts) and
// when it exits. So a reader on another thread may miss up to kFlushEvery
// recent allocations of each running thread; sampled allocations (the
// profile's own samples) go to the entries at once.
constexpr int kSiteSlots = 16;
constexpr std::uint32_t kFlushEvery = 256;
struct SiteDelta {
  StackEntry* entry;
  std::uint64_t count;
  std::uint64_t bytes;
};
struct ThreadSiteCounts {
  SiteDelta slots[kSiteSlots];
  std::uint32_t since_flush;
  bool hook_registered;
  ThreadExitHook exit_hook;
};
constinit thread_local ThreadSiteCounts tls_sites STRATA_INITIAL_EXEC = {};

void FlushSlot(SiteDelta& d) {
  if (d.count != 0) {
    d.entry->alloc_count.fetch_add(d.count, std::memory_order_relaxed);
    d.entry->alloc_bytes.fetch_add(d.bytes, std::memory_order_relaxed);
  }
  d = SiteDelta{nullptr, 0, 0};
}

void FlushAllSlots(ThreadSiteCounts& t) {
  for (SiteDelta& d : t.slots) FlushSlot(d);
  t.since_flush = 0;
}

void FlushSitesAtExit(void* arg) { FlushAllSlots(*static_cast<ThreadSiteCounts*>(arg)); }

STRATA_NOINLINE void RegisterSiteFlush(ThreadSiteCounts& t) {
  t.hook_registered = true;
  t.exit_hook.fn = &FlushSitesAtExit;
  t.exit_hook.arg = &t;
  RegisterThreadExitHook(&t.exit_hook);
}

STRATA_ALWAYS_INLINE void CountSite(StackEntry* stack, std::size_t requested) {
  ThreadSiteCounts& t = tls_sites;
  if (STRATA_PREDICT_FALSE(!t.hook_registered)) RegisterSiteFlush(t);
  SiteDelta& d = t.slots[(reinterpret_cast<std::uintptr_t>(stack) >> 6) % kSiteSlots];
  if (STRATA_PREDICT_FALSE(d.entry != stack)) {
    FlushSlot(d);
    d.entry = stack;
  }
  ++d.count;
  d.bytes += requested;
  if (STRATA_PREDICT_FALSE(++t.since_flush >= kFlushEvery)) FlushAllSlots(t);
}

// --- Counts of tracked events, batched per thread (thread_counts.h) -------

// Moves the calling thread's counts to its slot of the shared counters.
STRATA_NOINLINE void FlushThreadCounts(ThreadCounts& t) {
  if (auto* slot = g_counters.CurrentSlot(); STRATA_PREDICT_TRUE(slot != nullptr)) {
    if (t.allocs != 0) slot->Add(kAllocs, t.allocs);
    if (t.frees != 0) slot->Add(kFrees, t.frees);
    if (t.live_small != 0) slot->Add(kLiveSmall, t.live_small);
    t.allocs = t.frees = t.live_small = 0;
  }
  t.events = 0;
}

// At thread exit (and again should a later exit step track something: an
// event re-registers the hook; one after the thread's last exit step
// stays uncounted).
void FlushThreadCountsAtExit(void* arg) {
  auto* t = static_cast<ThreadCounts*>(arg);
  t->exit_hook_registered = false;
  FlushThreadCounts(*t);
}

STRATA_NOINLINE void RegisterThreadCountsFlush(ThreadCounts& t) {
  t.exit_hook_registered = true;
  t.exit_hook.fn = &FlushThreadCountsAtExit;
  t.exit_hook.arg = &t;
  RegisterThreadExitHook(&t.exit_hook);
}

// A tracked allocation (allocs 1) or free (frees 1), and the change of the
// live records outside the live table (live_small): on the thread's line.
STRATA_ALWAYS_INLINE void CountEvent(std::int64_t allocs, std::int64_t frees, std::int64_t live_small) {
  ThreadCounts& t = tls_thread_counts;
  // Three scalar adds: with constant deltas the compiler pairs two of them
  // into one vector add of a constant from the read-only data, a cold line
  // of its own (half a cache miss a sample's free).
  asm("" : "+r"(allocs), "+r"(frees), "+r"(live_small));
  t.allocs += allocs;
  t.frees += frees;
  t.live_small += live_small;
  if (STRATA_PREDICT_FALSE(++t.events >= kFlushEvents || !t.exit_hook_registered)) {
    if (!t.exit_hook_registered) RegisterThreadCountsFlush(t);
    FlushThreadCounts(t);
  }
}

// The stack entry of an allocation made now from the calling stack,
// counted in its totals (the allocation is counted by the caller).
STRATA_ALWAYS_INLINE StackEntry* StackNow(std::size_t requested, bool sampled, const void* start) {
  std::uint64_t hash = 0;
  const void* leaf = nullptr;
  const int depth = HashStackFrom(start, &hash, &leaf);
  StackEntry* stack = depth >= 0 ? FindStack(hash, depth, leaf) : nullptr;
  if (STRATA_PREDICT_FALSE(stack == nullptr)) stack = InternStackFrom(start);
  if (sampled) {
    stack->sampled_alloc_count.fetch_add(1, std::memory_order_relaxed);
    stack->sampled_alloc_bytes.fetch_add(requested, std::memory_order_relaxed);
  } else {
    CountSite(stack, requested);
  }
  return stack;
}

constexpr std::uint32_t FlagsOf(bool sampled) {
  return sampled ? static_cast<std::uint32_t>(kSampled) : static_cast<std::uint32_t>(kTracked);
}

// --- Small blocks: records at the block's place (block_records.h) ---------

// A new live record (the peak tracker counts it in). False when the table
// had no room.
bool Insert(const LiveInfo& info) {
  if (GlobalLiveTable().Insert(info)) {
    PeakOnAllocate(info.size, info.flags);
    return true;
  }
  g_counters.Increment(kRecordFailures);
  return false;
}

// Every tracked allocation: a small block's record (`record`, or found from
// its place) for size_class > 0; for size_class 0 (a large or huge block,
// or a sampled small block kept in place in no slot, `usable` its usable
// size), the record `record` (a sampled large block's in its slice's
// array, its sizes written by the caller) or, when null, a live table
// record. False when it could not be recorded. One function for all
// (the walk is not inlined twice: the engine's code must stay within its
// 64 KiB, alloc/libstrata_order.txt). The stack is walked from `start`, a
// live frame of the caller's (a sampled block kept in place: the engine
// function that called the hook, so that neither the hook's frames nor
// this one are walked), or from this function's own frame when null.
STRATA_NOINLINE bool RecordAllocation(void* ptr, int size_class, std::size_t requested, std::size_t usable,
                                      bool sampled, void* record, const void* start) {
  if (start == nullptr) start = __builtin_frame_address(0);
  StackEntry* stack = StackNow(requested, sampled, start);
  if (size_class == 0 && record == nullptr) {
    CountEvent(1, 0, 0);
    return Insert(
        LiveInfo{reinterpret_cast<std::uintptr_t>(ptr), requested, usable, stack, RecordTimeNsInline(), FlagsOf(sampled)});
  }
  auto* r = static_cast<BlockRecord*>(record);
  if (r == nullptr) {
    r = BlockRecordFor(reinterpret_cast<std::uintptr_t>(ptr), size_class);
    if (STRATA_PREDICT_FALSE(r == nullptr)) {
      CountEvent(1, 0, 0);
      g_counters.Increment(kRecordFailures);
      return false;
    }
  }
  WriteBlockRecord(r, stack, RecordTimeNsInline(), requested, FlagsOf(sampled), size_class);
  CountEvent(1, 0, 1);
  PeakOnAllocate(requested, FlagsOf(sampled));
  return true;
}

void OnSmallAllocate(void* ptr, int size_class, std::size_t requested, bool sampled, void* record) {
  RecordAllocation(ptr, size_class, requested, 0, sampled, record, nullptr);
}

int OnSmallFree(void* ptr, int size_class, bool park, void** record) {
  BlockRecord* r = FindBlockRecord(reinterpret_cast<std::uintptr_t>(ptr), size_class);
  if (r == nullptr) return 0;
  bool double_free = false;
  const std::uint32_t state = EndBlockRecord(r, park, &double_free);
  if (state == 0) return double_free ? -1 : 0;
  *record = r;
  PeakOnFree(r->size.load(std::memory_order_relaxed), state);
  CountEvent(0, 1, -1);
  return 1;
}

void OnSmallRelease(void* record) { ReleaseParkedRecord(static_cast<BlockRecord*>(record)); }

// Sampled small blocks kept in place (alloc/internal/sampled_slices.h):
// recorded in their slot's record (sampled_records.h), or in the live
// table when they have no slot or the slice's array could not be mapped.
bool OnSampledAllocate(void* ptr, int size_class, std::size_t requested, int slot, const void* frame) {
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  SampledRecord* s = slot >= 0 ? SampledRecordFor(addr, slot) : nullptr;
  if (s == nullptr) return RecordAllocation(ptr, 0, requested, internal::ClassSize(size_class), true, nullptr, frame);
  // Before the state (RecordAllocation's release store): a reader that
  // sees the record live sees its block.
  s->ptr.store(addr, std::memory_order_relaxed);
  return RecordAllocation(ptr, size_class, requested, 0, true, &s->record, frame);
}

// Every free of a block in a slice that holds sampled blocks and whose
// word names it (or may: overflow) comes here; only the sampled ones have
// a record (and count as tracked frees).
bool OnSampledFree(void* ptr, int size_class, int slot) {
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  if (slot >= 0) {
    SampledRecord* s = FindSampledRecord(addr, slot);
    if (s != nullptr && s->ptr.load(std::memory_order_relaxed) == addr &&
        StateLive(s->record.state.load(std::memory_order_acquire))) {
      bool double_free = false;
      const std::uint32_t state = EndBlockRecord(&s->record, false, &double_free);
      if (state != 0) {
        PeakOnFree(s->record.size.load(std::memory_order_relaxed), state);
        CountEvent(0, 1, -1);
        return true;
      }
    }
  }
  (void)size_class;
  LiveInfo info;
  if (!GlobalLiveTable().Remove(addr, &info)) return false;
  PeakOnFree(info.size, info.flags);
  CountEvent(0, 1, 0);
  return true;
}

// --- Recently freed tracked blocks ------------------------------------------
//
// A freed large or huge block's record leaves the live table, but a double
// free (the commonest report) comes after that: so each such free also
// leaves (address, stack, size) in a small direct-mapped table, overwritten
// by later frees that map to the same slot (small blocks keep their freed
// record at their place, block_records.h). A slot is written and read under its own
// try-lock (a busy slot is skipped, never waited for), so a reader never
// sees a torn entry and nothing blocks.
//
// The address is stored complemented: the leak checker scans this layer's
// globals conservatively, and a plain copy of a freed block's address would
// make whatever is allocated there next look reachable (a hidden leak).
struct FreedSlot {
  std::atomic<bool> busy{false};
  std::uintptr_t hidden_ptr = 0;  // ~address
  StackEntry* stack = nullptr;  // stack entries are never freed
  std::size_t size = 0;
};
constexpr int kFreedSlotsLog2 = 12;
constinit FreedSlot g_freed[std::size_t{1} << kFreedSlotsLog2];

FreedSlot& FreedSlotFor(std::uintptr_t ptr) {
  return g_freed[((ptr >> 4) * 0x9e3779b97f4a7c15ull) >> (64 - kFreedSlotsLog2)];
}

void RememberFreed(const LiveInfo& info) {
  FreedSlot& slot = FreedSlotFor(info.ptr);
  if (slot.busy.exchange(true, std::memory_order_acquire)) return;
  slot.hidden_ptr = ~info.ptr;
  slot.stack = info.stack;
  slot.size = info.size;
  slot.busy.store(false, std::memory_order_release);
}

bool FindFreed(std::uintptr_t ptr, LiveInfo* out) {
  FreedSlot& slot = FreedSlotFor(ptr);
  if (slot.busy.exchange(true, std::memory_order_acquire)) return false;
  bool found = slot.hidden_ptr == ~ptr && slot.stack != nullptr;
  if (found) *out = LiveInfo{ptr, slot.size, slot.size, slot.stack, 0, 0};
  slot.busy.store(false, std::memory_order_release);
  return found;
}

// Large and huge tracked blocks (small ones take the on_small_* hooks): a
// sampled one in the large record of its slice's array (sampled_records.h),
// the others (leak checking) in the live table.
void OnAllocate(void* ptr, std::size_t requested, std::size_t usable, bool sampled) {
  SampledLargeRecord* l = sampled ? SampledLargeRecordFor(reinterpret_cast<std::uintptr_t>(ptr)) : nullptr;
  if (l != nullptr) {
    // Before the state (RecordAllocation's release store).
    l->size.store(requested, std::memory_order_relaxed);
    l->usable.store(usable, std::memory_order_relaxed);
  }
  RecordAllocation(ptr, 0, requested, usable, sampled, l != nullptr ? &l->record : nullptr, nullptr);
}

// Ends the live sampled large record of the block at `addr` (*info: what
// it held). False when the block has none (its record, if any, is in the
// live table).
bool EndSampledLarge(std::uintptr_t addr, LiveInfo* info, std::int64_t* live_small) {
  SampledLargeRecord* l = FindSampledLarge(addr);
  if (l == nullptr) return false;
  bool double_free = false;
  const std::uint32_t state = EndBlockRecord(&l->record, false, &double_free);
  if (state == 0) return false;
  *info = LiveInfo{addr, l->size.load(std::memory_order_relaxed), l->usable.load(std::memory_order_relaxed),
                   l->record.stack.load(std::memory_order_relaxed), l->record.time_ns.load(std::memory_order_relaxed),
                   state & 0xff};
  *live_small = -1;
  return true;
}

void OnFree(void* ptr) {
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  LiveInfo info;
  std::int64_t live_small = 0;
  if (EndSampledLarge(addr, &info, &live_small) || GlobalLiveTable().Remove(addr, &info)) {
    // Only where a double free is described from it (leak checking,
    // hardened mode): a sampled block's free would touch the table's cold
    // pages for nothing (page faults at the first frees of a run).
    if (TrackAll() || internal::Hardened()) RememberFreed(info);
    PeakOnFree(info.size, info.flags);
  }
  CountEvent(0, 1, live_small);
}

// The cumulative counts of the block's stack stay as they were: they count
// allocations, and a block resized in place was allocated once.
void OnResize(void* ptr, std::size_t requested, std::size_t usable) {
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  if (SampledLargeRecord* l = FindSampledLarge(addr); l != nullptr) {
    l->size.store(requested, std::memory_order_relaxed);
    l->usable.store(usable, std::memory_order_relaxed);
    return;
  }
  GlobalLiveTable().Resize(addr, requested, usable);
}

// --- Error describer (alloc/internal/errors.h) --------------------------------

// Frames of the allocation stack printed in an error report.
constexpr int kDescribedFrames = 16;

// Adds the allocation stack of a tracked block (live, or freed recently) to
// an error report: one line with the addresses (module+offset, as the rest
// of the report), then one line per frame (LeakSanitizer's format,
// symbolize.h), both from the first user frame on (the allocator's own
// frames skipped, as symbolize.h does). Every line is formatted in `out` and written out before the
// next; the only allocation is the process's first opening of the
// symbolizer (dlopen), once a tracked block is to be described (errors are
// reported with no allocator lock held).
void DescribeBlock(const void* ptr, raw::Buffer* out) {
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  LiveInfo info;
  bool live = false;
  const internal::BlockInfo block = internal::LookupBlock(addr);
  if (block.kind == internal::BlockKind::kTrackedSmall) {
    // The record at the block's place: live, or freed (parked in a tracked
    // cache, or back in the pool) with the stack of its last allocation.
    const BlockRecord* r = block.start == addr ? FindBlockRecord(addr, block.size_class) : nullptr;
    if (r == nullptr) return;
    const std::uint32_t state = r->state.load(std::memory_order_acquire);
    if (state == 0) return;
    info = BlockRecordInfo(*r, addr, state);
    live = StateLive(state);
  } else if ((block.kind != internal::BlockKind::kNone && block.start == addr && FindSampledLive(addr, &info)) ||
             GlobalLiveTable().Find(addr, &info)) {
    live = true;
  } else if (!FindFreed(addr, &info)) {
    return;
  }
  const StackEntry* stack = info.stack;
  if (stack == nullptr || stack->depth <= 0) return;
  profile::LoadProfilerLibraries();
  const int depth = ModuleFrames(stack->frames, stack->depth);
  const int first = FirstUserFrame(stack->frames, depth);
  const int end = depth < first + kDescribedFrames ? depth : first + kDescribedFrames;
  out->Str("strata:   allocated (tracked block of ").Udec(info.size).Str(" bytes")
      .Str(live ? "" : ", since freed").Str(") at");
  internal::AppendFrames(out, stack->frames + first, end - first);
  out->Char('\n');
  out->WriteTo(2);
  out->Clear();
  for (int i = first; i < end; ++i) {
    out->Str("strata:     ");
    AppendFrame(out, i - first, stack->frames[i]);
    out->Char('\n');
    out->WriteTo(2);
    out->Clear();
  }
}

// Writes a stack of an error report (alloc/internal/errors.h): the raw line
// of addresses, then one symbolized line per frame, both from the first
// frame outside the allocator on.
void PrintErrorStack(const char* title, void* const* frames, int depth, raw::Buffer* out) {
  profile::LoadProfilerLibraries();
  depth = ModuleFrames(frames, depth);
  const int first = FirstUserFrame(frames, depth);
  out->Str("strata:   ").Str(title);
  internal::AppendFrames(out, frames + first, depth - first);
  out->Char('\n');
  out->WriteTo(2);
  out->Clear();
  for (int i = first; i < depth; ++i) {
    out->Str("strata:     ");
    AppendFrame(out, i - first, frames[i]);
    out->Char('\n');
    out->WriteTo(2);
    out->Clear();
  }
}

std::int64_t ParseBytes(const char* s, std::int64_t fallback) {
  if (s == nullptr || *s == '\0') return fallback;
  std::int64_t v = 0;
  for (; *s >= '0' && *s <= '9'; ++s) v = v * 10 + (*s - '0');
  switch (*s) {
    case 'k': case 'K': v <<= 10; ++s; break;
    case 'm': case 'M': v <<= 20; ++s; break;
    case 'g': case 'G': v <<= 30; ++s; break;
    default: break;
  }
  if (*s == 'b' || *s == 'B') ++s;
  return *s == '\0' ? v : fallback;
}

bool EnvFlag(const char* name) {
  const char* s = getenv(name);
  return s != nullptr && *s != '\0' && *s != '0';
}

}  // namespace

std::uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t RecordTimeNs() { return RecordTimeNsInline(); }

std::uint64_t WindowStartNs() {
  const std::uint64_t now = NowNs();
  // Windows start in increasing order (a later one never lowers the floor).
  std::uint64_t floor = g_window_floor.load(std::memory_order_relaxed);
  while (floor < now &&
         !g_window_floor.compare_exchange_weak(floor, now, std::memory_order_release, std::memory_order_relaxed)) {
  }
  return now;
}

// --- The one-time init ------------------------------------------------------
//
// A StagedInit (internal/staged_init.h), run as the engine's process init's
// last step (StrataTrackingInit below) or by a call into this layer, which
// runs the engine's init first. Steps: the fork handlers (registered once:
// glibc's list is inherited, g_fork_handlers says whether they are in it),
// then the install (hooks, error describer, settings from the environment:
// stores a fork child redoes). A fork child whose parent was inside it on
// another thread takes it over at its step; it runs with the thread's
// signals blocked.

namespace {

constexpr int kStepForkHandlers = 0;
constexpr int kStepInstall = 1;

constinit internal::ForkHandlerSet g_fork_handlers{internal::kTrackingForkHandlers};
constinit std::atomic<void (*)(TrackingInitPoint)> g_init_observer{nullptr};

void ObserveInit(TrackingInitPoint point) {
  void (*fn)(TrackingInitPoint) = g_init_observer.load(std::memory_order_acquire);
  if (STRATA_PREDICT_FALSE(fn != nullptr)) fn(point);
}

// This layer's locks across fork: registered after the engine's handlers
// (its init runs after the engine's), so (prepare handlers running in
// reverse order) the live table's free-list lock is taken before the
// engine's locks. Once per fork even when registered twice
// (internal/fork_handler_set.h).
void TrackingForkPrepare() {
  if (g_fork_handlers.EnterPrepare()) LiveTableForkPrepare();
}
void TrackingForkParent() {
  if (g_fork_handlers.Leave()) LiveTableForkParent();
}
void TrackingForkChild() {
  if (!g_fork_handlers.Leave()) return;
  LiveTableForkChild();
  PeakForkChild();
}

void RunTrackingInit(std::uint64_t pid, int step);
constinit internal::StagedInit g_init{&RunTrackingInit};

void RunTrackingInit(std::uint64_t pid, int step) {
  if (step == kStepForkHandlers) {
    ObserveInit(TrackingInitPoint::kForkHandlers);
    if (!g_fork_handlers.registered()) {
      pthread_atfork(&TrackingForkPrepare, &TrackingForkParent, &TrackingForkChild);
      ObserveInit(TrackingInitPoint::kForkHandlersRegistered);
      g_fork_handlers.MarkRegistered();
    }
    g_init.Reached(pid, kStepInstall);
  }
  ObserveInit(TrackingInitPoint::kInstall);
  // Nothing here may allocate through the engine: on a thread whose cache
  // is already initialised, the SetSampleRate/SetTrackAll below would reset
  // its sample countdown (hooks.cc RefreshCallingThread), which in hardened
  // mode must stay pinned.
  internal::SetErrorDescriber(&DescribeBlock);
  internal::SetErrorStackPrinter(&PrintErrorStack);
  internal::InstallTrackingHooks(&g_hooks);
  internal::SetSampleRate(ParseBytes(getenv("STRATA_SAMPLE_RATE"), kDefaultSampleRate));
  if (EnvFlag("STRATA_LEAKCHECK")) internal::SetTrackAll(true);
}

}  // namespace

void EnsureTrackingInstalled() {
  if (STRATA_PREDICT_TRUE(g_init.Done())) return;
  // The engine's init first (its fork handlers before this layer's); its
  // last step runs this init, so this thread either runs it there or
  // finds it done (or, on the thread running it, reentered, returns).
  internal::EnsureProcessInit();
  g_init.Ensure();
}

void SetTrackingInitObserverForTesting(void (*fn)(TrackingInitPoint point)) {
  g_init_observer.store(fn, std::memory_order_release);
}

std::uint64_t TrackingForkPrepareRuns() { return g_fork_handlers.prepare_runs(); }

void SetSampleRate(std::int64_t bytes) {
  EnsureTrackingInstalled();
  internal::SetSampleRate(bytes);
}
std::int64_t SampleRate() { return internal::SampleRate(); }
void SetTrackAll(bool on) {
  EnsureTrackingInstalled();
  internal::SetTrackAll(on);
}
bool TrackAll() { return internal::TrackAll(); }

namespace {
struct LiveTableVisit {
  void (*fn)(const LiveInfo& info, void* arg);
  void* arg;
};

// A named function, not a lambda: it stays in the tracking layer's code
// (the peak tracker's snapshots walk in sampling mode too;
// alloc/libstrata_order.txt).
void VisitLiveTableRecord(LiveRecord& r, void* v) {
  auto* visit = static_cast<LiveTableVisit*>(v);
  visit->fn(SnapshotRecord(r), visit->arg);
}
}  // namespace

void ForEachLive(void (*fn)(const LiveInfo& info, void* arg), void* arg) {
  ForEachBlockRecord(fn, arg);
  ForEachSampledRecord(fn, arg);
  LiveTableVisit visit{fn, arg};
  GlobalLiveTable().ForEach(&VisitLiveTableRecord, &visit);
}

bool FindLive(std::uintptr_t ptr, LiveInfo* out) {
  const internal::BlockInfo block = internal::LookupBlock(ptr);
  if (block.kind == internal::BlockKind::kTrackedSmall) {
    const BlockRecord* r = block.start == ptr ? FindBlockRecord(ptr, block.size_class) : nullptr;
    if (r == nullptr) return false;
    const std::uint32_t state = r->state.load(std::memory_order_acquire);
    if (!StateLive(state)) return false;
    *out = BlockRecordInfo(*r, ptr, state);
    return true;
  }
  // A sampled block kept in place, or a sampled large or huge block.
  if (block.kind != internal::BlockKind::kNone && block.start == ptr && FindSampledLive(ptr, out)) return true;
  return GlobalLiveTable().Find(ptr, out);
}

std::size_t LiveCount() {
  FlushThreadCounts(tls_thread_counts);
  const std::int64_t small = g_counters.Sum(kLiveSmall);
  return GlobalLiveTable().size() + (small > 0 ? static_cast<std::size_t>(small) : 0);
}

void FlushThreadSiteCounts() { FlushAllSlots(tls_sites); }

TrackerCounters Counters() {
  FlushThreadCounts(tls_thread_counts);
  return {static_cast<std::uint64_t>(g_counters.Sum(kAllocs)), static_cast<std::uint64_t>(g_counters.Sum(kFrees)),
          static_cast<std::uint64_t>(g_counters.Sum(kRecordFailures))};
}

}  // namespace strata::tracking

// Called by the engine's process init when this layer is linked in.
extern "C" void StrataTrackingInit() { strata::tracking::EnsureTrackingInstalled(); }
