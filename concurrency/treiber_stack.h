// concurrency/treiber_stack.h: an intrusive, lock-free, ABA-safe LIFO stack
// (Treiber, 1986) with a version tag in the head word.
//
// Purpose: the allocator's central free lists and the EBR bag pools hand
// whole objects (or chains of them) between threads. Nodes are intrusive:
// the stack links them through a plain `Node*` member (kNext), the same word
// the allocator's free objects already link through, so pushing needs no
// memory.
//
// Contract:
//   - Push/PushChain/Pop/PopAll may be called by any number of threads
//     concurrently. Lock-free: a CAS fails only because another thread's
//     CAS succeeded.
//   - PushChain(first, last): first..last must already be linked through
//     kNext (last's link is overwritten); the chain is published with one
//     CAS and pops back out in the order first, ..., last.
//   - Pop returns the most recently pushed node, or nullptr when empty.
//   - PopAll detaches every node with one CAS and returns the chain (linked
//     through kNext, nullptr-terminated, most recent first), or nullptr.
//   - Empty() is a relaxed snapshot: it may be stale by the time it returns.
//   - A node's link word belongs to the stack while the node is in it.
//
// Thread-safety: every member is safe to call concurrently from any threads
// (NextOf/SetNext on a node only while the caller owns that node).
//
// MEMORY-SAFETY PRECONDITION: Pop reads head->next of a node that another
// thread may pop (and reuse) at the same moment. The read is harmless (the
// CAS then fails and Pop retries) provided the node's MEMORY is still
// mapped and readable. So a node's memory must stay readable while any
// thread may still be inside Pop() on this stack: never unmap a node's
// memory while it may be popped. The allocator guarantees this (free
// objects live in spans that are only returned to the OS after an EBR grace
// period); EBR bags and records in concurrency/ are never unmapped.
//
// TSan: the link is a plain `Node*`, but the stack only accesses it through
// std::atomic_ref<Node*> with relaxed order, so the benign race above
// (a popper reading `next` of a node that a second thread just popped and is
// pushing elsewhere) is an atomic-vs-atomic race that TSan does not report.
// Code that walks a chain returned by PopAll, or links a chain for
// PushChain, while stale poppers may still read the links, should use
// NextOf()/SetNext() for the same reason.
//
// ABA: the head is a TaggedPtr (see tagged_ptr.h for the layout and why not
// a 16-byte CAS). Pop and PopAll advance the tag; pushes keep it. That is
// enough: a popper's CAS expects (A, t). For the head to be (A, t) again
// after it changed, A must have been popped (tag t+1) and pushed back; a
// pure sequence of pushes can never bring the head back to A. So a matching
// (pointer, tag) means no pop happened since the popper read A->next, which
// is therefore still A's successor.
//
// Invariants:
//   - head_.ptr() is null or the most recently pushed node still in the
//     stack; following kNext from it visits every node exactly once and ends
//     at nullptr.
//   - head_.tag() counts successful Pop/PopAll calls modulo 2^kTagBits.
#ifndef STRATA_CONCURRENCY_TREIBER_STACK_H_
#define STRATA_CONCURRENCY_TREIBER_STACK_H_

#include <atomic>

#include "concurrency/base/macros.h"
#include "concurrency/tagged_ptr.h"

namespace strata {

template <typename Node, Node* Node::*kNext = &Node::next>
class TreiberStack {
 public:
  constexpr TreiberStack() noexcept = default;
  TreiberStack(const TreiberStack&) = delete;
  TreiberStack& operator=(const TreiberStack&) = delete;

  void Push(Node* node) noexcept { PushChain(node, node); }

  void PushChain(Node* first, Node* last) noexcept {
    // Relaxed: the value is only stored as `last->next`, never dereferenced;
    // the CAS below validates it.
    TaggedPtr<Node> head = head_.Load(std::memory_order_relaxed);
    do {
      SetNext(last, head.ptr());
      // Release on success: publishes the chain's contents and links to the
      // acquire load/CAS in Pop/PopAll. Relaxed on failure: we only retry.
    } while (!head_.CompareExchangeWeak(head, head.WithSameTag(first), std::memory_order_release,
                                        std::memory_order_relaxed));
  }

  Node* Pop() noexcept {
    return PopImpl([] {});
  }

  Node* PopAll() noexcept {
    // Acquire: pairs with the release CAS of the pushes, so the chain's
    // contents and links are visible to the caller.
    TaggedPtr<Node> head = head_.Load(std::memory_order_acquire);
    while (head.ptr() != nullptr) {
      // The tag must advance (see the ABA note): a popper holding (A, t)
      // must not succeed after PopAll + Push(A). Acquire on both paths:
      // success hands the chain to us, failure reloads a head we may return.
      if (head_.CompareExchangeWeak(head, head.WithNextTag(nullptr), std::memory_order_acquire,
                                    std::memory_order_acquire)) {
        break;
      }
    }
    return head.ptr();
  }

  bool Empty() const noexcept {
    // Relaxed: a snapshot hint; nothing is read through the pointer.
    return head_.Load(std::memory_order_relaxed).ptr() == nullptr;
  }

  // Link accessors with the same atomicity as the stack's own (relaxed
  // atomic_ref): use them on chains stale poppers may still read.
  static Node* NextOf(const Node* node) noexcept {
    // Relaxed: ordering comes from the head CAS that published the node.
    return std::atomic_ref<Node*>(const_cast<Node*&>(node->*kNext)).load(std::memory_order_relaxed);
  }
  static void SetNext(Node* node, Node* next) noexcept {
    // Relaxed: published by the release CAS of the push that follows.
    std::atomic_ref<Node*>(node->*kNext).store(next, std::memory_order_relaxed);
  }

  // Pop with `between()` called after the successor is read and before the
  // CAS: lets tests force the ABA interleaving deterministically.
  template <typename Hook>
  Node* PopForTesting(Hook&& between) noexcept {
    return PopImpl(between);
  }

 private:
  static_assert(TaggedPtr<Node>::kTagBits >= 16);

  template <typename Hook>
  STRATA_ALWAYS_INLINE Node* PopImpl(Hook&& between) noexcept {
    // Acquire: pairs with the release CAS in PushChain (directly, or through
    // the release sequence continued by later pops' RMWs), so the node's
    // link and contents are visible before we read them.
    TaggedPtr<Node> head = head_.Load(std::memory_order_acquire);
    for (;;) {
      Node* node = head.ptr();
      if (node == nullptr) return nullptr;
      // May read a link another thread is rewriting (node popped and reused
      // meanwhile); then the tag has moved and the CAS below fails.
      Node* next = NextOf(node);
      between();
      // Acquire on success and failure: on failure we dereference the new
      // head next iteration; pairs with the pushes' release CAS.
      if (head_.CompareExchangeWeak(head, head.WithNextTag(next), std::memory_order_acquire,
                                    std::memory_order_acquire)) {
        return node;
      }
    }
  }

  AtomicTaggedPtr<Node> head_;
};

}  // namespace strata

#endif  // STRATA_CONCURRENCY_TREIBER_STACK_H_
