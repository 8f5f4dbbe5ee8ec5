// pmr_containers: standard containers on a std::pmr resource that forwards
// to operator new, i.e. to malloc.
//
// Not modelled on one classic benchmark: it reproduces the allocation
// pattern of container-heavy C++ (a word-frequency index, as in text
// processing and log analysis) written against std::pmr, with every
// container using std::pmr::new_delete_resource(), so that the allocations
// reach the allocator under test through operator new. Note: libstdc++'s
// new_delete_resource always calls the aligned operator new
// (size, align_val_t), which, unless the allocator replaces it, becomes
// aligned_alloc(8 or 16, size) (glibc: memalign, then malloc); so this also
// measures that path, as every program using the default pmr resource does.
// Per iteration, each thread:
//   * generates 20000 words (lengths 3-24, so many exceed the small-string
//     buffer) from a skewed vocabulary into a pmr::vector<pmr::string>;
//   * counts them in a pmr::unordered_map<pmr::string, uint32_t>;
//   * groups the words by count in a pmr::map<uint32_t,
//     pmr::vector<pmr::string>>, sorts each group;
//   * keeps a pmr::list of the words seen once and a pmr::deque of hashes,
//     trimming both from the front;
//   * derives the checksum from the grouped, sorted result and tears down.
//
// Work: --scale 1.0 is 192 iterations in total, split over the threads.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory_resource>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/workloads/common.h"

namespace {

using strata_bench::Mix;
using strata_bench::Rng;

constexpr long kBaseIterations = 192;
constexpr int kWords = 20000;
constexpr int kVocabulary = 6000;

std::pmr::string MakeWord(uint64_t id, std::pmr::memory_resource* mr) {
  uint64_t h = Mix(id);
  size_t len = 3 + h % 22;
  std::pmr::string w(mr);
  w.reserve(len);
  for (size_t i = 0; i < len; ++i) {
    w.push_back(static_cast<char>('a' + (h >> (i % 60)) % 26));
  }
  return w;
}

uint64_t Iteration(Rng& rng, std::pmr::memory_resource* mr) {
  std::pmr::vector<std::pmr::string> words(mr);
  for (int i = 0; i < kWords; ++i) {
    // Skewed: the square of a uniform variate favours small ids.
    uint64_t u = rng.Below(kVocabulary);
    uint64_t id = u * u / kVocabulary;
    words.push_back(MakeWord(id, mr));
  }

  std::pmr::unordered_map<std::pmr::string, uint32_t> freq(mr);
  for (const auto& w : words) ++freq[w];

  std::pmr::map<uint32_t, std::pmr::vector<std::pmr::string>> by_count(mr);
  std::pmr::list<std::pmr::string> singles(mr);
  std::pmr::deque<uint64_t> hashes(mr);
  for (const auto& [w, c] : freq) {
    by_count[c].push_back(w);
    if (c == 1) singles.push_back(w);
    hashes.push_back(std::hash<std::string_view>{}(w));
    if (hashes.size() > 512) hashes.pop_front();
    if (singles.size() > 256) singles.pop_front();
  }

  uint64_t sum = 0;
  for (auto& [count, group] : by_count) {
    std::sort(group.begin(), group.end());
    uint64_t rank = 0;
    for (const auto& w : group) {
      sum += count * (++rank) + static_cast<unsigned char>(w.front()) +
             w.size();
    }
  }
  sum += singles.size() * 131 + freq.size();
  for (const auto& w : singles) sum += static_cast<unsigned char>(w.back());
  // The deque's contents depend on unordered_map iteration order, which is
  // deterministic for a given libstdc++ but not worth relying on: count only.
  sum += hashes.size();
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const strata_bench::Options opt = strata_bench::ParseArgs(argc, argv);
  const int n = opt.threads;
  const long total = strata_bench::Scaled(kBaseIterations, opt, n);
  std::pmr::memory_resource* mr = std::pmr::new_delete_resource();
  std::vector<uint64_t> sums(static_cast<size_t>(n), 0);
  strata_bench::RunThreads(n, [&](int t) {
    long first = 0;
    for (int u = 0; u < t; ++u) first += strata_bench::ShareOf(total, n, u);
    uint64_t sum = 0;
    for (long i = first; i < first + strata_bench::ShareOf(total, n, t); ++i) {
      Rng rng(static_cast<uint64_t>(i) * 104729 + 17);
      sum += Iteration(rng, mr);
    }
    sums[t] = sum;
  });
  uint64_t sum = 0;
  for (uint64_t s : sums) sum += s;
  strata_bench::PrintChecksum(sum);
  return 0;
}
