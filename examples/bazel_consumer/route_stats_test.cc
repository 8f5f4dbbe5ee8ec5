// Tests for RouteStats, run with strata's GoogleTest leak listener: any test
// that leaves unreachable memory behind fails and names the site.
#include <gtest/gtest.h>

#include <string>

#include "alloc/leak_check_gtest.h"
#include "route_stats.h"

namespace {

TEST(ParseRequestLine, SplitsMethodAndPathAndDropsQuery) {
  std::string_view method, path;
  ASSERT_TRUE(example::ParseRequestLine("GET /users/42?x=1 HTTP/1.1", &method, &path));
  EXPECT_EQ(method, "GET");
  EXPECT_EQ(path, "/users/42");
  EXPECT_FALSE(example::ParseRequestLine("GET users HTTP/1.1", &method, &path));
  EXPECT_FALSE(example::ParseRequestLine(" /x", &method, &path));
}

TEST(RouteStats, CountsPerRouteAndSortsByCount) {
  example::RouteStats stats(1 << 20);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(stats.Record("GET", "/a"));
  ASSERT_TRUE(stats.Record("POST", "/b"));
  EXPECT_EQ(stats.Count("GET", "/a"), 3u);
  EXPECT_EQ(stats.Count("POST", "/b"), 1u);
  EXPECT_EQ(stats.Count("GET", "/b"), 0u);
  auto routes = stats.Routes();
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes[0].first, "GET /a");
  EXPECT_GT(stats.stats().live_bytes, 0);  // the map lives on the PoolResource
}

TEST(RouteStats, ByteLimitRefusesNewRoutes) {
  example::RouteStats stats(4096);
  int accepted = 0;
  for (int i = 0; i < 1000; ++i) accepted += stats.Record("GET", "/route/" + std::string(40, 'x') + std::to_string(i));
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, 1000);
  EXPECT_GT(stats.stats().limit_failures, 0u);
  EXPECT_LE(stats.stats().peak_live_bytes, 4096);
}

// Leaks on purpose, to show the listener at work: run with
//   --gtest_also_run_disabled_tests --gtest_filter='*LeaksOnPurpose*'
// and the test fails with "strata: RouteStats.DISABLED_LeaksOnPurpose
// leaked N byte(s) in M object(s), largest site: ...".
char* volatile g_sink;  // keeps the compiler from dropping the allocation

TEST(RouteStats, DISABLED_LeaksOnPurpose) {
  g_sink = new char[4000];
  g_sink[0] = 1;
  g_sink = nullptr;  // the only pointer to the block is gone
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  strata::testing::InstallLeakCheckListener();
  return RUN_ALL_TESTS();
}
