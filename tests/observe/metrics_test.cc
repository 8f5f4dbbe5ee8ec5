// tests/observe/metrics_test.cc: GET /metrics from a running endpoint,
// parsed line by line: the exposition's shape (HELP and TYPE before every
// family, counters and only counters ending in _total, strata_ prefix,
// every metric docs/MONITOR.md promises) and its values against what the
// test did: live bytes, a size class's objects, alerts by kind and level,
// limits and their state, the sample rate.
#include <sys/socket.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "alloc/heap_profiler.h"
#include "alloc/internal/sampled_slices.h"
#include "alloc/monitor.h"
#include "alloc/pprof_http.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"
#include "tests/observe/http_client.h"

namespace strata {
namespace {

struct Exposition {
  std::map<std::string, std::string> help;   // family -> help
  std::map<std::string, std::string> type;   // family -> type
  std::map<std::string, double> samples;     // "name{labels}" -> value
  std::vector<std::string> errors;
};

Exposition Parse(const std::string& text) {
  Exposition e;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      std::size_t sp = line.find(' ', 7);
      std::string name = line.substr(7, sp - 7);
      std::string rest = sp == std::string::npos ? "" : line.substr(sp + 1);
      (line[2] == 'H' ? e.help : e.type)[name] = rest;
      continue;
    }
    std::size_t sp = line.rfind(' ');
    if (line.empty() || sp == std::string::npos) {
      e.errors.push_back("malformed line: " + line);
      continue;
    }
    std::string key = line.substr(0, sp);
    std::string name = key.substr(0, key.find('{'));
    if (e.type.count(name) == 0 || e.help.count(name) == 0) e.errors.push_back("no HELP/TYPE before " + key);
    char* end = nullptr;
    const std::string value = line.substr(sp + 1);
    double v = std::strtod(value.c_str(), &end);
    if (end == nullptr || *end != '\0') e.errors.push_back("bad value: " + line);
    if (e.samples.count(key) != 0) e.errors.push_back("duplicate series: " + key);
    e.samples[key] = v;
  }
  return e;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(StartPprofServer(0, &port_)); }
  void TearDown() override { StopPprofServer(); }
  Exposition Scrape() {
    observe_test::Response r = observe_test::Get(port_, "/metrics");
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.status_line, "HTTP/1.0 200 OK");
    EXPECT_NE(r.headers.find("Content-Type: text/plain; version=0.0.4; charset=utf-8"), std::string::npos);
    text_ = r.body;
    Exposition e = Parse(r.body);
    EXPECT_TRUE(e.errors.empty()) << e.errors.front() << "\n" << r.body;
    return e;
  }
  int port_ = 0;
  std::string text_;
};

// Every family the docs promise (docs/MONITOR.md), with its type.
const std::map<std::string, std::string> kFamilies = {
    {"strata_live_bytes", "gauge"},
    {"strata_peak_live_bytes", "gauge"},
    {"strata_live_objects", "gauge"},
    {"strata_large_live_bytes", "gauge"},
    {"strata_committed_bytes", "gauge"},
    {"strata_reserved_bytes", "gauge"},
    {"strata_metadata_bytes", "gauge"},
    {"strata_cached_bytes", "gauge"},
    {"strata_fragmentation_bytes", "gauge"},
    {"strata_fragmentation_ratio", "gauge"},
    {"strata_resident_bytes", "gauge"},
    {"strata_allocations_total", "counter"},
    {"strata_frees_total", "counter"},
    {"strata_large_allocations_total", "counter"},
    {"strata_decommitted_bytes_total", "counter"},
    {"strata_os_failures_total", "counter"},
    {"strata_threads_with_cache", "gauge"},
    {"strata_memory_limit_bytes", "gauge"},
    {"strata_hard_memory_limit_bytes", "gauge"},
    {"strata_memory_limit_state", "gauge"},
    {"strata_memory_limit_pressure_events_total", "counter"},
    {"strata_memory_limit_released_bytes_total", "counter"},
    {"strata_monitor_running", "gauge"},
    {"strata_monitor_ticks_total", "counter"},
    {"strata_alerts_total", "counter"},
    {"strata_alerts_dropped_total", "counter"},
    {"strata_alert_level", "gauge"},
    {"strata_monitor_profiles_written_total", "counter"},
    {"strata_profile_sample_rate_bytes", "gauge"},
    {"strata_size_class_live_objects", "gauge"},
    {"strata_size_class_live_bytes", "gauge"},
};

