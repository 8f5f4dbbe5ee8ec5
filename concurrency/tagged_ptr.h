// concurrency/tagged_ptr.h: a pointer and a version tag packed in one
// 64-bit word, so that a single-word CAS can detect ABA.
//
// Purpose: lock-free structures that pop by "read head, read head->next,
// CAS head from head to next" (Treiber stack) are exposed to ABA: between
// the read and the CAS, other threads may pop the head, pop more, and push
// the first node back, so the CAS succeeds with a stale `next`. Pairing the
// pointer with a tag that changes on every pop makes the stale CAS fail.
//
// Why pack the tag into unused pointer bits instead of a 16-byte CAS
// (checked on this machine, GCC 12.2, x86-64):
//   - std::atomic<16-byte struct> is not lock-free here: GCC emits calls to
//     libatomic (__atomic_load_16, __atomic_compare_exchange_16), with or
//     without -mcx16; the link needs -latomic and is_lock_free() reports
//     false. libatomic is not TSan-instrumented, so TSan would miss the
//     synchronisation, and __atomic_load_16 is implemented with a write.
//   - __sync_bool_compare_and_swap on unsigned __int128 inlines
//     `lock cmpxchg16b`, but only when every includer is compiled with
//     -mcx16 (Bazel copts do not propagate to dependents) and the atomic
//     load of the pair still needs cmpxchg16b or a torn-read protocol.
//   - A packed word is one plain std::atomic<uint64_t>: always lock-free,
//     fully understood by TSan, no flags, no extra library, 8 bytes.
//
// Layout (x86-64 and AArch64 user space use 48-bit virtual addresses; Linux
// returns addresses above 2^47 only to an mmap whose hint asks for them):
//   bits 63..48  high 16 bits of the tag
//   bits 47..kLowBits  the pointer (its low kLowBits bits are zero by
//                      alignment)
//   bits kLowBits-1..0  low bits of the tag
// kLowBits = log2(alignof(T)), capped at 4; a node with a pointer member is
// at least 8-aligned, so a Treiber node gets a tag of at least 19 bits.
//
// Residual ABA risk (documented, tested): a stale CAS succeeds only if the
// head is the same node AND exactly a multiple of 2^kTagBits tag changes
// happened while the thread was stalled between its load and its CAS. With
// 19 bits that is 524,288 pops on the same stack during one stall, and even
// then the tag must match exactly (probability about 2^-19 per such stall).
//
// Contract: TaggedPtr is a value type. AtomicTaggedPtr is a thin wrapper
// around std::atomic<uint64_t>; each call site names its memory order.
// Thread-safety: AtomicTaggedPtr is as thread-safe as std::atomic.
// Invariants: ptr() round-trips any T* that is alignof(T)-aligned and below
// 2^48 (checked with STRATA_DCHECK); tags are taken modulo 2^kTagBits.
#ifndef STRATA_CONCURRENCY_TAGGED_PTR_H_
#define STRATA_CONCURRENCY_TAGGED_PTR_H_

#include <atomic>
#include <bit>
#include <cstdint>

#include "concurrency/base/macros.h"
#include "concurrency/base/raw_log.h"

namespace strata {

static_assert(sizeof(void*) == 8, "TaggedPtr packs tags into 64-bit pointers");

template <typename T>
class TaggedPtr {
 public:
  // Number of significant virtual-address bits in user-space pointers.
  static constexpr int kPointerBits = 48;
  static constexpr int kLowBits =
      std::countr_zero(alignof(T)) < 4 ? std::countr_zero(alignof(T)) : 4;
  static constexpr int kHighBits = 64 - kPointerBits;
  static constexpr int kTagBits = kLowBits + kHighBits;
  static constexpr std::uint32_t kTagMask = (std::uint32_t{1} << kTagBits) - 1;

  constexpr TaggedPtr() noexcept = default;
  TaggedPtr(T* ptr, std::uint32_t tag) noexcept : raw_(Pack(ptr, tag)) {}

  T* ptr() const noexcept { return reinterpret_cast<T*>(raw_ & kAddressMask); }
  std::uint32_t tag() const noexcept {
    return static_cast<std::uint32_t>((raw_ & kLowMask) | ((raw_ >> kPointerBits) << kLowBits));
  }
  // The same pointer slot with a new pointer and the tag advanced by one.
  TaggedPtr WithNextTag(T* ptr) const noexcept { return TaggedPtr(ptr, tag() + 1); }
  // Same tag, new pointer (for operations that need no new version).
  TaggedPtr WithSameTag(T* ptr) const noexcept { return TaggedPtr(ptr, tag()); }

  constexpr std::uint64_t raw() const noexcept { return raw_; }
  static constexpr TaggedPtr FromRaw(std::uint64_t raw) noexcept {
    TaggedPtr t;
    t.raw_ = raw;
    return t;
  }

  friend constexpr bool operator==(TaggedPtr a, TaggedPtr b) noexcept { return a.raw_ == b.raw_; }

 private:
  static constexpr std::uint64_t kLowMask = (std::uint64_t{1} << kLowBits) - 1;
  static constexpr std::uint64_t kAddressMask =
      ((std::uint64_t{1} << kPointerBits) - 1) & ~kLowMask;

  static std::uint64_t Pack(T* ptr, std::uint32_t tag) noexcept {
    const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
    STRATA_DCHECK((addr & ~kAddressMask) == 0,
                  "TaggedPtr: pointer misaligned or above 2^48");
    tag &= kTagMask;
    return addr | (tag & kLowMask) |
           (static_cast<std::uint64_t>(tag >> kLowBits) << kPointerBits);
  }

  std::uint64_t raw_ = 0;
};

template <typename T>
class AtomicTaggedPtr {
 public:
  constexpr AtomicTaggedPtr() noexcept = default;
  AtomicTaggedPtr(const AtomicTaggedPtr&) = delete;
  AtomicTaggedPtr& operator=(const AtomicTaggedPtr&) = delete;

  // The caller names the order and what it pairs with.
  TaggedPtr<T> Load(std::memory_order order) const noexcept {
    return TaggedPtr<T>::FromRaw(raw_.load(order));
  }
  void Store(TaggedPtr<T> value, std::memory_order order) noexcept {
    raw_.store(value.raw(), order);
  }
  bool CompareExchangeWeak(TaggedPtr<T>& expected, TaggedPtr<T> desired,
                           std::memory_order success, std::memory_order failure) noexcept {
    std::uint64_t e = expected.raw();
    bool ok = raw_.compare_exchange_weak(e, desired.raw(), success, failure);
    expected = TaggedPtr<T>::FromRaw(e);
    return ok;
  }
  bool CompareExchangeStrong(TaggedPtr<T>& expected, TaggedPtr<T> desired,
                             std::memory_order success, std::memory_order failure) noexcept {
    std::uint64_t e = expected.raw();
    bool ok = raw_.compare_exchange_strong(e, desired.raw(), success, failure);
    expected = TaggedPtr<T>::FromRaw(e);
    return ok;
  }

 private:
  std::atomic<std::uint64_t> raw_{0};
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

}  // namespace strata

#endif  // STRATA_CONCURRENCY_TAGGED_PTR_H_
