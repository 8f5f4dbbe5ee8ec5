#include "concurrency/epoch/collector.h"

#include <new>

#include "concurrency/base/raw_log.h"
#include "concurrency/base/raw_memory.h"

namespace strata::epoch {

namespace internal {

constinit Collector g_global_collector;

namespace {

// Recycled bags, shared by every collector (all bags have the same size).
// Bags are immortal, so the Treiber stack's memory-safety precondition holds.
constinit TreiberStack<Bag> g_free_bags;

using BagStack = TreiberStack<Bag>;

Bag* AcquireBag() noexcept {
  if (Bag* bag = g_free_bags.Pop()) return bag;
  void* mem = GlobalRecordArena().Allocate(sizeof(Bag), alignof(Bag));
  if (mem == nullptr) return nullptr;
  return new (mem) Bag{};
}

void RecycleBag(Bag* bag) noexcept {
  // Relaxed: the bag is private; the pool's release CAS publishes it.
  bag->count.store(0, std::memory_order_relaxed);
  g_free_bags.Push(bag);
}

// Stamps `bag` with the current epoch and hands it to the core's garbage
// list. Must run on the thread that retired into the bag (or on the single
// thread of a fork child): the fence orders every unlink before the stamp.
void Seal(CollectorCore* core, Bag* bag) noexcept {
  // Relaxed: the bag's entries were written by this thread.
  const std::uint32_t n = bag->count.load(std::memory_order_relaxed);
  if (n == 0) {
    RecycleBag(bag);
    return;
  }
#if defined(STRATA_TSAN)
  // seq_cst load in place of fence + relaxed load (see collector.h).
  bag->epoch = core->epoch.load(std::memory_order_seq_cst);
#else
  // F_R in the safety argument: every unlink of an object in this bag is
  // sequenced before this fence, the stamp load after it.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  bag->epoch = core->epoch.load(std::memory_order_relaxed);
#endif
  // Statistic (pairs with the relaxed loads in PendingForTesting).
  core->garbage_objects.fetch_add(n, std::memory_order_relaxed);
  // The stack's release CAS publishes the entries and the stamp to the
  // collector that pops the bag.
  core->garbage[bag->epoch % kGarbageLists]->Push(bag);
}

// One attempt to move the global epoch from g to g + 1. Returns true if the
// epoch advanced (by us or concurrently); *ours is g + 1 if our CAS did it,
// else 0.
bool TryAdvance(CollectorCore* core, std::uint64_t* ours) noexcept {
  *ours = 0;
#if defined(STRATA_TSAN)
  // seq_cst load in place of relaxed load + fence (see collector.h).
  std::uint64_t g = core->epoch.load(std::memory_order_seq_cst);
#else
  // Relaxed load, then F_A: the fence must follow the load of G (that is
  // what makes the second advance see every pin preceding a seal).
  std::uint64_t g = core->epoch.load(std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
  const std::uint64_t want = (g << 1) | 1;
  for (ThreadRecord* r = core->registry.First(); r != nullptr; r = r->next_in_registry) {
    // Acquire: pairs with the release stores in Pin/Unpin, so a participant
    // seen unpinned (or re-pinned) has finished its earlier reads before
    // anything this advance enables.
    const std::uint64_t state = static_cast<Participant*>(r)->state.load(
#if defined(STRATA_TSAN)
        std::memory_order_seq_cst
#else
        std::memory_order_acquire
#endif
    );
    if ((state & 1) != 0 && state != want) return false;  // pinned in an older epoch
  }
  // acq_rel: release carries the acquired participant histories to the
  // freers' acquire load of G; acquire keeps the chain through earlier
  // advances. Failure (relaxed): someone else advanced; that is progress too.
  if (core->epoch.compare_exchange_strong(g, g + 1, std::memory_order_acq_rel,
                                          std::memory_order_relaxed)) {
    *ours = g + 1;
  }
  return true;
}

// Frees the bags that are expired at epoch `g` in the list that holds them
// (stamps g-2, g-5, ...). `g` must have been read with acquire (or be the
// value our own acq_rel CAS wrote), so the chain unpin -> advance -> here
// orders every reader's accesses before the deleters.
void FreeList(CollectorCore* core, std::uint64_t g) noexcept {
  if (g < kGraceEpochs) return;
  BagStack& list = *core->garbage[(g - kGraceEpochs) % kGarbageLists];
  if (list.Empty()) return;
  Bag* chain = list.PopAll();
  Bag* keep_first = nullptr;
  Bag* keep_last = nullptr;
  while (chain != nullptr) {
    Bag* bag = chain;
    chain = BagStack::NextOf(bag);
    if (bag->epoch + kGraceEpochs <= g) {
      // Relaxed: the bag was published to us by the garbage stack's CAS.
      const std::uint32_t n = bag->count.load(std::memory_order_relaxed);
      for (std::uint32_t i = 0; i < n; ++i) {
        const Bag::Entry& e = bag->entries[i];
        e.deleter(e.ptr, e.ctx);
      }
      // Statistic (pairs with the relaxed loads in PendingForTesting).
      core->garbage_objects.fetch_sub(n, std::memory_order_relaxed);
      RecycleBag(bag);
    } else {
      // Pushed late with a newer stamp: put back. SetNext: stale poppers
      // may still read the link.
      if (keep_first == nullptr) keep_first = bag;
      else BagStack::SetNext(keep_last, bag);
      keep_last = bag;
    }
  }
  if (keep_first != nullptr) list.PushChain(keep_first, keep_last);
}

// Tries kAdvancesPerCollect advances; frees the list each of our advances
// expires, and the current epoch's list (for late pushes). Deleters may
// retire and so collect again: only the outermost collection on a thread
// frees, which bounds the recursion.
void AdvanceAndFree(CollectorCore* core, Participant* p) noexcept {
  const bool may_free = p == nullptr || !p->in_collect;
  if (p != nullptr && may_free) p->in_collect = true;
  for (int i = 0; i < kAdvancesPerCollect; ++i) {
    std::uint64_t ours;
    if (!TryAdvance(core, &ours)) break;
    if (may_free && ours != 0) FreeList(core, ours);
  }
  if (may_free) {
    // Acquire: pairs with the advancers' acq_rel CAS (see FreeList).
    FreeList(core, core->epoch.load(std::memory_order_acquire));
    if (p != nullptr) p->in_collect = false;
  }
}

// Seals the participant's open bag, if any. Owner thread (or fork child).
void FlushBag(Participant* p) noexcept {
  // Relaxed: owner-only field.
  Bag* bag = p->bag.load(std::memory_order_relaxed);
  if (bag == nullptr) return;
  p->bag.store(nullptr, std::memory_order_relaxed);  // owner-only, see above
  Seal(p->core, bag);
}

void CollectWith(CollectorCore* core, Participant* p) noexcept {
  if (p != nullptr) FlushBag(p);
  AdvanceAndFree(core, p);
}

ThreadRecord* ConstructParticipant(void* memory, ThreadRegistry* registry) noexcept {
  auto* p = new (memory) Participant();
  p->core = static_cast<CollectorCore*>(registry->context());
  return p;
}

// Thread exit (on the owner) or fork child (for a thread that is gone).
void ReleaseParticipant(ThreadRecord* record) noexcept {
  auto* p = static_cast<Participant*>(record);
  // Exiting while pinned: unpin, or reclamation would stall forever. Done
  // unconditionally: in a fork child the dead owner may have stopped inside
  // UnpinParticipant, between lowering guard_depth and clearing state.
  p->guard_depth = 0;
  // Release: as in UnpinParticipant.
  p->state.store(0, std::memory_order_release);
  FlushBag(p);  // hand garbage over to the global (orphan) list
  p->pins_until_collect = kPinsPerCollect;
  p->in_collect = false;
}

}  // namespace

CollectorCore::CollectorCore() noexcept
    : registry(sizeof(Participant), alignof(Participant), &ConstructParticipant,
               &ReleaseParticipant, this) {}

void PinFailed() noexcept {
  raw::Fatal(__FILE__, __LINE__, "epoch: cannot map memory for a participant record");
}

void CollectFromPin(Participant* p) noexcept {
  p->pins_until_collect = kPinsPerCollect;
  // Only advance and free; the open bag stays open (it fills normally).
  AdvanceAndFree(p->core, p);
}

}  // namespace internal

using internal::Bag;
using internal::CollectorCore;
using internal::Participant;

CollectorCore* Collector::CoreSlow() noexcept {
  void* mem = GlobalRecordArena().Allocate(sizeof(CollectorCore), alignof(CollectorCore));
  if (mem == nullptr) raw::Fatal(__FILE__, __LINE__, "epoch: cannot map memory for a collector");
  auto* fresh = new (mem) CollectorCore();
  CollectorCore* expected = nullptr;
  // acq_rel: release publishes `fresh`; acquire (also on failure) lets us
  // use the winner's core. A losing core stays unused in the arena (one
  // small record per lost race).
  if (core_.compare_exchange_strong(expected, fresh, std::memory_order_acq_rel,
                                    std::memory_order_acquire)) {
    return fresh;
  }
  return expected;
}

void Collector::Retire(void* ptr, void (*deleter)(void* ptr, void* ctx), void* ctx) noexcept {
  CollectorCore* core = Core();
  auto* p = static_cast<Participant*>(core->registry.Current());
  // Relaxed: owner-only field.
  Bag* bag = p == nullptr ? nullptr : p->bag.load(std::memory_order_relaxed);
  if (bag == nullptr) {
    // A thread that retires now and then (a short-lived thread, one that
    // frees a tracked block once) may be the only thread that ever
    // collects: it pins too rarely to reach kPinsPerCollect and exits
    // before its bag fills. So before it takes a fresh bag, it frees what
    // has expired; otherwise the bags that exiting threads hand over pile
    // up with every thread started (1.6 KiB each, plus their objects).
    // Relaxed: a hint; a stale zero only postpones the collection.
    if (p != nullptr && core->garbage_objects.load(std::memory_order_relaxed) != 0) {
      internal::AdvanceAndFree(core, p);
      // A deleter that ran there may have retired, and so opened a bag.
      bag = p->bag.load(std::memory_order_relaxed);  // owner-only
    }
  }
  if (bag == nullptr) {
    bag = p == nullptr ? nullptr : internal::AcquireBag();
    if (bag == nullptr) {
      // No memory for bookkeeping: leaking is the only safe choice.
      // Statistic (relaxed).
      core->leaked_objects.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    p->bag.store(bag, std::memory_order_relaxed);  // owner-only, see above
  }
  // Relaxed load: owner-only.
  const std::uint32_t n = bag->count.load(std::memory_order_relaxed);
  bag->entries[n] = Bag::Entry{ptr, deleter, ctx};
  // Release: the entry is written before the count that covers it (for
  // PendingForTesting readers and a fork child's snapshot).
  bag->count.store(n + 1, std::memory_order_release);
  if (STRATA_PREDICT_FALSE(n + 1 == internal::kBagCapacity)) internal::CollectWith(core, p);
}

void Collector::Collect() noexcept {
  CollectorCore* core = Core();
  auto* p = static_cast<Participant*>(core->registry.FindCurrent());
  internal::CollectWith(core, p);
}

std::uint64_t Collector::CurrentEpoch() const noexcept {
  const CollectorCore* core = LoadCore();
  // Relaxed: a snapshot for callers and tests.
  return core == nullptr ? 0 : core->epoch.load(std::memory_order_relaxed);
}

std::size_t Collector::PendingForTesting() const noexcept {
  const CollectorCore* core = LoadCore();
  if (core == nullptr) return 0;
  // Relaxed throughout: statistics.
  std::int64_t n = core->garbage_objects.load(std::memory_order_relaxed);
  core->registry.ForEach([&](ThreadRecord* r) {
    // Relaxed: the bag may change hands while we look; bags are immortal,
    // so reading a stale one's count is harmless (approximate result).
    if (Bag* bag = static_cast<Participant*>(r)->bag.load(std::memory_order_relaxed)) {
      n += bag->count.load(std::memory_order_relaxed);
    }
  });
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}

bool Collector::IsPinnedForTesting() noexcept {
  auto* p = static_cast<Participant*>(Core()->registry.FindCurrent());
  return p != nullptr && p->guard_depth != 0;
}

}  // namespace strata::epoch
