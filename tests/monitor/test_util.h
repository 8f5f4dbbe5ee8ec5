// tests/monitor/test_util.h: helpers shared by the monitor and limit tests.
#ifndef STRATA_TESTS_MONITOR_TEST_UTIL_H_
#define STRATA_TESTS_MONITOR_TEST_UTIL_H_

#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "alloc/monitor.h"
#include "alloc/stats.h"
#include "alloc/strata.h"

namespace strata::monitor_test {

inline std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

inline std::int64_t LiveBytes() { return GetStats().live_bytes; }
inline std::size_t CommittedBytes() { return GetStats().committed_bytes; }

// Blocks from strata's API (the tests do not replace malloc), touched so
// that they are real memory. Large blocks by default: their accounting is
// exact at once.
class Blocks {
 public:
  Blocks() = default;
  Blocks(std::size_t total, std::size_t block = 512 * 1024) { Add(total, block); }
  ~Blocks() { FreeAll(); }
  Blocks(const Blocks&) = delete;
  Blocks& operator=(const Blocks&) = delete;

  void Add(std::size_t total, std::size_t block = 512 * 1024) {
    for (std::size_t done = 0; done < total; done += block) {
      void* p = Allocate(block);
      if (p == nullptr) std::abort();
      std::memset(p, 0x5a, 64);
      blocks_.push_back(p);
    }
  }
  void FreeAll() {
    for (void* p : blocks_) Free(p);
    blocks_.clear();
  }

 private:
  std::vector<void*> blocks_;
};

inline std::vector<Alert> DrainAlerts() {
  std::vector<Alert> out(kAlertQueueCapacity);
  out.resize(PollAlerts(out.data(), out.size()));
  return out;
}

// Polls `pred` every millisecond for at most `seconds`.
template <typename Pred>
bool WaitFor(Pred pred, int seconds = 10) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

}  // namespace strata::monitor_test

#endif  // STRATA_TESTS_MONITOR_TEST_UTIL_H_
