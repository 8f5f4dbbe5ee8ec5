// alloc/runtime.h: what strata does on its own when it is the process's
// allocator (linked through //alloc:malloc or preloaded as libstrata.so):
// it reads its environment at load time and acts at exit.
//
//   STRATA_SHOW_STATS=1|text|json   print the stats report to stderr at exit
//   STRATA_HEAPPROFILE=path         write a heap profile at exit
//   STRATA_HEAPPROFILE_SIGNAL=N     also write path.<k>.heap on signal N
//   STRATA_PEAK_HEAPPROFILE=path    write the peak heap profile at exit
//   STRATA_SAMPLE_RATE=bytes        sampling stride (alloc/heap_profiler.h)
//   STRATA_LEAKCHECK=1              track every allocation; leak report at
//                                   exit, exit code 23 when leaks are found
//   STRATA_LEAKCHECK_EXITCODE=N     that exit code (0: keep the program's)
//   STRATA_LEAKCHECK_SHOW_REACHABLE=1  also list still-reachable blocks
//   STRATA_LEAK_SUPPRESSIONS=file   leak suppressions (alloc/leak_check.h)
//   STRATA_MEMORY_LIMIT, STRATA_MONITOR*, STRATA_PPROF_PORT  see
//                                   docs/MONITOR.md
//
// Thread-safety: Init runs once (a load-time constructor); the exit
// actions run once, from atexit, on the exiting thread.
#ifndef STRATA_ALLOC_RUNTIME_H_
#define STRATA_ALLOC_RUNTIME_H_

namespace strata::runtime {

// Reads the environment and arms the exit actions; idempotent. Called
// automatically when the runtime is linked in.
void Init();

// Runs the exit actions now (stats, heap profile, leak check); idempotent.
void RunExitActions();

}  // namespace strata::runtime

#endif  // STRATA_ALLOC_RUNTIME_H_
