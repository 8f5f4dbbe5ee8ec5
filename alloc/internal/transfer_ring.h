// alloc/internal/transfer_ring.h: a bounded lock-free ring of batch heads,
// the first tier of a central pool.
//
// A multi-producer multi-consumer bounded queue in the style of Dmitry
// Vyukov's: each cell carries a sequence number that says whether it is
// ready for the producer or the consumer of a given lap; a push or pop
// claims a position with one CAS on its cursor. Why a ring and not an
// intrusive Treiber stack of the batches themselves: a Treiber pop reads
// the `next` link inside the node it is about to take, and here the nodes
// are free objects that another thread may have handed to a user in the
// meantime: harmless (the ABA tag makes the CAS fail) but a data race on
// user memory by the letter, which ThreadSanitizer rightly reports. The
// ring never reads object memory: only its own cells.
//
// Contract: Push fails when the ring is full, Pop returns nullptr when it
// is empty (both may also report so spuriously while a concurrent
// operation on the same cell is mid-flight: the caller then takes its slow
// tier, which is always correct). Thread-safety: any number of threads.
// Progress: a thread preempted between claiming a cell and publishing it
// delays only the consumer of that one cell.
#ifndef STRATA_ALLOC_INTERNAL_TRANSFER_RING_H_
#define STRATA_ALLOC_INTERNAL_TRANSFER_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "concurrency/base/macros.h"

namespace strata::internal {

template <typename T, std::size_t kCapacity>
class TransferRing {
  static_assert((kCapacity & (kCapacity - 1)) == 0 && kCapacity >= 2, "power of two");

 public:
  // Constant-initialised: a cell stores its sequence number minus its
  // index, so that all-zero cells mean "cell i is free for lap 0".
  constexpr TransferRing() = default;

  bool Push(T* value) {
    std::size_t pos = push_pos_.load(std::memory_order_relaxed);
    for (;;) {
      std::size_t index = pos & (kCapacity - 1);
      Cell& cell = cells_[index];
      // Acquire pairs with the consumer's release store that freed the cell.
      std::size_t seq = cell.seq.load(std::memory_order_acquire) + index;
      auto diff = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos);
      if (diff == 0) {
        if (push_pos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          cell.value = value;
          // Release publishes `value` to the consumer's acquire load.
          cell.seq.store(pos + 1 - index, std::memory_order_release);
          return true;
        }
      } else if (diff < 0) {
        return false;  // full
      } else {
        pos = push_pos_.load(std::memory_order_relaxed);
      }
    }
  }

  T* Pop() {
    std::size_t pos = pop_pos_.load(std::memory_order_relaxed);
    for (;;) {
      std::size_t index = pos & (kCapacity - 1);
      Cell& cell = cells_[index];
      // Acquire pairs with the producer's release store of the value.
      std::size_t seq = cell.seq.load(std::memory_order_acquire) + index;
      auto diff = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos + 1);
      if (diff == 0) {
        if (pop_pos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          T* value = cell.value;
          // Release hands the cell back to the producer of the next lap.
          cell.seq.store(pos + kCapacity - index, std::memory_order_release);
          return value;
        }
      } else if (diff < 0) {
        return nullptr;  // empty
      } else {
        pos = pop_pos_.load(std::memory_order_relaxed);
      }
    }
  }

  // Approximate number of queued values.
  std::size_t SizeApprox() const {
    std::size_t push = push_pos_.load(std::memory_order_relaxed);
    std::size_t pop = pop_pos_.load(std::memory_order_relaxed);
    return push > pop ? push - pop : 0;
  }

 private:
  struct Cell {
    std::atomic<std::size_t> seq{0};  // sequence number minus the cell index
    T* value = nullptr;
  };
  alignas(kCacheLineSize) std::atomic<std::size_t> push_pos_{0};
  alignas(kCacheLineSize) std::atomic<std::size_t> pop_pos_{0};
  alignas(kCacheLineSize) Cell cells_[kCapacity];
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_TRANSFER_RING_H_
