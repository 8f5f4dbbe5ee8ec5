// tests/failure/fail_env_program.cc: a program for failure_env_test.sh,
// linked with strata as its allocator. Reports through write(2) (stdio
// would allocate).
//   fail_env_program count SIZE [MAX]  malloc(SIZE) until it fails (at
//                                   most MAX times, default 100000):
//                                   "succeeded N errno ENOMEM"
//   fail_env_program pattern SIZE N N mallocs of SIZE: one 0/1 per call
//   fail_env_program new SIZE       operator new(SIZE) with a new_handler
//                                   that gives up after 3 calls:
//                                   "succeeded N handler 3 bad_alloc"
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

namespace {

void Say(const std::string& s) {
  std::string line = s + "\n";
  if (write(1, line.data(), line.size()) < 0) std::_Exit(3);
}

int g_handler_calls = 0;
void Handler() {
  if (++g_handler_calls >= 3) std::set_new_handler(nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const std::string mode = argv[1];
  const std::size_t size = std::strtoull(argv[2], nullptr, 10);
  // Not a vector: its storage would be one more (counted) allocation.
  static void* keep[100001];
  int kept = 0;
  if (mode == "count") {
    const int max = argc > 3 ? std::atoi(argv[3]) : 100000;
    int n = 0;
    errno = 0;
    for (; n < max; ++n) {
      void* p = std::malloc(size);
      if (p == nullptr) break;
      keep[kept++] = p;
    }
    Say("succeeded " + std::to_string(n) + (errno == ENOMEM ? " errno ENOMEM" : " errno other"));
  } else if (mode == "pattern") {
    const int n = argc > 3 ? std::atoi(argv[3]) : 100;
    std::string bits;
    for (int i = 0; i < n; ++i) {
      void* p = std::malloc(size);
      bits += p == nullptr ? '1' : '0';
      std::free(p);
    }
    Say(bits);
  } else if (mode == "new") {
    std::set_new_handler(&Handler);
    int n = 0;
    try {
      for (; n < 100000; ++n) keep[kept++] = ::operator new(size);
      Say("never failed");
    } catch (const std::bad_alloc&) {
      Say("succeeded " + std::to_string(n) + " handler " + std::to_string(g_handler_calls) + " bad_alloc");
    }
  } else {
    return 2;
  }
  for (int i = 0; i < kept; ++i) std::free(keep[i]);
  return 0;
}
