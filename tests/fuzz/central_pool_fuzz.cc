// tests/fuzz/central_pool_fuzz.cc: random Remove/Insert/Drain sequences on
// central pools of random classes (pools of their own, beside the engine's,
// over the global page heap). Checked: Remove hands out `got` distinct
// objects in a chain of exactly `got`, each a block of the class at a
// block boundary of a span the class map attributes to the class, none
// already out; the pool's objects_out equals what the test holds; objects
// written by the test are never touched by the pool beyond the link word;
// returning everything and draining gives the spans back.
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>
#include <set>
#include <vector>

#include "alloc/internal/central_pool.h"
#include "alloc/internal/page_map.h"
#include "alloc/internal/span.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

using namespace strata::internal;

// Each with first-tier slots of its own (the engine's pools use the
// classes' slots in this process too).
constinit CentralPool::Transfer::Slots g_pool_slots[kNumClasses];

template <std::size_t... I>
constexpr std::array<CentralPool, sizeof...(I)> MakePools(std::index_sequence<I...>) {
  return {CentralPool(&g_pool_slots[I])...};
}

constinit std::array<CentralPool, kNumClasses> g_pools = MakePools(std::make_index_sequence<kNumClasses>());

struct Held {
  std::vector<FreeObject*> objects;
};

void CheckObject(FreeObject* o, int c) {
  auto addr = reinterpret_cast<std::uintptr_t>(o);
  FUZZ_CHECK(addr % 16 == 0);
  FUZZ_CHECK(g_class_map.Get(addr) == c);
  Segment* seg = g_segment_map.Get(addr);
  FUZZ_CHECK(seg != nullptr && seg->kind == SegmentKind::kNormal);
  Span* span = seg->SpanOf(addr);
  FUZZ_CHECK(span->state == SpanState::kSmall && span->size_class == c);
  std::size_t offset = addr - span->start();
  FUZZ_CHECK(offset % ClassSize(c) == 0);
  FUZZ_CHECK(offset / ClassSize(c) < ClassInfo(c).objects);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  strata::fuzz::Input in(data, size);
  static Held held[kNumClasses];
  std::set<FreeObject*> out;
  int classes[4];
  for (int& c : classes) c = 1 + static_cast<int>(in.Below(kNumClasses - 1));
  for (int op = 0; op < 400 && !in.empty(); ++op) {
    int c = classes[in.Byte() % 4];
    CentralPool& pool = g_pools[c];
    Held& h = held[c];
    const int batch = ClassInfo(c).batch;
    switch (in.Byte() % 4) {
      case 0:
      case 1: {
        if (h.objects.size() > 20000) break;
        int n = in.Byte() % 2 == 0 ? batch : 1 + static_cast<int>(in.Below(static_cast<std::uint32_t>(batch)));
        FreeObject* head = nullptr;
        int got = pool.Remove(c, n, &head);
        // Memory is plentiful here: exactly n, except that a request for a
        // whole batch may take the first tier's top batch, which holds 2 up
        // to batch objects (a partial batch inserted earlier).
        FUZZ_CHECK(got == n || (n == batch && got >= 2 && got < n));
        int count = 0;
        for (FreeObject* o = head; o != nullptr; o = GetNext(o)) {
          FUZZ_CHECK(++count <= got);
          CheckObject(o, c);
          FUZZ_CHECK(out.insert(o).second);  // not handed out twice
          h.objects.push_back(o);
        }
        FUZZ_CHECK(count == got);
        // The test owns them now: write all but the first word.
        for (int i = 0; i < got; ++i) {
          FreeObject* o = h.objects[h.objects.size() - 1 - static_cast<std::size_t>(i)];
          if (ClassSize(c) > 8) std::memset(reinterpret_cast<char*>(o) + 8, 0x5a, ClassSize(c) - 8 > 256 ? 256 : ClassSize(c) - 8);
        }
        break;
      }
      case 2: {
        if (h.objects.empty()) break;
        std::size_t k = 1 + in.Below(static_cast<std::uint32_t>(h.objects.size() < 2 * static_cast<std::size_t>(batch) ? h.objects.size() : 2 * static_cast<std::size_t>(batch)));
        // A chain of k objects picked from anywhere in what is held.
        FreeObject* head = nullptr;
        for (std::size_t i = 0; i < k; ++i) {
          std::size_t j = in.Below(static_cast<std::uint32_t>(h.objects.size()));
          FreeObject* o = h.objects[j];
          h.objects[j] = h.objects.back();
          h.objects.pop_back();
          const char* body = reinterpret_cast<const char*>(o) + 8;
          if (ClassSize(c) > 8) FUZZ_CHECK(body[0] == 0x5a);  // untouched while out
          out.erase(o);
          SetNext(o, head);
          head = o;
        }
        pool.Insert(c, head, static_cast<int>(k));
        break;
      }
      default:
        pool.Drain(c);
        break;
    }
    FUZZ_CHECK(pool.objects_out(c) == static_cast<std::int64_t>(h.objects.size()));
  }
  // Everything back, in batches and singles, then drained.
  for (int c : classes) {
    Held& h = held[c];
    while (!h.objects.empty()) {
      FreeObject* o = h.objects.back();
      h.objects.pop_back();
      SetNext(o, nullptr);
      g_pools[c].Insert(c, o, 1);
    }
    g_pools[c].Drain(c);
    FUZZ_CHECK(g_pools[c].objects_out(c) == 0);
  }
  return 0;
}
