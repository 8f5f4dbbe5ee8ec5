// tests/override/malloc_contract_test.cc: the contract of strata's malloc
// family and operator new/delete, checked from the outside.
//
// A plain program (no test framework: it must also run with strata arriving
// by LD_PRELOAD into a binary built without it). Prints one "PASS: <rule>"
// or "FAIL: <rule> (<detail>)" line per rule and exits 1 if any failed.
//
// Built twice (tests/override/BUILD.bazel):
//   :malloc_contract_test           cc_test with malloc = "//alloc:malloc"
//   :malloc_contract_preload_test   sh_test running :malloc_contract_plain
//                                   (built without strata) under
//                                   LD_PRELOAD=libstrata.so
// Interposition is proven through strata's own counter,
// strata_stats_allocations (alloc/override/strata_c.h): a weak reference
// that binds when strata is linked or preloaded, with a dlsym(RTLD_DEFAULT)
// fallback. Without strata the counter is missing and the run fails.
//
// Compiled with -fno-builtin so that GCC keeps every malloc/free pair.
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <new>
#include <string>
#include <thread>
#include <vector>

// Entry points glibc 2.36 does not declare (strata exports them); weak so
// that the binary also links and runs without strata.
extern "C" {
uint64_t strata_stats_allocations(void) __attribute__((weak));
uint64_t strata_stats_frees(void) __attribute__((weak));
void free_sized(void* ptr, size_t size) __attribute__((weak));
void free_aligned_sized(void* ptr, size_t alignment, size_t size) __attribute__((weak));
void cfree(void* ptr) __attribute__((weak));
void* __libc_malloc(size_t size) __attribute__((weak));
void __libc_free(void* ptr) __attribute__((weak));
void* __libc_calloc(size_t count, size_t size) __attribute__((weak));
void* __libc_realloc(void* ptr, size_t size) __attribute__((weak));
void* __libc_memalign(size_t alignment, size_t size) __attribute__((weak));
void* __libc_valloc(size_t size) __attribute__((weak));
void* __libc_pvalloc(size_t size) __attribute__((weak));
}

namespace {

int g_failures = 0;
int g_checks = 0;

void Report(bool ok, const char* rule, const std::string& detail = "") {
  ++g_checks;
  if (ok) {
    printf("PASS: %s\n", rule);
  } else {
    ++g_failures;
    printf("FAIL: %s (%s)\n", rule, detail.c_str());
  }
  fflush(stdout);
}

// Keeps the optimiser from reasoning about pointers it returned.
void* volatile g_sink;
void* Opaque(void* p) {
  g_sink = p;
  return g_sink;
}
size_t Opaque(size_t n) {
  static volatile size_t box;
  box = n;
  return box;
}

using CounterFn = uint64_t (*)();

CounterFn Counter(CounterFn linked, const char* name) {
  if (linked != nullptr) return linked;
  return reinterpret_cast<CounterFn>(dlsym(RTLD_DEFAULT, name));
}

CounterFn g_allocations = nullptr;
CounterFn g_frees = nullptr;

uint64_t Allocations() { return g_allocations != nullptr ? g_allocations() : 0; }
uint64_t Frees() { return g_frees != nullptr ? g_frees() : 0; }

bool Aligned(const void* p, size_t alignment) {
  return (reinterpret_cast<uintptr_t>(p) & (alignment - 1)) == 0;
}

std::string Hex(size_t v) {
  char buf[32];
  snprintf(buf, sizeof(buf), "0x%zx", v);
  return buf;
}

const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));

// Sizes that must fail everywhere: above PTRDIFF_MAX (glibc's rule) and just
// below it (no address space is that large).
const size_t kHugeSizes[] = {
    SIZE_MAX,
    SIZE_MAX - 1,
    SIZE_MAX - 15,
    SIZE_MAX - 4095,
    SIZE_MAX - (size_t{1} << 20),
    static_cast<size_t>(PTRDIFF_MAX) + 1,
    static_cast<size_t>(PTRDIFF_MAX),
    static_cast<size_t>(PTRDIFF_MAX) - 1,
    static_cast<size_t>(PTRDIFF_MAX) - 4095,
    size_t{1} << 62,
};

