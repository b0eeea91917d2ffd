#define _GNU_SOURCE
#include "allocation_counter.h"
#include <stdatomic.h>
#include <stddef.h>
#include <errno.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif

/* Interposing needs glibc's __libc_* entry points, and sanitizer builds keep the sanitizer's
 * allocator (replacing malloc crashes ThreadSanitizer at start and hides every allocation from
 * AddressSanitizer and LeakSanitizer). Elsewhere nothing is interposed: the counter says it is
 * unavailable and `rkafka bench` leaves allocs/msg out (AllocationCounterCheck). */
#if !defined(__GLIBC__) || __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
int allocation_counter_available(void) { return 0; }
uint64_t allocation_counter_allocations(void) { return 0; }
uint64_t allocation_counter_bytes(void) { return 0; }
#else

static _Atomic uint64_t allocations = 0;
static _Atomic uint64_t bytes = 0;

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static inline void count(size_t n) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&bytes, n, memory_order_relaxed);
}

int allocation_counter_available(void) { return 1; }
uint64_t allocation_counter_allocations(void) { return atomic_load_explicit(&allocations, memory_order_relaxed); }
uint64_t allocation_counter_bytes(void) { return atomic_load_explicit(&bytes, memory_order_relaxed); }

void *malloc(size_t n) { count(n); return __libc_malloc(n); }
void *calloc(size_t k, size_t n) { count(k * n); return __libc_calloc(k, n); }
void *realloc(void *p, size_t n) { count(n); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t a, size_t n) { count(n); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { count(n); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    count(n);
    void *p = __libc_memalign(a, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
#endif
