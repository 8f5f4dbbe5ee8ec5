// tests/monitor/pprof_http_test.cc: the pprof HTTP endpoint. A raw socket
// client fetches /debug/pprof/heap (gzip, decodes with tools/heapdump's
// reader, shows the allocation site), other paths give 404, and
// `go tool pprof -top http://127.0.0.1:PORT/debug/pprof/heap` prints a top
// table. Loopback only; every loop and read is bounded.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "alloc/heap_profiler.h"
#include "alloc/pprof_http.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"
#include "tests/monitor/test_util.h"
#include "tests/observe/http_client.h"
#include "tools/heapdump/profile_reader.h"

namespace strata {
namespace {

using monitor_test::TempDir;

using observe_test::Fetch;
using observe_test::Get;
using observe_test::Response;

// The allocation site the served profile should show.
__attribute__((noinline)) std::vector<void*> PprofHttpSite() {
  std::vector<void*> blocks;
  for (int i = 0; i < 64; ++i) blocks.push_back(Allocate(64 * 1024));
  asm volatile("" ::: "memory");
  return blocks;
}

class PprofHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    SetProfileSampleRate(1);
    blocks_ = new std::vector<void*>(PprofHttpSite());
  }
  static void TearDownTestSuite() {
    for (void* p : *blocks_) Free(p);
    delete blocks_;
  }
  void SetUp() override {
    ASSERT_TRUE(StartPprofServer(0, &port_));
    ASSERT_GT(port_, 0);
    EXPECT_EQ(PprofServerPort(), port_);
  }
  void TearDown() override {
    StopPprofServer();
    EXPECT_EQ(PprofServerPort(), 0);
  }
  static std::vector<void*>* blocks_;
  int port_ = 0;
};
std::vector<void*>* PprofHttpTest::blocks_ = nullptr;

TEST_F(PprofHttpTest, ServesTheGzippedHeapProfile) {
  EXPECT_FALSE(StartPprofServer(0)) << "one server per process";
  Response r = Get(port_, "/debug/pprof/heap");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status_line, "HTTP/1.0 200 OK");
  EXPECT_NE(r.headers.find("Content-Type: application/octet-stream"), std::string::npos) << r.headers;
  ASSERT_GE(r.body.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(r.body[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(r.body[1]), 0x8b);
  ASSERT_TRUE(heapdump::IsGzip(r.body));
  heapdump::Profile profile;
  std::string error;
  ASSERT_TRUE(heapdump::DecodeProfile(r.body, &profile, &error)) << error;
  const int inuse = profile.SampleTypeIndex("inuse_space");
  ASSERT_GE(inuse, 0);
  bool site_seen = false;
  for (const heapdump::Sample& s : profile.samples) {
    for (std::uint64_t id : s.location_ids) {
      const heapdump::Location* loc = profile.FindLocation(id);
      if (loc == nullptr) continue;
      for (const heapdump::Line& line : loc->lines) {
        const heapdump::Function* fn = profile.FindFunction(line.function_id);
        if (fn != nullptr && fn->name.find("PprofHttpSite") != std::string::npos && s.values[inuse] > 0) {
          site_seen = true;
        }
      }
    }
  }
  EXPECT_TRUE(site_seen);

  // A query string is ignored; the server keeps serving.
  Response again = Get(port_, "/debug/pprof/heap?gc=1");
  ASSERT_TRUE(again.ok);
  EXPECT_EQ(again.status_line, "HTTP/1.0 200 OK");
  EXPECT_TRUE(heapdump::IsGzip(again.body));
}

TEST_F(PprofHttpTest, EverythingElseIs404Or405Or400) {
  for (const char* path : {"/", "/debug/pprof/", "/debug/pprof/heapx", "/debug/pprof/profile", "/heap"}) {
    Response r = Get(port_, path);
    ASSERT_TRUE(r.ok) << path;
    EXPECT_EQ(r.status_line, "HTTP/1.0 404 Not Found") << path;
  }
  Response post = Fetch(port_, "POST /debug/pprof/heap HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(post.ok);
  EXPECT_EQ(post.status_line, "HTTP/1.0 405 Method Not Allowed");
  EXPECT_NE(post.headers.find("Allow: GET, HEAD"), std::string::npos) << post.headers;
  Response junk = Fetch(port_, "garbage\r\n\r\n");
  ASSERT_TRUE(junk.ok);
  EXPECT_EQ(junk.status_line, "HTTP/1.0 400 Bad Request");
  // A client that connects and closes without a request does not stop it.
  Fetch(port_, "");
  EXPECT_EQ(Get(port_, "/debug/pprof/heap").status_line, "HTTP/1.0 200 OK");
}

// Connects to `port` on the machine's first non-loopback IPv4 address:
// 1 when refused, 0 when accepted, -1 when there is no such address.
int RefusedOnExternalAddress(int port) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return -1;
  int result = -1;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    sockaddr_in addr = *reinterpret_cast<sockaddr_in*>(a->ifa_addr);
    if ((ntohl(addr.sin_addr.s_addr) >> 24) == 127) continue;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    result = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ? 1 : 0;
    close(fd);
    break;
  }
  freeifaddrs(list);
  return result;
}

