#include "alloc/internal/central_pool.h"

#include "alloc/internal/globals.h"
#include "alloc/internal/page_map.h"

namespace strata::internal {

constinit PageHeap g_page_heap;
constinit CentralPool g_central[kNumClasses];
constinit TrackedCentralPool g_tracked_central[kNumClasses];

int CentralPool::MaxBatches(int size_class) const {
  const SizeClassInfo& info = ClassInfo(size_class);
  std::size_t batch_bytes = static_cast<std::size_t>(info.batch) * info.size;
  std::size_t n = kMaxTransferBytes / batch_bytes;
  if (n < 2) n = 2;
  if (n > kMaxTransferBatches) n = kMaxTransferBatches;
  return static_cast<int>(n);
}

int CentralPool::Remove(int size_class, int n, FreeObject** head) {
  if (n == ClassInfo(size_class).batch) {
    FreeObject* batch = transfer_.Pop();
    if (batch != nullptr) {
      transfer_batches_.fetch_sub(1, std::memory_order_relaxed);
      objects_out_.fetch_add(n, std::memory_order_relaxed);
      *head = batch;
      return n;
    }
  }
  int got = RemoveFromSpans(size_class, n, head);
  if (got > 0) objects_out_.fetch_add(got, std::memory_order_relaxed);
  return got;
}

void CentralPool::Insert(int size_class, FreeObject* head, int n) {
  objects_out_.fetch_sub(n, std::memory_order_relaxed);
  if (n == ClassInfo(size_class).batch &&
      transfer_batches_.load(std::memory_order_relaxed) < MaxBatches(size_class)) {
    if (transfer_.Push(head)) {
      transfer_batches_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  InsertToSpans(size_class, head, n);
}

void CentralPool::Drain(int size_class) {
  int batch = ClassInfo(size_class).batch;
  while (FreeObject* head = transfer_.Pop()) {
    transfer_batches_.fetch_sub(1, std::memory_order_relaxed);
    InsertToSpans(size_class, head, batch);
  }
}

int CentralPool::RemoveFromSpans(int size_class, int n, FreeObject** head) {
  const SizeClassInfo& info = ClassInfo(size_class);
  FreeObject* out = nullptr;
  FreeObject** tail = &out;
  int got = 0;
  SpinLockHolder h(&lock_);
  while (got < n) {
    Span* span = partial_;
    if (span == nullptr) {
      span = g_page_heap.AllocSmallSpan(size_class, tracked_);
      if (span == nullptr) break;  // out of memory: return what we have
      spans_allocated_.fetch_add(1, std::memory_order_relaxed);
      span->in_partial = true;
      span->next = nullptr;
      span->prev = nullptr;
      partial_ = span;
    }
    while (got < n && span->free_list != nullptr) {
      FreeObject* o = span->free_list;
      span->free_list = o->next;
      *tail = o;
      tail = &o->next;
      ++got;
      ++span->allocated;
      span_free_objects_.fetch_sub(1, std::memory_order_relaxed);
    }
    std::uintptr_t base = span->start();
    while (got < n && span->carved < info.objects) {
      auto* o = reinterpret_cast<FreeObject*>(base + static_cast<std::uintptr_t>(span->carved) * info.size);
      ++span->carved;
      *tail = o;
      tail = &o->next;
      ++got;
      ++span->allocated;
    }
    if (span->free_list == nullptr && span->carved == info.objects) {
      // Exhausted: off the partial list until an object comes back.
      partial_ = span->next;
      if (partial_ != nullptr) partial_->prev = nullptr;
      span->next = span->prev = nullptr;
      span->in_partial = false;
    }
  }
  *tail = nullptr;
  *head = out;
  return got;
}

void CentralPool::InsertToSpans(int size_class, FreeObject* head, int n) {
  (void)size_class;
  Span* empty = nullptr;  // spans whose objects all came back
  {
    SpinLockHolder h(&lock_);
    for (int i = 0; i < n && head != nullptr; ++i) {
      FreeObject* o = head;
      head = o->next;
      auto addr = reinterpret_cast<std::uintptr_t>(o);
      Segment* seg = g_segment_map.Get(addr);
      Span* span = seg->SpanOf(addr);
      o->next = span->free_list;
      span->free_list = o;
      --span->allocated;
      span_free_objects_.fetch_add(1, std::memory_order_relaxed);
      if (!span->in_partial) {
        span->in_partial = true;
        span->prev = nullptr;
        span->next = partial_;
        if (partial_ != nullptr) partial_->prev = span;
        partial_ = span;
      }
      if (span->allocated == 0) {
        // Unlink from partial and queue for the page heap.
        if (span->prev != nullptr) {
          span->prev->next = span->next;
        } else {
          partial_ = span->next;
        }
        if (span->next != nullptr) span->next->prev = span->prev;
        span->in_partial = false;
        std::size_t objs = span->carved;  // every carved object is on its free list
        span_free_objects_.fetch_sub(objs, std::memory_order_relaxed);
        span->free_list = nullptr;
        span->next = empty;
        empty = span;
      }
    }
  }
  while (empty != nullptr) {
    Span* next = empty->next;
    g_page_heap.FreeSmallSpan(empty);
    empty = next;
  }
}

}  // namespace strata::internal
