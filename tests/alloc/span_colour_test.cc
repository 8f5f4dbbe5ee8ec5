// Span colouring (CentralPool::Colour, Span::carve_start): the carving of a
// new span starts at an offset that differs from span to span, so that the
// objects a program uses most (the first carved) do not all sit at the low
// offsets of 64 KiB-aligned spans, where they would compete for the same
// sets of the L2 cache. Objects keep their places: the carving only
// rotates, wraps at the span's end, hands every object out once, and an
// object the carving has not reached yet is still refused when freed.
#include <cstdint>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/block_lookup.h"
#include "alloc/internal/errors.h"
#include "alloc/internal/size_classes.h"
#include "alloc/internal/span.h"
#include "alloc/strata.h"

namespace strata {
namespace {

using internal::BlockInfo;
using internal::LookupBlock;

// Objects of this size (a class of its own) are used by no other test code
// in this binary.
constexpr std::size_t kSize = 1024;
constexpr int kSpans = 40;

int g_errors = 0;
internal::ErrorKind g_last_kind{};

void CountError(internal::ErrorKind kind, const void*, std::size_t, const char*) {
  ++g_errors;
  g_last_kind = kind;
}

struct Carved {
  std::vector<void*> objects;
  // Per span: the first object it handed to this thread, and how many.
  std::map<const internal::Span*, std::uintptr_t> first_offset;
  std::map<const internal::Span*, int> count;
};

Carved AllocateSpans(int spans) {
  Carved c;
  const int per_span = static_cast<int>(internal::ClassInfo(internal::SizeToClass(kSize)).objects);
  for (int i = 0; i < spans * per_span; ++i) {
    void* p = Allocate(kSize);
    EXPECT_NE(p, nullptr);
    const BlockInfo info = LookupBlock(reinterpret_cast<std::uintptr_t>(p));
    EXPECT_EQ(info.kind, internal::BlockKind::kSmall);
    c.objects.push_back(p);
    if (c.count[info.span]++ == 0) c.first_offset[info.span] = reinterpret_cast<std::uintptr_t>(p) - info.span->start();
  }
  return c;
}

// Frees `bad` (a block address the program was never given) alone in the
// calling thread's list, so that the flush hands it to its span, where it
// is checked (a whole batch could pass through the central pool's first
// tier unchecked), then frees `held`.
void FreeAloneAndFlush(void* bad, const std::vector<void*>& held) {
  FlushThreadCache();
  Free(bad);  // cached, checked at the flush
  FlushThreadCache();
  for (void* p : held) Free(p);
}

TEST(SpanColourTest, SuccessiveSpansStartCarvingAtDifferentOffsets) {
  Carved c;
  // A fresh thread: its list of the class starts empty, so every object it
  // gets comes straight from the spans, in carving order.
  std::thread([&] { c = AllocateSpans(kSpans); }).join();
  std::set<std::uintptr_t> offsets;
  int nonzero = 0;
  for (const auto& [span, offset] : c.first_offset) {
    offsets.insert(offset);
    nonzero += offset != 0;
  }
  EXPECT_GE(c.first_offset.size(), static_cast<std::size_t>(kSpans));
  // Uncoloured, every span would start at offset 0.
  EXPECT_GE(offsets.size(), c.first_offset.size() / 2) << "spans start carving at too few offsets";
  EXPECT_GE(nonzero, kSpans / 2);
  for (void* p : c.objects) Free(p);
}

TEST(SpanColourTest, EveryObjectIsCarvedOnceThroughTheWrap) {
  internal::ErrorHook previous = internal::SetErrorHook(&CountError);
  g_errors = 0;
  Carved c;
  std::thread([&] {
    c = AllocateSpans(kSpans);
    // Every object back to its span (the flush checks each one against the
    // span's carved objects).
    for (void* p : c.objects) Free(p);
    FlushThreadCache();
  }).join();
  const int per_span = static_cast<int>(internal::ClassInfo(internal::SizeToClass(kSize)).objects);
  std::set<void*> distinct(c.objects.begin(), c.objects.end());
  EXPECT_EQ(distinct.size(), c.objects.size());
  int full = 0;
  for (const auto& [span, n] : c.count) {
    EXPECT_LE(n, per_span);
    full += n == per_span;
  }
  // All but the spans shared with other threads' carving are used whole.
  EXPECT_GE(full, kSpans - 2);
  for (void* p : c.objects) EXPECT_EQ((reinterpret_cast<std::uintptr_t>(p) & 0xffff) % kSize, 0u);
  EXPECT_EQ(g_errors, 0) << "an object the span carved was refused";
  internal::SetErrorHook(previous);
}

TEST(SpanColourTest, AnObjectNotCarvedYetIsRefused) {
  internal::ErrorHook previous = internal::SetErrorHook(&CountError);
  g_errors = 0;
  std::thread([] {
    const int per_span = static_cast<int>(internal::ClassInfo(internal::SizeToClass(kSize)).objects);
    // Find a span whose carving started past its first object, with
    // objects before the start still uncarved: the one right before the
    // start is a valid block address the program was never given.
    std::vector<void*> held;
    void* victim = nullptr;
    for (int i = 0; i < 4 * kSpans * per_span && victim == nullptr; ++i) {
      void* p = Allocate(kSize);
      held.push_back(p);
      const BlockInfo info = LookupBlock(reinterpret_cast<std::uintptr_t>(p));
      const internal::Span* span = info.span;
      if (span->carve_start > 0 && span->carved < static_cast<std::uint32_t>(per_span)) {
        victim = reinterpret_cast<void*>(span->start() + (span->carve_start - 1) * kSize);
      }
    }
    ASSERT_NE(victim, nullptr) << "no coloured span found";
    FreeAloneAndFlush(victim, held);
  }).join();
  EXPECT_EQ(g_errors, 1);
  EXPECT_EQ(g_last_kind, internal::ErrorKind::kInteriorFree);
  internal::SetErrorHook(previous);
}

// A span whose objects do not fill it has a tail; an address there at a
// multiple of the object size is no object, even once the carving has
// wrapped round and every object is out (the carving order of an index
// past the last object would otherwise look carved).
TEST(SpanColourTest, TheTailOfAFullyCarvedSpanIsRefused) {
  constexpr std::size_t kTailSize = 48;  // 1365 objects, a 16-byte tail
  const internal::SizeClassInfo& info = internal::ClassInfo(internal::SizeToClass(kTailSize));
  ASSERT_EQ(internal::ClassSize(internal::SizeToClass(kTailSize)), kTailSize);
  ASSERT_LT(std::size_t{info.objects} * kTailSize, std::size_t{info.span_slices} << 16);
  internal::ErrorHook previous = internal::SetErrorHook(&CountError);
  g_errors = 0;
  std::thread([&] {
    // Allocate until some span of the class is fully carved, with a colour.
    std::vector<void*> held;
    const internal::Span* full = nullptr;
    for (int i = 0; i < 8 * static_cast<int>(info.objects) && full == nullptr; ++i) {
      void* p = Allocate(kTailSize);
      held.push_back(p);
      const internal::Span* span = LookupBlock(reinterpret_cast<std::uintptr_t>(p)).span;
      if (span->carved == info.objects && span->carve_start > 0) full = span;
    }
    ASSERT_NE(full, nullptr) << "no coloured span was carved whole";
    FreeAloneAndFlush(reinterpret_cast<void*>(full->start() + std::size_t{info.objects} * kTailSize), held);
  }).join();
  EXPECT_EQ(g_errors, 1);
  EXPECT_EQ(g_last_kind, internal::ErrorKind::kInteriorFree);
  internal::SetErrorHook(previous);
}

}  // namespace
}  // namespace strata