TEST_F(MetricsTest, EveryFamilyIsWellFormedNamedAndTyped) {
  Exposition e = Scrape();
  for (const auto& [name, type] : e.type) {
    EXPECT_EQ(name.rfind("strata_", 0), 0u) << name;
    const bool total = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
    EXPECT_EQ(type == "counter", total) << name << " is a " << type;
    EXPECT_FALSE(e.help[name].empty()) << name;
  }
  for (const auto& [name, type] : kFamilies) {
    ASSERT_EQ(e.type.count(name), 1u) << "missing family " << name;
    EXPECT_EQ(e.type[name], type) << name;
  }
  EXPECT_EQ(e.type.size(), kFamilies.size()) << "a family not listed here (and in docs/MONITOR.md)";
  for (const auto& [key, value] : e.samples) {
    EXPECT_EQ(kFamilies.count(key.substr(0, key.find('{'))), 1u) << key;
  }
}

TEST_F(MetricsTest, ValuesFollowTheProgram) {
  std::vector<void*> big;
  for (int i = 0; i < 512; ++i) {  // 32 MiB, resident
    big.push_back(Allocate(64 * 1024));
    memset(big.back(), 1, 64 * 1024);
  }
  std::vector<void*> small;
  for (int i = 0; i < 3000; ++i) small.push_back(Allocate(48));
  const Stats s = GetStats();
  int class_index = -1;
  for (int i = 0; i < s.num_size_classes; ++i) {
    if (s.size_classes[i].size == 48) class_index = i + 1;
  }
  ASSERT_GT(class_index, 0) << "48 is a size class";
  SetProfileSampleRate(123457);
  MonitorConfig config;
  config.live_bytes.warning = 1;  // above at once: one warning
  ASSERT_TRUE(ConfigureMemoryMonitor(config));
  ASSERT_TRUE(MemoryMonitorTick());
  SetMemoryLimit(std::size_t{1} << 50);
  SetHardMemoryLimit(s.committed_bytes + 1);  // committed is above 90% of it

  Exposition e = Scrape();
  const double live = e.samples["strata_live_bytes"];
  EXPECT_GE(live, 32.0 * 1024 * 1024);
  EXPECT_LE(live, static_cast<double>(GetStats().live_bytes) + 1024 * 1024) << "close to the program's own view";
  EXPECT_GE(e.samples["strata_peak_live_bytes"], live);
  EXPECT_GE(e.samples["strata_committed_bytes"], live);
  EXPECT_GE(e.samples["strata_resident_bytes"], 32.0 * 1024 * 1024);
  EXPECT_GE(e.samples["strata_allocations_total"], 3512);
  const std::string labels = "{class=\"" + std::to_string(class_index) + "\",size=\"48\"}";
  // A request the heap profiler sampled holds a 4608-byte block (at the
  // default stride, alloc/internal/sampled_slices.h) and counts in that
  // class: a few of the 3000 may.
  const std::string sampled_labels =
      "{class=\"" + std::to_string(sampled_slices::kSmallSampleClass) + "\",size=\"4608\"}";
  const double sampled_blocks = e.samples["strata_size_class_live_objects" + sampled_labels];
  EXPECT_GE(e.samples["strata_size_class_live_objects" + labels] + sampled_blocks, 3000) << text_;
  EXPECT_GE(e.samples["strata_size_class_live_bytes" + labels], (3000.0 - sampled_blocks) * 48);
  EXPECT_EQ(e.samples["strata_profile_sample_rate_bytes"], 123457);
  EXPECT_GE(e.samples["strata_alerts_total{kind=\"live_bytes\",level=\"warning\"}"], 1);
  EXPECT_EQ(e.samples["strata_alerts_total{kind=\"threads\",level=\"critical\"}"], 0);
  EXPECT_EQ(e.samples["strata_alert_level{kind=\"live_bytes\"}"], 1);
  EXPECT_EQ(e.samples["strata_alert_level{kind=\"committed_bytes\"}"], 0);
  EXPECT_GE(e.samples["strata_monitor_ticks_total"], 1);
  EXPECT_EQ(e.samples["strata_monitor_running"], 0) << "configured, ticked by hand, not running";
  EXPECT_EQ(e.samples["strata_memory_limit_bytes"], static_cast<double>(std::size_t{1} << 50));
  EXPECT_EQ(e.samples["strata_memory_limit_state{limit=\"soft\",state=\"ok\"}"], 1);
  EXPECT_EQ(e.samples["strata_memory_limit_state{limit=\"soft\",state=\"pressure\"}"], 0);
  EXPECT_EQ(e.samples["strata_memory_limit_state{limit=\"hard\",state=\"pressure\"}"], 1);
  EXPECT_EQ(e.samples["strata_memory_limit_state{limit=\"hard\",state=\"unset\"}"], 0);
  double tiers = 0;
  for (const char* tier : {"thread_cache", "central", "page_heap", "large"}) {
    const std::string key = std::string("strata_cached_bytes{tier=\"") + tier + "\"}";
    ASSERT_EQ(e.samples.count(key), 1u) << key;
    tiers += e.samples[key];
  }
  EXPECT_LE(tiers, e.samples["strata_committed_bytes"]);
  const double ratio = e.samples["strata_fragmentation_ratio"];
  EXPECT_GE(ratio, 0);
  EXPECT_LE(ratio, 1);

  SetHardMemoryLimit(0);
  SetMemoryLimit(0);
  for (void* p : small) Free(p);
  for (void* p : big) Free(p);
  Exposition after = Scrape();
  EXPECT_EQ(after.samples["strata_memory_limit_state{limit=\"hard\",state=\"unset\"}"], 1);
  EXPECT_EQ(after.samples["strata_memory_limit_state{limit=\"soft\",state=\"unset\"}"], 1);
  EXPECT_LE(after.samples["strata_live_bytes"], live - 30.0 * 1024 * 1024) << "the frees show";
  EXPECT_GE(after.samples["strata_frees_total"], e.samples["strata_frees_total"] + 3512);
}

