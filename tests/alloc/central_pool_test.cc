// The central pool's two tiers (alloc/internal/central_pool.h), on a pool
// of its own beside the engine's: a whole batch waits in the first tier; a
// partial batch waits there only when it is to be reused soon (a thread
// cache's overflow), and otherwise goes back to its spans, as single
// objects always do; a batch comes out of the first tier with its count; a
// refill from the spans takes what came back to them in address order,
// each span's together, without touching the objects (normal mode), finds
// objects that came back below what it took before, and leaves the
// accounting exact; the first tier grows while batches flow
// through it, not for a pile-up, within one budget over all classes, and
// a drain brings it back; a batch cut out of an allocation order goes to
// the spans, which put it back in address order.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/address_runs.h"
#include "alloc/internal/cache_slots.h"
#include "alloc/internal/central_pool.h"
#include "alloc/internal/errors.h"
#include "alloc/internal/hardening.h"
#include "alloc/internal/page_map.h"
#include "alloc/internal/size_classes.h"
#include "alloc/internal/span.h"
#include "alloc/strata.h"

namespace strata::internal {
namespace {

// Its own first-tier slots: the engine's pool of the same class uses the
// class's slots in this process too.
constinit CentralPool::Transfer::Slots g_pool_slots;
constinit CentralPool g_pool(&g_pool_slots);

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

Span* SpanOfObject(FreeObject* o) {
  const auto addr = reinterpret_cast<std::uintptr_t>(o);
  return g_segment_map.Get(addr)->SpanOf(addr);
}

// Where `o` comes in its span's scan order (central_pool.h): by address,
// starting at the bitmap word of the span's colour (its first carved
// object) and wrapping.
std::uint64_t ScanKey(FreeObject* o, int size_class) {
  Span* s = SpanOfObject(o);
  const std::uint64_t words = s->bytes() >> (kGranuleShift + 6);
  const std::uint64_t colour = (std::uint64_t{s->carve_start} * ClassSize(size_class)) >> (kGranuleShift + 6);
  const std::uint64_t granule = (reinterpret_cast<std::uintptr_t>(o) - s->start()) >> kGranuleShift;
  const std::uint64_t word = granule >> 6;
  return ((word + words - colour) % words) * 64 + granule % 64;
}

TEST_F(CentralPoolTest, ARefillTakesWhatCameBackToSpansInAddressOrderWithoutTouchingIt) {
  // Three spans' worth and more out, so that three spans are fully handed out.
  const std::size_t per_span = SpanObjects(c_, false);
  while (held_.size() < 3 * per_span + static_cast<std::size_t>(batch_)) ASSERT_EQ(TakeBatch(), batch_);
  std::vector<Span*> spans;
  for (FreeObject* o : held_) {
    Span* s = SpanOfObject(o);
    if (std::find(spans.begin(), spans.end(), s) == spans.end()) spans.push_back(s);
  }
  ASSERT_GE(spans.size(), 4u);
  // A few objects of each of three spans back to their spans, as a thread
  // cache's partial batch given back (an array, not linked), in descending
  // address order and spans mixed: their addresses are all the pool gets.
  constexpr int kPerSpan = 5;
  std::vector<FreeObject*> given;
  for (int k = 0; k < 3; ++k) {
    int n = 0;
    for (std::size_t i = 0; i < held_.size() && n < kPerSpan;) {
      if (SpanOfObject(held_[i]) != spans[k]) {
        ++i;
        continue;
      }
      given.push_back(held_[i]);
      held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(i));
      ++n;
    }
    ASSERT_EQ(n, kPerSpan);
  }
  std::sort(given.begin(), given.end(), [](FreeObject* a, FreeObject* b) {
    return reinterpret_cast<std::uintptr_t>(a) > reinterpret_cast<std::uintptr_t>(b);
  });
  // Each object's bytes hold a pattern the pool must leave alone (normal
  // mode keeps no links in returned objects; hardened mode does).
  const bool untouched = !Hardened();
  auto pattern = [](FreeObject* o) { return static_cast<unsigned char>(reinterpret_cast<std::uintptr_t>(o) >> 6); };
  if (untouched) {
    for (FreeObject* o : given) std::memset(o, pattern(o), ClassSize(c_));
  }
  g_pool.InsertBatch(c_, given.data(), static_cast<int>(given.size()), /*reuse_soon=*/false);
  ASSERT_GE(batch_, static_cast<int>(given.size()) + 8);
  EXPECT_EQ(g_pool.free_objects(c_), given.size());
  const std::set<FreeObject*> out_before(held_.begin(), held_.end());
  std::vector<FreeObject*> out(RefillBound(c_));
  const int got = g_pool.RemoveForCache(c_, batch_, /*first_refill=*/false, 0, out.data());
  ASSERT_GE(got, batch_);
  // Handed out from the array's end: hand-out order.
  std::vector<FreeObject*> order(out.rbegin() + static_cast<std::ptrdiff_t>(out.size() - static_cast<std::size_t>(got)),
                                 out.rend());
  ASSERT_EQ(order.size(), static_cast<std::size_t>(got));
  const std::set<FreeObject*> got_set(order.begin(), order.end());
  EXPECT_EQ(got_set.size(), order.size()) << "an object handed out twice";
  for (FreeObject* o : order) EXPECT_EQ(out_before.count(o), 0u);
  // The objects that came back are handed out first (before any carving),
  // each span's together and (normal mode) in ascending address order.
  const std::set<FreeObject*> given_set(given.begin(), given.end());
  const std::size_t n_given = given.size();
  EXPECT_EQ(std::set<FreeObject*>(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n_given)), given_set);
  std::set<Span*> spans_done;
  for (std::size_t i = 0; i < n_given && untouched; ++i) {
    Span* s = SpanOfObject(order[i]);
    if (i > 0 && s == SpanOfObject(order[i - 1])) {
      EXPECT_LT(ScanKey(order[i - 1], c_), ScanKey(order[i], c_)) << "a span's objects out of address order at " << i;
    } else {
      EXPECT_EQ(spans_done.count(s), 0u) << "a span's objects not together at " << i;
      spans_done.insert(s);
    }
  }
  if (untouched) {
    EXPECT_EQ(spans_done.size(), 3u);
    for (FreeObject* o : given) {
      const auto* bytes = reinterpret_cast<const unsigned char*>(o);
      for (std::size_t k = 0; k < ClassSize(c_); ++k) ASSERT_EQ(bytes[k], pattern(o)) << "object written at byte " << k;
    }
  }
  EXPECT_EQ(g_pool.free_objects(c_), 0u);
  EXPECT_EQ(g_pool.objects_out(c_), static_cast<std::int64_t>(held_.size() + order.size()));
  held_.insert(held_.end(), order.begin(), order.end());
  // TearDown gives all back, drains, and expects nothing out.
}

