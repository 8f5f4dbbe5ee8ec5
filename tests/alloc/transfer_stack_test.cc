// Tests of alloc/internal/transfer_stack.h, the central pools' first tier:
// LIFO order, the capacity bound, reuse of slots, the depth, pop count
// and own limit, the hints kept beside a value, and many-thread stresses in which every pushed value must be
// popped exactly once (no loss, no duplicate) and with the count and hints
// pushed beside it, with preemption landing between a slot's claim and its
// publication (8 threads on 2 cores).
#include "alloc/internal/transfer_stack.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/alloc/test_util.h"

namespace strata::internal {
namespace {

struct Item {
  std::uint64_t id;
};

// The count pushed with an item (the central pools push a batch's object
// count): a function of its id, so a pop can check it came with its item.
std::uint32_t CountOf(const Item* it) { return static_cast<std::uint32_t>((it->id * 2654435761u) % 1000u + 1); }

TEST(TransferStackTest, EmptyPopReturnsNull) {
  static TransferStack<Item, 4> stack;
  static TransferStack<Item, 4>::Slots slots;
  EXPECT_EQ(stack.Pop(slots), nullptr);
  EXPECT_EQ(stack.slots_used(), 0u);
}

TEST(TransferStackTest, PopsInLifoOrder) {
  static TransferStack<Item, 8> stack;
  static TransferStack<Item, 8>::Slots slots;
  Item items[5];
  for (Item& i : items) ASSERT_TRUE(stack.Push(slots, &i));
  for (int k = 4; k >= 0; --k) EXPECT_EQ(stack.Pop(slots), &items[k]);
  EXPECT_EQ(stack.Pop(slots), nullptr);
  // Interleaved: the most recent push is always the next pop.
  ASSERT_TRUE(stack.Push(slots, &items[0]));
  ASSERT_TRUE(stack.Push(slots, &items[1]));
  EXPECT_EQ(stack.Pop(slots), &items[1]);
  ASSERT_TRUE(stack.Push(slots, &items[2]));
  EXPECT_EQ(stack.Pop(slots), &items[2]);
  EXPECT_EQ(stack.Pop(slots), &items[0]);
  EXPECT_EQ(stack.Pop(slots), nullptr);
}

TEST(TransferStackTest, RefusesPushWhenFullAndReusesSlots) {
  static TransferStack<Item, 3> stack;
  static TransferStack<Item, 3>::Slots slots;
  Item items[4];
  EXPECT_TRUE(stack.Push(slots, &items[0]));
  EXPECT_TRUE(stack.Push(slots, &items[1]));
  EXPECT_TRUE(stack.Push(slots, &items[2]));
  EXPECT_FALSE(stack.Push(slots, &items[3]));
  EXPECT_EQ(stack.Pop(slots), &items[2]);
  EXPECT_TRUE(stack.Push(slots, &items[3]));  // the freed slot is reused
  EXPECT_FALSE(stack.Push(slots, &items[2]));
  EXPECT_EQ(stack.slots_used(), 3u);
  // Many rounds through the same slots never use more.
  for (int round = 0; round < 1000; ++round) {
    Item* a = stack.Pop(slots);
    Item* b = stack.Pop(slots);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(stack.Push(slots, b));
    ASSERT_TRUE(stack.Push(slots, a));
  }
  EXPECT_EQ(stack.slots_used(), 3u);
  EXPECT_NE(stack.Pop(slots), nullptr);
  EXPECT_NE(stack.Pop(slots), nullptr);
  EXPECT_NE(stack.Pop(slots), nullptr);
  EXPECT_EQ(stack.Pop(slots), nullptr);
}

TEST(TransferStackTest, HintsComeBackWithTheirValue) {
  static TransferStack<Item, 8, 4> stack;
  static TransferStack<Item, 8, 4>::Slots slots;
  Item items[8];
  Item* h3[3] = {&items[5], &items[6], &items[7]};
  Item* h4[4] = {&items[4], &items[3], &items[2], &items[1]};
  Item* h5[5] = {&items[0], &items[1], &items[2], &items[3], &items[4]};
  ASSERT_TRUE(stack.Push(slots, &items[0], 3, h3, 3));
  ASSERT_TRUE(stack.Push(slots, &items[1], 4, h4, 4));
  ASSERT_TRUE(stack.Push(slots, &items[2], 7));           // no hints
  ASSERT_TRUE(stack.Push(slots, &items[3], 5, h5, 5));    // more than kHints: none kept
  Item* got[4];
  std::uint32_t n = 99;
  std::uint32_t count = 0;
  EXPECT_EQ(stack.Pop(slots, &count, got, &n), &items[3]);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(stack.Pop(slots, &count, got, &n), &items[2]);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(count, 7u);
  EXPECT_EQ(stack.Pop(slots, &count, got, &n), &items[1]);
  ASSERT_EQ(n, 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(got[i], h4[i]) << i;
  // A reused slot carries the new push's hints, not the old ones.
  ASSERT_TRUE(stack.Push(slots, &items[4], 1, h3, 2));
  EXPECT_EQ(stack.Pop(slots, &count, got, &n), &items[4]);
  ASSERT_EQ(n, 2u);
  EXPECT_EQ(got[0], h3[0]);
  EXPECT_EQ(got[1], h3[1]);
  EXPECT_EQ(stack.Pop(slots, &count, got, &n), &items[0]);
  ASSERT_EQ(n, 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(got[i], h3[i]) << i;
  EXPECT_EQ(stack.Pop(slots, &count, got, &n), nullptr);
}

// The hints pushed with an item: 0 to kStressHints items that follow it,
// a function of its id, so a pop can check they came with their item.
constexpr std::uint32_t kStressHints = 6;
std::uint32_t HintsOf(const Item* it, std::vector<Item>& items, Item** out) {
  const auto n = static_cast<std::uint32_t>(it->id % (kStressHints + 1));
  for (std::uint32_t k = 0; k < n; ++k) out[k] = &items[(it->id + k + 1) % items.size()];
  return n;
}

TEST(TransferStackTest, HintsStayWithTheirValueUnderContention) {
  constexpr int kThreads = 8;
  constexpr std::uint32_t kCapacity = 16;
  const std::uint64_t kPerThread = 100000 / testing::kScale;
  static TransferStack<Item, kCapacity, kStressHints> stack;
  static TransferStack<Item, kCapacity, kStressHints>::Slots slots;
  std::vector<Item> items(kThreads * kPerThread);
  for (std::size_t i = 0; i < items.size(); ++i) items[i].id = i;
  std::vector<std::atomic<int>> seen(items.size());
  std::atomic<std::uint64_t> wrong{0};
  auto check = [&](Item* it, std::uint32_t count, Item** got, std::uint32_t n) {
    seen[it->id].fetch_add(1, std::memory_order_relaxed);
    Item* want[kStressHints];
    const std::uint32_t expect = HintsOf(it, items, want);
    bool ok = count == CountOf(it) && n == expect;
    for (std::uint32_t k = 0; ok && k < n; ++k) ok = got[k] == want[k];
    if (!ok) wrong.fetch_add(1, std::memory_order_relaxed);
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Item* hints[kStressHints];
      Item* got[kStressHints];
      std::uint32_t count = 0;
      std::uint32_t n = 0;
      for (std::uint64_t i = 0; i < kPerThread; ++i) {
        Item* it = &items[t * kPerThread + i];
        const std::uint32_t k = HintsOf(it, items, hints);
        while (!stack.Push(slots, it, CountOf(it), hints, k)) {
          if (Item* other = stack.Pop(slots, &count, got, &n)) check(other, count, got, n);
        }
        if ((i & 1) != 0) {
          if (Item* other = stack.Pop(slots, &count, got, &n)) check(other, count, got, n);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  Item* got[kStressHints];
  std::uint32_t count = 0;
  std::uint32_t n = 0;
  while (Item* it = stack.Pop(slots, &count, got, &n)) check(it, count, got, n);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (seen[i].load() != 1) ++bad;
  }
  EXPECT_EQ(bad, 0u) << "items lost or popped twice";
  EXPECT_EQ(wrong.load(), 0u) << "an item popped with another push's count or hints";
}

TEST(TransferStackTest, CountsItsDepthAndPopsAndHonoursItsOwnLimit) {
  static TransferStack<Item, 8> stack;
  static TransferStack<Item, 8>::Slots slots;
  Item items[8];
  EXPECT_EQ(stack.depth(), 0u);
  EXPECT_EQ(stack.pops(), 0u);
  ASSERT_TRUE(stack.Push(slots, &items[0], 0, nullptr, 0, /*limit=*/2));
  ASSERT_TRUE(stack.Push(slots, &items[1], 0, nullptr, 0, 2));
  EXPECT_FALSE(stack.Push(slots, &items[2], 0, nullptr, 0, 2));
  EXPECT_EQ(stack.depth(), 2u);
  // The stack's own limit, when larger, wins over the push's.
  stack.set_limit(4);
  EXPECT_TRUE(stack.Push(slots, &items[2], 0, nullptr, 0, 2));
  EXPECT_TRUE(stack.Push(slots, &items[3], 0, nullptr, 0, 2));
  EXPECT_FALSE(stack.Push(slots, &items[4], 0, nullptr, 0, 2));
  EXPECT_EQ(stack.depth(), 4u);
  // Back to the push's: full until pops bring the depth under it.
  stack.set_limit(0);
  EXPECT_EQ(stack.Pop(slots), &items[3]);
  EXPECT_FALSE(stack.Push(slots, &items[3], 0, nullptr, 0, 2));
  EXPECT_EQ(stack.Pop(slots), &items[2]);
  EXPECT_FALSE(stack.Push(slots, &items[2], 0, nullptr, 0, 2));
  EXPECT_EQ(stack.Pop(slots), &items[1]);
  EXPECT_TRUE(stack.Push(slots, &items[1], 0, nullptr, 0, 2));
  EXPECT_EQ(stack.depth(), 2u);
  EXPECT_EQ(stack.pops(), 3u);
  // A limit past the capacity is the capacity.
  stack.set_limit(1000);
  EXPECT_EQ(stack.limit(), 8u);
  while (stack.Pop(slots) != nullptr) {
  }
  EXPECT_EQ(stack.depth(), 0u);
  EXPECT_EQ(stack.pops(), 5u);
  EXPECT_LE(stack.slots_used(), 8u);
}

TEST(TransferStackTest, EveryValueIsPoppedExactlyOnceUnderContention) {
  constexpr int kThreads = 8;
  constexpr std::uint32_t kCapacity = 16;  // small: pushes often find it full
  const std::uint64_t kPerThread = 200000 / testing::kScale;
  static TransferStack<Item, kCapacity> stack;
  static TransferStack<Item, kCapacity>::Slots slots;
  std::vector<Item> items(kThreads * kPerThread);
  for (std::size_t i = 0; i < items.size(); ++i) items[i].id = i;
  // seen[id] counts pops of item id; a pop of an item that is not pushed,
  // or twice, shows up as a count other than 1.
  std::vector<std::atomic<int>> seen(items.size());
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> wrong_count{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::uint64_t next = 0;
      std::vector<Item*> held;  // popped, to be pushed again later
      std::uint32_t count = 0;
      std::uint64_t rng = 0x9E3779B97F4A7C15ull * (t + 1);
      while (next < kPerThread || !held.empty()) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if ((rng & 1) != 0 || next == kPerThread) {
          if (!held.empty() && (rng & 2) != 0) {
            Item* it = held.back();
            if (stack.Push(slots, it, CountOf(it))) {
              held.pop_back();
            } else {
              refused.fetch_add(1, std::memory_order_relaxed);
            }
          } else if (Item* it = stack.Pop(slots, &count)) {
            // Consumed for good: must never come out again.
            seen[it->id].fetch_add(1, std::memory_order_relaxed);
            if (count != CountOf(it)) wrong_count.fetch_add(1, std::memory_order_relaxed);
          } else if (!held.empty()) {
            seen[held.back()->id].fetch_add(1, std::memory_order_relaxed);
            held.pop_back();
          }
        } else {
          Item* it = &items[t * kPerThread + next++];
          if (!stack.Push(slots, it, CountOf(it))) held.push_back(it);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  std::uint32_t count = 0;
  while (Item* it = stack.Pop(slots, &count)) {
    seen[it->id].fetch_add(1, std::memory_order_relaxed);
    if (count != CountOf(it)) wrong_count.fetch_add(1, std::memory_order_relaxed);
  }
  std::size_t bad = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (seen[i].load() != 1) ++bad;
  }
  EXPECT_EQ(bad, 0u) << "items lost or popped twice";
  EXPECT_EQ(wrong_count.load(), 0u) << "an item popped with another push's count";
  EXPECT_LE(stack.slots_used(), kCapacity);
  EXPECT_GT(refused.load(), 0u) << "the stress never filled the stack";
}

}  // namespace
}  // namespace strata::internal