// ---------------------------------------------------------------------------

void CheckInterposition() {
  g_allocations = Counter(strata_stats_allocations, "strata_stats_allocations");
  g_frees = Counter(strata_stats_frees, "strata_stats_frees");
  Report(g_allocations != nullptr && g_frees != nullptr,
         "strata counters are exported (strata is the allocator)");

  struct Case {
    const char* rule;
    void* (*allocate)();
  };
  const Case cases[] = {
      {"malloc routes to strata", [] { return malloc(Opaque(size_t{40})); }},
      {"calloc routes to strata", [] { return calloc(Opaque(size_t{3}), 40); }},
      {"realloc(nullptr) routes to strata", [] { return realloc(nullptr, Opaque(size_t{40})); }},
      {"aligned_alloc routes to strata", [] { return aligned_alloc(64, Opaque(size_t{64})); }},
      {"memalign routes to strata", [] { return memalign(64, Opaque(size_t{40})); }},
      {"valloc routes to strata", [] { return valloc(Opaque(size_t{40})); }},
      {"pvalloc routes to strata", [] { return pvalloc(Opaque(size_t{40})); }},
      {"posix_memalign routes to strata",
       [] {
         void* p = nullptr;
         return posix_memalign(&p, 64, Opaque(size_t{40})) == 0 ? p : nullptr;
       }},
      {"strdup (malloc called inside libc) routes to strata",
       [] { return static_cast<void*>(strdup("interposed")); }},
      {"operator new routes to strata", [] { return Opaque(::operator new(40)); }},
  };
  for (const Case& c : cases) {
    const uint64_t before = Allocations();
    void* p = c.allocate();
    const uint64_t after = Allocations();
    Report(p != nullptr && after > before, c.rule,
           "allocations " + std::to_string(before) + " -> " + std::to_string(after));
    if (p == Opaque(nullptr)) continue;
    free(p);  // operator new's block too: strata's free takes any block
  }

  if (__libc_malloc != nullptr && __libc_free != nullptr) {
    const uint64_t before = Allocations();
    void* p = __libc_malloc(Opaque(size_t{48}));
    const uint64_t after = Allocations();
    const uint64_t frees_before = Frees();
    free(p);  // mixing __libc_malloc with free must be safe
    Report(p != nullptr && after > before && Frees() > frees_before,
           "__libc_malloc routes to strata and free releases it");
  } else {
    Report(false, "__libc_malloc routes to strata", "__libc_malloc/__libc_free not found");
  }

  const uint64_t frees_before = Frees();
  free(malloc(Opaque(size_t{24})));
  Report(Frees() > frees_before, "free routes to strata");
}

void CheckMalloc() {
  void* a = malloc(Opaque(size_t{0}));
  void* b = malloc(Opaque(size_t{0}));
  Report(a != nullptr && b != nullptr && a != b, "malloc(0) returns unique non-null pointers");
  free(a);
  free(b);

  std::string bad;
  const size_t sizes[] = {1, 8, 15, 16, 17, 100, 1000, 4096, 4097, 65536, 1 << 20, 8 << 20};
  for (size_t n : sizes) {
    char* p = static_cast<char*>(malloc(Opaque(n)));
    if (p == nullptr || !Aligned(p, 16) || malloc_usable_size(p) < n) {
      bad += " " + std::to_string(n);
    } else {
      memset(p, 0x5a, n);
    }
    free(p);
  }
  Report(bad.empty(), "malloc(n) is non-null, 16-aligned, usable size >= n", "sizes:" + bad);

  Report(malloc_usable_size(nullptr) == 0, "malloc_usable_size(nullptr) == 0");
}

