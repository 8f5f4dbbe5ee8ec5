// alloc/profile/string_table.cc: see string_table.h.
#include "alloc/profile/string_table.h"

#include <cstring>

namespace strata::profile {

std::int64_t StringTable::Add(const char* s, std::size_t length,
                              std::uint64_t hash) {
  if (length == SIZE_MAX) return kFailed;
  auto* copy = static_cast<char*>(arena_->Allocate(length + 1, 1));
  if (copy == nullptr) return kFailed;
  if (length != 0) std::memcpy(copy, s, length);
  copy[length] = '\0';
  const std::size_t index = entries_.size();
  if (index >= IndexHashSet::kNotFound) return kFailed;
  if (!entries_.PushBack(Entry{copy, length})) return kFailed;
  if (!index_.Insert(hash, static_cast<std::uint32_t>(index))) {
    entries_.Resize(index);  // undo: never leave an unindexed entry
    return kFailed;
  }
  return static_cast<std::int64_t>(index);
}

std::int64_t StringTable::Intern(const char* s, std::size_t length) {
  if (entries_.empty() && Add("", 0, HashBytes("", 0)) == kFailed) {
    return kFailed;
  }
  const std::uint64_t hash = HashBytes(s, length);
  const std::uint32_t found = index_.Find(hash, [&](std::uint32_t i) {
    const Entry& e = entries_[i];
    return e.length == length &&
           (length == 0 || std::memcmp(e.data, s, length) == 0);
  });
  if (found != IndexHashSet::kNotFound) return found;
  return Add(s, length, hash);
}

}  // namespace strata::profile