// The other pages of the endpoint answer too (their content is checked by
// dashboard_json_test and dashboard_browser_test); here they also run
// under the sanitizer configurations.
TEST_F(MetricsTest, DashboardAndItsJsonAreServed) {
  void* block = Allocate(1 << 20);  // live bytes above the warning
  MonitorConfig config;
  config.live_bytes.warning = 1;
  ASSERT_TRUE(ConfigureMemoryMonitor(config));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(MemoryMonitorTick());
  observe_test::Response json = observe_test::Get(port_, "/debug/strata/stats.json");
  EXPECT_EQ(json.status_line, "HTTP/1.0 200 OK");
  EXPECT_NE(json.headers.find("Content-Type: application/json"), std::string::npos);
  EXPECT_EQ(json.body.rfind("{\"unix_ms\":", 0), 0u) << json.body.substr(0, 200);
  EXPECT_NE(json.body.find("\"generic.current_allocated_bytes\":"), std::string::npos);
  EXPECT_NE(json.body.find("\"history\":[{\"unix_ms\":"), std::string::npos);
  EXPECT_NE(json.body.find("\"kind\":\"live_bytes\",\"level\":\"WARNING\""), std::string::npos) << json.body.substr(json.body.size() - 600);
  EXPECT_EQ(json.body.substr(json.body.size() - 4), "]}}\n") << "ends with the alerts and the object";
  observe_test::Response page = observe_test::Get(port_, "/debug/strata");
  EXPECT_EQ(page.status_line, "HTTP/1.0 200 OK");
  EXPECT_NE(page.headers.find("Content-Type: text/html; charset=utf-8"), std::string::npos);
  EXPECT_EQ(page.body.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(page.body.find("/debug/strata/stats.json"), std::string::npos);
  Free(block);
}

}  // namespace
}  // namespace strata
