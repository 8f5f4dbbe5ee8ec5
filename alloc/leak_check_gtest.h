// alloc/leak_check_gtest.h: a GoogleTest listener that fails the test that
// leaked, naming the allocation site.
//
// Usage (in a test main, or once from any test binary's setup):
//   ::testing::UnitTest::GetInstance()->listeners().Append(
//       new strata::testing::LeakCheckListener);
// or call strata::testing::InstallLeakCheckListener().
//
// Each test runs inside a strata::LeakCheck: blocks allocated during the
// test that are unreachable when it ends are leaks; the report goes to
// stderr and the test gets a failure "strata: ... leaked N byte(s) in M
// object(s), largest site: <function>". The test binary must allocate
// through strata (cc_test(malloc = "//alloc:malloc")).
//
// Thread-safety: GoogleTest calls listeners from the main thread.
#ifndef STRATA_ALLOC_LEAK_CHECK_GTEST_H_
#define STRATA_ALLOC_LEAK_CHECK_GTEST_H_

#include <gtest/gtest.h>

#include <memory>

#include "alloc/leak_check.h"

namespace strata::testing {

class LeakCheckListener : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo&) override { check_ = std::make_unique<LeakCheck>(); }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (check_ == nullptr) return;
    LeakReport report = check_->Check(2);
    check_.reset();
    if (report.HasLeaks()) {
      ADD_FAILURE() << "strata: " << info.test_suite_name() << "." << info.name() << " leaked "
                    << (report.definite_bytes + report.indirect_bytes) << " byte(s) in "
                    << (report.definite_objects + report.indirect_objects)
                    << " object(s), largest site: " << report.top_site;
    }
  }

 private:
  std::unique_ptr<LeakCheck> check_;
};

// Appends a LeakCheckListener to the running UnitTest (once).
inline void InstallLeakCheckListener() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  ::testing::UnitTest::GetInstance()->listeners().Append(new LeakCheckListener);
}

}  // namespace strata::testing

#endif  // STRATA_ALLOC_LEAK_CHECK_GTEST_H_
