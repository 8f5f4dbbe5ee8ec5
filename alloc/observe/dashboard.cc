// GET /debug/strata (alloc/observe/dashboard.h): the page, embedded.
#include "alloc/observe/dashboard.h"

#include "alloc/observe/fd_writer.h"

namespace strata::observe {
namespace {

// dashboard_html.inc is dashboard.html wrapped in a raw string literal by
// the genrule in alloc/observe/BUILD.bazel.
constexpr char kDashboardHtml[] =
#include "alloc/observe/dashboard_html.inc"
    ;

}  // namespace

int WriteDashboardHtml(int fd) noexcept {
  FdWriter w(fd);
  w.Bytes(kDashboardHtml, sizeof(kDashboardHtml) - 1);
  return w.Finish();
}

}  // namespace strata::observe
