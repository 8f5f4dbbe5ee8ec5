// tests/heapdump/profile_fixtures.h: deterministic heap profiles for the
// heapdump tests, written by strata's own writer with fake code addresses
// and a table symbolizer (so names and output never depend on the build).
//
// Fixture "a" (inuse; alloc values are larger):
//   main;Work;AllocA                               3 objects  3072 B
//   main;Work;AllocB                               2 objects  1024 B
//   main;AllocA                                    1 object   1024 B
//   main;Cache<int, std::string>::Insert(K const&) 4 objects  4096 B
// Fixture "b" (what grew): AllocA under Work to 30/30720, the direct
// main;AllocA site freed, Insert to 5/5120, a new site main;Work;Leak
// with 100/102400. Fixture "empty" has no samples.
#ifndef STRATA_TESTS_HEAPDUMP_PROFILE_FIXTURES_H_
#define STRATA_TESTS_HEAPDUMP_PROFILE_FIXTURES_H_

#include <string>

namespace strata::heapdump::testing {

// Writes fixture `kind` ("a", "b", "empty") to `path`; returns 0 or an
// errno-style code (EINVAL for an unknown kind).
int WriteFixture(const std::string& kind, const std::string& path,
                 bool gzip = true);

}  // namespace strata::heapdump::testing

#endif  // STRATA_TESTS_HEAPDUMP_PROFILE_FIXTURES_H_
