#include "alloc/internal/thread_cache.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "alloc/internal/block_lookup.h"
#include "alloc/internal/cache_slots.h"
#include "alloc/internal/engine_lock.h"
#include "alloc/internal/errors.h"
#include "alloc/internal/globals.h"
#include "alloc/internal/hardening.h"
#include "alloc/internal/failure_injection.h"
#include "alloc/internal/fork_handler_set.h"
#include "alloc/internal/hooks.h"
#include "alloc/internal/near_duplicates.h"
#include "alloc/internal/remote_free.h"
#include "alloc/internal/sampled_slices.h"
#include "alloc/internal/staged_init.h"
#include "alloc/internal/tracked_cache.h"

namespace strata::internal {

constinit thread_local ThreadCache tls_cache STRATA_INITIAL_EXEC = {};
constinit thread_local char tls_lock_token STRATA_INITIAL_EXEC = 0;

namespace {

constinit EngineLock g_registry_lock;
constinit ThreadCache* g_registry_head = nullptr;
constinit std::atomic<std::uint64_t> g_exited_allocs[kNumClasses] = {};
// Caches in the registry (the share of kTotalThreadCacheBytes): written
// under the registry lock, read without it.
constinit std::atomic<std::uint32_t> g_active_caches{0};
// Process init (EnsureProcessInit; staged_init.h: a fork child whose
// parent was inside it on another thread takes it over at its step). The
// steps. Settings: the mode, the secret, the decay, owner frees (no block
// is handed out before they are done, so a child redoes the step from the
// start). Fork handlers: registered once (glibc's list of them is
// inherited), as g_fork_handlers tells. Layers above: the tracking layer's
// own one-time init (StrataTrackingInit), when it is linked in, which
// resumes where it stands in a child too.
constexpr int kStepSettings = 0;
constexpr int kStepForkHandlers = 1;
constexpr int kStepLayersAbove = 2;
void RunProcessInit(std::uint64_t pid, int step);
constinit StagedInit g_process_init{&RunProcessInit};
// The engine's fork handlers (engine_lock.h), registered by the init.
constinit ForkHandlerSet g_fork_handlers{kEngineForkHandlers};
constinit std::atomic<void (*)(ProcessInitPoint)> g_process_init_observer{nullptr};

// Fork child: the registry must forget the threads that do not exist
// there. ForkChild does it at once when the prepare handler took the
// registry lock; when the forking thread's interrupted frame holds it (a
// fork from a signal handler that interrupted a registry operation), the
// frame finishes first and the next holder of the lock does it.
constinit bool g_registry_reset_pending = false;
constinit ThreadCache* g_registry_fork_self = nullptr;

void ResetRegistryToForkingThread() STRATA_REQUIRES(g_registry_lock) {
  g_registry_reset_pending = false;
  ThreadCache* self = g_registry_fork_self;
  // in_registry, not the state: a handler may have interrupted InitThread
  // between setting the state and inserting the cache.
  if (self != nullptr && self->in_registry) {
    self->registry_next = self->registry_prev = nullptr;
    g_registry_head = self;
  } else {
    g_registry_head = nullptr;
  }
  // The other threads' owner slots close (what was posted to them is lost
  // to the child, as their caches are).
  if constexpr (kOwnerFreesBuilt) {
    ResetOwnerSlotsAfterFork(self != nullptr && self->in_registry ? self->owner_slot : 0);
  }
  // The count follows the registry (the other threads' caches are gone).
  g_active_caches.store(g_registry_head != nullptr ? 1 : 0, std::memory_order_relaxed);
}

class RegistryHolder {
 public:
  RegistryHolder() : h_(&g_registry_lock) {
    if (STRATA_PREDICT_FALSE(g_registry_reset_pending)) ResetRegistryToForkingThread();
  }

