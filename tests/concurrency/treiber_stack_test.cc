// Tests for concurrency/treiber_stack.h: semantics, a deterministic ABA
// interleaving, and stress (8+ threads on 2 cores).
#include "concurrency/treiber_stack.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/concurrency/test_util.h"

namespace strata {
namespace {

struct Node {
  Node* next = nullptr;
  int id = 0;
  // Stress bookkeeping: how many threads hold this node right now, and how
  // many times it was popped.
  std::atomic<int> holders{0};
  std::atomic<std::int64_t> pops{0};
};

// A node type whose link is not called `next`.
struct OtherNode {
  int payload = 0;
  OtherNode* link = nullptr;
};

using Stack = TreiberStack<Node>;

constinit Stack g_constinit_stack;  // must compile: constinit

TEST(TreiberStackTest, EmptyStack) {
  Stack s;
  EXPECT_TRUE(s.Empty());
  EXPECT_EQ(s.Pop(), nullptr);
  EXPECT_EQ(s.PopAll(), nullptr);
  EXPECT_TRUE(g_constinit_stack.Empty());
}

TEST(TreiberStackTest, LifoOrder) {
  Stack s;
  Node n[4];
  for (int i = 0; i < 4; ++i) {
    n[i].id = i;
    s.Push(&n[i]);
    EXPECT_FALSE(s.Empty());
  }
  for (int i = 3; i >= 0; --i) EXPECT_EQ(s.Pop(), &n[i]);
  EXPECT_EQ(s.Pop(), nullptr);
  EXPECT_TRUE(s.Empty());
}

TEST(TreiberStackTest, PushChainPopsInChainOrderAboveOlderNodes) {
  Stack s;
  Node old, a, b, c;
  s.Push(&old);
  a.next = &b;
  b.next = &c;
  c.next = reinterpret_cast<Node*>(0x1);  // overwritten by PushChain
  s.PushChain(&a, &c);
  EXPECT_EQ(s.Pop(), &a);
  EXPECT_EQ(s.Pop(), &b);
  EXPECT_EQ(s.Pop(), &c);
  EXPECT_EQ(s.Pop(), &old);
  EXPECT_EQ(s.Pop(), nullptr);
}

TEST(TreiberStackTest, PopAllReturnsTheWholeChainMostRecentFirst) {
  Stack s;
  Node n[5];
  for (auto& x : n) s.Push(&x);
  Node* chain = s.PopAll();
  EXPECT_TRUE(s.Empty());
  int count = 0;
  for (Node* p = chain; p != nullptr; p = Stack::NextOf(p)) {
    EXPECT_EQ(p, &n[4 - count]);
    ++count;
  }
  EXPECT_EQ(count, 5);
  EXPECT_EQ(s.PopAll(), nullptr);
}

TEST(TreiberStackTest, CustomLinkMember) {
  TreiberStack<OtherNode, &OtherNode::link> s;
  OtherNode a, b;
  a.payload = 1;
  b.payload = 2;
  s.Push(&a);
  s.Push(&b);
  EXPECT_EQ(s.Pop()->payload, 2);
  EXPECT_EQ(s.Pop()->payload, 1);
  EXPECT_EQ(s.Pop(), nullptr);
}

// The ABA interleaving, forced: the popper reads head A and A->next == B;
// before its CAS, "another thread" pops A, pops B and pushes A back. With
// the tag the stale CAS fails and the pop retries; without it the head
// would become B, a node no longer in the stack.
TEST(TreiberStackTest, AbaInterleavingIsDetected) {
  Stack s;
  Node a, b, c;
  a.id = 1;
  b.id = 2;
  c.id = 3;
  s.Push(&c);
  s.Push(&b);
  s.Push(&a);  // stack: a b c
  bool interfered = false;
  Node* popped = s.PopForTesting([&] {
    if (interfered) return;
    interfered = true;
    EXPECT_EQ(s.Pop(), &a);
    EXPECT_EQ(s.Pop(), &b);  // b is now owned by "another thread"
    s.Push(&a);              // stack: a c
  });
  EXPECT_EQ(popped, &a);
  EXPECT_EQ(s.Pop(), &c);  // b must not come back
  EXPECT_EQ(s.Pop(), nullptr);
}

// Same interleaving through PopAll: PopAll + Push(a) between the read and
// the CAS must also be caught.
TEST(TreiberStackTest, AbaThroughPopAllIsDetected) {
  Stack s;
  Node a, b, c;
  s.Push(&b);
  s.Push(&a);  // stack: a b
  bool interfered = false;
  Node* popped = s.PopForTesting([&] {
    if (interfered) return;
    interfered = true;
    EXPECT_EQ(s.PopAll(), &a);  // a b taken
    s.Push(&c);
    s.Push(&a);  // stack: a c
  });
  EXPECT_EQ(popped, &a);
  EXPECT_EQ(s.Pop(), &c);
  EXPECT_EQ(s.Pop(), nullptr);
}

// Stress 1: a fixed pool of nodes circulates. Each thread pops a node,
// checks it is the only holder, and pushes it back (sometimes as a chain,
// sometimes after PopAll). A lost node, a duplicated node (two holders) or a
// corrupted link fails the test.
TEST(TreiberStackStressTest, NodesCirculateWithoutLossOrDuplication) {
  constexpr int kThreads = 8;
  constexpr int kNodes = 16;  // few nodes: maximum ABA pressure
  const std::int64_t iters = testing::Scaled(1500000);
  Stack s;
  std::vector<Node> nodes(kNodes);
  for (int i = 0; i < kNodes; ++i) {
    nodes[i].id = i;
    s.Push(&nodes[i]);
  }
  std::atomic<int> errors{0};
  testing::StartGate gate;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      gate.Wait();
      std::uint64_t rng = 0x9e3779b97f4a7c15ull * (t + 1);
      for (std::int64_t i = 0; i < iters; ++i) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        const int op = static_cast<int>(rng % 32);
        if (op == 0) {
          // PopAll, check exclusive ownership of the whole chain, push back.
          Node* chain = s.PopAll();
          if (chain == nullptr) continue;
          Node* last = chain;
          for (Node* p = chain; p != nullptr; p = Stack::NextOf(p)) {
            if (p->holders.fetch_add(1) != 0) errors.fetch_add(1);
            last = p;
          }
          for (Node* p = chain; p != nullptr; p = Stack::NextOf(p)) p->holders.fetch_sub(1);
          s.PushChain(chain, last);
        } else if (op == 1) {
          // Pop two, push them back as one chain.
          Node* a = s.Pop();
          Node* b = s.Pop();
          for (Node* p : {a, b}) {
            if (p != nullptr && p->holders.fetch_add(1) != 0) errors.fetch_add(1);
          }
          for (Node* p : {a, b}) {
            if (p != nullptr) p->holders.fetch_sub(1);
          }
          if (a != nullptr && b != nullptr) {
            Stack::SetNext(a, b);
            s.PushChain(a, b);
          } else if (a != nullptr) {
            s.Push(a);
          } else if (b != nullptr) {
            s.Push(b);
          }
        } else {
          // One pop in 32 yields between reading head->next and its CAS: on
          // 2 cores that stretches the ABA window over other threads' pops
          // and pushes, which a tag-less stack does not survive.
          Node* p = op == 2 ? s.PopForTesting([] { std::this_thread::yield(); }) : s.Pop();
          if (p == nullptr) continue;
          if (p->holders.fetch_add(1) != 0) errors.fetch_add(1);
          p->pops.fetch_add(1, std::memory_order_relaxed);
          p->holders.fetch_sub(1);
          s.Push(p);
        }
      }
    });
  }
  gate.Release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  // Every node is back exactly once.
  std::vector<int> seen(kNodes, 0);
  int count = 0;
  for (Node* p = s.PopAll(); p != nullptr; p = Stack::NextOf(p)) {
    ASSERT_LT(++count, kNodes + 1) << "cycle or duplicate in the stack";
    ++seen[p->id];
  }
  for (int i = 0; i < kNodes; ++i) EXPECT_EQ(seen[i], 1) << i;
  std::int64_t pops = 0;
  for (auto& n : nodes) pops += n.pops.load();
  EXPECT_GT(pops, 0);
}

