// tests/profile/peak_profile_test.cc: the peak heap profile (issue 19).
//
// The scenario: BigSite allocates 100 MB (100 blocks of 1 MiB) and frees
// it, then SmallSite allocates 10 MB and keeps it. At the default sampling
// stride (512 KiB) the peak profile's top in-use site must be BigSite and
// the heap profile's SmallSite; the peak profile's in-use total must be
// near 100 MB (the snapshot misses at most the 1/16 margin, plus sampling
// noise) and the heap profile's near 10 MB. Checked through the API
// (tools/heapdump's reader and `go tool pprof -top`, which must print the
// names), through STRATA_PEAK_HEAPPROFILE at exit (a child process), and
// through GET /debug/pprof/peak.
//
// The binary runs on strata (malloc = "//alloc:malloc"), so the runtime
// layer reads the environment; sanitizers own malloc: no-sanitizer.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/heap_profiler.h"
#include "alloc/pprof_http.h"
#include "alloc/strata.h"
#include "alloc/tracking/peak_tracker.h"
#include "tests/profile/go_pprof.h"
#include "tools/heapdump/analysis.h"
#include "tools/heapdump/profile_reader.h"

namespace strata {
namespace {

constexpr int kBigBlocks = 100;
constexpr int kSmallBlocks = 10;
constexpr std::size_t kBlock = std::size_t{1} << 20;

void* volatile g_sink;

__attribute__((noinline)) void BigSite() {
  std::vector<void*> blocks;
  blocks.reserve(kBigBlocks);
  for (int i = 0; i < kBigBlocks; ++i) blocks.push_back(Allocate(kBlock));
  g_sink = blocks.back();
  for (void* p : blocks) Free(p);
  asm volatile("" ::: "memory");  // not a tail call: BigSite stays on the stack
}

__attribute__((noinline)) void SmallSite(std::vector<void*>* kept) {
  for (int i = 0; i < kSmallBlocks; ++i) kept->push_back(Allocate(kBlock));
  asm volatile("" ::: "memory");
}

// The scenario, from a fresh peak; returns the kept blocks.
std::vector<void*> RunScenario() {
  SetProfileSampleRate(512 * 1024);
  tracking::ResetPeak();
  BigSite();
  std::vector<void*> kept;
  kept.reserve(kSmallBlocks);
  SmallSite(&kept);
  return kept;
}

void FreeAll(const std::vector<void*>& blocks) {
  for (void* p : blocks) Free(p);
}

std::string TmpDir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d != nullptr ? d : "/tmp";
}

struct Top {
  std::string name;      // the top in-use site's leaf function
  double total_mb = 0;   // in-use bytes of the whole profile, MB
};

Top TopOf(const heapdump::Profile& profile) {
  Top top;
  const int index = profile.SampleTypeIndex("inuse_space");
  EXPECT_GE(index, 0);
  if (index < 0) return top;
  std::vector<heapdump::TopRow> rows = heapdump::ComputeTop(profile, index, false);
  if (!rows.empty()) top.name = rows[0].name;
  for (const heapdump::Sample& s : profile.samples) top.total_mb += static_cast<double>(s.values[index]) / 1e6;
  return top;
}

Top ReadTop(const std::string& path) {
  heapdump::Profile profile;
  std::string error;
  EXPECT_TRUE(heapdump::ReadProfileFile(path, &profile, &error)) << path << ": " << error;
  return TopOf(profile);
}

void ExpectPeakAndHeap(const Top& peak, const Top& heap) {
  EXPECT_NE(peak.name.find("BigSite"), std::string::npos) << "peak top: " << peak.name;
  EXPECT_NE(heap.name.find("SmallSite"), std::string::npos) << "heap top: " << heap.name;
  // 104.9 MB allocated at the peak (plus 10.5 MB later); the snapshot may
  // trail the top by the 1/16 margin, sampling adds a few percent.
  EXPECT_GT(peak.total_mb, 80.0);
  EXPECT_LT(peak.total_mb, 140.0);
  EXPECT_GT(heap.total_mb, 6.0);
  EXPECT_LT(heap.total_mb, 20.0);
}

TEST(PeakProfile, TopSiteIsThePeaksNotTodays) {
  std::vector<void*> kept = RunScenario();
  const std::string dir = TmpDir();
  const std::string peak_path = dir + "/peak.pb.gz";
  const std::string heap_path = dir + "/heap.pb.gz";
  ASSERT_EQ(WritePeakHeapProfile(peak_path.c_str()), 0);
  ASSERT_EQ(WriteHeapProfile(heap_path.c_str()), 0);
  PeakHeapProfileSummary summary = GetPeakHeapProfileSummary();
  FreeAll(kept);

  const Top peak = ReadTop(peak_path);
  const Top heap = ReadTop(heap_path);
  ExpectPeakAndHeap(peak, heap);
  EXPECT_GE(summary.snapshots, 1u);
  EXPECT_GT(summary.highest_estimate_bytes, 80'000'000u);
  EXPECT_GT(summary.profile.inuse_bytes, 80'000'000u);
  std::printf("peak: %s %.1f MB (%llu snapshots); heap: %s %.1f MB\n", peak.name.c_str(), peak.total_mb,
              static_cast<unsigned long long>(summary.snapshots), heap.name.c_str(), heap.total_mb);

  // A real reader prints the names (they come from the profile).
  const std::string go = testing::FindGo();
  ASSERT_FALSE(go.empty()) << "`go` not found: install Debian's golang-go (tools/setup.sh does)";
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ASSERT_GT(n, 0);
  exe[n] = '\0';
  std::string text, err;
  ASSERT_EQ(testing::RunGoPprofTop(go, dir, "inuse_space", exe, peak_path, &text, &err), 0)
      << text << "\n" << err;
  const std::vector<testing::TopLine> lines = testing::ParseTop(text);
  ASSERT_GE(lines.size(), 1u) << text;
  EXPECT_NE(lines[0].name.find("BigSite"), std::string::npos) << text;
  EXPECT_NE(text.find("Type: inuse_space"), std::string::npos) << text;
  std::printf("go tool pprof -top (peak):\n%s", text.c_str());
}

// When the heap holds more now than at the last snapshot, now is the peak.
TEST(PeakProfile, CurrentHeapAboveTheSnapshotIsThePeak) {
  SetProfileSampleRate(512 * 1024);
  tracking::ResetPeak();
  std::vector<void*> kept;
  SmallSite(&kept);  // 10 MB: a snapshot or several on the way
  const PeakHeapProfileSummary before = GetPeakHeapProfileSummary();
  const HeapProfileSummary now = GetHeapProfileSummary();
  EXPECT_GE(before.profile.inuse_bytes, now.inuse_bytes);
  FreeAll(kept);
}

// The child of WrittenAtExitThroughTheEnvironment: runs the scenario and
// exits, leaving the runtime's exit actions to write the profiles.
TEST(PeakProfileChild, Scenario) {
  if (std::getenv("PEAK_PROFILE_TEST_CHILD") == nullptr) GTEST_SKIP() << "run by the test below";
  std::vector<void*> kept = RunScenario();
  g_sink = kept.data();
  std::exit(0);  // exit actions run here, with the 10 MB still in use
}

TEST(PeakProfile, WrittenAtExitThroughTheEnvironment) {
  const std::string dir = TmpDir();
  const std::string peak_path = dir + "/exit-peak.pb.gz";
  const std::string heap_path = dir + "/exit-heap.pb.gz";
  const std::string log_path = dir + "/exit-child.log";
  unlink(peak_path.c_str());
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    FILE* log = std::freopen(log_path.c_str(), "w", stderr);
    (void)log;
    setenv("PEAK_PROFILE_TEST_CHILD", "1", 1);
    setenv("STRATA_PEAK_HEAPPROFILE", peak_path.c_str(), 1);
    setenv("STRATA_HEAPPROFILE", heap_path.c_str(), 1);
    execl("/proc/self/exe", "peak_profile_test", "--gtest_filter=PeakProfileChild.Scenario", nullptr);
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  const std::string log = testing::Slurp(log_path);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status << "\n" << log;
  EXPECT_NE(log.find("strata: peak heap profile written to " + peak_path), std::string::npos) << log;
  ExpectPeakAndHeap(ReadTop(peak_path), ReadTop(heap_path));
}

// GET `path` from 127.0.0.1:`port`; the response body (after the head).
std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buf[65536];
      for (ssize_t r; (r = read(fd, buf, sizeof(buf))) > 0;) response.append(buf, static_cast<std::size_t>(r));
    }
  }
  close(fd);
  if (response.rfind("HTTP/1.0 200", 0) != 0) return "";
  const std::size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

TEST(PeakProfile, ServedAtDebugPprofPeak) {
  std::vector<void*> kept = RunScenario();
  int port = 0;
  ASSERT_TRUE(StartPprofServer(0, &port));
  const std::string peak_body = HttpGet(port, "/debug/pprof/peak");
  const std::string heap_body = HttpGet(port, "/debug/pprof/heap");
  StopPprofServer();
  FreeAll(kept);
  heapdump::Profile peak, heap;
  std::string error;
  ASSERT_TRUE(heapdump::DecodeProfile(peak_body, &peak, &error)) << error;
  ASSERT_TRUE(heapdump::DecodeProfile(heap_body, &heap, &error)) << error;
  ExpectPeakAndHeap(TopOf(peak), TopOf(heap));
}

}  // namespace
}  // namespace strata
