// tests/leaks/leak_corpus.cc: programs with a known leak truth, one per
// mode. Built as a plain binary (glibc malloc), so the same executable runs
// under strata (LD_PRELOAD + STRATA_LEAKCHECK=1) and under valgrind, and
// leak_corpus_test.sh compares both with the truth table.
//
// Every lost pointer is dropped for real: allocation happens in noinline
// functions, and the stack below main is overwritten before exit, so no
// stale copy survives for a conservative scanner to find.
#include <pthread.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

struct Node {
  Node* next;
  char pad[24];  // 32 bytes in all
};

struct Vec {
  int* data;
  std::size_t n;  // 16 bytes in all
};

// A list still reachable at exit (volatile: a never-read global store
// would otherwise be optimised away, and the list really lost).
Node* volatile g_reachable = nullptr;

template <typename T>
__attribute__((noinline)) void Sink(T* p) {
  asm volatile("" ::"r"(p) : "memory");
}

__attribute__((noinline)) void Direct() {
  for (int i = 0; i < 3; ++i) Sink(std::malloc(100));
}

__attribute__((noinline)) Node* MakeList(int n) {
  Node* head = nullptr;
  for (int i = 0; i < n; ++i) {
    auto* node = static_cast<Node*>(std::malloc(sizeof(Node)));
    node->next = head;
    head = node;
  }
  return head;
}

__attribute__((noinline)) void LostList() { Sink(MakeList(5)); }

__attribute__((noinline)) void LostContainer() {
  auto* v = static_cast<Vec*>(std::malloc(sizeof(Vec)));
  v->n = 100;
  v->data = static_cast<int*>(std::malloc(v->n * sizeof(int)));
  Sink(v);
}

__attribute__((noinline)) void LostCycle() {
  auto* a = static_cast<Node*>(std::malloc(sizeof(Node)));
  auto* b = static_cast<Node*>(std::malloc(sizeof(Node)));
  a->next = b;
  b->next = a;
  Sink(a);
}

void* ThreadBody(void*) {
  for (int i = 0; i < 2; ++i) Sink(std::malloc(64));
  return nullptr;
}

__attribute__((noinline)) void LostInThread() {
  pthread_t t;
  pthread_create(&t, nullptr, &ThreadBody, nullptr);
  pthread_join(t, nullptr);
}

__attribute__((noinline)) void LostAfterRealloc() {
  void* p = std::malloc(10);
  p = std::realloc(p, 2000);
  Sink(p);
}

__attribute__((noinline)) void Reachable() { g_reachable = MakeList(4); }

void* CleanBody(void* arg) {
  auto seed = reinterpret_cast<std::size_t>(arg);
  void* keep[64] = {};
  for (std::size_t i = 0; i < 20000; ++i) {
    std::size_t slot = (i * 7 + seed) % 64;
    std::free(keep[slot]);
    keep[slot] = std::malloc(16 + (i * 13 + seed) % 3000);
  }
  for (void* p : keep) std::free(p);
  return nullptr;
}

__attribute__((noinline)) void CleanThreads() {
  pthread_t t[4];
  for (std::size_t i = 0; i < 4; ++i) pthread_create(&t[i], nullptr, &CleanBody, reinterpret_cast<void*>(i));
  for (auto& th : t) pthread_join(th, nullptr);
}

__attribute__((noinline)) void ClobberStack() {
  volatile char buf[1 << 16];
  std::memset(const_cast<char*>(buf), 0, sizeof(buf));
  // Keep the "dead" stores: the buffer escapes to the compiler's eyes.
  asm volatile("" ::"r"(buf) : "memory");
}

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  if (std::strcmp(mode, "direct") == 0) {
    Direct();
  } else if (std::strcmp(mode, "list") == 0) {
    LostList();
  } else if (std::strcmp(mode, "container") == 0) {
    LostContainer();
  } else if (std::strcmp(mode, "cycle") == 0) {
    LostCycle();
  } else if (std::strcmp(mode, "thread") == 0) {
    LostInThread();
  } else if (std::strcmp(mode, "realloc") == 0) {
    LostAfterRealloc();
  } else if (std::strcmp(mode, "reachable") == 0) {
    Reachable();
  } else if (std::strcmp(mode, "clean_mt") == 0) {
    CleanThreads();
  } else {
    std::fprintf(stderr, "usage: leak_corpus direct|list|container|cycle|thread|realloc|reachable|clean_mt\n");
    return 2;
  }
  ClobberStack();
  return 0;
}
