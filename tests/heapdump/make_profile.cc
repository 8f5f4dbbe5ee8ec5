// tests/heapdump/make_profile.cc: writes a fixture profile (see
// profile_fixtures.h) for shell tests: make_profile a|b|empty PATH [--raw]
#include <cstdio>
#include <cstring>
#include <string>

#include "tests/heapdump/profile_fixtures.h"

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: make_profile a|b|empty PATH [--raw]\n");
    return 2;
  }
  const bool raw = argc == 4 && std::strcmp(argv[3], "--raw") == 0;
  const int rc =
      strata::heapdump::testing::WriteFixture(argv[1], argv[2], !raw);
  if (rc != 0) {
    std::fprintf(stderr, "make_profile: %s: %s\n", argv[2], std::strerror(rc));
    return 1;
  }
  return 0;
}
