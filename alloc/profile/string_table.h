// alloc/profile/string_table.h: the interned string table of a pprof
// profile, built without malloc.
//
// Contract:
//   - Index 0 is always "" (pprof requires string_table[0] == ""); it is
//     added by the first Intern call, whatever string that call interns.
//   - Intern returns the same index for equal byte strings (embedded NULs
//     allowed) and a fresh, dense index otherwise. Strings are copied into
//     the arena (NUL-terminated for convenience), so the caller's buffer
//     may be reused right away.
//   - Intern returns kFailed (-1) when the arena is exhausted; the table is
//     left as it was.
//
// Thread-safety: none (owned by one writer call).
#ifndef STRATA_ALLOC_PROFILE_STRING_TABLE_H_
#define STRATA_ALLOC_PROFILE_STRING_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "alloc/profile/arena_hash.h"
#include "alloc/profile/scratch_arena.h"

namespace strata::profile {

class StringTable {
 public:
  static constexpr std::int64_t kFailed = -1;

  explicit StringTable(ScratchArena* arena)
      : arena_(arena), entries_(arena), index_(arena) {}
  StringTable(const StringTable&) = delete;
  StringTable& operator=(const StringTable&) = delete;

  std::int64_t Intern(const char* s, std::size_t length);
  std::int64_t Intern(const char* s) { return Intern(s, std::strlen(s)); }

  // Number of strings, including "" once anything was interned.
  std::size_t size() const { return entries_.size(); }
  const char* str(std::size_t i) const { return entries_[i].data; }
  std::size_t length(std::size_t i) const { return entries_[i].length; }

 private:
  struct Entry {
    const char* data;
    std::size_t length;
  };

  // Adds a new entry without looking it up; kFailed on OOM.
  std::int64_t Add(const char* s, std::size_t length, std::uint64_t hash);

  ScratchArena* arena_;
  ArenaVector<Entry> entries_;
  IndexHashSet index_;
};

}  // namespace strata::profile

#endif  // STRATA_ALLOC_PROFILE_STRING_TABLE_H_
