/* tests/install/leaky.c: an ordinary C program, built without strata, for
 * the installed strata-run --leaks (exit 23 expected). With -DNO_LEAK it
 * frees everything (exit 0 expected). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char* volatile g_sink;

__attribute__((noinline)) static void leak_here(size_t n) {
  g_sink = malloc(n);
  memset(g_sink, 1, n);
#ifdef NO_LEAK
  free(g_sink);
#endif
  g_sink = NULL;
}

int main(void) {
  for (int i = 0; i < 10; ++i) leak_here(100 + (size_t)i);
  char* kept = malloc(64);
  snprintf(kept, 64, "%s", "reachable until freed");
  puts(kept);
  free(kept);
  return 0;
}
