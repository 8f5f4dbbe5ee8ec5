// concurrency/base/signals_blocked.h: a scope in which the calling thread
// has every signal blocked.
//
// For sections that a signal handler on the same thread must not
// interrupt: a handler that forks there would run the process's fork
// handlers, whose prepare may wait for a lock this very thread holds (it
// never comes back to release it), or would leave the child in the middle
// of the section. Signals sent meanwhile are delivered when the scope ends.
// Also how a thread is created with every signal blocked (it inherits the
// mask). Costs two pthread_sigmask calls: for rare or slow paths only.
//
// Thread-safety: acts on the calling thread only. Never allocates.
#ifndef STRATA_CONCURRENCY_BASE_SIGNALS_BLOCKED_H_
#define STRATA_CONCURRENCY_BASE_SIGNALS_BLOCKED_H_

#include <pthread.h>
#include <signal.h>

namespace strata {

class SignalsBlocked {
 public:
  SignalsBlocked() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved_);
  }
  ~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  SignalsBlocked(const SignalsBlocked&) = delete;
  SignalsBlocked& operator=(const SignalsBlocked&) = delete;

 private:
  sigset_t saved_;
};

}  // namespace strata

#endif  // STRATA_CONCURRENCY_BASE_SIGNALS_BLOCKED_H_
