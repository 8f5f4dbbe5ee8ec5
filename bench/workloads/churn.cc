// churn: small-object churn from building and tearing down linked data
// structures.
//
// Modelled on the allocation pattern of pointer-heavy programs such as the
// classic binary-trees benchmark (Computer Language Benchmarks Game) and
// the small-object churn of compilers and interpreters: many short-lived
// small nodes, allocated in bursts and freed in bursts, in an order unrelated
// to the allocation order.
//
// How it differs from binary-trees: instead of perfect trees of one node
// size, each iteration builds
//   * an unbalanced binary search tree of 3000 random keys whose nodes
//     (32 bytes, via new) own a heap string for one key in four;
//   * a singly linked list of 3000 nodes of random size (16-96 bytes, via
//     malloc), of which every other node is unlinked and freed first;
//   * a std::map<uint64_t, std::string> of 1000 entries, half of them
//     erased in random order and re-inserted;
// walks each structure to compute the checksum (so all contents are read),
// and tears everything down. Threads work independently on their own
// structures; the total work is split over the threads.
//
// Work: --scale 1.0 is 800 iterations in total.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "bench/workloads/common.h"

namespace {

using strata_bench::Mix;
using strata_bench::Rng;

constexpr long kBaseIterations = 800;
constexpr int kTreeKeys = 3000;
constexpr int kListNodes = 3000;
constexpr int kMapEntries = 1000;

struct TreeNode {
  uint64_t key;
  TreeNode* left = nullptr;
  TreeNode* right = nullptr;
  std::string* label = nullptr;  // owned; one node in four has one
};

void TreeInsert(TreeNode*& root, TreeNode* node) {
  TreeNode** link = &root;
  while (*link != nullptr) {
    link = node->key < (*link)->key ? &(*link)->left : &(*link)->right;
  }
  *link = node;
}

// In-order walk, iterative (random trees can be deep).
uint64_t TreeSum(TreeNode* root, std::vector<TreeNode*>& stack) {
  uint64_t sum = 0, rank = 0;
  stack.clear();
  TreeNode* n = root;
  while (n != nullptr || !stack.empty()) {
    while (n != nullptr) {
      stack.push_back(n);
      n = n->left;
    }
    n = stack.back();
    stack.pop_back();
    sum += n->key * ++rank;
    if (n->label != nullptr) sum += n->label->size() + (*n->label)[0];
    n = n->right;
  }
  return sum;
}

void TreeFree(TreeNode* root, std::vector<TreeNode*>& stack) {
  stack.clear();
  if (root != nullptr) stack.push_back(root);
  while (!stack.empty()) {
    TreeNode* n = stack.back();
    stack.pop_back();
    if (n->left != nullptr) stack.push_back(n->left);
    if (n->right != nullptr) stack.push_back(n->right);
    delete n->label;
    delete n;
  }
}

struct ListNode {
  ListNode* next;
  uint32_t size;
  uint32_t value;
  // followed by size - sizeof(ListNode) payload bytes
};

uint64_t Iteration(Rng& rng, std::vector<TreeNode*>& stack) {
  uint64_t sum = 0;

  // 1. Binary search tree.
  TreeNode* root = nullptr;
  for (int i = 0; i < kTreeKeys; ++i) {
    auto* node = new TreeNode;
    node->key = rng.Next() >> 16;
    if ((node->key & 3) == 0) {
      node->label = new std::string(16 + node->key % 40, 'a' + node->key % 26);
    }
    TreeInsert(root, node);
  }
  sum += TreeSum(root, stack);

  // 2. Linked list of variable-size nodes; unlink every other node first.
  ListNode* head = nullptr;
  for (int i = 0; i < kListNodes; ++i) {
    uint32_t size = static_cast<uint32_t>(rng.Range(sizeof(ListNode), 96));
    auto* node = static_cast<ListNode*>(std::malloc(size));
    if (node == nullptr) strata_bench::Die("churn: malloc failed");
    node->next = head;
    node->size = size;
    node->value = static_cast<uint32_t>(rng.Next());
    auto* payload = reinterpret_cast<unsigned char*>(node + 1);
    std::memset(payload, static_cast<int>(node->value & 0xff),
                size - sizeof(ListNode));
    head = node;
  }
  for (ListNode* n = head; n != nullptr && n->next != nullptr; n = n->next) {
    ListNode* dead = n->next;
    n->next = dead->next;
    sum += dead->value;
    std::free(dead);
  }
  while (head != nullptr) {
    ListNode* n = head;
    head = n->next;
    auto* payload = reinterpret_cast<unsigned char*>(n + 1);
    size_t len = n->size - sizeof(ListNode);
    if (len > 0 && (payload[0] != (n->value & 0xff) ||
                    payload[len - 1] != (n->value & 0xff))) {
      strata_bench::Die("churn: list node payload corrupted");
    }
    sum += n->value * 3ull;
    std::free(n);
  }

  // 3. A map of strings: fill, erase half at random, refill, walk, clear.
  std::map<uint64_t, std::string> m;
  std::vector<uint64_t> keys;
  keys.reserve(kMapEntries);
  for (int i = 0; i < kMapEntries; ++i) {
    uint64_t k = rng.Next();
    keys.push_back(k);
    m.emplace(k, std::string(rng.Range(0, 64), static_cast<char>('A' + k % 26)));
  }
  for (int i = 0; i < kMapEntries / 2; ++i) {
    size_t j = rng.Below(keys.size());
    m.erase(keys[j]);
    keys[j] = keys.back();
    keys.pop_back();
  }
  for (int i = 0; i < kMapEntries / 2; ++i) {
    uint64_t k = rng.Next();
    m.emplace(k, std::string(rng.Range(0, 64), static_cast<char>('a' + k % 26)));
  }
  for (const auto& [k, v] : m) sum += (k >> 32) + v.size();

  TreeFree(root, stack);
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const strata_bench::Options opt = strata_bench::ParseArgs(argc, argv);
  const int n = opt.threads;
  const long total = strata_bench::Scaled(kBaseIterations, opt, n);
  std::vector<uint64_t> sums(static_cast<size_t>(n), 0);
  strata_bench::RunThreads(n, [&](int t) {
    // Per-iteration seeds: the result does not depend on how iterations
    // are split over threads.
    long first = 0;
    for (int u = 0; u < t; ++u) first += strata_bench::ShareOf(total, n, u);
    long count = strata_bench::ShareOf(total, n, t);
    std::vector<TreeNode*> stack;
    uint64_t sum = 0;
    for (long i = first; i < first + count; ++i) {
      Rng rng(static_cast<uint64_t>(i) * 7919 + 1);
      sum += Iteration(rng, stack);
    }
    sums[t] = sum;
  });
  uint64_t sum = 0;
  for (uint64_t s : sums) sum += s;
  strata_bench::PrintChecksum(sum);
  return 0;
}