void CheckFree() {
  errno = 0;
  free(nullptr);
  Report(errno == 0, "free(nullptr) is a no-op");

  bool preserved = true;
  for (size_t n : {size_t{16}, size_t{5000}, size_t{1} << 20, size_t{32} << 20}) {
    void* p = malloc(Opaque(n));
    memset(p, 1, n);
    errno = 12345;
    free(p);
    if (errno != 12345) preserved = false;
  }
  // Many large blocks: some release paths (decommit) only run after a while.
  for (int i = 0; i < 64; ++i) {
    void* p = malloc(Opaque(size_t{4} << 20));
    errno = 54321;
    free(p);
    if (errno != 54321) preserved = false;
  }
  Report(preserved, "free preserves errno (small, large and huge blocks)");
}

void CheckCalloc() {
  bool zero = true;
  for (size_t n : {size_t{16}, size_t{100}, size_t{4096}, size_t{100000}, size_t{4} << 20}) {
    // Dirty a block of the same size first so that calloc may reuse it.
    for (int round = 0; round < 3; ++round) {
      char* dirty = static_cast<char*>(malloc(Opaque(n)));
      memset(dirty, 0xab, n);
      free(dirty);
      unsigned char* p = static_cast<unsigned char*>(calloc(1, Opaque(n)));
      if (p == nullptr) {
        zero = false;
        continue;
      }
      for (size_t i = 0; i < n; ++i) {
        if (p[i] != 0) {
          zero = false;
          break;
        }
      }
      free(p);
    }
  }
  Report(zero, "calloc memory is zeroed (also when reusing dirty blocks)");

  void* a = calloc(Opaque(size_t{0}), 5);
  void* b = calloc(5, Opaque(size_t{0}));
  Report(a != nullptr && b != nullptr && a != b,
         "calloc with a zero factor returns unique pointers");
  free(a);
  free(b);

  std::string bad;
  const size_t products[][2] = {
      {SIZE_MAX / 2 + 1, 2}, {size_t{1} << 32, size_t{1} << 32},
      {SIZE_MAX, SIZE_MAX},  {SIZE_MAX, 2},
      {3, SIZE_MAX / 3 + 1}, {size_t{1} << 62, 4},
  };
  for (const auto& m : products) {
    errno = 0;
    void* p = calloc(Opaque(m[0]), Opaque(m[1]));
    if (p != nullptr || errno != ENOMEM) bad += " " + Hex(m[0]) + "*" + Hex(m[1]);
    free(p);
  }
  Report(bad.empty(), "calloc(n, m) with n*m overflowing returns null, errno ENOMEM", bad);
}