// A batch made of pieces of several runs of neighbouring blocks (an
// allocation order cut apart, central_pool.h "Batches cut out of an
// order") goes to the spans, which hand it out again in address order;
// a batch of one run, and a batch in no order at all, wait in the first
// tier as before.
TEST_F(CentralPoolTest, ABatchCutOutOfAnOrderGoesBackToItsSpansWholeRunsAndNoOrderStay) {
  ASSERT_EQ(TakeBatch(), batch_);
  std::vector<FreeObject*> sorted = held_;
  std::sort(sorted.begin(), sorted.end());
  const std::size_t size = ClassSize(c_);
  // Two stretches of neighbours, each at least half a batch long.
  std::vector<std::vector<FreeObject*>> runs(1);
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    if (i > 0 && reinterpret_cast<std::uintptr_t>(sorted[i]) - reinterpret_cast<std::uintptr_t>(sorted[i - 1]) != size) {
      runs.emplace_back();
    }
    runs.back().push_back(sorted[i]);
  }
  // Stretches of half a batch, cut from the runs.
  const std::size_t half = static_cast<std::size_t>(batch_) / 2;
  std::vector<std::vector<FreeObject*>> stretches;
  for (const auto& run : runs) {
    for (std::size_t at = 0; at + half <= run.size(); at += half) {
      stretches.emplace_back(run.begin() + static_cast<std::ptrdiff_t>(at), run.begin() + static_cast<std::ptrdiff_t>(at + half));
    }
  }
  ASSERT_GE(stretches.size(), 3u) << "the carves were expected to give long runs";
  // Every other stretch: no two of those chosen are neighbours.
  runs = {stretches[0], stretches[2]};
  // Pieces of 8 taken in turn from the two stretches: batch_ / 8 runs.
  std::vector<FreeObject*> cut;
  for (std::size_t p = 0; cut.size() < static_cast<std::size_t>(batch_); ++p) {
    const std::vector<FreeObject*>& from = runs[p % 2];
    const std::size_t at = (p / 2) * 8;
    cut.insert(cut.end(), from.begin() + static_cast<std::ptrdiff_t>(at), from.begin() + static_cast<std::ptrdiff_t>(at + 8));
  }
  ASSERT_EQ(CountAddressRuns(cut.data(), static_cast<std::uint32_t>(cut.size()), size),
            static_cast<std::uint32_t>(batch_ / 8));
  const std::set<FreeObject*> cut_set(cut.begin(), cut.end());
  for (FreeObject* o : cut) held_.erase(std::find(held_.begin(), held_.end(), o));
  const std::uint32_t tier_before = g_pool.first_tier_batches(c_);
  g_pool.InsertBatch(c_, cut.data(), batch_, /*reuse_soon=*/true);
  EXPECT_EQ(g_pool.first_tier_batches(c_), tier_before) << "a cut order waited in the first tier";
  EXPECT_EQ(g_pool.free_objects(c_), static_cast<std::size_t>(batch_));
  // The refill takes them from the spans, in address order (each span's
  // together; these lie in at most two spans).
  std::vector<FreeObject*> out(RefillBound(c_));
  const int got = g_pool.RemoveForCache(c_, batch_, /*first_refill=*/false, 0, out.data());
  ASSERT_GE(got, batch_);
  std::vector<FreeObject*> order(out.rbegin() + static_cast<std::ptrdiff_t>(out.size() - static_cast<std::size_t>(got)),
                                 out.rend());
  EXPECT_EQ(std::set<FreeObject*>(order.begin(), order.begin() + batch_), cut_set);
  if (!Hardened()) {
    EXPECT_LE(CountAddressRuns(order.data(), static_cast<std::uint32_t>(batch_), size), 3u)
        << "the spans did not put the pieces back in address order";
  }
  held_.insert(held_.end(), order.begin(), order.end());

  // One run of neighbours: the first tier keeps it.
  std::vector<FreeObject*> whole(runs[0].begin(), runs[0].begin() + static_cast<std::ptrdiff_t>(half));
  ASSERT_EQ(CountAddressRuns(whole.data(), static_cast<std::uint32_t>(whole.size()), size), 1u);
  for (FreeObject* o : whole) held_.erase(std::find(held_.begin(), held_.end(), o));
  g_pool.InsertBatch(c_, whole.data(), static_cast<int>(whole.size()), /*reuse_soon=*/true);
  EXPECT_EQ(g_pool.first_tier_batches(c_), tier_before + 1);
  FreeObject* head = nullptr;
  ASSERT_EQ(g_pool.Remove(c_, batch_, &head), static_cast<int>(whole.size()));
  std::vector<FreeObject*> chain = Chain(head);
  held_.insert(held_.end(), chain.begin(), chain.end());

  // No order (a run a block): the first tier keeps it too.
  std::vector<FreeObject*> scattered;
  for (std::size_t i = 0; i < half; ++i) scattered.push_back(sorted[(i * 37) % sorted.size()]);
  std::sort(scattered.begin(), scattered.end());
  scattered.erase(std::unique(scattered.begin(), scattered.end()), scattered.end());
  for (std::size_t i = 0; i + 1 < scattered.size(); i += 2) std::swap(scattered[i], scattered[scattered.size() - 1 - i]);
  std::vector<FreeObject*> loose;
  for (FreeObject* o : scattered) {
    if (std::find(held_.begin(), held_.end(), o) != held_.end()) loose.push_back(o);
  }
  ASSERT_GE(loose.size(), 16u);
  ASSERT_GT(CountAddressRuns(loose.data(), static_cast<std::uint32_t>(loose.size()), size) * 8,
            static_cast<std::uint32_t>(loose.size()));
  for (FreeObject* o : loose) held_.erase(std::find(held_.begin(), held_.end(), o));
  g_pool.InsertBatch(c_, loose.data(), static_cast<int>(loose.size()), /*reuse_soon=*/true);
  EXPECT_EQ(g_pool.first_tier_batches(c_), tier_before + 1);
  head = nullptr;
  ASSERT_EQ(g_pool.Remove(c_, batch_, &head), static_cast<int>(loose.size()));
  chain = Chain(head);
  held_.insert(held_.end(), chain.begin(), chain.end());
}

