// server.cc: a small server-like program on strata.
//
// Worker threads take synthetic HTTP request lines from a shared queue,
// parse them, build a response string for each and count requests per route
// in RouteStats (std::pmr containers on a strata::pmr::PoolResource). Every
// new/delete and malloc/free of the process goes to strata (BUILD: malloc =
// "@strata//alloc:malloc"); at exit it prints the routes and strata's own
// allocation count. Run with STRATA_SHOW_STATS=1 for strata's stats report.
//
//   server [requests] [threads]
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "alloc/override/strata_c.h"
#include "route_stats.h"

namespace {

const char* const kMethods[] = {"GET", "GET", "GET", "POST", "DELETE"};
const char* const kPaths[] = {"/", "/users", "/users/42", "/orders", "/static/app.js", "/health"};

class RequestQueue {
 public:
  void Push(std::string line) {
    std::lock_guard<std::mutex> lock(mu_);
    lines_.push_back(std::make_unique<std::string>(std::move(line)));
  }
  std::unique_ptr<std::string> Pop() {
    std::lock_guard<std::mutex> lock(mu_);
    if (lines_.empty()) return nullptr;
    auto line = std::move(lines_.front());
    lines_.pop_front();
    return line;
  }

 private:
  std::mutex mu_;
  std::deque<std::unique_ptr<std::string>> lines_;
};

}  // namespace

int main(int argc, char** argv) {
  const long requests = argc > 1 ? std::atol(argv[1]) : 200000;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 4;
  if (requests <= 0 || threads <= 0) {
    std::fprintf(stderr, "usage: server [requests > 0] [threads > 0]\n");
    return 2;
  }

  RequestQueue queue;
  for (long i = 0; i < requests; ++i) {
    std::string line = kMethods[i % 5];
    line += ' ';
    line += kPaths[(i * 7) % 6];
    if (i % 3 == 0) line += "?id=" + std::to_string(i);
    line += " HTTP/1.1";
    queue.Push(std::move(line));
  }

  example::RouteStats routes(/*byte_limit=*/1 << 20);
  std::atomic<long> served{0}, malformed{0}, response_bytes{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      while (auto line = queue.Pop()) {
        std::string_view method, path;
        if (!example::ParseRequestLine(*line, &method, &path)) {
          malformed.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        routes.Record(method, path);
        std::string response = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n";
        response.append(method).append(" ").append(path).append("\n");
        response_bytes.fetch_add(static_cast<long>(response.size()), std::memory_order_relaxed);
        served.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& w : workers) w.join();

  std::printf("served %ld requests (%ld malformed), %ld response bytes\n", served.load(), malformed.load(),
              response_bytes.load());
  for (const auto& [route, count] : routes.Routes()) std::printf("  %-22s %lu\n", route.c_str(), count);
  auto pool = routes.stats();
  std::printf("route table: %ld live bytes in %ld blocks (peak %ld) on a strata PoolResource\n",
              static_cast<long>(pool.live_bytes), static_cast<long>(pool.live_blocks),
              static_cast<long>(pool.peak_live_bytes));
  // Counted by strata itself: zero would mean another allocator served us.
  unsigned long long by_strata = strata_stats_allocations();
  std::printf("strata allocations: %llu\n", by_strata);
  if (served.load() != requests || by_strata < static_cast<unsigned long long>(requests)) {
    std::fprintf(stderr, "server: self-check failed\n");
    return 1;
  }
  return 0;
}
