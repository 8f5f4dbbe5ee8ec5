#include "route_stats.h"

#include <algorithm>
#include <new>

namespace example {

bool ParseRequestLine(std::string_view line, std::string_view* method, std::string_view* path) {
  std::size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return false;
  std::size_t sp2 = line.find(' ', sp1 + 1);
  std::string_view target = line.substr(sp1 + 1, sp2 == std::string_view::npos ? std::string_view::npos : sp2 - sp1 - 1);
  if (target.empty() || target[0] != '/') return false;
  *method = line.substr(0, sp1);
  *path = target.substr(0, target.find('?'));
  return true;
}

RouteStats::RouteStats(std::size_t byte_limit) : pool_({.byte_limit = byte_limit}), counts_(&pool_) {}

bool RouteStats::Record(std::string_view method, std::string_view path) {
  std::string key;
  key.reserve(method.size() + 1 + path.size());
  key.append(method).append(" ").append(path);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counts_.find(std::string_view(key));
  if (it != counts_.end()) {
    ++it->second;
    return true;
  }
  try {
    counts_.emplace(std::pmr::string(key, &pool_), 1);
  } catch (const std::bad_alloc&) {  // the pool's byte limit
    return false;
  }
  return true;
}

std::uint64_t RouteStats::Count(std::string_view method, std::string_view path) const {
  std::string key(method);
  key.append(" ").append(path);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counts_.find(std::string_view(key));
  return it == counts_.end() ? 0 : it->second;
}

std::vector<std::pair<std::string, std::uint64_t>> RouteStats::Routes() const {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [route, count] : counts_) out.emplace_back(std::string(route), count);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  return out;
}

}  // namespace example