// Errors the pool reports (errors.h), recorded by RecordError.
std::vector<std::pair<ErrorKind, const void*>> g_reported;
void RecordError(ErrorKind kind, const void* ptr, std::size_t, const char*) { g_reported.emplace_back(kind, ptr); }

// A run of neighbours in a batch given back to the spans has its bits set
// a bitmap word at a time (central_pool.cc, InsertToSpans): every object
// of it comes back once, a block in it that is back already (freed twice)
// is reported and not counted twice, and the run stops at an object not
// carved yet, which is reported as before. On a pool of its own: the
// reported frees stay counted back in objects_out (the pool counts a
// batch back whole, its bad objects too), which the fixture's pool must
// end at zero.
constinit CentralPool::Transfer::Slots g_run_pool_slots;
constinit CentralPool g_run_pool(&g_run_pool_slots);

TEST(CentralPoolRunTest, ARunOfNeighboursComesBackWholeAndAFreeTwiceOrAnUncarvedBlockInItIsCaught) {
  if (Hardened()) GTEST_SKIP() << "hardened mode's bitmap means allocated: its frees clear bits first";
  (void)strata::GoodSize(1);
  const int c = SizeToClass(64);
  const int batch = ClassInfo(c).batch;
  std::vector<FreeObject*> held;
  for (int k = 0; k < 2; ++k) {
    FreeObject* head = nullptr;
    ASSERT_EQ(g_run_pool.Remove(c, batch, &head), batch);
    std::vector<FreeObject*> chain = Chain(head);
    held.insert(held.end(), chain.begin(), chain.end());
  }
  ASSERT_EQ(g_run_pool.free_objects(c), 0u);
  const std::uintptr_t size = ClassSize(c);
  std::vector<FreeObject*> sorted = held;
  std::sort(sorted.begin(), sorted.end());
  // The longest stretch of neighbours among the held objects.
  std::size_t best_at = 0, best_len = 1;
  for (std::size_t at = 0, len = 1; at + len <= sorted.size(); ++len) {
    if (at + len == sorted.size() ||
        reinterpret_cast<std::uintptr_t>(sorted[at + len]) - reinterpret_cast<std::uintptr_t>(sorted[at + len - 1]) != size) {
      if (len > best_len) best_at = at, best_len = len;
      at += len;
      len = 0;
    }
  }
  // 40 blocks of 64 bytes cover three bitmap words or more (1 KiB each).
  ASSERT_GE(best_len, 40u);
  std::vector<FreeObject*> run(sorted.begin() + static_cast<std::ptrdiff_t>(best_at),
                               sorted.begin() + static_cast<std::ptrdiff_t>(best_at + 40));
  auto give = [&](std::vector<FreeObject*> objects) {
    for (FreeObject* o : objects) {
      auto it = std::find(held.begin(), held.end(), o);
      if (it != held.end()) held.erase(it);
    }
    g_run_pool.InsertBatch(c, objects.data(), static_cast<int>(objects.size()), /*reuse_soon=*/false);
  };
  const ErrorHook previous = SetErrorHook(&RecordError);
  g_reported.clear();
  // run[0, 30) back: a partial batch goes to the spans.
  give(std::vector<FreeObject*>(run.begin(), run.begin() + 30));
  EXPECT_TRUE(g_reported.empty());
  EXPECT_EQ(g_run_pool.free_objects(c), 30u);
  // run[20, 40) back: run[20, 30) a second time.
  give(std::vector<FreeObject*>(run.begin() + 20, run.begin() + 40));
  SetErrorHook(previous);
  ASSERT_EQ(g_reported.size(), 4u) << "each free twice is reported (PendingErrors keeps the first four)";
  for (std::size_t k = 0; k < g_reported.size(); ++k) {
    EXPECT_EQ(g_reported[k].first, ErrorKind::kDoubleFree);
    EXPECT_EQ(g_reported[k].second, run[20 + k]);
  }
  EXPECT_EQ(g_run_pool.free_objects(c), 40u) << "a block freed twice was counted twice";
  // A refill hands the 40 out again, once each, in address order.
  std::vector<FreeObject*> out(RefillBound(c));
  const int got = g_run_pool.RemoveForCache(c, batch, /*first_refill=*/false, 0, out.data());
  ASSERT_GE(got, 40);
  std::vector<FreeObject*> order(out.rbegin() + static_cast<std::ptrdiff_t>(out.size() - static_cast<std::size_t>(got)),
                                 out.rend());
  // In the span's scan order (address order from its colour's word on).
  std::vector<FreeObject*> scan_order = run;
  std::sort(scan_order.begin(), scan_order.end(),
            [c](FreeObject* a, FreeObject* b) { return ScanKey(a, c) < ScanKey(b, c); });
  EXPECT_EQ(std::vector<FreeObject*>(order.begin(), order.begin() + 40), scan_order) << "not handed out in scan order";
  EXPECT_EQ(std::set<FreeObject*>(order.begin(), order.end()).size(), order.size()) << "an object handed out twice";
  held.insert(held.end(), order.begin(), order.end());

  // A run that reaches past the span's carved objects: the carved ones come
  // back, the next block (never handed out) is reported.
  ASSERT_EQ(g_run_pool.free_objects(c), 0u);
  const std::set<FreeObject*> held_set(held.begin(), held.end());
  FreeObject* edge = nullptr;
  for (FreeObject* o : held) {
    auto* next = reinterpret_cast<FreeObject*>(reinterpret_cast<std::uintptr_t>(o) + size);
    auto* before = reinterpret_cast<FreeObject*>(reinterpret_cast<std::uintptr_t>(o) - 3 * size);
    // Nothing is free in the pool: a block of the span not held was
    // never carved.
    Span* span = SpanOfObject(o);
    if (held_set.count(next) == 0 && held_set.count(before) != 0 && SpanOfObject(before) == span &&
        reinterpret_cast<std::uintptr_t>(next) - span->start() + size <= SpanObjects(c, false) * size) {
      edge = o;
      break;
    }
  }
  ASSERT_NE(edge, nullptr) << "no carved block followed by an uncarved one in its span";
  const auto e = reinterpret_cast<std::uintptr_t>(edge);
  std::vector<FreeObject*> past;
  for (std::uintptr_t k = 0; k < 5; ++k) past.push_back(reinterpret_cast<FreeObject*>(e - 3 * size + k * size));
  for (std::size_t k = 0; k + 1 < past.size(); ++k) ASSERT_EQ(held_set.count(past[k]), 1u);
  g_reported.clear();
  SetErrorHook(&RecordError);
  give(past);
  SetErrorHook(previous);
  ASSERT_EQ(g_reported.size(), 1u);
  EXPECT_EQ(g_reported[0].first, ErrorKind::kInteriorFree);
  EXPECT_EQ(g_reported[0].second, past[4]);
  EXPECT_EQ(g_run_pool.free_objects(c), 4u);
  // Everything back: out by minus the 11 reported frees, counted back too.
  for (FreeObject* o : held) {
    SetNext(o, nullptr);
    g_run_pool.Insert(c, o, 1);
  }
  g_run_pool.Drain(c);
  EXPECT_EQ(g_run_pool.objects_out(c), -11);
  EXPECT_EQ(g_run_pool.free_objects(c), 0u) << "every span went back to the page heap";
}

