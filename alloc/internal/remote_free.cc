#include "alloc/internal/remote_free.h"

#include "alloc/internal/errors.h"
#include "alloc/internal/globals.h"
#include "alloc/internal/page_map.h"

namespace strata::internal {

constinit OwnerSlot g_owner_slots[kMaxOwners];
constinit bool g_owner_frees = false;

namespace {

// Free slots (a stack of numbers) and the first never-used one; under the
// thread registry lock.
constinit std::uint32_t g_free_slots[kMaxOwners];
constinit std::uint32_t g_num_free_slots = 0;
constinit std::uint32_t g_next_unused_slot = 1;

// Exited threads' per-class totals.
constinit std::atomic<std::uint64_t> g_exited_sent[kNumClasses] = {};
constinit std::atomic<std::uint64_t> g_exited_received[kNumClasses] = {};

// A message's head: its first word links the chain as in any list; its
// second word holds the next message and, in the 16 bits above the 47-bit
// address, the chain's count. When the chain has a second block, that
// block's second word holds the chain's tail. So a message is read and
// spliced in O(1), without walking blocks another core wrote last.
constexpr int kCountShift = 48;
constexpr std::uintptr_t kPointerMask = (std::uintptr_t{1} << kCountShift) - 1;

STRATA_ALWAYS_INLINE std::uintptr_t LoadWord1(const FreeObject* o) {
  std::uintptr_t w;
  __builtin_memcpy(&w, reinterpret_cast<const char*>(o) + sizeof(FreeObject*), sizeof(w));
  return w;
}
STRATA_ALWAYS_INLINE void StoreWord1(FreeObject* o, std::uintptr_t w) {
  __builtin_memcpy(reinterpret_cast<char*>(o) + sizeof(FreeObject*), &w, sizeof(w));
}

// Takes every message of `s` (any taker: the owner, or a poster stealing).
FreeObject* TakeMessages(OwnerSlot& s);

STRATA_ALWAYS_INLINE FreeObject* NextMessage(const FreeObject* m) {
  return reinterpret_cast<FreeObject*>(LoadWord1(m) & kPointerMask);
}

// `messages` as taken from an inbox, or nullptr when the chain of messages
// is cyclic: a block freed twice and posted in two batches is the head of
// both, and its second post overwrote the link of the first (Floyd's
// tortoise and hare over the message heads, which the taker touches next
// anyway). The messages are then dropped (leaked, never reused): their
// blocks cannot be told apart from the corrupted links.
FreeObject* AcyclicOrReported(FreeObject* messages) {
  FreeObject* slow = messages;
  FreeObject* fast = messages;
  while (IsMessage(fast) && IsMessage(NextMessage(fast))) {
    slow = NextMessage(slow);
    fast = NextMessage(NextMessage(fast));
    if (slow == fast) {
      ReportError(ErrorKind::kDoubleFree, slow, 0);
      return nullptr;
    }
  }
  return messages;
}

}  // namespace

std::uint32_t AcquireOwnerSlot() {
  if (!g_owner_frees) return 0;
  std::uint32_t slot = 0;
  if (g_num_free_slots > 0) {
    slot = g_free_slots[--g_num_free_slots];
  } else if (g_next_unused_slot < kMaxOwners) {
    slot = g_next_unused_slot++;
  } else {
    return 0;
  }
  // Release: a poster that sees the open inbox sees the slot's reset count.
  g_owner_slots[slot].inbox_bytes.store(0, std::memory_order_relaxed);
  g_owner_slots[slot].last_drain.store(__builtin_ia32_rdtsc(), std::memory_order_relaxed);
  g_owner_slots[slot].inbox.store(InboxEmpty(), std::memory_order_release);
  return slot;
}

FreeObject* ReleaseOwnerSlot(std::uint32_t slot) {
  if (slot == 0) return nullptr;
  FreeObject* messages = g_owner_slots[slot].inbox.exchange(kInboxClosed, std::memory_order_acq_rel);
  g_free_slots[g_num_free_slots++] = slot;
  return IsMessage(messages) ? AcyclicOrReported(messages) : nullptr;
}

void ResetOwnerSlotsAfterFork(std::uint32_t keep) {
  g_num_free_slots = 0;
  for (std::uint32_t s = g_next_unused_slot; s-- > 1;) {
    if (s == keep) continue;
    g_owner_slots[s].inbox.store(kInboxClosed, std::memory_order_relaxed);
    g_owner_slots[s].inbox_bytes.store(0, std::memory_order_relaxed);
    g_free_slots[g_num_free_slots++] = s;
  }
}

bool PostRemoteBatch(const RemoteBatch& batch, int size_class, FreeObject** stolen) {
  *stolen = nullptr;
  OwnerSlot& slot = g_owner_slots[batch.owner];
  FreeObject* old = slot.inbox.load(std::memory_order_relaxed);
  FreeObject* second = GetNext(batch.head);
  if (second != nullptr) StoreWord1(second, reinterpret_cast<std::uintptr_t>(batch.tail));
  const std::uintptr_t count = static_cast<std::uintptr_t>(batch.count) << kCountShift;
  do {
    if (old == kInboxClosed) return false;
    StoreWord1(batch.head, reinterpret_cast<std::uintptr_t>(old) | count);
    // Release: the chain's links (and the blocks' last writes by their
    // users on this thread) are visible to the thread that takes it.
  } while (!slot.inbox.compare_exchange_weak(old, batch.head, std::memory_order_release,
                                             std::memory_order_relaxed));
  const std::int64_t bytes = static_cast<std::int64_t>(batch.count) * ClassSize(size_class);
  if (slot.inbox_bytes.fetch_add(bytes, std::memory_order_relaxed) + bytes > kMaxInboxBytes &&
      __builtin_ia32_rdtsc() - slot.last_drain.load(std::memory_order_relaxed) > kOwnerIdleTicks) {
    // The owner is not taking its blocks back (idle, or blocked): its inbox
    // goes to the central pools, where every thread can use it.
    *stolen = TakeMessages(slot);
  }
  return true;
}

FreeObject* TakeInbox(std::uint32_t slot) {
  OwnerSlot& s = g_owner_slots[slot];
  s.last_drain.store(__builtin_ia32_rdtsc(), std::memory_order_relaxed);
  return TakeMessages(s);
}

namespace {
FreeObject* TakeMessages(OwnerSlot& s) {
  FreeObject* old = s.inbox.load(std::memory_order_relaxed);
  do {
    if (!IsMessage(old)) return nullptr;
    // Acquire pairs with the posters' release CAS.
  } while (!s.inbox.compare_exchange_weak(old, InboxEmpty(), std::memory_order_acquire, std::memory_order_relaxed));
  return AcyclicOrReported(old);
}
}  // namespace

bool OpenMessage(FreeObject* message, RemoteMessage* out) {
  const std::uintptr_t w = LoadWord1(message);
  out->head = message;
  out->next = reinterpret_cast<FreeObject*>(w & kPointerMask);
  out->count = static_cast<std::uint32_t>(w >> kCountShift);
  out->size_class = g_class_map.Get(reinterpret_cast<std::uintptr_t>(message));
  out->tail = message;
  // A posted batch holds 1 up to RemoteBatchLimit blocks of a class the
  // class map knows (a slice's class cannot change while one of its blocks
  // is out of its span). Anything else is a message overwritten after it
  // was posted: a block freed twice, one copy posted, the other reused.
  if (out->size_class == 0 || out->count == 0 || out->count > RemoteBatchLimit(out->size_class)) {
    ReportError(ErrorKind::kDoubleFree, message, 0);
    return false;
  }
  if (out->count > 1) out->tail = reinterpret_cast<FreeObject*>(LoadWord1(GetNext(message)));
  return true;
}

std::int64_t ReturnMessagesToCentral(FreeObject* messages, RemoteBatch* received) {
  return ForEachMessage(messages, [received](const RemoteMessage& m) {
    g_central[m.size_class].Insert(m.size_class, m.head, static_cast<int>(m.count));
    if (received != nullptr) {
      received[m.size_class].received += m.count;
    } else {
      g_exited_received[m.size_class].fetch_add(m.count, std::memory_order_relaxed);
    }
  });
}

void NoteInboxTaken(std::uint32_t slot, std::int64_t bytes) {
  if (bytes != 0) g_owner_slots[slot].inbox_bytes.fetch_sub(bytes, std::memory_order_relaxed);
}

std::int64_t RemoteInFlight(int size_class, std::int64_t live_threads_sent_minus_received) {
  const std::int64_t exited = static_cast<std::int64_t>(g_exited_sent[size_class].load(std::memory_order_relaxed)) -
                              static_cast<std::int64_t>(g_exited_received[size_class].load(std::memory_order_relaxed));
  return live_threads_sent_minus_received + exited;
}

void AddExitedRemoteCounts(int size_class, std::uint64_t sent, std::uint64_t received) {
  if (sent != 0) g_exited_sent[size_class].fetch_add(sent, std::memory_order_relaxed);
  if (received != 0) g_exited_received[size_class].fetch_add(received, std::memory_order_relaxed);
}

}  // namespace strata::internal
