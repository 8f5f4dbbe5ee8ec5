// tests/fuzz/epoch_fuzz.cc: the epoch collector (concurrency/epoch) driven
// by random sequences of pins (nested), unpins, retires (also from inside
// deleters), collections, on two collectors. Single-threaded, so every run
// is deterministic. Checked: a deleter runs exactly once per retired
// object, never while the pin that was active when the object was retired
// (on that collector) is still held; once nothing is pinned, a few
// collections free everything (PendingForTesting() reaches 0).
#include <cstdint>
#include <vector>

#include "concurrency/epoch/collector.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

using strata::epoch::Collector;

constinit Collector g_collectors[2];

constexpr int kMaxObjects = 4096;

struct Object {
  int collector;
  bool retired;
  int deleted;              // times the deleter ran
  std::uint64_t pin_at_retire;  // the outermost pin's generation (0: unpinned)
};

struct State {
  Object objects[kMaxObjects];
  int n_objects = 0;
  // Per collector: the stack of guards and the generation of the outermost.
  std::vector<Collector::Guard> guards[2];
  std::uint64_t generation[2] = {0, 0};
  std::uint64_t next_generation = 1;
  strata::fuzz::Input* in = nullptr;
};

State* g_state = nullptr;

std::uint64_t ActivePin(int c) { return g_state->guards[c].empty() ? 0 : g_state->generation[c]; }

void Retire(int c);

void Deleter(void* ptr, void*) {
  auto* o = static_cast<Object*>(ptr);
  ++o->deleted;
  FUZZ_CHECK(o->deleted == 1);
  FUZZ_CHECK(o->retired);
  // The pin held at retire time must be over.
  FUZZ_CHECK(o->pin_at_retire == 0 || ActivePin(o->collector) != o->pin_at_retire);
  // Deleters may retire more (a structure freeing its children).
  if (g_state->in != nullptr && !g_state->in->empty() && g_state->in->Byte() % 8 == 0) Retire(o->collector);
}

void Retire(int c) {
  State& s = *g_state;
  if (s.n_objects == kMaxObjects) return;
  Object& o = s.objects[s.n_objects++];
  o = {c, true, 0, ActivePin(c)};
  g_collectors[c].Retire(&o, &Deleter);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  strata::fuzz::Input in(data, size);
  static State* state = new State;
  *state = State{};
  g_state = state;
  state->in = &in;
  for (int op = 0; op < 2000 && !in.empty(); ++op) {
    int c = in.Byte() % 2;
    switch (in.Byte() % 5) {
      case 0:
        if (state->guards[c].size() < 16) {
          if (state->guards[c].empty()) state->generation[c] = state->next_generation++;
          state->guards[c].push_back(g_collectors[c].Pin());
          FUZZ_CHECK(g_collectors[c].IsPinnedForTesting());
        }
        break;
      case 1:
        if (!state->guards[c].empty()) {
          state->guards[c].pop_back();  // unpins when the last guard goes
          FUZZ_CHECK(g_collectors[c].IsPinnedForTesting() == !state->guards[c].empty());
        }
        break;
      case 2:
      case 3:
        Retire(c);
        break;
      default:
        g_collectors[c].Collect();
        break;
    }
  }
  state->in = nullptr;  // deleters retire nothing more
  for (auto& g : state->guards) g.clear();
  for (int c = 0; c < 2; ++c) {
    for (int i = 0; i < 16 && g_collectors[c].PendingForTesting() != 0; ++i) g_collectors[c].Collect();
    FUZZ_CHECK(g_collectors[c].PendingForTesting() == 0);
  }
  for (int i = 0; i < state->n_objects; ++i) FUZZ_CHECK(state->objects[i].deleted == 1);
  return 0;
}
