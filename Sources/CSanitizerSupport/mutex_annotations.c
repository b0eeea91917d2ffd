#include "sanitizer_support.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif

#if __has_feature(thread_sanitizer) && defined(__linux__)
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sanitizer/tsan_interface.h>

/* Swift's calling convention: `self` (the borrowed _MutexHandle, passed by address since
 * it is ~Copyable and holds an Atomic) travels in the swift-self register, which is the
 * register clang's `swift_context` parameter uses on every Swift platform. */
#define SWIFTCALL __attribute__((swiftcall))
#define SELF __attribute__((swift_context))

#define LOCK_SLOW "$s15Synchronization12_MutexHandleV9_lockSlowyys6UInt32VF"
#define TRY_LOCK_SLOW "$s15Synchronization12_MutexHandleV12_tryLockSlowSbyF"
#define UNLOCK_SLOW "$s15Synchronization12_MutexHandleV11_unlockSlowyyF"

typedef SWIFTCALL void (*LockSlow)(uint32_t selfId, void *SELF handle);
typedef SWIFTCALL bool (*TryLockSlow)(void *SELF handle);
typedef SWIFTCALL void (*UnlockSlow)(void *SELF handle);

static _Atomic long annotated = 0;

long rkafka_sanitizer_annotated_mutex_slow_paths(void) { return atomic_load(&annotated); }

/* The library's own function (the next definition after this executable's), looked up once. */
static void *original(_Atomic(void *) *cache, const char *name) {
    void *function = atomic_load_explicit(cache, memory_order_acquire);
    if (function) return function;
    function = dlsym(RTLD_NEXT, name);
    if (!function) abort();  /* a Swift runtime without this function: nothing to annotate against */
    atomic_store_explicit(cache, function, memory_order_release);
    return function;
}

static _Atomic(void *) lockSlow = NULL;
static _Atomic(void *) tryLockSlow = NULL;
static _Atomic(void *) unlockSlow = NULL;

SWIFTCALL void rkafka_mutex_lock_slow(uint32_t selfId, void *SELF handle) __asm__(LOCK_SLOW);
SWIFTCALL void rkafka_mutex_lock_slow(uint32_t selfId, void *SELF handle) {
    ((LockSlow)original(&lockSlow, LOCK_SLOW))(selfId, handle);
    __tsan_acquire(handle);
    atomic_fetch_add_explicit(&annotated, 1, memory_order_relaxed);
}

SWIFTCALL bool rkafka_mutex_try_lock_slow(void *SELF handle) __asm__(TRY_LOCK_SLOW);
SWIFTCALL bool rkafka_mutex_try_lock_slow(void *SELF handle) {
    bool locked = ((TryLockSlow)original(&tryLockSlow, TRY_LOCK_SLOW))(handle);
    if (locked) {
        __tsan_acquire(handle);
        atomic_fetch_add_explicit(&annotated, 1, memory_order_relaxed);
    }
    return locked;
}

SWIFTCALL void rkafka_mutex_unlock_slow(void *SELF handle) __asm__(UNLOCK_SLOW);
SWIFTCALL void rkafka_mutex_unlock_slow(void *SELF handle) {
    __tsan_release(handle);
    atomic_fetch_add_explicit(&annotated, 1, memory_order_relaxed);
    ((UnlockSlow)original(&unlockSlow, UNLOCK_SLOW))(handle);
}

#else

long rkafka_sanitizer_annotated_mutex_slow_paths(void) { return -1; }

#endif
