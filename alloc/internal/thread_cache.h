// alloc/internal/thread_cache.h: the per-thread cache and the fast paths.
//
// Each thread has one ThreadCache in static TLS (constinit, initial-exec):
// per size class a list of free blocks, kept as a stack of their addresses
// in an array of the thread's (cache_slots.h says why an array and not a
// chain through the blocks: the cache never touches a block's memory).
// Allocation pops, free pushes; everything else leaves through one
// predicted-false branch into a noinline slow path (thread_cache.cc):
//
//   Allocate(size) -- size <= kMaxSmallSize, list non-empty, sample
//                     countdown not crossed --> pop            (fast)
//                  `-> AllocateSlow: init, sampling, refill from the
//                      central pool, large/huge blocks         (slow)
//   Free(ptr)      -- class map says small, list below its max --> push
//                  `-> FreeSlow: overflow to the central pool, large and
//                      huge blocks, invalid pointers, dead threads
//
// The fast paths, instruction by instruction (x86-64, libstrata.so; with
// the caller's loop and PLT jumps a malloc/free pair is 47 instructions,
// bench/RESULTS.md "Instructions per malloc/free pair"):
//   malloc (18): size <= 1 KiB (2); the TLS base and offset, and the
//     list's byte offset from the thread's table (3: SmallListOffset, no
//     shift); the list's address (2); sample countdown charged in memory
//     and its sign tested (2); top, compared with base (3); the block below
//     top (1); the next block's address and its prefetch for writing (2,
//     see Prefetch); allocation count (1); top moved down in memory (1:
//     DropTop); return.
//   free (17): slice index and compare with the flat class map's bound
//     (5: page_map.h); the class, one byte (2); the list's address (3);
//     top, compared with limit (3); the block stored at top, top stored
//     back (3); return.
// Prefetch: malloc starts the line of the block the next malloc of the
// class will return (the address below the one it pops) coming, for
// writing (PREFETCHW). A program writes a block it just allocated, and
// that block's line is often in another core's cache: a producer/consumer
// hand-off gives the producer blocks its consumer read moments ago. The
// write then waits for the line; prefetched one allocation ahead, it
// arrives (owned, not shared: a read prefetch would make the write fetch
// it again) while the program works on the block before. The fast path
// still never touches a cached block: a prefetch reads nothing. Measured
// in bench/RESULTS.md, "Prefetching the next block".
// A countdown miss gives the charge back before the slow path, which reads
// the class (or the class map entry) again, so no register has to keep it
// across the fast path.
//
// The slow paths move blocks between a list and the central pools as
// copies of addresses: a refill has the pool write a batch's addresses
// straight into the empty array (CentralPool::RemoveForCache); an
// overflow hands the newest batch of the array to the pool
// (ReleaseFromList -> CentralPool::InsertBatch), which keeps it as
// addresses in its first tier. Neither reads nor writes the blocks.
//
// Lazy init costs the fast path nothing: a zero-initialised cache has
// empty lists (allocation misses) and max_length 0 (free misses), exactly
// like a sentinel; the slow path initialises. The sample countdown
// (bytes_until_sample) is how sampling and full tracking reach the slow
// path without a flag test on the fast path: making it negative routes
// every allocation there; max_length 0 does the same for frees.
//
// Cross-thread frees. Default build: a cross-thread free goes into the
// freeing thread's cache (as tcmalloc): a free is always a local push with
// no atomic, and producer/consumer programs move blocks back in whole
// batches of addresses through the central pool's lock-free transfer stack
// (two CASes per batch). The blocks' lines move between cores only when
// the program touches them: the producer writes a block the consumer read
// (one transfer per block; a chain would add the link's read and write).
//
// Build with owner frees (--config=owner_frees, remote_free.h): a free goes
// back to the block's owner. The class map entry of a block's slice names
// the thread its span's objects were last handed to, and the free fast path
// pushes only blocks that are the calling thread's (one XOR of the entry
// with the thread's tag yields the class, or a value past every class for
// another owner's block). A remote free leaves through the same
// predicted-false branch, joins a per-class batch for its owner, and the
// batch is posted to the owner's inbox with one CAS; the owner splices its
// inbox into its lists on its next allocation slow path:
//
//   Free(ptr) -- entry ^ tag is a class, list below its max --> push (fast)
//             `-> FreeSlowPreservingErrno / DeleteSizedSlow:
//                   open batch for that owner with room --> append
//                                                 (TryRemoteAppend, no atomic)
//                 `-> FreeSlow: owner live and not me --> RemoteFree:
//                       new batch, or full --> PostRemoteBatch (one CAS)
//                     owner me or none --> push here (ListTooLong on overflow)
//                     owner exited (post fails) --> AdoptBatch: keep the
//                       blocks here, CAS their slices' owner to me
//   Allocate miss -- AllocateSlow --> DrainInbox (one exchange; each
//                    message's blocks pushed onto its class's list: a
//                    walk of its chain, which the posting thread linked)
//                                 `-> list still empty: Refill (central)
//
// Measured on this project's workloads (bench/RESULTS.md, "Owner-returned
// frees"), the hand-off cost more time and memory than the default, and
// its owner test costs the free fast path two instructions: hence a build
// option, off by default.