TEST_F(CentralPoolTest, ObjectsComeBackAfterARefillTookSomeOfASpans) {
  // A span's scan cursor moves past what a refill took; an object that
  // comes back below it afterwards must still be found.
  if (Hardened()) GTEST_SKIP() << "hardened mode keeps a list per span, in no address order";
  const std::size_t per_span = SpanObjects(c_, false);
  while (held_.size() < 2 * per_span) ASSERT_EQ(TakeBatch(), batch_);
  Span* span = SpanOfObject(held_[0]);
  std::vector<FreeObject*> mine;
  for (FreeObject* o : held_) {
    if (SpanOfObject(o) == span) mine.push_back(o);
  }
  std::sort(mine.begin(), mine.end(), [this](FreeObject* a, FreeObject* b) { return ScanKey(a, c_) < ScanKey(b, c_); });
  ASSERT_GE(mine.size(), 40u);
  // The later half (in the span's scan order) back, then a refill of a
  // few takes its first ones.
  std::vector<FreeObject*> upper(mine.begin() + static_cast<std::ptrdiff_t>(mine.size() / 2), mine.end());
  for (FreeObject* o : upper) held_.erase(std::find(held_.begin(), held_.end(), o));
  g_pool.InsertBatch(c_, upper.data(), static_cast<int>(upper.size()), false);
  FreeObject* head = nullptr;
  ASSERT_EQ(g_pool.Remove(c_, 3, &head), 3);
  std::vector<FreeObject*> first = Chain(head);
  EXPECT_EQ(first, std::vector<FreeObject*>(upper.begin(), upper.begin() + 3));
  held_.insert(held_.end(), first.begin(), first.end());
  // The span's first object in scan order back: it is the next one out.
  held_.erase(std::find(held_.begin(), held_.end(), mine[0]));
  g_pool.InsertBatch(c_, &mine[0], 1, false);
  ASSERT_EQ(g_pool.Remove(c_, 2, &head), 2);
  std::vector<FreeObject*> second = Chain(head);
  EXPECT_EQ(second[0], mine[0]);
  EXPECT_EQ(second[1], upper[3]);
  held_.insert(held_.end(), second.begin(), second.end());
}