TEST_F(PprofHttpTest, BoundToLoopbackOnlyAndRestartable) {
  const int refused = RefusedOnExternalAddress(port_);
  if (refused >= 0) {
    EXPECT_EQ(refused, 1) << "the server must listen on 127.0.0.1 only";
  }
  const int port = port_;
  StopPprofServer();
  EXPECT_FALSE(Get(port, "/debug/pprof/heap").ok) << "stopped: nothing listens";
  int bound = 0;
  ASSERT_TRUE(StartPprofServer(port, &bound)) << "the same port again after a stop";
  EXPECT_EQ(bound, port);
  EXPECT_EQ(Get(port, "/debug/pprof/heap").status_line, "HTTP/1.0 200 OK");
  EXPECT_FALSE(StartPprofServer(-1));
  EXPECT_FALSE(StartPprofServer(65536));
}

std::string FindGo() {
  for (const char* p : {"/usr/bin/go", "/usr/lib/go/bin/go", "/usr/local/go/bin/go"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return "";
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST_F(PprofHttpTest, GoToolPprofReadsTheEndpoint) {
  const std::string go = FindGo();
  ASSERT_FALSE(go.empty()) << "`go` not found (/usr/bin/go, /usr/lib/go/bin/go): install Debian's golang-go";
  const std::string dir = TempDir();
  const std::string out = dir + "/pprof_top.txt";
  const std::string err = dir + "/pprof_top.err";
  const std::string url = "http://127.0.0.1:" + std::to_string(port_) + "/debug/pprof/heap";
  // go writes to $HOME/.cache and $GOCACHE; pprof saves fetched profiles
  // in $PPROF_TMPDIR: all inside the sandbox. No proxy for loopback.
  const std::string cmd = "HOME='" + dir + "' GOCACHE='" + dir + "/gocache' XDG_CACHE_HOME='" + dir +
                          "/cache' PPROF_TMPDIR='" + dir + "/pprof' GOFLAGS= NO_PROXY='*' no_proxy='*' timeout 60 '" +
                          go + "' tool pprof -top -sample_index=inuse_space -timeout=20 '" + url + "' >'" + out +
                          "' 2>'" + err + "'";
  const int rc = std::system(cmd.c_str());
  const std::string text = Slurp(out);
  ASSERT_EQ(rc, 0) << cmd << "\nstdout:\n" << text << "\nstderr:\n" << Slurp(err);
  EXPECT_NE(text.find("flat%"), std::string::npos) << text;
  EXPECT_NE(text.find("Type: inuse_space"), std::string::npos) << text;
  EXPECT_NE(text.find("PprofHttpSite"), std::string::npos) << text;
  std::printf("go tool pprof -top %s:\n%s", url.c_str(), text.c_str());
}

}  // namespace
}  // namespace strata