// Capacity adapts per class: a list that runs dry or overflows in slow
// start doubles its max_length up to a batch (an overflow there hands back
// the newest half of the list, not all of it), a list past slow start that
// runs dry grows by batches and one that keeps overflowing shrinks, and
// lists idle across a scan (no allocation served, no refill, no overflow)
// are halved, all within the thread's share of the process-wide budget
// (ThreadCacheBound).
//
// Hardened mode (hardening.h) reuses the same lists with max_length 0 and
// bytes_until_sample pinned below -kMaxSmallSize, so that both fast paths
// always miss: the fast paths have no hardened-mode test. (Its slow path
// keeps up to two batches in a list, above max_length: the free fast
// path's unsigned top < limit test misses there too.) The allocation
// kind (AllocKind) is passed down as a compile-time constant that only the
// slow-path calls materialise.
//
// Process init (EnsureProcessInit, once, on the first thread to reach a
// slow path; the others wait): the mode and settings from the environment,
// then the fork handlers (engine_lock.h), then the tracking layer's own
// one-time init when that layer is linked in. A StagedInit
// (staged_init.h): its state names the process running it and the step
// reached, so a fork child whose parent was inside it on another thread (a
// thread the child does not have: a fork from a signal handler, or one
// racing the first allocation) takes it over at that step instead of
// waiting forever; it runs with its thread's signals blocked.
//
// Thread-safety: a ThreadCache is written only by its thread. Statistics
// readers (GetStats) read a list's `top`, `base` and `allocs` of other
// threads with relaxed atomic loads, which is why the owner writes those
// fields with relaxed atomic stores (plain moves on x86-64); the slots
// themselves are the owner's alone. Readers walk the registry of
// live caches under its lock, and a thread unregisters before its TLS dies.
#ifndef STRATA_ALLOC_INTERNAL_THREAD_CACHE_H_
#define STRATA_ALLOC_INTERNAL_THREAD_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/internal/cache_slots.h"
#include "alloc/internal/hardening.h"
#include "alloc/internal/page_map.h"
#include "alloc/internal/remote_free.h"
#include "alloc/internal/size_classes.h"
#include "alloc/internal/span.h"
#include "concurrency/base/macros.h"
#include "concurrency/base/thread_exit.h"

