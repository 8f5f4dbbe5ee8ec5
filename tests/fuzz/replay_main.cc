// tests/fuzz/replay_main.cc: runs a fuzz target (LLVMFuzzerTestOneInput)
// over its corpus without libFuzzer, so the gcc build (and the sanitizer
// configurations) replays every input in CI. Arguments: corpus directories
// or files. Also runs a few hundred inputs of a fixed pseudo-random stream,
// so that a target without a corpus still gets exercised.
#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

bool ReadFile(const std::string& path, std::vector<std::uint8_t>* out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  out->clear();
  std::uint8_t buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out->insert(out->end(), buf, buf + n);
  std::fclose(f);
  return true;
}

int RunPath(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "replay: cannot stat %s\n", path.c_str());
    return -1;
  }
  if (S_ISDIR(st.st_mode)) {
    DIR* d = opendir(path.c_str());
    if (d == nullptr) return -1;
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') names.push_back(path + "/" + e->d_name);
    }
    closedir(d);
    int n = 0;
    for (const std::string& name : names) {
      int r = RunPath(name);
      if (r < 0) return r;
      n += r;
    }
    return n;
  }
  std::vector<std::uint8_t> data;
  if (!ReadFile(path, &data)) return -1;
  LLVMFuzzerTestOneInput(data.data(), data.size());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  int files = 0;
  for (int i = 1; i < argc; ++i) {
    int n = RunPath(argv[i]);
    if (n < 0) return 1;
    files += n;
  }
  // A fixed pseudo-random stream of inputs of growing size.
  std::uint64_t s = 0x9E3779B97F4A7C15ull;
  std::vector<std::uint8_t> data;
  for (int i = 0; i < 300; ++i) {
    data.resize(static_cast<std::size_t>(i) * 7 % 2048);
    for (auto& b : data) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      b = static_cast<std::uint8_t>(s);
    }
    LLVMFuzzerTestOneInput(data.data(), data.size());
  }
  std::printf("replayed %d corpus inputs and 300 generated inputs\n", files);
  return files > 0 || argc == 1 ? 0 : 1;
}