TEST_F(CentralPoolTest, TheFirstTierGrowsWhileBatchesFlowThroughItNotForAPileUp) {
  g_pool.Drain(c_);
  const std::uint32_t base = g_pool.first_tier_bound(c_);
  ASSERT_GE(base, 4u);
  while (held_.size() < 2 * static_cast<std::size_t>(base + 1) * batch_) ASSERT_EQ(TakeBatch(), batch_);
  // Gives back held_'s last whole batch with its objects' addresses, as a
  // thread cache's overflow does.
  auto give_batch = [&] {
    const std::size_t from = held_.size() - static_cast<std::size_t>(batch_);
    std::vector<FreeObject*> objects(held_.begin() + static_cast<std::ptrdiff_t>(from), held_.end());
    g_pool.Insert(c_, Link(held_, from, held_.size()), batch_, /*reuse_soon=*/true, objects.data());
    held_.resize(from);
  };
  // A pile-up (nothing taken in between): the tier fills to its bound, and
  // the batch past it goes to the spans; the bound stays.
  for (std::uint32_t i = 0; i < base; ++i) give_batch();
  EXPECT_EQ(g_pool.first_tier_batches(c_), base);
  give_batch();
  EXPECT_EQ(g_pool.first_tier_batches(c_), base);
  EXPECT_EQ(g_pool.first_tier_bound(c_), base);
  // A flow: half the tier is taken, given back, and the next batch finds
  // the tier full: the bound doubles and the batch waits in the tier.
  for (std::uint32_t i = 0; i < base / 2; ++i) ASSERT_EQ(TakeBatch(), batch_);
  EXPECT_EQ(g_pool.first_tier_batches(c_), base - base / 2);
  for (std::uint32_t i = 0; i < base / 2; ++i) give_batch();
  EXPECT_EQ(g_pool.first_tier_batches(c_), base);
  give_batch();
  EXPECT_EQ(g_pool.first_tier_bound(c_), 2 * base);
  EXPECT_EQ(g_pool.first_tier_batches(c_), base + 1);
  // Without more taken, it grows no further.
  while (g_pool.first_tier_batches(c_) < 2 * base) give_batch();
  give_batch();
  EXPECT_EQ(g_pool.first_tier_bound(c_), 2 * base);
  EXPECT_EQ(g_pool.first_tier_batches(c_), 2 * base);
  // A drain empties the tier and brings the bound back.
  g_pool.Drain(c_);
  EXPECT_EQ(g_pool.first_tier_batches(c_), 0u);
  EXPECT_EQ(g_pool.first_tier_bound(c_), base);
}

