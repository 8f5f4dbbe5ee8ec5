// route_stats.h: per-route request counters for the example server.
//
// RouteStats keeps its map and strings in std::pmr containers on a
// strata::pmr::PoolResource, so its memory is accounted separately from the
// rest of the program and capped by a byte limit (Record returns false when
// a new route would exceed it).
//
// Thread-safety: Record, Count and Routes take an internal mutex; stats()
// is thread-safe (PoolResource's counters).
#ifndef EXAMPLES_BAZEL_CONSUMER_ROUTE_STATS_H_
#define EXAMPLES_BAZEL_CONSUMER_ROUTE_STATS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory_resource>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "alloc/pmr.h"

namespace example {

// Splits "GET /path?query HTTP/1.1" into method and path (query dropped).
// Returns false for a malformed line.
bool ParseRequestLine(std::string_view line, std::string_view* method, std::string_view* path);

class RouteStats {
 public:
  explicit RouteStats(std::size_t byte_limit);

  // Counts one request for `method path`. False if a new route would exceed
  // the byte limit (the request is not counted).
  bool Record(std::string_view method, std::string_view path);
  std::uint64_t Count(std::string_view method, std::string_view path) const;
  // Routes sorted by count, highest first (ties by name).
  std::vector<std::pair<std::string, std::uint64_t>> Routes() const;
  strata::pmr::PoolResourceStats stats() const { return pool_.stats(); }

 private:
  strata::pmr::PoolResource pool_;  // declared first: outlives the map
  mutable std::mutex mu_;
  std::pmr::map<std::pmr::string, std::uint64_t, std::less<>> counts_;
};

}  // namespace example

#endif  // EXAMPLES_BAZEL_CONSUMER_ROUTE_STATS_H_
