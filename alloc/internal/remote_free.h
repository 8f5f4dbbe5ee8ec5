// alloc/internal/remote_free.h: owner slots, and the hand-off of remote frees
// to the thread that owns a block's span.
//
// Every thread with a cache owns a slot (1 .. kMaxOwners-1; 0 means "no
// owner"). The central pool writes the slot of the thread it hands a span's
// objects to into the class map entries of the span's slices (page_map.h),
// so a free learns the block's owner and class from one load. A thread that
// frees a block another live thread owns (a remote free) does not keep it:
// it appends the block to a RemoteBatch, one per class in its cache, that
// collects blocks of one class for one owner, and posts the whole batch to
// the owner's inbox with one CAS when it is full, when the next remote free
// of the class names another owner, and when the thread flushes or exits.
// The owner takes its whole inbox with one exchange when a list of its runs
// dry (before it asks a central pool) and pushes each batch's blocks onto
// its list of that class. Producer/consumer programs then cycle their blocks between
// the two threads without a central pool (no lock, no span bookkeeping),
// and a block goes back to the thread whose cache lines it shares.
//
//   free(p), p owned by slot S != mine, S live
//     `-> FreeSlow -> RemoteFree: append to remote[class]  (no atomic)
//            `-> batch full / other owner: PostRemoteBatch  (one CAS on S's inbox)
//   malloc miss in S's thread (list empty)
//     `-> AllocateSlow -> DrainInbox: exchange(S.inbox, null), push every
//         message's blocks onto its class's list  (one atomic per drain)
//            `-> still empty: Refill from the central pool (as before)
//
// A message is a batch: a null-terminated chain of objects of one class
// linked through their first word (FreeObject::next); its head's second
// word links the next message and carries the chain's count, and the
// second block's second word its tail (every class is at least 16 bytes).
// The owner walks a message's chain to push its blocks' addresses onto its
// list (an array, cache_slots.h): a read of each block's link, which the
// posting core wrote. A block freed twice in a row into one batch is reported at once; a
// message found inconsistent when drained is reported as a double free and
// dropped. Other double frees are caught as in the thread's own list: at
// flush time in normal mode, at once in hardened mode (hardening.h), where
// every free is checked before any list or batch sees it.

// Owners that exit: a thread's slot is closed at exit (its inbox becomes
// kInboxClosed, atomically with taking the messages in it, which go back to
// the central pools), after which posts to it fail; the poster then keeps
// the batch itself (its own list: the blocks are free blocks of their
// class, whoever holds them) and adopts the batch's slices (CAS of their
// entries from the closed owner to itself), so that later frees of their
// blocks take its fast path. A closed slot is reused by a later thread,
// which then receives what is still addressed to it: harmless, the owner is
// a hint. No message is ever lost: a post either lands in an open inbox
// (drained by its owner, or at its exit, or by a poster that finds it over
// kMaxInboxBytes) or fails and stays with the poster.
//
// Bounds: an owner that stops allocating would otherwise keep its inbox
// forever; a poster that sees the inbox pass kMaxInboxBytes while its owner
// has not drained it for kOwnerIdleTicks takes all of it and gives it to
// the central pools, where every thread can use it. (An owner that drains,
// however much its inbox holds, keeps it: it reuses the blocks itself, and
// stealing them would only send it to the central pools' spans.)
//
// Statistics stay exact: each thread counts per class the blocks it sent
// (appended to a remote batch) and received (drained, taken back, stolen or
// closed); blocks in flight are the difference, summed over threads and the
// totals of exited ones (RemoteInFlight).
//
// Thread-safety: slots are acquired and released under the thread
// registry's lock (thread_cache.cc); inboxes are lock-free (CAS push,
// exchange pop, a multi-producer single-consumer stack of messages that
// needs no ABA protection because it is only ever taken whole). Slots are
// never freed (a static table), so a poster holding a stale slot number
// touches valid memory. Remote batches and the sent/received counters are
// written only by their thread (statistics read them relaxed).
#ifndef STRATA_ALLOC_INTERNAL_REMOTE_FREE_H_
#define STRATA_ALLOC_INTERNAL_REMOTE_FREE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/internal/size_classes.h"
#include "alloc/internal/span.h"
#include "concurrency/base/macros.h"

