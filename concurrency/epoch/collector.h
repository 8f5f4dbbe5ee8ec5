// concurrency/epoch/collector.h: epoch-based memory reclamation (EBR).
//
// Purpose: lock-free structures unlink an object while other threads may
// still be reading it. Retire(ptr, deleter) defers deleter(ptr, ctx) until
// no thread that could have seen ptr still can. Readers bracket their
// accesses with a Guard (Pin()); the collector frees an object once the
// global epoch has advanced twice past the epoch in which it was retired,
// and it advances only when every pinned thread has caught up.
//
// Usage:
//   {
//     auto guard = GlobalCollector().Pin();
//     Node* n = head.load(std::memory_order_acquire);   // safe to read *n
//     ...
//   }
//   // writer, after unlinking `old` (any thread, pinned or not):
//   GlobalCollector().Retire(old, [](void* p, void*) { Free(p); });
//
// Contract:
//   - Collector is constexpr-constructible and trivially destructible;
//     GlobalCollector() is a constinit global. Several collectors may exist
//     (each with its own epoch, participants and garbage). Their state lives
//     in an immortal core in GlobalRecordArena(): destroying a Collector
//     leaks its core, its records and any garbage not yet collected (call
//     Collect() until PendingForTesting() == 0 first if that matters).
//   - Pin() returns a Guard; the calling thread is pinned until the Guard is
//     destroyed (or Unpin()ed). Pinning nests: an inner Pin on a pinned
//     thread only counts. A Guard is move-only and must be destroyed on the
//     thread that created it, before that thread's exit hooks run.
//   - Retire() may be called pinned or not. It never calls malloc: entries
//     go into the thread's fixed-size bag; a full bag is sealed onto the
//     collector's global garbage list; bags come from GlobalRecordArena()
//     and are recycled through a global pool. If no bag can be mapped the
//     object is leaked (never freed early). Deleters run later, on whichever
//     thread collects, possibly while that thread is pinned; a deleter may
//     call Retire/Pin again (nested collection does not free).
//   - Collect() seals the caller's partial bag, tries to advance the epoch
//     (up to twice) and frees the garbage whose grace period has passed.
//     Sealed bags wait in kGarbageLists lists by stamp, so a collection only
//     touches bags it can free; a bag whose stamp was read before an advance
//     but pushed after the matching collection waits until its list comes
//     round again (kGarbageLists epochs later, or the next collection in a
//     stalled epoch). Threads also collect automatically every
//     kPinsPerCollect pins and when a bag fills.
//   - Thread exit (thread_exit.h hooks): a thread exiting with a partial bag
//     seals it onto the global list (the orphan list), and a thread exiting
//     while pinned (its Guard never destroyed) is unpinned, so it never
//     stalls reclamation. Its participant record is reused by a later thread.
//   - fork(): in the child, the records of threads that do not exist there
//     are released the same way (unpinned, bags handed over), so the child
//     can pin, retire and collect. Garbage a dead thread held privately in
//     the middle of a collection at the instant of fork is leaked.
//   - Liveness: a thread that stays pinned blocks advancing (and so all
//     freeing) while it stays pinned; an idle thread's partial bag is freed
//     only when it retires more, calls Collect(), or exits. Pending garbage
//     is bounded by (#threads * kBagCapacity) + what the last two epochs
//     retired.
//
// Thread-safety: everything is thread-safe; Guards are per thread.
//
// Invariants (details in internal.h):
//   - The global epoch only grows, by one per successful advance, and only
//     when every pinned participant's epoch equals it.
//   - A participant's state is 0 (not pinned) or (e << 1) | 1 with e <= G.
//   - A retired object sits in exactly one bag (open or sealed) until its
//     deleter runs, exactly once, after G >= stamp + 2.
//
// SAFETY ARGUMENT (why two advances suffice). Notation: G is the global
// epoch, L_T thread T's state. Normal build:
//   Pin (T):      e = G.load; L_T.store(e|pinned, release); F_T: fence(seq_cst);
//                 then T reads the structure.
//   Retire (R):   unlink X (U); ...; at seal: F_R: fence(seq_cst); r = G.load;
//                 the bag holding X is stamped r.
//   Advance (A):  g = G.load; F_A: fence(seq_cst); for every participant:
//                 load L (acquire), give up if pinned at an epoch != g;
//                 CAS G: g -> g+1 (acq_rel).
//   Free:         g' = G.load (acquire), or the value the freer's own
//                 acq_rel CAS just wrote; free bags stamped r with r + 2 <= g'.
// Suppose T reads X after X is freed. T reached X under one pin, so its
// read of the link to X was not ordered after U. Consider F_T and F_R in the
// single total order S of seq_cst fences:
//   (a) S(F_R) < S(F_T). U is sequenced before F_R and T's reads are
//       sequenced after F_T, so (fence-fence rule for seq_cst fences) T's
//       reads see U or later: T cannot reach X. Contradiction.
//   (b) S(F_T) < S(F_R). Freeing X needs G to reach r+2, i.e. an advance A2
//       from r+1 to r+2. A2's load of G returned r+1, written by the advance
//       from r to r+1, which is later in G's modification order than the r
//       that R read after F_R. So R's load is coherence-ordered before A2's
//       load, and with F_R before R's load and F_A2 after A2's load,
//       S(F_R) < S(F_A2). Hence S(F_T) < S(F_A2): A2's load of L_T sees T's
//       pin store or a later one. If T is still pinned, its epoch e is not
//       r+1 (e = r+1 would mean T's G load read the r+1 write, which is
//       coherence-after R's load, forcing S(F_R) < S(F_T), case (a)), so A2
//       does not advance. If T has since unpinned, its reads of X
//       happened-before its release store, which A2 read (acquire) before
//       its release CAS, which the freer read (acquire): the free happens
//       after T's reads. Either way no use-after-free.
// One advance is not enough: the advance r -> r+1 may have read G (and
// scanned) before F_R, missing a pin that precedes F_R. The second advance
// necessarily loaded G after the first one's write, i.e. after F_R in S.
//
// TSan build (STRATA_TSAN): TSan does not model fences and would report
// the frees as races with readers. There the pin store, the seal load and the
// advancer's G load are seq_cst operations instead of fence + relaxed op,
// and every load of L is acquire, so TSan sees the release/acquire chain
// unpin -> advancer -> CAS -> freer that the argument above relies on. (On
// x86 a seq_cst store is an xchg, a full barrier, so the TSan build runs the
// same protocol.)
#ifndef STRATA_CONCURRENCY_EPOCH_COLLECTOR_H_
#define STRATA_CONCURRENCY_EPOCH_COLLECTOR_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "concurrency/base/macros.h"
#include "concurrency/epoch/internal.h"