// Drives batches of class `c` through `pool` as a flow (fill the first
// tier, take half, give it back and one more) until its bound stops
// growing; returns the bound. The objects it holds are left in `out`.
std::uint32_t FlowUntilGrown(CentralPool& pool, int c, std::vector<FreeObject*>& out) {
  const int batch = ClassInfo(c).batch;
  auto take = [&] {
    FreeObject* head = nullptr;
    const int got = pool.Remove(c, batch, &head);
    std::vector<FreeObject*> chain = Chain(head);
    EXPECT_EQ(chain.size(), static_cast<std::size_t>(got));
    out.insert(out.end(), chain.begin(), chain.end());
  };
  auto give = [&] {
    ASSERT_GE(out.size(), static_cast<std::size_t>(batch));
    const std::size_t from = out.size() - static_cast<std::size_t>(batch);
    std::vector<FreeObject*> objects(out.begin() + static_cast<std::ptrdiff_t>(from), out.end());
    pool.Insert(c, Link(out, from, out.size()), batch, /*reuse_soon=*/true, objects.data());
    out.resize(from);
  };
  std::uint32_t bound = pool.first_tier_bound(c);
  for (;;) {
    // Enough objects in hand for the round first (a take pops the tier).
    while (out.size() < (2 * static_cast<std::size_t>(bound) + 2) * batch) take();
    while (pool.first_tier_batches(c) < bound) give();
    for (std::uint32_t i = 0; i < bound / 2; ++i) take();
    for (std::uint32_t i = 0; i < bound / 2 + 1; ++i) give();
    const std::uint32_t now = pool.first_tier_bound(c);
    if (now == bound) return bound;
    bound = now;
  }
}