namespace strata::internal {

// Owner frees are a build option: `--config=owner_frees` (.bazelrc) defines
// STRATA_OWNER_FREES_BUILD. Off by default: on this project's workloads the
// hand-off cost more time and memory than it saved (bench/RESULTS.md,
// "Owner-returned frees"), and the owner test costs the free fast path two
// instructions (a TLS load and an XOR), which a default build must not
// pay. In a build with them, they are on unless STRATA_OWNER_FREES=0 at
// process start, and off in hardened mode (every free is checked
// centrally there). Off, no thread gets a slot, no class map entry names
// an owner, and every path below is inert.
#if defined(STRATA_OWNER_FREES_BUILD)
inline constexpr bool kOwnerFreesBuilt = true;
#else
inline constexpr bool kOwnerFreesBuilt = false;
#endif
extern constinit bool g_owner_frees;

// Owner slots: 0 is "no owner"; a thread started while every slot is taken
// has none (its frees of others' blocks still go back to them; frees of its
// own blocks behave as before owners existed).
inline constexpr std::uint32_t kMaxOwners = 4096;
// An inbox holding more than this, whose owner has not drained it for
// kOwnerIdleTicks (time stamp counter ticks: about 0.1 s at 2.5 GHz), is
// taken by the next poster and handed to the central pools.
inline constexpr std::int64_t kMaxInboxBytes = std::int64_t{4} << 20;
inline constexpr std::uint64_t kOwnerIdleTicks = std::uint64_t{1} << 28;

// An inbox is closed (no live thread owns the slot: the zero value, so the
// table lives in .bss), open and empty, or the newest message, whose chain
// of messages ends at kInboxEmpty.
inline constexpr FreeObject* kInboxClosed = nullptr;
STRATA_ALWAYS_INLINE FreeObject* InboxEmpty() { return reinterpret_cast<FreeObject*>(std::uintptr_t{1}); }
// A message pointer, not one of the two markers.
STRATA_ALWAYS_INLINE bool IsMessage(const FreeObject* p) { return reinterpret_cast<std::uintptr_t>(p) > 1; }

struct alignas(kCacheLineSize) OwnerSlot {
  std::atomic<FreeObject*> inbox{kInboxClosed};
  // Bytes posted and not yet taken (approximate at any instant: posters add
  // after their CAS, takers subtract after their exchange).
  std::atomic<std::int64_t> inbox_bytes{0};
  // When the owner last took its inbox (time stamp counter).
  std::atomic<std::uint64_t> last_drain{0};
};

extern constinit OwnerSlot g_owner_slots[kMaxOwners];

// Blocks of one class freed by this thread for one owner, not yet posted.
struct RemoteBatch {
  FreeObject* head;
  FreeObject* tail;
  std::uint32_t count;
  std::uint32_t owner;
  std::uint64_t sent;      // blocks ever appended to this class's batches
  std::uint64_t received;  // blocks ever drained into (or taken back by) this thread
};

// Blocks per posted batch: a class's transfer batch (at most 32 objects
// and 64 KiB), so that a message given back to a central pool is a whole
// batch of its first tier.
STRATA_ALWAYS_INLINE std::uint32_t RemoteBatchLimit(int size_class) { return ClassInfo(size_class).batch; }

// Slot management; the caller holds the thread registry lock.
// A free slot, opened (empty inbox), or 0 when all are taken or owner
// frees are off.
std::uint32_t AcquireOwnerSlot();
// Closes `slot` and returns the messages that were in its inbox (the
// caller gives them back); the slot may be reused from now on.
FreeObject* ReleaseOwnerSlot(std::uint32_t slot);
// Fork child: only the forking thread exists; every other slot is closed
// (messages to them are lost to the child, as the other threads' caches
// are) and free.
void ResetOwnerSlotsAfterFork(std::uint32_t keep);

// Posts `batch` (count > 0) to its owner's inbox. False when the owner's
// slot is closed (the batch is untouched). `stolen` receives the owner's
// whole inbox when the post took it past kMaxInboxBytes (else nullptr).
bool PostRemoteBatch(const RemoteBatch& batch, int size_class, FreeObject** stolen);

// Takes every message in `slot`'s inbox for its owner, who stamps the time
// (nullptr when empty or closed; the
// chain of messages ends at InboxEmpty(): walk it while IsMessage).
FreeObject* TakeInbox(std::uint32_t slot);

// One message: its class, its chain's tail and count, the next message.
// False when the chain is corrupt (a double free into one batch, see the
// header comment): the error is reported, `next` is still set, and the
// message's objects must not be used.
struct RemoteMessage {
  FreeObject* head;
  FreeObject* tail;
  std::uint32_t count;
  int size_class;
  FreeObject* next;
};
bool OpenMessage(FreeObject* message, RemoteMessage* out);

// Calls fn(const RemoteMessage&) for every sound message of a chain taken
// from an inbox (corrupt ones are reported by OpenMessage and skipped);
// returns the bytes of the blocks it was called for.
template <typename Fn>
std::int64_t ForEachMessage(FreeObject* messages, Fn fn) {
  std::int64_t bytes = 0;
  while (IsMessage(messages)) {
    RemoteMessage m;
    const bool ok = OpenMessage(messages, &m);
    messages = m.next;
    if (!ok) continue;
    bytes += static_cast<std::int64_t>(m.count) * ClassSize(m.size_class);
    fn(m);
  }
  return bytes;
}

// Gives every message of a chain of messages (ended by a marker or null) to the central pools, and
// counts their blocks in `received` (a thread's RemoteBatch array, may be
// null when the counts go to the exited totals instead). Returns their bytes.
std::int64_t ReturnMessagesToCentral(FreeObject* messages, RemoteBatch* received);
// A taker of `slot`'s inbox took messages of `bytes` bytes out of it.
void NoteInboxTaken(std::uint32_t slot, std::int64_t bytes);

// Blocks appended to remote batches and not yet received, for class `c`
// (an exited thread's counts live on in process totals).
std::int64_t RemoteInFlight(int size_class, std::int64_t live_threads_sent_minus_received);
void AddExitedRemoteCounts(int size_class, std::uint64_t sent, std::uint64_t received);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_REMOTE_FREE_H_