namespace strata::epoch {

class Collector {
 public:
  class Guard;

  constexpr Collector() noexcept = default;
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  // Pins the calling thread (re-entrant).
  Guard Pin() noexcept;

  // Defers deleter(ptr, ctx) until no thread pinned at retire time can still
  // hold ptr.
  void Retire(void* ptr, void (*deleter)(void* ptr, void* ctx), void* ctx = nullptr) noexcept;

  // Tries to advance and frees what is safe.
  void Collect() noexcept;

  std::uint64_t CurrentEpoch() const noexcept;

  // Retired-but-not-freed objects (approximate while threads run).
  std::size_t PendingForTesting() const noexcept;

  // Whether the calling thread is pinned in this collector.
  bool IsPinnedForTesting() noexcept;

 private:
  internal::CollectorCore* Core() noexcept {
    // Acquire: pairs with the acq_rel CAS installing the core (its fields).
    internal::CollectorCore* core = core_.load(std::memory_order_acquire);
    if (STRATA_PREDICT_TRUE(core != nullptr)) return core;
    return CoreSlow();
  }
  const internal::CollectorCore* LoadCore() const noexcept {
    // Acquire: as in Core().
    return core_.load(std::memory_order_acquire);
  }
  STRATA_NOINLINE internal::CollectorCore* CoreSlow() noexcept;

  std::atomic<internal::CollectorCore*> core_{nullptr};
};

class Collector::Guard {
 public:
  // An empty guard (not pinned).
  constexpr Guard() noexcept = default;
  Guard(Guard&& other) noexcept : participant_(std::exchange(other.participant_, nullptr)) {}
  Guard& operator=(Guard&& other) noexcept {
    if (this != &other) {
      Unpin();
      participant_ = std::exchange(other.participant_, nullptr);
    }
    return *this;
  }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  ~Guard() { Unpin(); }

  bool pinned() const noexcept { return participant_ != nullptr; }

  // Ends this guard's pin early (no-op for an empty guard).
  void Unpin() noexcept {
    if (participant_ != nullptr) {
      internal::UnpinParticipant(participant_);
      participant_ = nullptr;
    }
  }

 private:
  friend class Collector;
  explicit Guard(internal::Participant* participant) noexcept : participant_(participant) {}

  internal::Participant* participant_ = nullptr;
};

inline Collector::Guard Collector::Pin() noexcept {
  internal::CollectorCore* core = Core();
  auto* participant = static_cast<internal::Participant*>(core->registry.Current());
  if (STRATA_PREDICT_FALSE(participant == nullptr)) internal::PinFailed();
  internal::PinParticipant(participant);
  return Guard(participant);
}

namespace internal {
extern constinit Collector g_global_collector;
}  // namespace internal

// The process-wide collector (constinit, never destroyed).
inline Collector& GlobalCollector() noexcept { return internal::g_global_collector; }

}  // namespace strata::epoch

#endif  // STRATA_CONCURRENCY_EPOCH_COLLECTOR_H_
