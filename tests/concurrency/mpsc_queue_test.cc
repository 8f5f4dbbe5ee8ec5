// Tests for concurrency/mpsc_queue.h.
#include "concurrency/mpsc_queue.h"

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "concurrency/treiber_stack.h"
#include "gtest/gtest.h"
#include "tests/concurrency/test_util.h"

namespace strata {
namespace {

struct Node {
  Node* next = nullptr;
  int producer = -1;
  std::int64_t seq = 0;
  Node* free_next = nullptr;  // link for the per-producer recycling stack
};

using Queue = MpscQueue<Node>;

constinit Queue g_constinit_queue;  // must compile: constinit

TEST(MpscQueueTest, EmptyQueue) {
  Queue q;
  EXPECT_TRUE(q.Empty());
  EXPECT_EQ(q.Pop(), nullptr);
  EXPECT_EQ(q.PopAll(), nullptr);
  EXPECT_TRUE(q.Empty());
  EXPECT_TRUE(g_constinit_queue.Empty());
}

TEST(MpscQueueTest, FifoOrderSingleThread) {
  Queue q;
  Node n[5];
  for (int i = 0; i < 5; ++i) {
    n[i].seq = i;
    q.Push(&n[i]);
    EXPECT_FALSE(q.Empty());
  }
  for (int i = 0; i < 5; ++i) EXPECT_EQ(q.Pop(), &n[i]);
  EXPECT_EQ(q.Pop(), nullptr);
  EXPECT_TRUE(q.Empty());
}

// The single-node path: the consumer must re-insert the stub to release
// the last node, over and over.
TEST(MpscQueueTest, AlternatingPushPopOfOneNode) {
  Queue q;
  Node a, b;
  for (int i = 0; i < 100; ++i) {
    Node* n = (i % 2) ? &a : &b;
    q.Push(n);
    EXPECT_FALSE(q.Empty());
    EXPECT_EQ(q.Pop(), n);
    EXPECT_TRUE(q.Empty());
    EXPECT_EQ(q.Pop(), nullptr);
  }
}

TEST(MpscQueueTest, PoppedNodeCanBePushedAgainImmediately) {
  Queue q;
  Node a, b;
  q.Push(&a);
  q.Push(&b);
  Node* x = q.Pop();
  EXPECT_EQ(x, &a);
  q.Push(x);
  EXPECT_EQ(q.Pop(), &b);
  EXPECT_EQ(q.Pop(), &a);
  EXPECT_EQ(q.Pop(), nullptr);
}

TEST(MpscQueueTest, PopAllReturnsFifoChain) {
  Queue q;
  Node n[6];
  for (auto& x : n) q.Push(&x);
  EXPECT_EQ(q.Pop(), &n[0]);
  Node* chain = q.PopAll();
  int i = 1;
  for (Node* p = chain; p != nullptr; p = Queue::NextOf(p)) EXPECT_EQ(p, &n[i++]);
  EXPECT_EQ(i, 6);
  EXPECT_TRUE(q.Empty());
  q.Push(&n[0]);  // usable afterwards
  EXPECT_EQ(q.PopAll(), &n[0]);
  EXPECT_EQ(Queue::NextOf(&n[0]), nullptr);
}

// Several producers push numbered nodes; the consumer checks that it sees
// each producer's nodes in order, each exactly once. Nodes are recycled
// back to their producer through a Treiber stack, so over millions of
// operations nodes are pushed many times.
TEST(MpscQueueStressTest, ManyProducersOneConsumer) {
  constexpr int kProducers = 7;
  constexpr int kNodesPerProducer = 256;
  const std::int64_t per_producer = testing::Scaled(2000000);
  Queue q;
  std::vector<Node> nodes(kProducers * kNodesPerProducer);
  using FreeStack = TreiberStack<Node, &Node::free_next>;
  std::vector<FreeStack> free_lists(kProducers);
  for (int p = 0; p < kProducers; ++p) {
    for (int i = 0; i < kNodesPerProducer; ++i) {
      Node* n = &nodes[p * kNodesPerProducer + i];
      n->producer = p;
      free_lists[p].Push(n);
    }
  }
  testing::StartGate gate;
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      gate.Wait();
      for (std::int64_t seq = 0; seq < per_producer; ++seq) {
        Node* n;
        while ((n = free_lists[p].Pop()) == nullptr) std::this_thread::yield();
        n->seq = seq;
        q.Push(n);
      }
    });
  }
  std::vector<std::int64_t> expected(kProducers, 0);
  std::int64_t received = 0;
  int errors = 0;
  gate.Release();
  const std::int64_t total = kProducers * per_producer;
  while (received < total) {
    Node* n = (received & 1) ? q.Pop() : q.PopAll();
    if (n == nullptr) {
      std::this_thread::yield();
      continue;
    }
    // Pop returns one node; PopAll a chain (walk it).
    const bool chain = (received & 1) == 0;
    while (n != nullptr) {
      Node* next = chain ? Queue::NextOf(n) : nullptr;
      if (n->producer < 0 || n->producer >= kProducers || n->seq != expected[n->producer]) {
        if (++errors < 5) {
          ADD_FAILURE() << "producer " << n->producer << " seq " << n->seq << " expected "
                        << (n->producer >= 0 && n->producer < kProducers ? expected[n->producer]
                                                                         : -1);
        }
      } else {
        ++expected[n->producer];
      }
      ++received;
      free_lists[n->producer].Push(n);
      n = next;
    }
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(errors, 0);
  for (int p = 0; p < kProducers; ++p) EXPECT_EQ(expected[p], per_producer) << p;
  EXPECT_EQ(q.Pop(), nullptr);
  EXPECT_TRUE(q.Empty());
}

// The consumer role may move between threads given a happens-before edge
// (here: join).
TEST(MpscQueueTest, ConsumerHandOffAfterJoin) {
  Queue q;
  Node n[4];
  q.Push(&n[0]);
  q.Push(&n[1]);
  std::thread first([&] { EXPECT_EQ(q.Pop(), &n[0]); });
  first.join();
  q.Push(&n[2]);
  std::thread second([&] {
    EXPECT_EQ(q.Pop(), &n[1]);
    EXPECT_EQ(q.Pop(), &n[2]);
    EXPECT_EQ(q.Pop(), nullptr);
  });
  second.join();
}

}  // namespace
}  // namespace strata