// Stress 2: producers push distinct nodes once each while consumers pop
// them. Every node pushed is popped exactly once.
TEST(TreiberStackStressTest, EveryPushedNodeIsPoppedExactlyOnce) {
  constexpr int kProducers = 4;
  constexpr int kConsumers = 4;
  const std::int64_t per_producer = testing::Scaled(500000);
  const std::int64_t total = kProducers * per_producer;
  auto nodes = std::make_unique<Node[]>(total);
  Stack s;
  std::atomic<std::int64_t> consumed{0};
  std::atomic<int> duplicates{0};
  testing::StartGate gate;
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      gate.Wait();
      for (std::int64_t i = 0; i < per_producer; ++i) {
        Node* n = &nodes[p * per_producer + i];
        if ((i & 7) == 7 && i + 1 < per_producer) {
          // Push two as a chain sometimes.
          Node* m = &nodes[p * per_producer + i + 1];
          Stack::SetNext(n, m);
          s.PushChain(n, m);
          ++i;
        } else {
          s.Push(n);
        }
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&, c] {
      gate.Wait();
      while (consumed.load(std::memory_order_relaxed) < total) {
        if (c == 0) {
          // One consumer drains with PopAll.
          for (Node* n = s.PopAll(); n != nullptr;) {
            Node* next = Stack::NextOf(n);
            if (n->pops.fetch_add(1) != 0) duplicates.fetch_add(1);
            consumed.fetch_add(1, std::memory_order_relaxed);
            n = next;
          }
          std::this_thread::yield();
          continue;
        }
        Node* n = s.Pop();
        if (n == nullptr) {
          std::this_thread::yield();
          continue;
        }
        if (n->pops.fetch_add(1) != 0) duplicates.fetch_add(1);
        consumed.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  gate.Release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(duplicates.load(), 0);
  EXPECT_EQ(consumed.load(), total);
  EXPECT_TRUE(s.Empty());
  for (std::int64_t i = 0; i < total; ++i) {
    if (nodes[i].pops.load() != 1) {
      ADD_FAILURE() << "node " << i << " popped " << nodes[i].pops.load() << " times";
      break;
    }
  }
}

}  // namespace
}  // namespace strata
