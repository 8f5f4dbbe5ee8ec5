// Linked with strata::strata only: the engine API and a pmr container on a
// strata::pmr::PoolResource; the process's malloc is not strata's.
#include <cstdio>
#include <cstdlib>
#include <memory_resource>
#include <string>
#include <vector>

#include "alloc/pmr.h"
#include "alloc/strata.h"

int main() {
  void* p = strata::Allocate(1000);
  if (p == nullptr || !strata::Owns(p) || strata::UsableSize(p) < 1000) {
    std::puts("app_engine: strata::Allocate failed");
    return 1;
  }
  strata::Free(p);
  void* g = std::malloc(64);
  bool malloc_is_strata = strata::Owns(g);
  std::free(g);
  if (malloc_is_strata) {
    std::puts("app_engine: malloc went to strata without strata::malloc");
    return 1;
  }
  strata::pmr::PoolResource pool({.byte_limit = 1 << 20});
  {
    std::pmr::vector<std::pmr::string> names(&pool);
    for (int i = 0; i < 100; ++i) names.emplace_back("name number " + std::to_string(i) + " long enough to allocate");
    if (pool.stats().live_bytes <= 0) {
      std::puts("app_engine: the PoolResource saw no allocation");
      return 1;
    }
  }
  if (pool.stats().live_bytes != 0) {
    std::puts("app_engine: the PoolResource still holds bytes");
    return 1;
  }
  std::puts("app_engine: ok");
  return 0;
}
