// The central pool's two tiers (alloc/internal/central_pool.h), on a pool
// of its own beside the engine's: a whole batch waits in the first tier; a
// partial batch waits there only when it is to be reused soon (a thread
// cache's overflow), and otherwise goes back to its spans, as single
// objects always do; a batch comes out of the first tier with its count.
#include <cstdint>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/central_pool.h"
#include "alloc/internal/size_classes.h"
#include "alloc/internal/span.h"
#include "alloc/strata.h"

namespace strata::internal {
namespace {

constinit CentralPool g_pool;

std::vector<FreeObject*> Chain(FreeObject* head) {
  std::vector<FreeObject*> v;
  for (FreeObject* o = head; o != nullptr; o = GetNext(o)) v.push_back(o);
  return v;
}

// Links objects[from, to) into a chain.
FreeObject* Link(const std::vector<FreeObject*>& objects, std::size_t from, std::size_t to) {
  for (std::size_t i = from; i < to; ++i) SetNext(objects[i], i + 1 < to ? objects[i + 1] : nullptr);
  return objects[from];
}

class CentralPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    (void)strata::GoodSize(1);  // process init (the page heap's mode)
    c_ = SizeToClass(64);
    batch_ = ClassInfo(c_).batch;
    ASSERT_GE(batch_, 8);
    FreeObject* head = nullptr;
    ASSERT_EQ(g_pool.Remove(c_, batch_, &head), batch_);
    held_ = Chain(head);
    ASSERT_EQ(held_.size(), static_cast<std::size_t>(batch_));
  }
  void TearDown() override {
    for (FreeObject* o : held_) {
      SetNext(o, nullptr);
      g_pool.Insert(c_, o, 1);
    }
    g_pool.Drain(c_);
    EXPECT_EQ(g_pool.objects_out(c_), 0);
  }
  // Takes the next batch-sized request back into held_; returns its count.
  int TakeBatch() {
    FreeObject* head = nullptr;
    int got = g_pool.Remove(c_, batch_, &head);
    std::vector<FreeObject*> chain = Chain(head);
    EXPECT_EQ(chain.size(), static_cast<std::size_t>(got));
    held_.insert(held_.end(), chain.begin(), chain.end());
    return got;
  }

  int c_ = 0;
  int batch_ = 0;
  std::vector<FreeObject*> held_;
};

TEST_F(CentralPoolTest, AnOverflowsPartialBatchWaitsInTheFirstTierWithItsCount) {
  const std::set<FreeObject*> given(held_.begin(), held_.begin() + 5);
  g_pool.Insert(c_, Link(held_, 0, 5), 5, /*reuse_soon=*/true);
  held_.erase(held_.begin(), held_.begin() + 5);
  FreeObject* head = nullptr;
  // A whole batch is asked for; the first tier's top batch (those 5) comes.
  ASSERT_EQ(g_pool.Remove(c_, batch_, &head), 5);
  std::vector<FreeObject*> chain = Chain(head);
  EXPECT_EQ(std::set<FreeObject*>(chain.begin(), chain.end()), given);
  held_.insert(held_.end(), chain.begin(), chain.end());
}

TEST_F(CentralPoolTest, APartialBatchGivenBackGoesToItsSpans) {
  g_pool.Insert(c_, Link(held_, 0, 5), 5);  // reuse_soon = false: a flush
  held_.erase(held_.begin(), held_.begin() + 5);
  // Nothing waits in the first tier: the request is served whole from the
  // spans (the 5 objects among others).
  EXPECT_EQ(TakeBatch(), batch_);
}

TEST_F(CentralPoolTest, SingleObjectsGoToTheirSpansEvenWhenReusedSoon) {
  SetNext(held_[0], nullptr);
  g_pool.Insert(c_, held_[0], 1, /*reuse_soon=*/true);
  held_.erase(held_.begin());
  EXPECT_EQ(TakeBatch(), batch_);
}

TEST_F(CentralPoolTest, AWholeBatchWaitsInTheFirstTier) {
  const std::set<FreeObject*> given(held_.begin(), held_.end());
  g_pool.Insert(c_, Link(held_, 0, held_.size()), batch_);
  held_.clear();
  FreeObject* head = nullptr;
  ASSERT_EQ(g_pool.Remove(c_, batch_, &head), batch_);
  std::vector<FreeObject*> chain = Chain(head);
  EXPECT_EQ(std::set<FreeObject*>(chain.begin(), chain.end()), given);
  held_ = chain;
}

}  // namespace
}  // namespace strata::internal