namespace strata::internal {

// The owner's writes of fields that statistics readers sample. Under
// ThreadSanitizer they are relaxed atomic stores, so the (intended,
// approximate) cross-thread reads are race-free by the letter; elsewhere a
// plain store, which on x86-64 is the same instruction but lets the
// compiler keep the TLS address in a register on the fast path.
template <typename T>
STRATA_ALWAYS_INLINE void RelaxedStore(T& field, T value) {
#if defined(STRATA_TSAN)
  std::atomic_ref<T>(field).store(value, std::memory_order_relaxed);
#else
  field = value;
#endif
}
template <typename T>
STRATA_ALWAYS_INLINE T RelaxedLoad(T& field) {
  return std::atomic_ref<T>(field).load(std::memory_order_relaxed);
}

// 32 bytes: a list never straddles two cache lines, and the fast paths
// index the array with a shift (or, for malloc, by a byte offset from
// SmallListLookup).
//
// A list is a stack of block addresses in the thread's slot region
// (cache_slots.h): [base, top) holds the cached blocks, the newest at
// top - 1; limit = base + max_length. The allocation fast path pops when
// top != base, the free fast path pushes when top < limit (an unsigned
// compare: a list above its bound, as hardened mode keeps, misses too).
// A zero-initialised list (a thread not yet initialised) has all three
// null: both fast paths miss. Read and write the length and the bound
// through ListLength, MaxLength and SetMaxLength.
struct alignas(32) FreeList {
  void** top;
  void** limit;
  void** base;
  std::uint64_t allocs;  // cumulative allocations served to this thread
};
static_assert(sizeof(FreeList) == 32);

// Byte offsets of the lists of every request size up to kSmallLookupMax
// (ThreadCache::small_lists): SmallClassLookup's classes times
// sizeof(FreeList).
struct SmallListLookup {
  std::uint16_t offset[kSmallLookupMax + 1];
};
constexpr SmallListLookup ComputeSmallListLookup() {
  SmallListLookup l{};
  for (std::size_t n = 0; n <= kSmallLookupMax; ++n) {
    l.offset[n] = static_cast<std::uint16_t>(kSizeClassTable.small.cls[n] * sizeof(FreeList));
  }
  return l;
}
inline constexpr SmallListLookup kSmallListLookup = ComputeSmallListLookup();
static_assert(kNumClasses * sizeof(FreeList) <= 0xffff);

// The owner's pop of `list`'s top slot, as RelaxedStore(list.top,
// list.top - 1) does, but with one read-modify-write instruction on
// x86-64 where the compiler would subtract in a register and store that
// back: one instruction less on the malloc fast path. (The free fast path
// keeps its plain store: there the compiler computes the list's address a
// second time for an asm operand.) Sanitizer builds take the plain store,
// which they instrument. The "memory" clobber: the fast path calls it
// last, before it returns.
STRATA_ALWAYS_INLINE void DropTop(FreeList& list) {
#if defined(__x86_64__) && !defined(STRATA_TSAN) && !defined(STRATA_ASAN)
  static_assert(offsetof(FreeList, top) == 0);
  asm volatile("subq %1, (%0)" : : "r"(&list), "i"(sizeof(void*)) : "memory");
#else
  RelaxedStore(list.top, list.top - 1);
#endif
}

// The length of `list`: exact for its thread, a relaxed estimate for
// another.
STRATA_ALWAYS_INLINE std::uint32_t ListLength(FreeList& list) {
  void** const base = RelaxedLoad(list.base);
  void** const top = RelaxedLoad(list.top);
  return top > base ? static_cast<std::uint32_t>(top - base) : 0u;
}
STRATA_ALWAYS_INLINE std::uint32_t MaxLength(const FreeList& list) {
  return static_cast<std::uint32_t>(list.limit - list.base);
}
// Changes the bound (the caller keeps it below the list's ListCapacity),
// keeping the length.
STRATA_ALWAYS_INLINE void SetMaxLength(FreeList& list, std::uint32_t max_length) {
  list.limit = list.base + max_length;
}
// The pushes the list still takes before it is too long (negative: over).
STRATA_ALWAYS_INLINE std::int64_t ListRoom(const FreeList& list) { return list.limit - list.top; }

enum class CacheState : std::uint8_t { kUninitialized = 0, kActive, kDead };

// Free 4608-byte blocks a thread keeps for the heap profiler's samples of
// that class (sampled_slices::kSmallSampleClass: mostly requests of up to
// 4 KiB), apart from its list of the class: a sample takes its block from
// here (else one from the central pool) and its free gives it back here
// (else to the central pool). Through the
// list, samples made it refill and overflow, and so grow, charging the
// growth to the thread's byte bound (kMaxThreadCacheBytes), which every
// list shares and which mstress's lists keep at its limit: the small
// classes' lists then grew less, and moved 7% more blocks to and from the
// central pools (bench/RESULTS.md, "Sampling cost"). At most 18 KiB a
// thread, outside that bound (as the tracked caches' sampled blocks,
// tracked_cache.h); counted as cached in the statistics.
inline constexpr std::uint32_t kSampleBlocks = 4;

struct ThreadCache {
  FreeList lists[kNumClasses];
  std::int64_t bytes_until_sample;
  // owner_slot << kOwnerShift: a class map entry XOR this is the block's
  // class exactly when the block is this thread's (page_map.h).
  std::uint32_t owner_tag;
  std::uint32_t owner_slot;  // remote_free.h; 0: none
  CacheState state;
  std::uint64_t sample_rng;
  // Remote frees not yet posted, and the per-class sent/received counts.
  // Only a build with owner frees has them (one unused entry otherwise:
  // 3 KiB less TLS per thread); every use is under kOwnerFreesBuilt.
  RemoteBatch remote[kOwnerFreesBuilt ? kNumClasses : 1];
  // Slow-path bookkeeping.
  // Overflows of a list past slow start (ListTooLong); while its
  // max_length is 0, the frees sent back uncached (kForeignFreesUncached).
  std::uint8_t overages[kNumClasses];
  std::uint8_t activity[kNumClasses];
  // Low 32 bits of lists[c].allocs at the last idle scan: a list whose
  // allocations moved is in use even when it never refilled or overflowed
  // (a list in equilibrium within its max_length).
  std::uint32_t scan_allocs[kNumClasses];
  std::size_t capacity_bytes;
  // The lists' arrays (cache_slots.h); null before the thread's init, after
  // its exit, or while the OS refuses the memory.
  void** slot_region;
  std::uint32_t slow_ops;
  // Hardened mode: the sample countdown (bytes_until_sample stays pinned at
  // kHardenedCountdown).
  std::int64_t hardened_countdown;
  // The verified readable range of this thread's stack, [stack_lo,
  // stack_hi) (CaptureStack's bound; 0 until the thread's first walk).
  std::uintptr_t stack_lo;
  std::uintptr_t stack_hi;
  ThreadCache* registry_next;
  ThreadCache* registry_prev;
  bool in_registry;  // linked in the registry (under its lock)
  ThreadExitHook exit_hook;
  // Free blocks of sampled_slices::kSmallSampleClass that sampled blocks
  // were (sample_blocks[0, sample_block_count)): the heap profiler's
  // samples of that class take their blocks here and give them back here,
  // never through lists[kSmallSampleClass] (see kSampleBlocks).
  std::uint32_t sample_block_count;
  void* sample_blocks[kSampleBlocks];
  // The size-class table for requests up to kSmallLookupMax, as the byte
  // offset of each size's list in `lists` (class * sizeof(FreeList):
  // SmallListOffset), in the thread's static TLS image: the allocation
  // fast path addresses it from the TLS offset it loads anyway, with no
  // separate table address (a shared object would need one instruction
  // for it), and adds the entry to the cache's address with no shift (one
  // instruction fewer than a class index). Read-only; 2 KiB per thread,
  // copied by the thread library at thread start.
  SmallListLookup small_lists = kSmallListLookup;
};

extern constinit thread_local ThreadCache tls_cache STRATA_INITIAL_EXEC;

// Per-thread byte bound on the sum of max_length * size over all lists
// (the blocks; their slots, 8 bytes a block, come on top: cache_slots.h),
// shared out of a process-wide budget: each thread may grow its lists to
// kTotalThreadCacheBytes / (threads with a cache), within
// [kMinThreadCacheBytes, kMaxThreadCacheBytes] (ThreadCacheBound). A
// thread that sits idle keeps what its lists hold (only its own slow path
// touches them); the budget bounds what many such threads can strand: each
// keeps at most the share it had when it last grew (threads that grew
// while few others existed took bigger shares). A thread over its share
// (threads started since it grew) gives the excess back at its next idle
// scan.
inline constexpr std::size_t kMaxThreadCacheBytes = std::size_t{2} << 20;
inline constexpr std::size_t kMinThreadCacheBytes = std::size_t{256} << 10;
inline constexpr std::size_t kTotalThreadCacheBytes = std::size_t{16} << 20;
// Blocks of a class a thread frees before it has allocated from that class
// that go back to the central pool rather than into its list.
inline constexpr std::uint8_t kForeignFreesUncached = 16;
// Per-list byte bound on max_length * size (a list always keeps at least
// one object), by class size:
//  - classes up to kSmallListClassBytes: kMaxSmallListBytes. A thread that
//    builds and tears down a working set of small objects (containers,
//    strings, tree nodes) keeps it in its own list, up to the thread
//    bound, instead of handing the overflow of each teardown to the central
//    pool, where other threads pick it up: objects then stay with the thread
//    that touched them last (no lines moving between cores, a smaller set
//    of pages per thread).
//  - bigger classes: kMaxListBytes. There a few objects are a lot of
//    memory: frees go back to the central pool (and empty spans to the
//    page heap, where they coalesce and serve other sizes) instead of
//    parking up to the whole thread bound in one class.
// (kMaxListLength, kSmallListClassBytes, kMaxSmallListBytes, kMaxListBytes
// and ListByteBound are in cache_slots.h, which sizes the lists' arrays by
// them.)
// A scan for idle lists every this many slow-path operations.
inline constexpr std::uint32_t kIdleScanInterval = 1024;
// bytes_until_sample in hardened mode: no request can make it non-negative.
inline constexpr std::int64_t kHardenedCountdown = INT64_MIN / 2;

STRATA_NOINLINE void* AllocateSlow(std::size_t size, std::size_t alignment, int size_class,
                                   AllocKind kind = AllocKind::kMalloc);
// `size_class`: the class map's class for ptr (0: not a small block).
STRATA_NOINLINE void FreeSlow(void* ptr, int size_class, AllocKind kind = AllocKind::kMalloc);
// A zeroed block of more than kMaxSmallSize bytes; memory fresh from the OS
// is not cleared again.
void* AllocateZeroedLarge(std::size_t size);

// The byte offset of class `size_class`'s list in ThreadCache::lists.
// Unsigned: the class is never negative, and an int index costs a sign
// extension.
STRATA_ALWAYS_INLINE std::size_t ListOffset(int size_class) {
  return static_cast<std::size_t>(static_cast<std::uint32_t>(size_class)) * sizeof(FreeList);
}

// The list at byte offset `list_offset` in tc.lists (ListOffset,
// SmallListOffset).
STRATA_ALWAYS_INLINE FreeList& ListAt(ThreadCache& tc, std::size_t list_offset) {
  return *reinterpret_cast<FreeList*>(reinterpret_cast<char*>(tc.lists) + list_offset);
}

// Pops a block of class `size_class` for a request of `size` bytes from the
// calling thread's list, or returns nullptr when the fast path misses
// (empty list, sample countdown crossed, tracking, hardened mode, first
// use): the caller then takes a slow path. Class 0 (no class: a large
// request) always misses: nothing is ever pushed on lists[0].
//
// TryPopSmallAt takes the list's byte offset in ThreadCache::lists
// (ListOffset(size_class), or SmallListOffset(size) from the thread's
// table with no shift).
STRATA_ALWAYS_INLINE void* TryPopSmallAt(std::size_t size, std::size_t list_offset) {
  ThreadCache& tc = tls_cache;
  FreeList& list = ListAt(tc, list_offset);
  // The countdown is charged first, in memory, and its sign tested (two
  // instructions); a miss gives the charge back, so the slow path sees
  // the countdown as it was. Unsigned arithmetic: a request near SIZE_MAX
  // (refused on the slow path) wraps and comes back exactly, with no
  // signed overflow.
  tc.bytes_until_sample = static_cast<std::int64_t>(static_cast<std::uint64_t>(tc.bytes_until_sample) - size);
  if (STRATA_PREDICT_TRUE(tc.bytes_until_sample >= 0)) {
    void** const top = list.top;
    if (STRATA_PREDICT_TRUE(top != list.base)) {
      void* object = top[-1];
      // A list holds blocks, never null: the caller's miss test folds away.
      if (object == nullptr) __builtin_unreachable();
      // The next allocation's block starts coming, owned (see Prefetch
      // above). Below base lies another list's slot or the region's
      // header (cache_slots.h): readable, and a stale address is harmless
      // to prefetch.
      STRATA_PREFETCH_FOR_WRITE(top[-2]);
      RelaxedStore(list.allocs, list.allocs + 1);
      DropTop(list);
      return object;
    }
  }
  STRATA_COMPILER_BARRIER();
  tc.bytes_until_sample = static_cast<std::int64_t>(static_cast<std::uint64_t>(tc.bytes_until_sample) + size);
  return nullptr;
}

STRATA_ALWAYS_INLINE void* TryPopSmall(std::size_t size, int size_class) {
  return TryPopSmallAt(size, ListOffset(size_class));
}

// Pops a block for a request of `size` bytes from the list at byte offset
// `list_offset` (ListOffset, SmallListOffset), or takes the slow path.
STRATA_ALWAYS_INLINE void* AllocateSmallAt(std::size_t size, std::size_t alignment, std::size_t list_offset,
                                           AllocKind kind = AllocKind::kMalloc) {
  void* object = TryPopSmallAt(size, list_offset);
  if (STRATA_PREDICT_TRUE(object != nullptr)) return object;
  return AllocateSlow(size, alignment, static_cast<int>(list_offset / sizeof(FreeList)), kind);
}

// Pops a block of class `size_class` for a request of `size` bytes.
STRATA_ALWAYS_INLINE void* AllocateSmall(std::size_t size, std::size_t alignment, int size_class,
                                         AllocKind kind = AllocKind::kMalloc) {
  return AllocateSmallAt(size, alignment, ListOffset(size_class), kind);
}

// ListOffset(SizeToClass(size)) for size <= kSmallLookupMax, from the
// thread's table.
STRATA_ALWAYS_INLINE std::size_t SmallListOffset(std::size_t size) { return tls_cache.small_lists.offset[size]; }

STRATA_ALWAYS_INLINE void* AllocateFast(std::size_t size, AllocKind kind = AllocKind::kMalloc) {
  if (STRATA_PREDICT_TRUE(size <= kSmallLookupMax)) return AllocateSmallAt(size, 0, SmallListOffset(size), kind);
  if (STRATA_PREDICT_TRUE(size <= kMaxSmallSize)) return AllocateSmall(size, 0, SizeToClass(size), kind);
  return AllocateSlow(size, 0, 0, kind);
}

// The class of a block whose class map entry is `entry` when the block is
// the calling thread's (a value for which IsLocalClass holds), else a value
// for which it does not (another owner's block). The entry is the value
// XOR the thread's tag again (EntryFromLocal), so a slow path can take the
// value alone.
// A build without owner frees (the default, kOwnerFreesBuilt false) has no
// owners in the class map: the value is the entry, and the fast path is
// the same instructions as before owners existed.
STRATA_ALWAYS_INLINE SliceEntry LocalClass(SliceEntry entry) {
  if constexpr (kOwnerFreesBuilt) return entry ^ tls_cache.owner_tag;
  return entry;
}
STRATA_ALWAYS_INLINE SliceEntry EntryFromLocal(SliceEntry local) {
  if constexpr (kOwnerFreesBuilt) return local ^ tls_cache.owner_tag;
  return local;
}
// Class 0 passes: its list never has room (lists[0] stays all null),
// so a push of it misses like any non-block. A default build has no test
// at all: its class map holds classes only (page_map.h SliceCell), so
// every entry is a class of this thread's.
STRATA_ALWAYS_INLINE bool IsLocalClass(SliceEntry c) {
  if constexpr (!kOwnerFreesBuilt) return true;
  return c < static_cast<SliceEntry>(kNumClasses);
}

// Pushes `ptr`, a block of the calling thread's of class `c` (IsLocalClass),
// when the class's list has room.
STRATA_ALWAYS_INLINE bool TryCachePush(void* ptr, SliceEntry c) {
  FreeList& list = tls_cache.lists[c];
  void** const top = list.top;
  if (STRATA_PREDICT_TRUE(top < list.limit)) {
    *top = ptr;
    RelaxedStore(list.top, top + 1);
    return true;
  }
  return false;
}

// Pushes `ptr` when its entry says it is the calling thread's small block
// and its list has room. False: the caller's slow path decides (remote
// free, overflow, large block, invalid pointer).
STRATA_ALWAYS_INLINE bool TryCacheFree(void* ptr, SliceEntry entry) {
  const SliceEntry c = LocalClass(entry);
  return STRATA_PREDICT_TRUE(IsLocalClass(c)) && TryCachePush(ptr, c);
}

// Pushes an over-aligned free (`alignment` above 16; `size` the claimed
// size, or kNoSize for an unsized free) when the block is a small block
// of the calling thread's whose class serves that alignment and size
// (AlignedFreeMatches) and its list has room. False: the caller's checked
// slow path decides.
STRATA_ALWAYS_INLINE bool TryAlignedCacheFree(void* ptr, std::size_t size, std::size_t alignment) {
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  const SliceEntry c = LocalClass(g_class_map.GetEntry(addr));
  const int size_class = static_cast<int>(c);
  return IsLocalClass(c) && (alignment & (alignment - 1)) == 0 &&
         (size == kNoSize ? AlignedFreeMatches(size_class, addr, alignment)
                          : AlignedSizedFreeMatches(size_class, addr, size, alignment)) &&
         TryCachePush(ptr, c);
}

// Appends `ptr`, a block of another live thread's per its class map entry,
// to the calling thread's open remote batch for that owner and class when
// the batch has room for it without filling (remote_free.h). False: the
// slow path decides (a new or full batch, no owner, this thread's own
// block, an uninitialised or exiting thread). Never true in hardened mode:
// only refills of normal mode name owners in the class map.
STRATA_ALWAYS_INLINE bool TryRemoteAppend(void* ptr, SliceEntry entry) {
  if constexpr (!kOwnerFreesBuilt) return false;
  ThreadCache& tc = tls_cache;
  const int c = EntryClass(entry);
  RemoteBatch& b = tc.remote[c];
  // An open batch (count >= 1) names an owner other than this thread.
  if (b.owner == EntryOwner(entry) && b.count != 0 && b.count + 1 < RemoteBatchLimit(c) && ptr != b.head) {
    StoreLink(ptr, b.head);
    b.head = static_cast<FreeObject*>(ptr);
    RelaxedStore(b.count, b.count + 1);
    RelaxedStore(b.sent, b.sent + 1);
    return true;
  }
  return false;
}

STRATA_ALWAYS_INLINE void FreeFast(void* ptr, AllocKind kind = AllocKind::kMalloc) {
  const SliceEntry local = LocalClass(g_class_map.GetEntry(reinterpret_cast<std::uintptr_t>(ptr)));
  if (STRATA_PREDICT_TRUE(IsLocalClass(local) && TryCachePush(ptr, local))) return;
  FreeSlow(ptr, EntryClass(EntryFromLocal(local)), kind);
}

// Returns every cached object of the calling thread to the central pools
// (posting its remote batches first, and giving back its inbox).
void FlushCurrentThread();

// The calling thread's current capacity bound (see kTotalThreadCacheBytes).
std::size_t ThreadCacheBound();

// Registry of live thread caches, for statistics. `fn` runs under the
// registry lock for each live cache (must not allocate or take engine
// locks).
void ForEachThreadCache(void (*fn)(const ThreadCache& cache, void* arg), void* arg);

// Totals left behind by exited threads (allocation counts per class).
std::uint64_t ExitedAllocations(int size_class);

// One-time process init (env, fork handlers); idempotent and cheap (one
// acquire load once done). A fork child whose parent was inside the init
// on another thread finishes it (thread_cache.cc, "Process init"). Every
// entry point that reads the mode or takes an engine lock without
// allocating first calls it (GetStats, ReleaseMemory, FlushThreadCache,
// Owns, UsableSize, GoodSize, Reallocate, the monitor's limit checks): it
// may be a program's first call into strata, and engine locks must not be
// taken before their fork handlers are registered.
void EnsureProcessInit();

// For tests: where the process init stands when the observer is called,
// on the thread running it (in a fork child that took the init over, on
// that child's thread).
enum class ProcessInitPoint {
  kSettings,                // before reading the environment (the mode, ...)
  kForkHandlers,            // settings done, the fork handlers next
  kForkHandlersRegistered,  // pthread_atfork returned (this run registered them)
};
// Installs `fn` (nullptr: none), called at each point above. Set it before
// the process's first allocation; it must not allocate through strata.
void SetProcessInitObserverForTesting(void (*fn)(ProcessInitPoint point));
// How many times the engine's fork prepare handler ran in this process
// (its children inherit the count): one per fork once the handlers are
// registered once.
std::uint64_t ForkPrepareRuns();

// The sample countdown for a fresh or reset thread (used by the profiler).
std::int64_t NextSampleCountdown();

// --- For the hardened slow paths (hardening.cc) -----------------------------

// The calling thread's cache, initialised (state kActive, or kDead while
// the thread exits).
ThreadCache& CurrentThreadCache();
// Hands `n` objects from the head of `list` to the central pool (checking
// that the chain is not cyclic, see hardening.h). `reuse_soon`: an
// overflow, whose objects a refill is likely to take back (a partial batch
// may then wait in the pool's first tier, see central_pool.h), not memory
// given back.
void ReleaseFromList(FreeList& list, int size_class, std::uint32_t n, bool reuse_soon = false);
// Counts an allocation served to a thread with no cache (exiting).
void CountCachelessAllocation(int size_class);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_THREAD_CACHE_H_