 private:
  EngineLockHolder h_;
};

void RegistryInsert(ThreadCache* tc) {
  RegistryHolder h;
  if constexpr (kOwnerFreesBuilt) {
    tc->owner_slot = AcquireOwnerSlot();
    tc->owner_tag = tc->owner_slot << kOwnerShift;
  }
  tc->in_registry = true;
  g_active_caches.fetch_add(1, std::memory_order_relaxed);
  tc->registry_prev = nullptr;
  tc->registry_next = g_registry_head;
  if (g_registry_head != nullptr) g_registry_head->registry_prev = tc;
  g_registry_head = tc;
}

// Returns the messages left in the thread's inbox (its slot is closed).
FreeObject* RegistryRemove(ThreadCache* tc) {
  RegistryHolder h;
  FreeObject* messages = nullptr;
  if constexpr (kOwnerFreesBuilt) {
    messages = ReleaseOwnerSlot(tc->owner_slot);
    tc->owner_slot = 0;
    tc->owner_tag = 0;
  }
  if (tc->registry_prev != nullptr) {
    tc->registry_prev->registry_next = tc->registry_next;
  } else if (g_registry_head == tc) {
    g_registry_head = tc->registry_next;
  }
  if (tc->registry_next != nullptr) tc->registry_next->registry_prev = tc->registry_prev;
  tc->registry_next = tc->registry_prev = nullptr;
  if (tc->in_registry) g_active_caches.fetch_sub(1, std::memory_order_relaxed);
  tc->in_registry = false;
  return messages;
}

}  // namespace

namespace {

// Drops the later copies of repeated addresses from objects[0, n) (a
// double free already reported) and returns how many remain.
std::uint32_t DropDuplicates(FreeObject** objects, std::uint32_t n) {
  std::uint32_t kept = 0;
  for (std::uint32_t i = 0; i < n; ++i) {
    bool seen = false;
    for (std::uint32_t j = 0; j < kept; ++j) seen |= objects[j] == objects[i];
    if (!seen) objects[kept++] = objects[i];
  }
  return kept;
}

// A batch with a block freed twice in it (HasNearDuplicate): reports the
// double free and hands the pool each block once. Rare: out of the
// engine's code window (libstrata_order.txt).
STRATA_NOINLINE void ReleaseWithDuplicates(int size_class, FreeObject** objects, std::uint32_t n) {
  FreeObject* const repeated = FindNearDuplicate(objects, n);
  const std::uint32_t kept = DropDuplicates(objects, n);
  g_central[size_class].InsertBatch(size_class, objects, static_cast<int>(kept), false);
  ReportError(ErrorKind::kDoubleFree, repeated, ClassSize(size_class));
}

}  // namespace

// Hands the `n` newest blocks of `list` to the central pool, a batch at a
// time.
void ReleaseFromList(FreeList& list, int size_class, std::uint32_t n, bool reuse_soon) {
  const std::uint32_t length = ListLength(list);
  if (n > length) n = length;
  const auto batch = static_cast<std::uint32_t>(ClassInfo(size_class).batch);
  while (n > 0) {
    const std::uint32_t take = n < batch ? n : batch;
    void** const from = list.top - take;
    auto** objects = reinterpret_cast<FreeObject**>(from);
    RelaxedStore(list.top, from);
    n -= take;
    if (STRATA_PREDICT_FALSE(HasNearDuplicate(objects, take))) {
      ReleaseWithDuplicates(size_class, objects, take);
      continue;
    }
    g_central[size_class].InsertBatch(size_class, objects, static_cast<int>(take), reuse_soon);
  }
}

namespace {

// Hands one free block of class c to its central pool.
void InsertOne(int c, void* block) {
  auto* object = static_cast<FreeObject*>(block);
  SetNext(object, nullptr);
  g_central[c].Insert(c, object, 1);
}

// Hands the thread's kept sample blocks (ThreadCache::sample_blocks) to
// the central pool.
void FlushSampleBlocks(ThreadCache& tc) {
  const std::uint32_t n = tc.sample_block_count;
  if (n == 0) return;
  constexpr int c = sampled_slices::kSmallSampleClass;
  for (std::uint32_t i = 0; i < n; ++i) InsertOne(c, tc.sample_blocks[i]);
  RelaxedStore(tc.sample_block_count, 0u);
}

void FlushAll(ThreadCache& tc) {
  FlushSampleBlocks(tc);
  for (int c = 1; c < kNumClasses; ++c) {
    FreeList& list = tc.lists[c];
    ReleaseFromList(list, c, ListLength(list));
  }
}

// The slots list c may fill: its near slots, or its far ones once it moved
// there (cache_slots.h).
std::uint32_t ListCapacity(const ThreadCache& tc, int c) {
  return tc.lists[c].base == tc.slot_region + NearSlotOffset(c) ? NearSlotCapacity(c) : FarSlotCapacity(c);
}

// Sets list c's max_length, first moving it to its far slots when its near
// ones have no room for that many and the push that overflows them.
void SetListBound(ThreadCache& tc, int c, std::uint32_t max_length) {
  FreeList& list = tc.lists[c];
  if (max_length + 1 > ListCapacity(tc, c)) {
    void** const far = tc.slot_region + FarSlotOffset(c);
    const std::uint32_t length = ListLength(list);
    std::memcpy(far, list.base, length * sizeof(void*));
    // Base first: a statistics reader in between sees an empty list, not
    // one of the distance between the two.
    RelaxedStore(list.base, far);
    RelaxedStore(list.top, far + length);
  }
  SetMaxLength(list, max_length);
}

// Pushes a drained or taken-back chain of `count` blocks of class `c` onto
// the thread's list (handing batches back first when its array is full).
void SpliceIntoList(ThreadCache& tc, int c, FreeObject* head, std::uint32_t count) {
  FreeList& list = tc.lists[c];
  RelaxedStore(tc.remote[c].received, tc.remote[c].received + count);
  if (list.base == nullptr) {  // no slot region: straight to the pool
    g_central[c].Insert(c, head, static_cast<int>(count));
    return;
  }
  void** const end = list.base + ListCapacity(tc, c);
  for (FreeObject* o = head; count > 0 && o != nullptr; --count) {
    if (list.top >= end) ReleaseFromList(list, c, static_cast<std::uint32_t>(ClassInfo(c).batch), true);
    FreeObject* next = GetNext(o);
    *list.top = o;
    RelaxedStore(list.top, list.top + 1);
    o = next;
  }
}

// Takes the thread's whole inbox and splices every message into its list
// (remote_free.h). True when something came.
bool DrainInbox(ThreadCache& tc) {
  const std::uint32_t slot = tc.owner_slot;
  if (slot == 0) return false;
  // A plain load first: the line is the posters' too, an exchange would
  // take it from them on every empty check.
  if (!IsMessage(g_owner_slots[slot].inbox.load(std::memory_order_relaxed))) return false;
  const std::int64_t bytes = ForEachMessage(TakeInbox(slot), [&tc](const RemoteMessage& m) {
    SpliceIntoList(tc, m.size_class, m.head, m.count);
    tc.activity[m.size_class] = 1;
  });
  NoteInboxTaken(slot, bytes);
  return bytes != 0;
}

// The owner of a batch the thread could not post has exited: the blocks
// stay here, and their slices become the thread's (a CAS per slice from
// the exited owner's entry, so a slice handed to another thread meanwhile
// keeps its new owner), so that their next frees take the fast path.
void AdoptBatch(ThreadCache& tc, int c, RemoteBatch& b) {
  const SliceEntry from = static_cast<SliceEntry>(c) | (b.owner << kOwnerShift);
  const SliceEntry to = static_cast<SliceEntry>(c) | tc.owner_tag;
  std::uintptr_t last_slice = 0;
  for (FreeObject* o = b.head; o != nullptr; o = GetNext(o)) {
    const std::uintptr_t slice = reinterpret_cast<std::uintptr_t>(o) >> kSliceShift;
    if (slice == last_slice) continue;
    last_slice = slice;
    g_class_map.CasEntry(reinterpret_cast<std::uintptr_t>(o), from, to);
  }
  SpliceIntoList(tc, c, b.head, b.count);
}

// Posts the thread's remote batch of class `c` to its owner (or keeps it,
// adopting its slices, when the owner has exited).
void PostBatch(ThreadCache& tc, int c) {
  RemoteBatch& b = tc.remote[c];
  if (b.count == 0) return;
  FreeObject* stolen = nullptr;
  if (!PostRemoteBatch(b, c, &stolen)) {
    AdoptBatch(tc, c, b);
  } else if (stolen != nullptr) {
    NoteInboxTaken(b.owner, ReturnMessagesToCentral(stolen, tc.remote));
  }
  b.head = b.tail = nullptr;
  RelaxedStore(b.count, 0u);
}

void PostAllBatches(ThreadCache& tc) {
  for (int c = 1; c < kNumClasses; ++c) PostBatch(tc, c);
}

// Whether the thread has allocated blocks of class `c` since its last idle
// scan (kIdleScanInterval slow-path operations): a thread that frees
// another's blocks of a class it also allocates keeps them (sending them
// back would only make it refill); one that only frees them (a consumer)
// returns them to their owner.
bool AllocatesRecently(const ThreadCache& tc, int c) {
  return static_cast<std::uint32_t>(RelaxedLoad(const_cast<ThreadCache&>(tc).lists[c].allocs)) != tc.scan_allocs[c];
}

// A free of a block owned by another thread (`owner`, not this one's slot).
void RemoteFree(ThreadCache& tc, FreeObject* object, int c, std::uint32_t owner) {
  RemoteBatch& b = tc.remote[c];
  if (b.count != 0 && b.owner != owner) PostBatch(tc, c);
  if (STRATA_PREDICT_FALSE(object == b.head)) {
    ReportError(ErrorKind::kDoubleFree, object, ClassSize(c));
    return;
  }
  SetNext(object, b.head);
  if (b.count == 0) b.tail = object;
  b.head = object;
  b.owner = owner;
  RelaxedStore(b.count, b.count + 1);
  RelaxedStore(b.sent, b.sent + 1);
  if (b.count >= RemoteBatchLimit(c)) PostBatch(tc, c);
}

void ThreadExit(void* arg) {
  auto* tc = static_cast<ThreadCache*>(arg);
  if (tc->state != CacheState::kActive) return;
  // Remote batches first (a batch whose owner exited comes back into a
  // list), then the inbox, closed at once so that no post can land in it
  // after this (its messages go to the central pools), then the lists.
  if constexpr (kOwnerFreesBuilt) PostAllBatches(*tc);
  FreeObject* left = RegistryRemove(tc);
  if constexpr (kOwnerFreesBuilt) ReturnMessagesToCentral(left, tc->remote);
  FlushAll(*tc);
  for (int c = 1; c < kNumClasses; ++c) {
    g_exited_allocs[c].fetch_add(tc->lists[c].allocs, std::memory_order_relaxed);
    tc->lists[c] = FreeList{};
    if constexpr (kOwnerFreesBuilt) {
      AddExitedRemoteCounts(c, tc->remote[c].sent, tc->remote[c].received);
      tc->remote[c] = RemoteBatch{};
    }
  }
  ReleaseSlotRegion(tc->slot_region);
  tc->slot_region = nullptr;
  tc->capacity_bytes = 0;
  tc->state = CacheState::kDead;
}

// Gives the thread's lists their arrays (cache_slots.h). False when the OS
// refused the memory: the lists stay null (both fast paths miss) and the
// slow paths serve the thread one block at a time until a later attempt
// succeeds.
bool AttachSlotRegion(ThreadCache& tc) {
  if (tc.slot_region != nullptr) return true;
  void** region = AcquireSlotRegion();
  if (region == nullptr) return false;
  tc.slot_region = region;
  for (int c = 1; c < kNumClasses; ++c) {
    FreeList& list = tc.lists[c];
    void** const base = region + NearSlotOffset(c);
    RelaxedStore(list.top, base);
    RelaxedStore(list.base, base);
    list.limit = base;  // max_length 0 (see InitThread)
  }
  return true;
}

void InitThread(ThreadCache& tc) {
  EnsureProcessInit();
  // The process init's pthread_atfork may allocate on this very thread,
  // which initialised the cache already (re-initialising it would insert
  // it in the registry twice).
  if (tc.state != CacheState::kUninitialized) return;
  const bool hardened = Hardened();
  for (int c = 1; c < kNumClasses; ++c) {
    // 0: the free fast path misses until the thread has allocated from the
    // class (normal mode: the first refill sets 1, which is free of the
    // byte bound; hardened mode: it stays 0, so the fast path always
    // misses). A block freed before that was allocated by another thread;
    // ListTooLong sends the first few back (see kForeignFreesUncached).
    tc.overages[c] = 0;
    tc.activity[c] = 0;
  }
  tc.capacity_bytes = 0;
  AttachSlotRegion(tc);  // may fail: see there
  if (hardened) {
    tc.bytes_until_sample = kHardenedCountdown;
    tc.hardened_countdown = NextSampleCountdown();
  } else {
    tc.bytes_until_sample = NextSampleCountdown();
  }
  tc.state = CacheState::kActive;
  RegistryInsert(&tc);
  tc.exit_hook.fn = &ThreadExit;
  tc.exit_hook.arg = &tc;
  RegisterThreadExitHook(&tc.exit_hook);
}

}  // namespace

std::size_t ThreadCacheBound() {
  const std::uint32_t threads = g_active_caches.load(std::memory_order_relaxed);
  const std::size_t share = kTotalThreadCacheBytes / (threads == 0 ? 1 : threads);
  if (share < kMinThreadCacheBytes) return kMinThreadCacheBytes;
  if (share > kMaxThreadCacheBytes) return kMaxThreadCacheBytes;
  return share;
}

namespace {

// Raises list c's max_length to `new_max` (above it) when the list's own
// bounds (kMaxListLength, ListByteBound) and the thread's byte bound
// (ThreadCacheBound) allow, charging the growth to the thread; true when
// it grew.
bool TryGrowList(ThreadCache& tc, int c, std::uint32_t new_max) {
  const std::size_t size = ClassSize(c);
  const std::size_t extra = static_cast<std::size_t>(new_max - MaxLength(tc.lists[c])) * size;
  if (new_max > kMaxListLength || static_cast<std::size_t>(new_max) * size > ListByteBound(size) ||
      tc.capacity_bytes + extra > ThreadCacheBound()) {
    return false;
  }
  SetListBound(tc, c, new_max);
  tc.capacity_bytes += extra;
  return true;
}

// Fills the empty list `size_class` from the central pool (the thread
// has its slot region).
bool Refill(ThreadCache& tc, int size_class) {
  const SizeClassInfo& info = ClassInfo(size_class);
  FreeList& list = tc.lists[size_class];
  // The first object is free of the byte bound (and of the length bound:
  // a list of length 1 is always allowed), then slow start (the bound
  // doubles each refill), then grow by batches while the bounds allow.
  std::uint32_t max_length = MaxLength(list);
  if (max_length == 0) SetListBound(tc, size_class, max_length = 1);
  const std::uint32_t grow = max_length < info.batch ? max_length : info.batch;
  if (TryGrowList(tc, size_class, max_length + grow)) max_length += grow;
  int want = max_length < info.batch ? static_cast<int>(max_length) : info.batch;
  const bool first_refill = RelaxedLoad(list.allocs) == 0;
  // The list is empty: the pool writes the blocks' addresses straight into
  // its array (the near slots' capacity covers RefillBound).
  int got = g_central[size_class].RemoveForCache(size_class, want, first_refill, tc.owner_slot,
                                                 reinterpret_cast<FreeObject**>(list.base));
  if (got == 0) return false;
  RelaxedStore(list.top, list.base + got);
  // A whole batch (more than asked) ends the slow start at once when the
  // bounds allow; when they do not, the next free overflows and hands a
  // batch back.
  if (static_cast<std::uint32_t>(got) > max_length) TryGrowList(tc, size_class, static_cast<std::uint32_t>(got));
  tc.activity[size_class] = 1;
  return true;
}

void ListTooLong(ThreadCache& tc, int size_class) {
  const SizeClassInfo& info = ClassInfo(size_class);
  FreeList& list = tc.lists[size_class];
  tc.activity[size_class] = 1;
  const std::uint32_t max_length = MaxLength(list);
  if (max_length != 0 && max_length < info.batch) {
    // Slow start: the thread frees more of the class than its list may
    // hold. The newest half of the list goes back, the rest stays with the
    // thread that touched it last, and the bound doubles (up to a batch).
    // Handing back the whole list and growing by one each time made a
    // thread that tears down a working set send it to the central pool
    // piecemeal, hundreds of times, where other threads took it: their
    // blocks then share lines for good (passive false sharing).
    const std::uint32_t length = ListLength(list);
    ReleaseFromList(list, size_class, length - length / 2, /*reuse_soon=*/true);
    TryGrowList(tc, size_class, max_length * 2 < info.batch ? max_length * 2 : info.batch);
    return;
  }
  ReleaseFromList(list, size_class, info.batch, /*reuse_soon=*/true);
  if (max_length == 0 && RelaxedLoad(list.allocs) == 0 && ++tc.overages[size_class] <= kForeignFreesUncached) {
    // Not allocated here yet: the block came from another thread, and its
    // line may be hot in that thread. Caching it would hand it to this
    // thread's next allocation (passive false sharing); it went back to
    // the central pool instead. A thread that keeps freeing without
    // allocating is a consumer: past a few blocks its list grows.
    return;
  }
  if (max_length == 0) {
    // Past the uncached frees: the list starts, and slow start (above)
    // takes it from there.
    tc.overages[size_class] = 0;
    TryGrowList(tc, size_class, 1);
  } else if (max_length > info.batch) {
    // Overflowing again and again: this thread frees more than it
    // allocates here (a consumer); a shorter list sends batches back sooner.
    if (++tc.overages[size_class] > 3) {
      SetMaxLength(list, max_length - info.batch);
      tc.capacity_bytes -= static_cast<std::size_t>(info.batch) * info.size;
      tc.overages[size_class] = 0;
    }
  }
}

// Lowers list c's max_length to `target` (at least 1, below max_length)
// and hands the objects beyond it to the central pool.
void ShrinkList(ThreadCache& tc, int c, std::uint32_t target) {
  FreeList& list = tc.lists[c];
  if (target < 1) target = 1;
  if (target >= MaxLength(list)) return;
  tc.capacity_bytes -= static_cast<std::size_t>(MaxLength(list) - target) * ClassSize(c);
  SetMaxLength(list, target);
  if (ListLength(list) > target) ReleaseFromList(list, c, ListLength(list) - target);
}

// Brings the thread's capacity within its share when threads started
// since it grew: every list longer than one object gives up the same
// fraction of its max_length, and the objects beyond it.
void TrimToBound(ThreadCache& tc, std::size_t bound) {
  const std::size_t capacity = tc.capacity_bytes;
  for (int c = 1; c < kNumClasses; ++c) {
    const std::uint64_t max_length = MaxLength(tc.lists[c]);
    ShrinkList(tc, c, static_cast<std::uint32_t>(max_length * bound / capacity));
  }
}

void IdleScan(ThreadCache& tc) {
  // Blocks waiting in remote batches go to their owners, and blocks that
  // came back here join the lists before they are judged.
  if constexpr (kOwnerFreesBuilt) {
    PostAllBatches(tc);
    DrainInbox(tc);
  }
  const std::size_t bound = ThreadCacheBound();
  if (tc.capacity_bytes > bound) TrimToBound(tc, bound);
  for (int c = 1; c < kNumClasses; ++c) {
    FreeList& list = tc.lists[c];
    const auto allocs = static_cast<std::uint32_t>(list.allocs);
    const bool used = tc.activity[c] != 0 || allocs != tc.scan_allocs[c];
    tc.scan_allocs[c] = allocs;
    if (!used) ShrinkList(tc, c, MaxLength(list) / 2);
    tc.activity[c] = 0;
  }
}

// Counts `size` bytes against the calling thread's sample countdown; true
// when the allocation is to be tracked (sampled, or every one is).
bool CrossesSampleCountdown(ThreadCache& tc, std::size_t size, bool* sampled) {
  tc.bytes_until_sample -= static_cast<std::int64_t>(size);
  if (STRATA_PREDICT_TRUE(tc.bytes_until_sample >= 0)) return false;
  tc.bytes_until_sample = NextSampleCountdown();
  if (InstalledTrackingHooks() == nullptr) return false;
  if (TrackAll()) {
    *sampled = false;
    return true;
  }
  *sampled = true;
  return SampleRate() > 0;
}

void* AllocateLarge(std::size_t size, std::size_t alignment, bool zero) {
  ThreadCache& tc = tls_cache;
  if (tc.state == CacheState::kUninitialized) InitThread(tc);
  if (Hardened()) return HardenedAllocate(size, alignment, AllocKind::kMalloc, zero);
  bool sampled = false;
  bool track = tc.state == CacheState::kActive && CrossesSampleCountdown(tc, size, &sampled);
  bool zeroed = false;
  // A tracked block is marked so by the page heap, which knows its usable
  // size: no lookup here.
  std::size_t usable = 0;
  void* p = g_page_heap.AllocLarge(size, alignment, &zeroed, track ? &usable : nullptr);
  if (p == nullptr) return nullptr;
  if (zero && !zeroed) std::memset(p, 0, size);
  if (track) InstalledTrackingHooks()->on_allocate(p, size, usable, sampled);
  return p;
}

// A small block from the tracked pool of its class, recorded by the hooks.
void* AllocateTracked(std::size_t size, int size_class, bool sampled) {
  return tracked_cache::TrackedCacheAllocate(size, size_class, sampled);
}

}  // namespace

void* AllocateZeroedLarge(std::size_t size) {
  if (failure_injection::MaybeInjectFailure(tls_cache, size)) return nullptr;
  return AllocateLarge(size, 0, true);
}

namespace {

// The engine's locks in the lock order (engine_lock.h).
constexpr int kNumForkLocks = 1 + 2 * (kNumClasses - 1) + 1;
EngineLock& ForkLock(int i) {
  if (i == 0) return g_registry_lock;
  if (i < kNumClasses) return g_central[i].fork_lock();
  if (i < 2 * kNumClasses - 1) return g_tracked_central[i - kNumClasses + 1].fork_lock();
  return g_page_heap.fork_lock();
}

// Which locks the running fork's prepare handler took (fork handlers run
// on the forking thread; the child keeps the forking thread's TLS).
constinit thread_local bool tls_fork_taken[kNumForkLocks] STRATA_INITIAL_EXEC = {};

// All the engine's locks or none (engine_lock.h): a lock that stays busy
// makes the prepare give back what it took and retry after a back-off, so
// that concurrent forks (also from signal handlers that interrupted a lock
// holder) cannot wait for each other in a cycle. Locks the forking thread
// holds itself (a handler that interrupted the engine) are skipped. Such a
// thread waits longer before giving up and backs off less: no other fork
// can complete before its handler returns, so it should win; after
// kGiveUpRounds (~0.1 s) it forks without the locks it cannot get.
// The handlers act once per fork even when registered twice (a child that
// took over its parent's init, fork_handler_set.h): without that, prepare
// #1 would find every lock held by its own thread and forget that #2 took
// them.
void ForkPrepare() {
  if (!g_fork_handlers.EnterPrepare()) return;
  bool holds_engine_lock = false;
  for (int i = 0; i < kNumForkLocks; ++i) holds_engine_lock |= ForkLock(i).HeldByCurrentThread();
  const int attempts = holds_engine_lock ? 1024 : 256;
  constexpr int kGiveUpRounds = 50;
  std::uint64_t rng = __builtin_ia32_rdtsc() ^ reinterpret_cast<std::uintptr_t>(&tls_lock_token);
  for (int round = 0;; ++round) {
    int i = 0;
    for (; i < kNumForkLocks; ++i) {
      EngineLock& lock = ForkLock(i);
      tls_fork_taken[i] = false;
      if (lock.HeldByCurrentThread()) continue;
      if (lock.TryLockFor(attempts)) {
        tls_fork_taken[i] = true;
      } else if (!(holds_engine_lock && round >= kGiveUpRounds)) {
        break;  // busy: back off
      }
    }
    if (i == kNumForkLocks) return;
    while (i > 0) {
      --i;
      if (tls_fork_taken[i]) ForkLock(i).Unlock();
      tls_fork_taken[i] = false;
    }
    // Randomised exponential back-off (xorshift), so that two forks that
    // collided do not collide again in lock step.
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    long base_ns = holds_engine_lock ? 20'000 : 200'000L << (round < 3 ? round : 3);
    timespec ts{0, base_ns / 2 + static_cast<long>(rng % static_cast<std::uint64_t>(base_ns))};
    nanosleep(&ts, nullptr);
  }
}

void ForkParent() {
  if (!g_fork_handlers.Leave()) return;
  for (int i = kNumForkLocks - 1; i >= 0; --i) {
    if (tls_fork_taken[i]) ForkLock(i).Unlock();
    tls_fork_taken[i] = false;
  }
}

void ForkChild() {
  if (!g_fork_handlers.Leave()) return;
  sampled_slices::ForkChild();
  const bool registry_taken = tls_fork_taken[0];
  for (int i = kNumForkLocks - 1; i >= 0; --i) {
    if (tls_fork_taken[i]) ForkLock(i).ResetAfterFork();
    tls_fork_taken[i] = false;
  }
  // Only this thread exists in the child; the others' caches are gone (their
  // cached objects are lost to the child, which is safe). When the registry
  // lock is held by this thread's interrupted frame (a handler-fork), the
  // reset waits for the frame to release it (RegistryHolder).
  g_registry_fork_self = &tls_cache;
  g_registry_reset_pending = true;
  if (registry_taken) {
    g_registry_lock.Lock();
    ResetRegistryToForkingThread();
    g_registry_lock.Unlock();
  }
}

std::uint64_t ParseEnvU64(const char* name, std::uint64_t fallback) {
  const char* s = getenv(name);
  if (s == nullptr || *s == '\0') return fallback;
  std::uint64_t v = 0;
  for (; *s >= '0' && *s <= '9'; ++s) v = v * 10 + static_cast<std::uint64_t>(*s - '0');
  return *s == '\0' ? v : fallback;
}

void ObserveProcessInit(ProcessInitPoint point) {
  void (*fn)(ProcessInitPoint) = g_process_init_observer.load(std::memory_order_acquire);
  if (STRATA_PREDICT_FALSE(fn != nullptr)) fn(point);
}

// Runs the process init from `step` on, as process `pid` (StagedInit:
// with this thread's signals blocked; an allocation on this thread, from
// pthread_atfork or the tracking layer's init, finds the engine usable).
void RunProcessInit(std::uint64_t pid, int step) {
  if (step == kStepSettings) {
    ObserveProcessInit(ProcessInitPoint::kSettings);
    InitHardening();
    g_page_heap.set_decay_ns(ParseEnvU64("STRATA_DECAY_MS", 200) * 1'000'000u);
    g_page_heap.set_huge_pages(ParseEnvU64("STRATA_HUGE_PAGES", 1) != 0);
    // Hardened mode checks every free centrally: no owners there.
    g_owner_frees = kOwnerFreesBuilt && !Hardened() && ParseEnvU64("STRATA_OWNER_FREES", 1) != 0;
    g_process_init.Reached(pid, kStepForkHandlers);
    step = kStepForkHandlers;
  }
  if (step == kStepForkHandlers) {
    ObserveProcessInit(ProcessInitPoint::kForkHandlers);
    // Registered by the parent before it forked (the list is inherited):
    // not again. Registered after the fork's prepare handlers started and
    // before the parent's record below: this child cannot tell, and
    // registers a second time, which the handlers tolerate.
    if (!g_fork_handlers.registered()) {
      pthread_atfork(&ForkPrepare, &ForkParent, &ForkChild);
      ObserveProcessInit(ProcessInitPoint::kForkHandlersRegistered);
      g_fork_handlers.MarkRegistered();
    }
    g_process_init.Reached(pid, kStepLayersAbove);
  }
  // Last, once the engine is usable. Other threads' first calls wait for
  // it too (a thread that allocated before the tracking layer's hooks are
  // installed would be missed by the leak checker), and a fork child of a
  // parent inside it finishes it from here.
  if (&StrataTrackingInit != nullptr) StrataTrackingInit();
}

}  // namespace

void EnsureProcessInit() {
  // Done (an acquire load): the mode, the secret, the link key and the fork
  // handlers are in place for every thread that returns from here. On the
  // thread running the init (pthread_atfork may allocate) Ensure returns
  // at once: the mode is decided by then, the engine is usable.
  if (STRATA_PREDICT_TRUE(g_process_init.Done())) return;
  g_process_init.Ensure();
}

void SetProcessInitObserverForTesting(void (*fn)(ProcessInitPoint point)) {
  g_process_init_observer.store(fn, std::memory_order_release);
}

std::uint64_t ForkPrepareRuns() { return g_fork_handlers.prepare_runs(); }

void* AllocateSlow(std::size_t size, std::size_t alignment, int size_class, AllocKind kind) {
  ThreadCache& tc = tls_cache;
  // The mode is decided by the first thread's init: know it before using it.
  if (STRATA_PREDICT_FALSE(tc.state == CacheState::kUninitialized)) InitThread(tc);
  if (failure_injection::MaybeInjectFailure(tc, size)) return nullptr;
  if (Hardened()) return HardenedAllocate(size, alignment, kind, false);
  if (size_class == 0) return AllocateLarge(size, alignment, false);
  if (STRATA_PREDICT_FALSE(tc.state != CacheState::kActive)) {
    if (tc.state == CacheState::kUninitialized) InitThread(tc);
    if (tc.state == CacheState::kDead) {
      // The thread is exiting (a later TLS destructor allocates): no cache.
      FreeObject* object = nullptr;
      if (g_central[size_class].Remove(size_class, 1, &object) == 0) return nullptr;
      g_exited_allocs[size_class].fetch_add(1, std::memory_order_relaxed);
      return object;
    }
  }
  bool sampled = false;
  bool sample_in_place = false;
  if (CrossesSampleCountdown(tc, size, &sampled)) {
    // A sampled block is the thread's next block of its class (of a bigger
    // one for the small classes), its slice marked (sampled_slices.h);
    // aligned small requests (and every block when leak checking) come
    // from the tracked pools.
    const int in_place = sampled ? sampled_slices::InPlaceClass(size_class, alignment) : 0;
    if (in_place == 0) {
      RelaxedStore(tc.lists[size_class].allocs, tc.lists[size_class].allocs + 1);
      return AllocateTracked(size, size_class, sampled);
    }
    size_class = in_place;
    sample_in_place = true;
  }
  FreeList& list = tc.lists[size_class];
  if (sample_in_place && size_class == sampled_slices::kSmallSampleClass) {
    // Not from the list (see kSampleBlocks).
    void* object = nullptr;
    if (tc.sample_block_count != 0) {
      const std::uint32_t n = tc.sample_block_count - 1;
      object = tc.sample_blocks[n];
      RelaxedStore(tc.sample_block_count, n);
    } else {
      FreeObject* one = nullptr;
      if (g_central[size_class].Remove(size_class, 1, &one) == 0) return nullptr;
      object = one;
    }
    RelaxedStore(list.allocs, list.allocs + 1);
    sampled_slices::Sample(object, size, size_class);
    return object;
  }
  // Blocks other threads freed back to this one (any class: a thread whose
  // other lists run dry late would keep them from reuse), then the pool.
  if constexpr (kOwnerFreesBuilt) DrainInbox(tc);
  void* object = nullptr;
  if (STRATA_PREDICT_FALSE(list.base == nullptr) && !AttachSlotRegion(tc)) {
    // No slot region (the OS refused it): a block at a time.
    FreeObject* one = nullptr;
    if (g_central[size_class].Remove(size_class, 1, &one) == 0) return nullptr;
    object = one;
  } else {
    if (list.top == list.base && !Refill(tc, size_class)) return nullptr;
    object = list.top[-1];
    RelaxedStore(list.top, list.top - 1);
  }
  RelaxedStore(list.allocs, list.allocs + 1);
  if (sample_in_place) {
    // Not counted in slow_ops, the idle scan's clock: the fast path would
    // have served this allocation. Counted, samples made the scans come
    // more often with sampling on than off (callgrind, mstress: 0.9 M of
    // the 16.9 M instructions sampling added, with the free below).
    sampled_slices::Sample(object, size, size_class);
    return object;
  }
  if (++tc.slow_ops % kIdleScanInterval == 0) IdleScan(tc);
  return object;
}

void FreeSlow(void* ptr, int size_class, AllocKind kind) {
  EnsureProcessInit();  // one acquire load once done: the mode is known
  if (Hardened()) {
    FreeClaim claim;
    claim.kind = kind;
    HardenedFree(ptr, claim);
    return;
  }
  if (size_class != 0) {
    ThreadCache& tc = tls_cache;
    auto* object = static_cast<FreeObject*>(ptr);
    if (STRATA_PREDICT_FALSE(tc.state != CacheState::kActive)) {
      if (tc.state == CacheState::kUninitialized) InitThread(tc);
      if (tc.state == CacheState::kDead) {
        SetNext(object, nullptr);
        g_central[size_class].Insert(size_class, object, 1);
        return;
      }
    }
    if constexpr (kOwnerFreesBuilt) {
      const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
      const SliceEntry entry = g_class_map.GetEntry(addr);
      const std::uint32_t owner = EntryOwner(entry);
      if (owner != 0 && owner != tc.owner_slot) {
        if (!AllocatesRecently(tc, size_class)) {
          // A consumer of the class: the block goes back to its owner.
          RemoteFree(tc, object, size_class, owner);
          if (++tc.slow_ops % kIdleScanInterval == 0) IdleScan(tc);
          return;
        }
        // This thread allocates the class too (threads that share their
        // blocks both ways): it keeps the block, as a default build does,
        // and takes the slice, so that its next frees there are fast.
        g_class_map.CasEntry(addr, entry, static_cast<SliceEntry>(size_class) | tc.owner_tag);
      }
    }
    FreeList& list = tc.lists[size_class];
    if (STRATA_PREDICT_FALSE(list.base == nullptr) && !AttachSlotRegion(tc)) {
      SetNext(object, nullptr);
      g_central[size_class].Insert(size_class, object, 1);
      return;
    }
    if (list.top >= list.base + ListCapacity(tc, size_class)) {
      ReleaseFromList(list, size_class, static_cast<std::uint32_t>(ClassInfo(size_class).batch), true);
    }
    *list.top = object;
    RelaxedStore(list.top, list.top + 1);
    if (ListRoom(list) < 0) ListTooLong(tc, size_class);
    if (++tc.slow_ops % kIdleScanInterval == 0) IdleScan(tc);
    return;
  }
  if (ptr == nullptr) return;
  auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  // A block of a slice that holds sampled blocks (sampled_slices.h): one
  // of those, or a neighbour; then freed as any block of its class: pushed
  // as the fast path would have (no second pass through this function's
  // checks, and, as for the allocation of a sample, no tick of the idle
  // scan's clock), or, on a full list, by the slow path.
  if (const std::uint64_t word = sampled_slices::Word(addr); word != 0) {
    const int freed = sampled_slices::FreeInMarkedSlice(ptr, word);
    const int c = freed & ~sampled_slices::kWasSampled;
    if (STRATA_PREDICT_FALSE(freed == (sampled_slices::kSmallSampleClass | sampled_slices::kWasSampled))) {
      // A sample's block of that class: back where samples take theirs
      // (kSampleBlocks).
      ThreadCache& tc = tls_cache;
      if (tc.state == CacheState::kActive && tc.sample_block_count < kSampleBlocks) {
        tc.sample_blocks[tc.sample_block_count] = ptr;
        RelaxedStore(tc.sample_block_count, tc.sample_block_count + 1);
        return;
      }
      InsertOne(c, ptr);
      return;
    }
    if (TryCachePush(ptr, static_cast<SliceEntry>(c))) return;
    FreeSlow(ptr, c, kind);
    return;
  }
  BlockInfo info = LookupBlock(addr);
  switch (info.kind) {
    case BlockKind::kNone:
      ReportError(info.freed ? ErrorKind::kDoubleFree
                             : (info.segment != nullptr && (addr & 15) != 0 ? ErrorKind::kMisalignedFree
                                                                            : ErrorKind::kInvalidFree),
                  ptr, 0);
      return;
    case BlockKind::kSmall:
      // The class map said 0 for a small span: its slice's mark changed
      // under the reads (sampled_slices.h; the block is not a sampled one:
      // a sampled block keeps its slice marked until its own free), or the
      // span was freed meanwhile.
      if (const int c = addr == info.start ? sampled_slices::SettledClass(addr) : 0; c != 0) {
        FreeSlow(ptr, c, kind);
        return;
      }
      ReportError(ErrorKind::kDoubleFree, ptr, 0);
      return;
    case BlockKind::kTrackedSmall: {
      if (addr != info.start) {
        ReportError((addr & 15) != 0 ? ErrorKind::kMisalignedFree : ErrorKind::kInteriorFree, ptr, 0);
        return;
      }
      tracked_cache::TrackedCacheFree(ptr, info.size_class);
      return;
    }
    case BlockKind::kLarge:
    case BlockKind::kHuge: {
      if (addr != info.start) {
        ReportError((addr & 15) != 0 ? ErrorKind::kMisalignedFree : ErrorKind::kInteriorFree, ptr, 0);
        return;
      }
      bool tracked = info.kind == BlockKind::kHuge ? info.segment->tracked : info.span->tracked;
      if (tracked) InstalledTrackingHooks()->on_free(ptr);
      // False: another thread freed it between the lookup and the lock.
      if (!g_page_heap.FreeLarge(info.segment, info.span)) ReportError(ErrorKind::kDoubleFree, ptr, 0);
      return;
    }
  }
}

void FlushCurrentThread() {
  ThreadCache& tc = tls_cache;
  if (tc.state != CacheState::kActive) return;
  if constexpr (kOwnerFreesBuilt) {
    PostAllBatches(tc);
    DrainInbox(tc);
  }
  FlushAll(tc);
}

void ForEachThreadCache(void (*fn)(const ThreadCache& cache, void* arg), void* arg) {
  RegistryHolder h;
  for (ThreadCache* tc = g_registry_head; tc != nullptr; tc = tc->registry_next) fn(*tc, arg);
}

std::uint64_t ExitedAllocations(int size_class) {
  return g_exited_allocs[size_class].load(std::memory_order_relaxed);
}

ThreadCache& CurrentThreadCache() {
  ThreadCache& tc = tls_cache;
  if (STRATA_PREDICT_FALSE(tc.state == CacheState::kUninitialized)) InitThread(tc);
  return tc;
}

void CountCachelessAllocation(int size_class) {
  g_exited_allocs[size_class].fetch_add(1, std::memory_order_relaxed);
}

}  // namespace strata::internal
