#include "tests/util/malloc_counter.h"

#include <cerrno>
#include <cstddef>

extern "C" {
void* __libc_malloc(std::size_t);
void __libc_free(void*);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void* __libc_valloc(std::size_t);
void* __libc_pvalloc(std::size_t);
}

namespace strata::testing {

thread_local bool t_malloc_armed = false;
thread_local long t_malloc_calls = 0;
std::atomic<bool> g_malloc_armed{false};
std::atomic<long> g_malloc_calls{0};

namespace {
inline void Note() {
  if (t_malloc_armed) ++t_malloc_calls;
  if (g_malloc_armed.load(std::memory_order_relaxed)) g_malloc_calls.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

}  // namespace strata::testing

using strata::testing::Note;

extern "C" {
void* malloc(std::size_t n) {
  Note();
  return __libc_malloc(n);
}
void free(void* p) {
  if (p != nullptr) Note();
  __libc_free(p);
}
void* calloc(std::size_t n, std::size_t size) {
  Note();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t n) {
  Note();
  return __libc_realloc(p, n);
}
void* memalign(std::size_t align, std::size_t n) {
  Note();
  return __libc_memalign(align, n);
}
void* aligned_alloc(std::size_t align, std::size_t n) {
  Note();
  return __libc_memalign(align, n);
}
int posix_memalign(void** out, std::size_t align, std::size_t n) {
  Note();
  void* p = __libc_memalign(align, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void* valloc(std::size_t n) {
  Note();
  return __libc_valloc(n);
}
void* pvalloc(std::size_t n) {
  Note();
  return __libc_pvalloc(n);
}
}
