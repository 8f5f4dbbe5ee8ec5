// Tests for concurrency/tagged_ptr.h.
#include "concurrency/tagged_ptr.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "concurrency/base/raw_memory.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

struct Node8 {
  Node8* next;
};
struct alignas(16) Node16 {
  Node16* next;
};
struct alignas(64) Node64 {
  Node64* next;
};

static_assert(TaggedPtr<Node8>::kLowBits == 3);
static_assert(TaggedPtr<Node8>::kTagBits == 19);
static_assert(TaggedPtr<Node16>::kTagBits == 20);
static_assert(TaggedPtr<Node64>::kTagBits == 20);  // low bits capped at 4
static_assert(sizeof(TaggedPtr<Node8>) == 8);
static_assert(sizeof(AtomicTaggedPtr<Node8>) == 8);

template <typename T>
void CheckRoundTrip(T* p) {
  for (std::uint32_t tag : {0u, 1u, 7u, 8u, 0x1234u, TaggedPtr<T>::kTagMask - 1,
                            TaggedPtr<T>::kTagMask}) {
    TaggedPtr<T> t(p, tag);
    EXPECT_EQ(t.ptr(), p) << tag;
    EXPECT_EQ(t.tag(), tag) << tag;
  }
}

TEST(TaggedPtrTest, RoundTripsPointersAndTags) {
  Node8 a;
  Node16 b;
  Node64 c;
  CheckRoundTrip(&a);
  CheckRoundTrip(&b);
  CheckRoundTrip(&c);
  CheckRoundTrip<Node8>(nullptr);
  // The highest user-space address an aligned node can have.
  auto* top = reinterpret_cast<Node8*>((std::uintptr_t{1} << 47) - 8);
  CheckRoundTrip(top);
  auto* top48 = reinterpret_cast<Node8*>((std::uintptr_t{1} << 48) - 8);
  CheckRoundTrip(top48);
}

TEST(TaggedPtrTest, TagWrapsModuloTagBits) {
  Node8 a;
  TaggedPtr<Node8> t(&a, TaggedPtr<Node8>::kTagMask);
  TaggedPtr<Node8> next = t.WithNextTag(&a);
  EXPECT_EQ(next.ptr(), &a);
  EXPECT_EQ(next.tag(), 0u);
  EXPECT_EQ(t.WithSameTag(nullptr).tag(), TaggedPtr<Node8>::kTagMask);
  EXPECT_EQ(t.WithSameTag(nullptr).ptr(), nullptr);
  // A tag larger than the field is reduced modulo 2^kTagBits.
  TaggedPtr<Node8> big(&a, TaggedPtr<Node8>::kTagMask + 5);
  EXPECT_EQ(big.tag(), 4u);
  EXPECT_EQ(big.ptr(), &a);
}

TEST(TaggedPtrTest, EqualityComparesPointerAndTag) {
  Node8 a, b;
  EXPECT_EQ(TaggedPtr<Node8>(&a, 3), TaggedPtr<Node8>(&a, 3));
  EXPECT_FALSE(TaggedPtr<Node8>(&a, 3) == TaggedPtr<Node8>(&a, 4));
  EXPECT_FALSE(TaggedPtr<Node8>(&a, 3) == TaggedPtr<Node8>(&b, 3));
  EXPECT_EQ(TaggedPtr<Node8>::FromRaw(TaggedPtr<Node8>(&b, 9).raw()), TaggedPtr<Node8>(&b, 9));
}

// Real addresses from every source strata uses fit in the pointer field.
TEST(TaggedPtrTest, RealAddressesFitIn48Bits) {
  auto heap = std::make_unique<Node8>();
  void* mapped = RawMap(4096);
  ASSERT_NE(mapped, nullptr);
  Node8 stack_node;
  for (std::uintptr_t addr : {reinterpret_cast<std::uintptr_t>(heap.get()),
                              reinterpret_cast<std::uintptr_t>(mapped),
                              reinterpret_cast<std::uintptr_t>(&stack_node)}) {
    EXPECT_EQ(addr >> TaggedPtr<Node8>::kPointerBits, 0u) << std::hex << addr;
  }
  RawUnmap(mapped, 4096);
}

// The property the Treiber stack relies on: a CAS with a stale tag fails
// even when the pointer is the same (ABA).
TEST(AtomicTaggedPtrTest, StaleTagMakesCasFail) {
  Node8 a, b;
  AtomicTaggedPtr<Node8> head;
  EXPECT_EQ(head.Load(std::memory_order_relaxed).ptr(), nullptr);
  head.Store(TaggedPtr<Node8>(&a, 0), std::memory_order_relaxed);
  TaggedPtr<Node8> snapshot = head.Load(std::memory_order_relaxed);
  // Someone pops a (tag 1) and pushes it back (tag unchanged).
  head.Store(snapshot.WithNextTag(&a), std::memory_order_relaxed);
  TaggedPtr<Node8> expected = snapshot;
  EXPECT_FALSE(head.CompareExchangeStrong(expected, snapshot.WithNextTag(&b),
                                          std::memory_order_relaxed, std::memory_order_relaxed));
  EXPECT_EQ(expected.ptr(), &a);
  EXPECT_EQ(expected.tag(), 1u);
  EXPECT_TRUE(head.CompareExchangeStrong(expected, expected.WithNextTag(&b),
                                         std::memory_order_relaxed, std::memory_order_relaxed));
  EXPECT_EQ(head.Load(std::memory_order_relaxed), TaggedPtr<Node8>(&b, 2));
}

}  // namespace
}  // namespace strata