TEST(CentralPoolFlowTest, TheFirstTiersGrowWithinOneBudgetOverAllClasses) {
  (void)strata::GoodSize(1);  // process init
  // Classes of 1 KiB and up: 32-object batches of 32 KiB and more, so that
  // a few classes reach their 8 MiB and the 32 MiB over all of them.
  constexpr int kClasses = 6;
  static constinit CentralPool::Transfer::Slots slots[kClasses];
  static constinit CentralPool pools[kClasses] = {CentralPool(&slots[0]), CentralPool(&slots[1]),
                                                  CentralPool(&slots[2]), CentralPool(&slots[3]),
                                                  CentralPool(&slots[4]), CentralPool(&slots[5])};
  std::vector<FreeObject*> out[kClasses];
  const int first = SizeToClass(1024);
  std::size_t grown_bytes = 0;
  int at_most = 0;
  for (int k = 0; k < kClasses; ++k) {
    const int c = first + k;
    const std::size_t batch_bytes = static_cast<std::size_t>(ClassInfo(c).batch) * ClassInfo(c).size;
    const std::uint32_t base = pools[k].first_tier_bound(c);
    const std::uint32_t bound = FlowUntilGrown(pools[k], c, out[k]);
    EXPECT_GE(bound, base);
    EXPECT_LE(static_cast<std::size_t>(bound) * batch_bytes, std::size_t{8} << 20) << "class " << c;
    if (static_cast<std::size_t>(bound * 2) * batch_bytes > (std::size_t{8} << 20)) ++at_most;
    grown_bytes += static_cast<std::size_t>(bound - base) * batch_bytes;
  }
  // Some classes reached their own bound, and then the budget stopped the
  // others (the engine's own pools grow nothing in this test).
  EXPECT_GE(at_most, 3);
  EXPECT_LE(grown_bytes, std::size_t{32} << 20);
  EXPECT_GT(grown_bytes, std::size_t{24} << 20);
  // Draining gives the budget back: a drained class grows again.
  for (int k = 0; k < kClasses; ++k) {
    const int c = first + k;
    for (FreeObject* o : out[k]) {
      SetNext(o, nullptr);
      pools[k].Insert(c, o, 1);
    }
    out[k].clear();
    pools[k].Drain(c);
    EXPECT_EQ(pools[k].first_tier_batches(c), 0u);
    EXPECT_EQ(pools[k].objects_out(c), 0);
  }
  const int last = first + kClasses - 1;
  const std::uint32_t base = pools[kClasses - 1].first_tier_bound(last);
  EXPECT_GT(FlowUntilGrown(pools[kClasses - 1], last, out[kClasses - 1]), base);
  for (FreeObject* o : out[kClasses - 1]) {
    SetNext(o, nullptr);
    pools[kClasses - 1].Insert(last, o, 1);
  }
  pools[kClasses - 1].Drain(last);
}

}  // namespace
}  // namespace strata::internal
