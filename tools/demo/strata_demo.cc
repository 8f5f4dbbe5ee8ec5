// tools/demo/strata_demo.cc: the program `tools/strata-run` runs when given
// none. A small multi-threaded "server" that does what real programs do to
// an allocator, so one command shows strata's stats, leak report, heap
// profile and flame graph:
//   - worker threads build and tear down request objects with new/delete
//     (std::map, std::string, std::vector);
//   - a std::pmr pipeline over strata's pool resource (pmr containers);
//   - strata::BufferPool and strata::ObjectPool (the seed's sync.Pool and
//     tiered buffer pool) for I/O buffers and session objects;
//   - a bounded cache that stays reachable from a global at exit (not a
//     leak), and three deliberate leaks: a lost linked list (one direct
//     leak whose nodes are indirect leaks), a buffer lost in a worker
//     thread, and a block lost after realloc.
// It links strata as its allocator (malloc = "//alloc:malloc").
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory_resource>
#include <string>
#include <thread>
#include <vector>

#include "alloc/pmr.h"
#include "alloc/pool.h"

namespace demo {

struct Session {
  int id = 0;
  char scratch[200] = {};
};

struct ListNode {
  ListNode* next;
  char payload[48];
};

// Reachable at exit through this global: "still reachable", not a leak.
std::map<int, std::string>* g_cache = nullptr;

__attribute__((noinline)) ListNode* BuildList(int n) {
  ListNode* head = nullptr;
  for (int i = 0; i < n; ++i) head = new ListNode{head, {}};
  return head;
}

__attribute__((noinline)) void LoseList() {
  ListNode* volatile lost = BuildList(8);  // leaked: 1 direct + 7 indirect
  (void)lost;
}

__attribute__((noinline)) void LoseAfterRealloc() {
  void* p = std::malloc(64);
  p = std::realloc(p, 4000);
  std::memset(p, 1, 4000);
  void* volatile lost = p;
  (void)lost;
}

__attribute__((noinline)) std::size_t HandleRequest(int i, strata::BufferPool& buffers) {
  std::map<std::string, std::vector<int>> index;
  for (int k = 0; k < 50; ++k) index["key-" + std::to_string((i * 31 + k) % 97)].push_back(k);
  strata::BufferPool::Buffer io = buffers.Get(static_cast<std::size_t>(1024 + (i % 7) * 9000));
  std::memset(io.data(), i & 0xff, 512);
  return index.size() + io.size();
}

__attribute__((noinline)) std::size_t PmrPipeline(int rounds) {
  std::pmr::memory_resource* upstream = strata::pmr::GlobalResource();
  std::pmr::unsynchronized_pool_resource pool(upstream);
  std::size_t total = 0;
  for (int r = 0; r < rounds; ++r) {
    std::pmr::vector<std::pmr::string> words(&pool);
    for (int k = 0; k < 200; ++k) words.emplace_back(std::pmr::string(static_cast<std::size_t>(20 + k % 50), 'x', &pool));
    total += words.size();
  }
  return total;
}

__attribute__((noinline)) void Worker(int id, strata::BufferPool& buffers, strata::ObjectPool<Session>& sessions,
                                      std::size_t* out) {
  std::size_t sum = 0;
  for (int i = 0; i < 3000; ++i) {
    auto session = sessions.Get();
    session->id = i;
    sum += HandleRequest(i + id, buffers) + static_cast<std::size_t>(session->id);
  }
  sum += PmrPipeline(50);
  if (id == 0) {
    char* volatile lost = static_cast<char*>(std::malloc(3000));  // leaked in a thread
    std::memset(lost, 7, 3000);
  }
  *out = sum;
}

__attribute__((noinline)) void ClobberStack() {
  volatile char buf[1 << 16];
  std::memset(const_cast<char*>(buf), 0, sizeof(buf));
  asm volatile("" ::"r"(buf) : "memory");
}

}  // namespace demo

int main() {
  demo::g_cache = new std::map<int, std::string>;
  for (int i = 0; i < 100; ++i) (*demo::g_cache)[i] = std::string(100, 'c');
  strata::BufferPool buffers;
  strata::ObjectPool<demo::Session> sessions;
  constexpr int kThreads = 4;
  std::size_t results[kThreads] = {};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back(demo::Worker, t, std::ref(buffers), std::ref(sessions), &results[t]);
  }
  for (auto& th : threads) th.join();
  // The deliberate leaks happen on a thread that then exits, so no stale
  // copy of a lost pointer survives on a stack the leak checker scans.
  std::thread([] {
    demo::LoseList();
    demo::LoseAfterRealloc();
  }).join();
  // Overwrite the dead stack frames so no stale copy of a lost pointer
  // survives below main.
  demo::ClobberStack();
  std::size_t total = 0;
  for (std::size_t r : results) total += r;
  std::printf("strata demo: %d threads handled %d requests (checksum %zu)\n", kThreads, kThreads * 3000, total);
  return 0;
}
