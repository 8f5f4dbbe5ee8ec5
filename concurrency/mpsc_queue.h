// concurrency/mpsc_queue.h: an intrusive multi-producer, single-consumer
// FIFO queue (after Dmitry Vyukov's design with a stub node).
//
// Purpose: cross-thread frees. Any thread pushes an object it does not own
// onto the owner's queue with one atomic exchange; the owner drains it.
//
// Contract:
//   - Push(node) may be called by any number of threads concurrently. It is
//     wait-free: one exchange and one store.
//   - Pop(), PopAll() and Empty() belong to ONE consumer at a time. Calling
//     them from two threads at once is a bug. Handing the consumer role to
//     another thread needs a happens-before edge between the old and the
//     new consumer (a mutex, a join, a release/acquire flag).
//   - FIFO per producer; between producers, the order of their exchanges.
//   - Pop() returns nullptr when the queue is empty OR when it is transiently
//     INCONSISTENT: a producer has swapped itself in as the new head but has
//     not yet linked its predecessor to it (it was preempted between the two
//     steps of Push). Until that producer resumes, neither its node nor any
//     node pushed after it can be popped. The consumer simply retries later;
//     this is the price of a wait-free Push (the consumer side is not
//     lock-free: a stalled producer stalls the consumer's progress).
//   - PopAll() pops as many nodes as are reachable now and returns them as a
//     FIFO chain linked through kNext, nullptr-terminated (nullptr when none).
//     It stops early at an inconsistent point, like Pop.
//   - A node popped by the consumer is no longer referenced by the queue and
//     may be reused at once (including pushed again).
//   - Node must be default-constructible (constexpr, for a constinit queue):
//     the queue embeds one Node as its stub. The queue is neither copyable
//     nor movable (the stub's address is part of its state).
//
// Thread-safety: Push is safe from any number of threads, concurrently with
// each other and with the consumer; the consumer calls are not thread-safe
// among themselves (single consumer).
//
// Size: head_ and tail_ sit on separate kCacheLineSize lines, so a queue
// takes 3 * kCacheLineSize bytes (plus the stub if Node is larger).
//
// TSan: links are plain `Node*`, accessed only through std::atomic_ref.
//
// Memory orders: Push's exchange is acq_rel (acquire: a later producer that
// swaps out our node must see our `next = nullptr` store before its own link
// store, or our null could overwrite its link; release: symmetric). The link
// store is release and pairs with the consumer's acquire load of `next`, so
// a popped node's contents are visible to the consumer.
//
// Invariants:
//   - Following kNext from tail_ reaches head_ once every in-flight Push has
//     linked; the stub is in that chain or is tail_ itself.
//   - head_ is the most recently pushed node (or the stub).
#ifndef STRATA_CONCURRENCY_MPSC_QUEUE_H_
#define STRATA_CONCURRENCY_MPSC_QUEUE_H_

#include <atomic>

#include "concurrency/base/macros.h"

namespace strata {

template <typename Node, Node* Node::*kNext = &Node::next>
class MpscQueue {
 public:
  constexpr MpscQueue() noexcept : stub_{}, head_(&stub_), tail_(&stub_) {}
  MpscQueue(const MpscQueue&) = delete;
  MpscQueue& operator=(const MpscQueue&) = delete;

  // Any thread.
  void Push(Node* node) noexcept {
    // Relaxed: ordered before the exchange by its release half.
    StoreNext(node, nullptr, std::memory_order_relaxed);
    // acq_rel: see "Memory orders" above; pairs with the exchange of the next
    // producer and with the consumer's acquire load of head_.
    Node* prev = head_.exchange(node, std::memory_order_acq_rel);
    // Window: here the queue is inconsistent (prev is not linked to node).
    // Release: pairs with the consumer's acquire load of prev->next.
    StoreNext(prev, node, std::memory_order_release);
  }

  // Consumer only.
  Node* Pop() noexcept {
    Node* tail = tail_;
    // Acquire (all LoadNext calls below): pairs with the release link store
    // in Push, so the node's contents are visible once we see it.
    Node* next = LoadNext(tail);
    if (tail == &stub_) {
      if (next == nullptr) return nullptr;  // empty (or first push in flight)
      tail_ = next;
      tail = next;
      next = LoadNext(tail);
    }
    if (next != nullptr) {
      tail_ = next;
      return tail;
    }
    // `tail` is the last linked node. If it is not the head, a producer is
    // between its exchange and its link: inconsistent, retry later.
    // Acquire: pairs with the producers' acq_rel exchange.
    if (tail != head_.load(std::memory_order_acquire)) return nullptr;
    // tail is the only node: push the stub behind it so tail can leave.
    Push(&stub_);
    next = LoadNext(tail);
    if (next != nullptr) {
      tail_ = next;
      return tail;
    }
    return nullptr;  // a producer swapped in before the stub: inconsistent
  }

  // Consumer only.
  Node* PopAll() noexcept {
    Node* first = Pop();
    if (first == nullptr) return nullptr;
    Node* last = first;
    while (Node* node = Pop()) {
      // Relaxed: the chain is private to the consumer now (producers never
      // touch a node after it has been popped).
      StoreNext(last, node, std::memory_order_relaxed);
      last = node;
    }
    StoreNext(last, nullptr, std::memory_order_relaxed);  // private, see above
    return first;
  }

  // Consumer only. True when nothing has been pushed that is not popped.
  // False does not promise that Pop() succeeds (a push may be in flight).
  bool Empty() const noexcept {
    const Node* tail = tail_;
    if (tail != &stub_) return false;
    // Acquire: pairs with the release link store / acq_rel exchange in Push.
    return LoadNext(tail) == nullptr && head_.load(std::memory_order_acquire) == &stub_;
  }

  // Link accessor matching the queue's atomicity (relaxed atomic_ref), for
  // walking a PopAll chain.
  static Node* NextOf(const Node* node) noexcept {
    // Relaxed: chains from PopAll are private to the consumer.
    return std::atomic_ref<Node*>(const_cast<Node*&>(node->*kNext)).load(std::memory_order_relaxed);
  }

 private:
  static Node* LoadNext(const Node* node) noexcept {
    // Acquire: see the callers.
    return std::atomic_ref<Node*>(const_cast<Node*&>(node->*kNext)).load(std::memory_order_acquire);
  }
  static void StoreNext(Node* node, Node* next, std::memory_order order) noexcept {
    std::atomic_ref<Node*>(node->*kNext).store(next, order);
  }

  Node stub_;
  // Producers' end: the most recently pushed node. Written by producers
  // (and by the consumer when it re-pushes the stub).
  alignas(kCacheLineSize) std::atomic<Node*> head_;
  // Consumer's end: the oldest node not yet popped (or the stub). Consumer
  // only; on its own cache line so producers' exchanges do not evict it.
  alignas(kCacheLineSize) Node* tail_;
};

}  // namespace strata

#endif  // STRATA_CONCURRENCY_MPSC_QUEUE_H_