void CheckRealloc() {
  char* p = static_cast<char*>(realloc(nullptr, Opaque(size_t{16})));
  Report(p != nullptr, "realloc(nullptr, n) allocates");
  for (int i = 0; i < 16; ++i) p[i] = static_cast<char>(i);
  bool kept = true;
  size_t filled = 16;
  for (size_t n :
       {size_t{100}, size_t{5000}, size_t{100000}, size_t{10} << 20, size_t{64}, size_t{8}}) {
    p = static_cast<char*>(realloc(p, Opaque(n)));
    if (p == nullptr) {
      kept = false;
      break;
    }
    for (size_t i = 0; i < std::min(filled, n); ++i) {
      if (p[i] != static_cast<char>(i)) kept = false;
    }
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<char>(i);
    filled = n;
  }
  Report(kept, "realloc grows and shrinks, keeping the contents");

  // strata's rule for a small block (realloc's inline path): a size of the
  // same class keeps the block in place; shrinking to less than half
  // moves it to its smaller class, contents kept.
  char* s = static_cast<char*>(malloc(Opaque(size_t{100})));
  for (int i = 0; i < 100; ++i) s[i] = static_cast<char>(3 * i);
  const size_t usable = malloc_usable_size(s);
  char* same = static_cast<char*>(realloc(s, Opaque(usable)));
  char* smaller = static_cast<char*>(realloc(same, Opaque(size_t{40})));
  bool smaller_kept = smaller != nullptr;
  for (int i = 0; smaller_kept && i < 40; ++i) smaller_kept = smaller[i] == static_cast<char>(3 * i);
  Report(same == s && smaller != same && smaller_kept && malloc_usable_size(smaller) < usable,
         "realloc keeps a small block within its class and moves it when it shrinks below half");
  free(smaller);

  const uint64_t frees_before = Frees();
  errno = 0;
  void* r = realloc(p, Opaque(size_t{0}));
  Report(r == nullptr && Frees() > frees_before, "realloc(p, 0) frees p and returns null");

  char* q = static_cast<char*>(malloc(Opaque(size_t{100})));
  memset(q, 0x77, 100);
  std::string bad;
  for (size_t n : kHugeSizes) {
    errno = 0;
    void* z = realloc(q, Opaque(n));
    if (z != nullptr || errno != ENOMEM) bad += " " + Hex(n);
    if (z != nullptr) q = static_cast<char*>(z);
  }
  bool intact = true;
  for (int i = 0; i < 100; ++i) intact = intact && q[i] == 0x77;
  Report(bad.empty() && intact, "realloc to a huge size returns null, ENOMEM, old block intact",
         bad + (intact ? "" : " contents changed"));

  char* a = static_cast<char*>(reallocarray(nullptr, Opaque(size_t{10}), 10));
  Report(a != nullptr && malloc_usable_size(a) >= 100,
         "reallocarray(nullptr, 10, 10) allocates 100");
  memset(a, 0x33, 100);
  bad.clear();
  const size_t products[][2] = {
      {SIZE_MAX / 2, 3}, {size_t{1} << 32, size_t{1} << 32}, {SIZE_MAX, SIZE_MAX}, {1, SIZE_MAX}};
  for (const auto& m : products) {
    errno = 0;
    void* z = reallocarray(a, Opaque(m[0]), Opaque(m[1]));
    if (z != nullptr || errno != ENOMEM) bad += " " + Hex(m[0]) + "*" + Hex(m[1]);
    if (z != nullptr) a = static_cast<char*>(z);
  }
  intact = true;
  for (int i = 0; i < 100; ++i) intact = intact && a[i] == 0x33;
  Report(bad.empty() && intact, "reallocarray overflow returns null, ENOMEM, old block intact",
         bad);
  free(a);
  free(q);
}

