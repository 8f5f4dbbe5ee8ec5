// tests/monitor/env_test.cc: parsing of STRATA_MEMORY_LIMIT and
// STRATA_MONITOR* (through an injected getenv), byte sizes, and the cgroup
// v2 `auto` limit read from a fake cgroup tree.
#include <sys/stat.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <string>

#include "alloc/monitor.h"
#include "gtest/gtest.h"
#include "tests/monitor/test_util.h"

namespace strata {
namespace {

using monitor_test::TempDir;

TEST(ParseByteSize, AcceptsNumbersAndBinarySuffixes) {
  std::uint64_t v = 0;
  ASSERT_TRUE(ParseByteSize("0", &v));
  EXPECT_EQ(v, 0u);
  ASSERT_TRUE(ParseByteSize("12345", &v));
  EXPECT_EQ(v, 12345u);
  ASSERT_TRUE(ParseByteSize("100B", &v));
  EXPECT_EQ(v, 100u);
  ASSERT_TRUE(ParseByteSize("64K", &v));
  EXPECT_EQ(v, 64u << 10);
  ASSERT_TRUE(ParseByteSize("64k", &v));
  EXPECT_EQ(v, 64u << 10);
  ASSERT_TRUE(ParseByteSize("512M", &v));
  EXPECT_EQ(v, std::uint64_t{512} << 20);
  ASSERT_TRUE(ParseByteSize("512MB", &v));
  EXPECT_EQ(v, std::uint64_t{512} << 20);
  ASSERT_TRUE(ParseByteSize("2GiB", &v));
  EXPECT_EQ(v, std::uint64_t{2} << 30);
  ASSERT_TRUE(ParseByteSize("3g", &v));
  EXPECT_EQ(v, std::uint64_t{3} << 30);
  ASSERT_TRUE(ParseByteSize("1T", &v));
  EXPECT_EQ(v, std::uint64_t{1} << 40);
  ASSERT_TRUE(ParseByteSize("18446744073709551615", &v));
  EXPECT_EQ(v, UINT64_MAX);
}

TEST(ParseByteSize, RejectsEverythingElse) {
  std::uint64_t v = 7;
  for (const char* bad : {"", "abc", "-1", " 1", "1 ", "1X", "1KX", "1iB", "1.5G", "G", "1KBB",
                          "18446744073709551616", "16777216T", "99999999999999999999"}) {
    EXPECT_FALSE(ParseByteSize(bad, &v)) << bad;
  }
  EXPECT_FALSE(ParseByteSize(nullptr, &v));
  EXPECT_EQ(v, 7u) << "untouched on failure";
}

// A fake environment for ParseMonitorEnvironment.
std::map<std::string, std::string>* g_env = new std::map<std::string, std::string>();
const char* FakeGetEnv(const char* name) {
  auto it = g_env->find(name);
  return it == g_env->end() ? nullptr : it->second.c_str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

void MakeDirs(const std::string& path) {
  for (std::size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') mkdir(path.substr(0, i).c_str(), 0755);
  }
}

// A fake /sys/fs/cgroup plus /proc/self/cgroup under TEST_TMPDIR.
struct FakeCgroup {
  std::string root;
  std::string proc_file;
  explicit FakeCgroup(const std::string& name) {
    root = TempDir() + "/" + name + "/sys/fs/cgroup";
    proc_file = TempDir() + "/" + name + "/proc_self_cgroup";
    MakeDirs(root);
  }
  void SetMax(const std::string& cgroup, const std::string& value) {
    MakeDirs(root + cgroup);
    WriteFile(root + cgroup + "/memory.max", value);
  }
};

TEST(CgroupLimit, ReadsTheProcessCgroupAndItsAncestors) {
  FakeCgroup cg("cg1");
  WriteFile(cg.proc_file, "0::/system.slice/app.service\n");
  cg.SetMax("/system.slice/app.service", "268435456\n");
  cg.SetMax("/system.slice", "max\n");
  EXPECT_EQ(ReadCgroupMemoryLimit(cg.proc_file.c_str(), cg.root.c_str()), 268435456u);
  // A tighter parent wins.
  cg.SetMax("/system.slice", "134217728\n");
  EXPECT_EQ(ReadCgroupMemoryLimit(cg.proc_file.c_str(), cg.root.c_str()), 134217728u);
  // A trailing slash on the root is fine.
  EXPECT_EQ(ReadCgroupMemoryLimit(cg.proc_file.c_str(), (cg.root + "/").c_str()), 134217728u);
}

TEST(CgroupLimit, MaxMissingAndV1MeanNoLimit) {
  FakeCgroup cg("cg2");
  WriteFile(cg.proc_file, "0::/user.slice\n");
  cg.SetMax("/user.slice", "max\n");
  EXPECT_EQ(ReadCgroupMemoryLimit(cg.proc_file.c_str(), cg.root.c_str()), 0u);
  WriteFile(cg.proc_file, "0::/nowhere\n");
  EXPECT_EQ(ReadCgroupMemoryLimit(cg.proc_file.c_str(), cg.root.c_str()), 0u);
  // cgroup v1 only: no "0::" line.
  WriteFile(cg.proc_file, "12:memory:/docker/abc\n11:cpu:/docker/abc\n");
  EXPECT_EQ(ReadCgroupMemoryLimit(cg.proc_file.c_str(), cg.root.c_str()), 0u);
  // Garbage in memory.max.
  WriteFile(cg.proc_file, "0::/user.slice\n");
  cg.SetMax("/user.slice", "lots\n");
  EXPECT_EQ(ReadCgroupMemoryLimit(cg.proc_file.c_str(), cg.root.c_str()), 0u);
  EXPECT_EQ(ReadCgroupMemoryLimit((cg.proc_file + ".missing").c_str(), cg.root.c_str()), 0u);
  EXPECT_EQ(ReadCgroupMemoryLimit(nullptr, cg.root.c_str()), 0u);
}

TEST(CgroupLimit, HybridFileAndRootCgroup) {
  FakeCgroup cg("cg3");
  // Hybrid hierarchy: v1 lines plus the unified "0::" line, in a container
  // whose cgroup namespace makes its own cgroup "/".
  WriteFile(cg.proc_file, "1:name=systemd:/\n0::/\n");
  cg.SetMax("", "536870912");
  EXPECT_EQ(ReadCgroupMemoryLimit(cg.proc_file.c_str(), cg.root.c_str()), 536870912u);
}

TEST(Environment, EmptyMeansNothing) {
  g_env->clear();
  MonitorEnvironment env = ParseMonitorEnvironment(&FakeGetEnv, "/nonexistent", "/nonexistent");
  EXPECT_EQ(env.memory_limit, 0u);
  EXPECT_EQ(env.hard_memory_limit, 0u);
  EXPECT_FALSE(env.monitor);
  EXPECT_EQ(env.errors, 0);
  EXPECT_EQ(env.config.interval_ms, MonitorConfig{}.interval_ms);
  EXPECT_TRUE(env.config.log_alerts);
  EXPECT_EQ(env.config.profile_prefix, nullptr);
}

TEST(Environment, EveryVariable) {
  *g_env = {
      {"STRATA_MEMORY_LIMIT", "1G"},
      {"STRATA_HARD_MEMORY_LIMIT", "1536M"},
      {"STRATA_MONITOR", "1"},
      {"STRATA_MONITOR_INTERVAL_MS", "250"},
      {"STRATA_MONITOR_WARN_BYTES", "100M"},
      {"STRATA_MONITOR_CRIT_BYTES", "200M"},
      {"STRATA_MONITOR_WARN_COMMITTED", "300M"},
      {"STRATA_MONITOR_CRIT_COMMITTED", "400M"},
      {"STRATA_MONITOR_WARN_THREADS", "50"},
      {"STRATA_MONITOR_CRIT_THREADS", "100"},
      {"STRATA_MONITOR_GROWTH_BYTES", "64M"},
      {"STRATA_MONITOR_GROWTH_PERCENT", "25"},
      {"STRATA_MONITOR_GROWTH_WINDOW_MS", "30000"},
      {"STRATA_MONITOR_HISTORY", "600"},
      {"STRATA_MONITOR_PROFILE", "/tmp/app-growth"},
      {"STRATA_MONITOR_LOG", "0"},
  };
  MonitorEnvironment env = ParseMonitorEnvironment(&FakeGetEnv, "/nonexistent", "/nonexistent");
  EXPECT_EQ(env.errors, 0);
  EXPECT_EQ(env.memory_limit, std::uint64_t{1} << 30);
  EXPECT_EQ(env.hard_memory_limit, std::uint64_t{1536} << 20);
  EXPECT_TRUE(env.monitor);
  const MonitorConfig& c = env.config;
  EXPECT_EQ(c.interval_ms, 250u);
  EXPECT_EQ(c.live_bytes.warning, std::uint64_t{100} << 20);
  EXPECT_EQ(c.live_bytes.critical, std::uint64_t{200} << 20);
  EXPECT_EQ(c.committed_bytes.warning, std::uint64_t{300} << 20);
  EXPECT_EQ(c.committed_bytes.critical, std::uint64_t{400} << 20);
  EXPECT_EQ(c.threads.warning, 50u);
  EXPECT_EQ(c.threads.critical, 100u);
  EXPECT_EQ(c.growth_bytes, std::uint64_t{64} << 20);
  EXPECT_EQ(c.growth_percent, 25u);
  EXPECT_EQ(c.growth_window_ms, 30000u);
  EXPECT_EQ(c.history_size, 600u);
  ASSERT_NE(c.profile_prefix, nullptr);
  EXPECT_STREQ(c.profile_prefix, "/tmp/app-growth");
  EXPECT_FALSE(c.log_alerts);
}

TEST(Environment, AutoReadsTheCgroup) {
  FakeCgroup cg("cg4");
  WriteFile(cg.proc_file, "0::/kubepods/pod1/ctr\n");
  cg.SetMax("/kubepods/pod1/ctr", "max");
  cg.SetMax("/kubepods/pod1", "1073741824\n");
  *g_env = {{"STRATA_MEMORY_LIMIT", "auto"}};
  MonitorEnvironment env = ParseMonitorEnvironment(&FakeGetEnv, cg.proc_file.c_str(), cg.root.c_str());
  EXPECT_EQ(env.errors, 0);
  EXPECT_EQ(env.memory_limit, 1073741824u);
  // No limit in the cgroup: auto means none.
  cg.SetMax("/kubepods/pod1", "max");
  env = ParseMonitorEnvironment(&FakeGetEnv, cg.proc_file.c_str(), cg.root.c_str());
  EXPECT_EQ(env.memory_limit, 0u);
  EXPECT_EQ(env.errors, 0);
}

TEST(Environment, MalformedValuesAreCountedAndIgnored) {
  *g_env = {
      {"STRATA_MEMORY_LIMIT", "lots"},
      {"STRATA_HARD_MEMORY_LIMIT", "-5"},
      {"STRATA_MONITOR", "maybe"},
      {"STRATA_MONITOR_INTERVAL_MS", "0"},
      {"STRATA_MONITOR_WARN_BYTES", "1Q"},
      {"STRATA_MONITOR_HISTORY", "100000"},
      {"STRATA_MONITOR_GROWTH_PERCENT", "ten"},
      {"STRATA_MONITOR_PROFILE", std::string(kMaxProfilePrefix + 1, 'p')},
  };
  MonitorEnvironment env = ParseMonitorEnvironment(&FakeGetEnv, "/nonexistent", "/nonexistent");
  EXPECT_EQ(env.errors, 8);
  EXPECT_EQ(env.memory_limit, 0u);
  EXPECT_EQ(env.hard_memory_limit, 0u);
  EXPECT_FALSE(env.monitor);
  EXPECT_EQ(env.config.interval_ms, MonitorConfig{}.interval_ms);
  EXPECT_EQ(env.config.live_bytes.warning, 0u);
  EXPECT_EQ(env.config.history_size, MonitorConfig{}.history_size);
  EXPECT_EQ(env.config.profile_prefix, nullptr);
}

TEST(Environment, BooleanSpellings) {
  for (const char* yes : {"1", "true", "TRUE", "yes", "on"}) {
    *g_env = {{"STRATA_MONITOR", yes}};
    EXPECT_TRUE(ParseMonitorEnvironment(&FakeGetEnv, nullptr, nullptr).monitor) << yes;
  }
  for (const char* no : {"0", "false", "no", "off", ""}) {
    *g_env = {{"STRATA_MONITOR", no}};
    MonitorEnvironment env = ParseMonitorEnvironment(&FakeGetEnv, nullptr, nullptr);
    EXPECT_FALSE(env.monitor) << no;
    EXPECT_EQ(env.errors, 0) << no;
  }
}

}  // namespace
}  // namespace strata
