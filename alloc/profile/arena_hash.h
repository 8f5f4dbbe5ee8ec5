// alloc/profile/arena_hash.h: malloc-free hashing helpers and an
// open-addressing hash index stored in a ScratchArena.
//
// IndexHashSet maps a 64-bit hash to 32-bit entry indices; the entries
// themselves live in the caller's own arrays, and the caller supplies the
// equality test at lookup. That one structure serves every table the heap
// profile writer builds (strings, locations, functions, merged stacks).
//
// Contract: linear probing, capacity a power of two, load factor at most
// 1/2 (kMaxLoadNumerator/kMaxLoadDenominator); growth rehashes from the
// stored hashes, never calling back into the caller. Insert returns false
// when the arena is exhausted and leaves the set unchanged.
//
// Thread-safety: none (owned by one writer call).
#ifndef STRATA_ALLOC_PROFILE_ARENA_HASH_H_
#define STRATA_ALLOC_PROFILE_ARENA_HASH_H_

#include <cstddef>
#include <cstdint>

#include "alloc/profile/scratch_arena.h"

namespace strata::profile {

// A strong 64-bit finaliser (good avalanche, so linear probing on the low
// bits behaves).
inline std::uint64_t MixHash(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Hash of a byte string (FNV-1a accumulation, then MixHash).
inline std::uint64_t HashBytes(const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return MixHash(h ^ n);
}

// Folds `v` into the running hash `h`.
inline std::uint64_t HashCombine(std::uint64_t h, std::uint64_t v) {
  return MixHash(h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)));
}

class IndexHashSet {
 public:
  static constexpr std::uint32_t kNotFound = UINT32_MAX;
  static constexpr std::size_t kInitialCapacity = 64;
  static constexpr std::size_t kMaxLoadNumerator = 1;
  static constexpr std::size_t kMaxLoadDenominator = 2;

  explicit IndexHashSet(ScratchArena* arena) : arena_(arena) {}
  IndexHashSet(const IndexHashSet&) = delete;
  IndexHashSet& operator=(const IndexHashSet&) = delete;

  // Returns the first stored index with hash `hash` for which `eq(index)`
  // is true, or kNotFound.
  template <typename Eq>
  std::uint32_t Find(std::uint64_t hash, Eq&& eq) const {
    if (slots_ == nullptr) return kNotFound;
    for (std::size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.index_plus_one == 0) return kNotFound;
      if (s.hash == hash && eq(s.index_plus_one - 1)) {
        return s.index_plus_one - 1;
      }
    }
  }

  // Adds `index` under `hash` (the caller checked it is absent). `index`
  // must be below kNotFound. Returns false on allocation failure.
  bool Insert(std::uint64_t hash, std::uint32_t index) {
    if (index == kNotFound) return false;
    if ((size_ + 1) * kMaxLoadDenominator >
            (mask_ + 1) * kMaxLoadNumerator ||
        slots_ == nullptr) {
      if (!Grow()) return false;
    }
    Place(slots_, mask_, hash, index);
    ++size_;
    return true;
  }

  std::size_t size() const { return size_; }
  std::size_t capacity() const { return slots_ == nullptr ? 0 : mask_ + 1; }

 private:
  struct Slot {
    std::uint64_t hash;
    std::uint32_t index_plus_one;  // 0 = empty
    std::uint32_t unused;
  };

  static void Place(Slot* slots, std::size_t mask, std::uint64_t hash,
                    std::uint32_t index) {
    std::size_t i = hash & mask;
    while (slots[i].index_plus_one != 0) i = (i + 1) & mask;
    slots[i].hash = hash;
    slots[i].index_plus_one = index + 1;
  }

  bool Grow() {
    std::size_t cap = slots_ == nullptr ? kInitialCapacity : (mask_ + 1) * 2;
    Slot* fresh = arena_->AllocateArray<Slot>(cap);  // zero-filled = empty
    if (fresh == nullptr) return false;
    if (slots_ != nullptr) {
      for (std::size_t i = 0; i <= mask_; ++i) {
        if (slots_[i].index_plus_one != 0) {
          Place(fresh, cap - 1, slots_[i].hash, slots_[i].index_plus_one - 1);
        }
      }
    }
    slots_ = fresh;  // the old array is abandoned to the arena
    mask_ = cap - 1;
    return true;
  }

  ScratchArena* arena_;
  Slot* slots_ = nullptr;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace strata::profile

#endif  // STRATA_ALLOC_PROFILE_ARENA_HASH_H_