// Every entry point fails cleanly for every huge size.
void CheckHugeEverywhere() {
  struct Entry {
    const char* rule;
    void* (*call)(size_t);
    void (*release)(void*);
  };
  auto plain_free = [](void* p) { free(p); };
  const Entry entries[] = {
      {"malloc", [](size_t n) { return malloc(n); }, plain_free},
      {"calloc(1, n)", [](size_t n) { return calloc(1, n); }, plain_free},
      {"calloc(n, 1)", [](size_t n) { return calloc(n, 1); }, plain_free},
      {"realloc(nullptr, n)", [](size_t n) { return realloc(nullptr, n); }, plain_free},
      {"reallocarray(nullptr, 1, n)", [](size_t n) { return reallocarray(nullptr, 1, n); },
       plain_free},
      {"aligned_alloc(64, n)", [](size_t n) { return aligned_alloc(64, n); }, plain_free},
      {"memalign(64, n)", [](size_t n) { return memalign(64, n); }, plain_free},
      {"valloc", [](size_t n) { return valloc(n); }, plain_free},
      {"pvalloc", [](size_t n) { return pvalloc(n); }, plain_free},
      {"__libc_malloc", [](size_t n) { return __libc_malloc(n); }, plain_free},
      {"__libc_calloc(1, n)", [](size_t n) { return __libc_calloc(1, n); }, plain_free},
      {"__libc_realloc(nullptr, n)", [](size_t n) { return __libc_realloc(nullptr, n); },
       plain_free},
      {"__libc_memalign(64, n)", [](size_t n) { return __libc_memalign(64, n); }, plain_free},
      {"__libc_valloc", [](size_t n) { return __libc_valloc(n); }, plain_free},
      {"__libc_pvalloc", [](size_t n) { return __libc_pvalloc(n); }, plain_free},
  };
  const bool have_libc_names = __libc_malloc && __libc_calloc && __libc_realloc &&
                               __libc_memalign && __libc_valloc && __libc_pvalloc;
  for (const Entry& e : entries) {
    if (!have_libc_names && strncmp(e.rule, "__libc", 6) == 0) continue;  // reported elsewhere
    std::string bad;
    for (size_t n : kHugeSizes) {
      errno = 0;
      void* p = e.call(Opaque(n));
      if (p != nullptr || errno != ENOMEM) {
        bad += " " + Hex(n) + (p != nullptr ? "=non-null" : "=errno" + std::to_string(errno));
      }
      if (p != nullptr) e.release(p);
    }
    Report(bad.empty(), (std::string("huge sizes: ") + e.rule + " returns null, ENOMEM").c_str(),
           bad);
  }

  std::string bad;
  for (size_t n : kHugeSizes) {
    void* sentinel = reinterpret_cast<void*>(0x1234);
    void* out = sentinel;
    const int rc = posix_memalign(&out, 64, Opaque(n));
    if (rc != ENOMEM || out != sentinel) bad += " " + Hex(n);
    if (rc == 0) free(out);
  }
  Report(bad.empty(), "huge sizes: posix_memalign returns ENOMEM, *out untouched", bad);

  bad.clear();
  for (size_t n : kHugeSizes) {
    try {
      void* p = ::operator new(Opaque(n));
      bad += " new:" + Hex(n);
      ::operator delete(p);
    } catch (const std::bad_alloc&) {
    }
    try {
      void* p = ::operator new[](Opaque(n));
      bad += " new[]:" + Hex(n);
      ::operator delete[](p);
    } catch (const std::bad_alloc&) {
    }
    try {
      void* p = ::operator new (Opaque(n), std::align_val_t{64});
      bad += " new(align):" + Hex(n);
      ::operator delete (p, std::align_val_t{64});
    } catch (const std::bad_alloc&) {
    }
  }
  Report(bad.empty(), "huge sizes: operator new throws std::bad_alloc", bad);

  bad.clear();
  for (size_t n : kHugeSizes) {
    if (::operator new(Opaque(n), std::nothrow) != nullptr) bad += " new:" + Hex(n);
    if (::operator new[](Opaque(n), std::nothrow) != nullptr) bad += " new[]:" + Hex(n);
    if (::operator new (Opaque(n), std::align_val_t{256}, std::nothrow) != nullptr) {
      bad += " new(align):" + Hex(n);
    }
    if (::operator new[](Opaque(n), std::align_val_t{256}, std::nothrow) != nullptr) {
      bad += " new[](align):" + Hex(n);
    }
  }
  Report(bad.empty(), "huge sizes: nothrow operator new returns null", bad);
}

void CheckPosixMemalign() {
  std::string bad;
  const size_t invalid[] = {0, 1, 2, 4, 3, 12, 24, 40, 48, 96, 4097, SIZE_MAX, SIZE_MAX - 7};
  for (size_t alignment : invalid) {
    void* sentinel = reinterpret_cast<void*>(0x1234);
    void* out = sentinel;
    const int rc = posix_memalign(&out, Opaque(alignment), 64);
    if (rc != EINVAL || out != sentinel) bad += " " + Hex(alignment);
  }
  Report(bad.empty(), "posix_memalign with an invalid alignment returns EINVAL, *out untouched",
         bad);

  bad.clear();
  for (size_t alignment : {size_t{8}, size_t{16}, size_t{32}, size_t{64}, size_t{128}, size_t{256},
                           size_t{4096}, size_t{65536}, size_t{1} << 21}) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{100}, size_t{5000}, size_t{1} << 20}) {
      void* out = nullptr;
      const int rc = posix_memalign(&out, Opaque(alignment), Opaque(n));
      if (rc != 0 || out == nullptr || !Aligned(out, alignment) || malloc_usable_size(out) < n) {
        bad += " " + Hex(alignment) + "/" + std::to_string(n);
      } else {
        memset(out, 0x11, n);
      }
      free(out);
    }
  }
  Report(bad.empty(), "posix_memalign honours every power-of-two alignment", bad);
}

