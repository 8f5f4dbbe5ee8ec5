// Linked with strata::malloc: malloc, operator new and strata's runtime are
// strata's. strata::Owns() (the engine's own page map) must recognise blocks
// from plain malloc and from new.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "alloc/override/strata_c.h"
#include "alloc/strata.h"

int main() {
  void* m = std::malloc(100);
  auto s = std::make_unique<std::string>(200, 'x');
  std::vector<int> v(1000, 7);
  bool owned = strata::Owns(m) && strata::Owns(s->data()) && strata::Owns(v.data());
  std::free(m);
  if (!owned || strata_stats_allocations() == 0) {
    std::printf("app_malloc: blocks are not strata's (allocations=%llu)\n",
                static_cast<unsigned long long>(strata_stats_allocations()));
    return 1;
  }
  std::printf("app_malloc: malloc and operator new are strata's (%llu allocations)\n",
              static_cast<unsigned long long>(strata_stats_allocations()));
  return 0;
}
