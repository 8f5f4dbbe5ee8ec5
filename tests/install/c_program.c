/* tests/install/c_program.c: a C program linked with
 * `cc c_program.c $(pkg-config --cflags --libs strata)`. It allocates through
 * plain malloc/free and asks strata (strata_c.h) how many blocks it served:
 * a count that grows with the program's own allocations shows that strata,
 * not glibc, is the allocator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/override/strata_c.h"

int main(void) {
  uint64_t before = strata_stats_allocations();
  enum { kBlocks = 1000 };
  char* blocks[kBlocks];
  for (int i = 0; i < kBlocks; ++i) {
    blocks[i] = malloc((size_t)(16 + i));
    if (blocks[i] == NULL) return 1;
    memset(blocks[i], i & 0xff, (size_t)(16 + i));
  }
  uint64_t during = strata_stats_allocations();
  for (int i = 0; i < kBlocks; ++i) free(blocks[i]);
  if (during - before < kBlocks) {
    printf("c_program: strata counted %llu allocations for %d mallocs: not the allocator\n",
           (unsigned long long)(during - before), kBlocks);
    return 1;
  }
  printf("c_program: strata served %llu allocations (%d by this loop)\n", (unsigned long long)during, kBlocks);
  return 0;
}