void CheckAlignedFamily() {
  std::string bad;
  for (size_t alignment : {size_t{0}, size_t{3}, size_t{24}, size_t{100}, size_t{4097}}) {
    errno = 0;
    void* p = aligned_alloc(Opaque(alignment), 64);
    if (p != nullptr || errno != EINVAL) bad += " " + Hex(alignment);
    free(p);
  }
  Report(bad.empty(), "aligned_alloc with a non-power-of-two alignment returns null, EINVAL", bad);

  bad.clear();
  for (size_t alignment : {size_t{1}, size_t{2}, size_t{4}, size_t{8}, size_t{16}, size_t{64},
                           size_t{4096}, size_t{1} << 20}) {
    for (size_t n : {size_t{1}, size_t{100}, size_t{4096}, size_t{100000}}) {
      void* p = aligned_alloc(Opaque(alignment), Opaque(n));
      if (p == nullptr || !Aligned(p, alignment) || malloc_usable_size(p) < n) {
        bad += " " + Hex(alignment) + "/" + std::to_string(n);
      }
      free(p);
    }
  }
  Report(bad.empty(), "aligned_alloc honours power-of-two alignments (any size)", bad);

  bad.clear();
  void* p = memalign(Opaque(size_t{24}), 100);
  if (p == nullptr || !Aligned(p, 32)) bad += " 24->32";
  free(p);
  p = memalign(Opaque(size_t{0}), 100);
  if (p == nullptr) bad += " 0";
  free(p);
  for (size_t alignment : {size_t{32}, size_t{512}, size_t{8192}, size_t{1} << 20}) {
    p = memalign(Opaque(alignment), 1000);
    if (p == nullptr || !Aligned(p, alignment)) bad += " " + Hex(alignment);
    free(p);
  }
  errno = 0;
  p = memalign(SIZE_MAX, 16);
  if (p != nullptr || errno != EINVAL) bad += " SIZE_MAX";
  Report(bad.empty(), "memalign rounds the alignment up to a power of two", bad);

  bad.clear();
  for (size_t n : {size_t{1}, size_t{100}, size_t{5000}, size_t{1} << 20}) {
    void* v = valloc(Opaque(n));
    if (v == nullptr || !Aligned(v, kPage) || malloc_usable_size(v) < n)
      bad += " " + std::to_string(n);
    free(v);
  }
  Report(bad.empty(), "valloc returns page-aligned blocks", bad);

  bad.clear();
  for (size_t n : {size_t{0}, size_t{1}, size_t{100}, size_t{4096}, size_t{5000}}) {
    void* v = pvalloc(Opaque(n));
    const size_t rounded = n == 0 ? kPage : (n + kPage - 1) / kPage * kPage;
    if (v == nullptr || !Aligned(v, kPage) || malloc_usable_size(v) < rounded) {
      bad += " " + std::to_string(n);
    } else {
      memset(v, 0x22, rounded);
    }
    free(v);
  }
  Report(bad.empty(), "pvalloc returns whole pages, page-aligned", bad);
}

void CheckC23AndAliases() {
  Report(free_sized != nullptr && free_aligned_sized != nullptr && cfree != nullptr,
         "free_sized, free_aligned_sized and cfree are exported");
  if (free_sized != nullptr && free_aligned_sized != nullptr && cfree != nullptr) {
    uint64_t before = Frees();
    errno = 777;
    free_sized(malloc(Opaque(size_t{100})), 100);
    free_sized(calloc(10, Opaque(size_t{10})), 100);
    free_sized(nullptr, 10);
    free_aligned_sized(aligned_alloc(256, Opaque(size_t{1000})), 256, 1000);
    free_aligned_sized(aligned_alloc(8, Opaque(size_t{24})), 8, 24);
    cfree(malloc(Opaque(size_t{10})));
    Report(Frees() >= before + 5 && errno == 777,
           "free_sized, free_aligned_sized and cfree release to strata, preserving errno");
  }

  bool ok = __libc_malloc && __libc_free && __libc_calloc && __libc_realloc && __libc_memalign &&
            __libc_valloc && __libc_pvalloc;
  Report(ok, "glibc's __libc_* entry points are defined");
  if (!ok) return;
  const uint64_t before = Allocations();
  char* a = static_cast<char*>(__libc_malloc(Opaque(size_t{10})));
  char* b = static_cast<char*>(__libc_calloc(10, Opaque(size_t{10})));
  bool zero = b != nullptr;
  for (int i = 0; zero && i < 100; ++i) zero = b[i] == 0;
  a = static_cast<char*>(__libc_realloc(a, Opaque(size_t{1000})));
  void* c = __libc_memalign(128, Opaque(size_t{10}));
  void* d = __libc_valloc(Opaque(size_t{10}));
  void* e = __libc_pvalloc(Opaque(size_t{10}));
  ok = a && zero && c && Aligned(c, 128) && d && Aligned(d, kPage) && e && Aligned(e, kPage) &&
       Allocations() >= before + 5;
  __libc_free(a);
  free(b);
  __libc_free(c);
  free(d);
  free(e);
  Report(ok, "__libc_malloc/calloc/realloc/memalign/valloc/pvalloc route to strata");
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
void CheckIntrospection() {
  const size_t kHeld = 8 << 20;
  void* held = malloc(Opaque(kHeld));
  memset(held, 1, kHeld);
  const struct mallinfo2 info2 = mallinfo2();
  Report(info2.uordblks >= kHeld, "mallinfo2().uordblks counts live bytes",
         "uordblks=" + std::to_string(info2.uordblks));
  const struct mallinfo info = mallinfo();
  Report(info.uordblks >= static_cast<int>(kHeld), "mallinfo().uordblks counts live bytes",
         "uordblks=" + std::to_string(info.uordblks));
  free(held);

  const int trimmed = malloc_trim(0);
  Report(trimmed == 0 || trimmed == 1, "malloc_trim returns 0 or 1");

  malloc_stats();  // to stderr; must not crash or allocate
  Report(true, "malloc_stats prints a summary");

  FILE* f = tmpfile();
  const int rc = malloc_info(0, f);
  std::string text;
  if (f != nullptr) {
    rewind(f);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
  }
  Report(rc == 0 && text.find("<malloc") != std::string::npos &&
             text.find("</malloc>") != std::string::npos,
         "malloc_info(0, f) writes an XML summary");
  errno = 0;
  Report(malloc_info(1, f) == -1 && errno == EINVAL, "malloc_info with options != 0 is EINVAL");
  if (f != nullptr) fclose(f);

  Report(mallopt(M_ARENA_MAX, 1) == 1 && mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1,
         "mallopt accepts parameters and returns 1");
}
#pragma GCC diagnostic pop

int g_handler_calls = 0;
void CountingHandler() {
  if (++g_handler_calls >= 3) std::set_new_handler(nullptr);
}
void ThrowingHandler() {
  ++g_handler_calls;
  throw std::bad_alloc();
}

void CheckOperatorNew() {
  const uint64_t before = Allocations();
  const uint64_t frees_before = Frees();
  int* one = new int(7);
  int* many = new int[100];
  struct alignas(64) Wide {
    char bytes[64];
  };
  Wide* wide = new Wide;
  Wide* wides = new Wide[9];
  void* raw = ::operator new (100, std::align_val_t{4096});
  void* raw_nothrow = ::operator new (100, std::align_val_t{1 << 16}, std::nothrow);
  void* n1 = ::operator new(10, std::nothrow);
  void* n2 = ::operator new[](10, std::nothrow);
  const bool aligned = Aligned(wide, 64) && Aligned(wides, 64) && Aligned(raw, 4096) &&
                       Aligned(raw_nothrow, 1 << 16);
  Report(Allocations() >= before + 8 && aligned,
         "operator new (plain, array, aligned, nothrow) routes to strata, aligned");
  delete one;
  delete[] many;
  delete wide;
  delete[] wides;
  ::operator delete (raw, 100, std::align_val_t{4096});
  ::operator delete (raw_nothrow, std::align_val_t{1 << 16}, std::nothrow);
  ::operator delete(n1, std::nothrow);
  ::operator delete[](n2, 10);
  ::operator delete(nullptr, 16);
  ::operator delete[](nullptr, 16, std::align_val_t{64});
  Report(Frees() >= frees_before + 8, "operator delete (every form) routes to strata");

  // new_handler: called on failure, retried, then bad_alloc once removed.
  g_handler_calls = 0;
  std::set_new_handler(CountingHandler);
  bool threw = false;
  try {
    g_sink = ::operator new(Opaque(SIZE_MAX - 4095));
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  Report(threw && g_handler_calls == 3,
         "operator new calls the new_handler until it is removed, then throws bad_alloc",
         "handler calls=" + std::to_string(g_handler_calls));

  g_handler_calls = 0;
  std::set_new_handler(CountingHandler);
  void* p = ::operator new (Opaque(SIZE_MAX - 4095), std::align_val_t{128}, std::nothrow);
  Report(p == nullptr && g_handler_calls == 3,
         "nothrow operator new calls the new_handler, then returns null",
         "handler calls=" + std::to_string(g_handler_calls));

  g_handler_calls = 0;
  std::set_new_handler(ThrowingHandler);
  p = ::operator new[](Opaque(SIZE_MAX / 2 + 10), std::nothrow);
  std::set_new_handler(nullptr);
  Report(p == nullptr && g_handler_calls == 1,
         "nothrow operator new returns null when the new_handler throws bad_alloc");
}

void CheckThreads() {
  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  constexpr int kBatch = 256;
  std::vector<std::thread> threads;
  std::atomic<int> corrupt{0};
  // Each thread allocates a batch and hands it to its neighbour to free, so
  // that frees cross threads.
  std::vector<std::vector<char*>> mailbox(kThreads);
  std::vector<std::atomic<bool>> full(kThreads);
  for (auto& f : full) f.store(false);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const int next = (t + 1) % kThreads;
      for (int r = 0; r < kRounds; ++r) {
        std::vector<char*> batch;
        for (int i = 0; i < kBatch; ++i) {
          const size_t n = 8 + static_cast<size_t>((i * 37 + r * 11) % 3000);
          char* p = static_cast<char*>(malloc(n));
          memset(p, t, n);
          p[0] = static_cast<char>(t);
          batch.push_back(p);
        }
        while (full[next].load(std::memory_order_acquire)) std::this_thread::yield();
        mailbox[next] = std::move(batch);
        full[next].store(true, std::memory_order_release);
        while (!full[t].load(std::memory_order_acquire)) std::this_thread::yield();
        std::vector<char*> mine = std::move(mailbox[t]);
        full[t].store(false, std::memory_order_release);
        const char owner = static_cast<char>((t + kThreads - 1) % kThreads);
        for (char* p : mine) {
          if (p[0] != owner) corrupt.fetch_add(1);
          free(p);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  Report(corrupt.load() == 0, "4 threads: malloc here, free on another thread");
}

}  // namespace

int main() {
  CheckInterposition();
  CheckMalloc();
  CheckFree();
  CheckCalloc();
  CheckRealloc();
  CheckHugeEverywhere();
  CheckPosixMemalign();
  CheckAlignedFamily();
  CheckC23AndAliases();
  CheckIntrospection();
  CheckOperatorNew();
  CheckThreads();
  printf("%d checks, %d failed\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
