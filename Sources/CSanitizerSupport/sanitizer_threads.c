#include "sanitizer_support.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif

#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

/* glibc's thrd_t, mtx_t and cnd_t are its pthread_t, pthread_mutex_t and pthread_cond_t
 * (same size and layout: glibc's own C11 functions are thin wrappers over them), so the
 * pthread functions can work on them in place. */
_Static_assert(sizeof(thrd_t) == sizeof(pthread_t), "thrd_t is pthread_t");
_Static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t), "mtx_t is pthread_mutex_t");
_Static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t), "cnd_t is pthread_cond_t");

static _Atomic long routedThreads = 0;
static _Atomic long routedLocks = 0;

long rkafka_sanitizer_routed_threads(void) { return atomic_load(&routedThreads); }
long rkafka_sanitizer_routed_locks(void) { return atomic_load(&routedLocks); }

static int c11(int pthreadResult) {
    switch (pthreadResult) {
    case 0: return thrd_success;
    case ENOMEM: return thrd_nomem;
    case EBUSY: return thrd_busy;
    case ETIMEDOUT: return thrd_timedout;
    default: return thrd_error;
    }
}

struct start { thrd_start_t function; void *argument; };

static void *run(void *opaque) {
    struct start start = *(struct start *)opaque;
    free(opaque);
    return (void *)(intptr_t)start.function(start.argument);
}

int thrd_create(thrd_t *thread, thrd_start_t function, void *argument) {
    struct start *start = malloc(sizeof *start);
    if (!start) return thrd_nomem;
    start->function = function;
    start->argument = argument;
    int err = pthread_create((pthread_t *)thread, NULL, run, start);
    if (err) {
        free(start);
        return c11(err);
    }
    atomic_fetch_add(&routedThreads, 1);
    return thrd_success;
}

int thrd_join(thrd_t thread, int *result) {
    void *value = NULL;
    int err = pthread_join((pthread_t)thread, &value);
    if (!err && result) *result = (int)(intptr_t)value;
    return c11(err);
}

int thrd_detach(thrd_t thread) { return c11(pthread_detach((pthread_t)thread)); }

int mtx_init(mtx_t *mutex, int type) {
    pthread_mutexattr_t attributes;
    pthread_mutexattr_init(&attributes);
    if (type & mtx_recursive) pthread_mutexattr_settype(&attributes, PTHREAD_MUTEX_RECURSIVE);
    int err = pthread_mutex_init((pthread_mutex_t *)mutex, &attributes);
    pthread_mutexattr_destroy(&attributes);
    return c11(err);
}

int mtx_lock(mtx_t *mutex) {
    atomic_fetch_add_explicit(&routedLocks, 1, memory_order_relaxed);
    return c11(pthread_mutex_lock((pthread_mutex_t *)mutex));
}

int mtx_trylock(mtx_t *mutex) { return c11(pthread_mutex_trylock((pthread_mutex_t *)mutex)); }

int mtx_timedlock(mtx_t *restrict mutex, const struct timespec *restrict deadline) {
    return c11(pthread_mutex_timedlock((pthread_mutex_t *)mutex, deadline));
}

int mtx_unlock(mtx_t *mutex) { return c11(pthread_mutex_unlock((pthread_mutex_t *)mutex)); }

void mtx_destroy(mtx_t *mutex) { pthread_mutex_destroy((pthread_mutex_t *)mutex); }

int cnd_init(cnd_t *condition) { return c11(pthread_cond_init((pthread_cond_t *)condition, NULL)); }

int cnd_signal(cnd_t *condition) { return c11(pthread_cond_signal((pthread_cond_t *)condition)); }

int cnd_broadcast(cnd_t *condition) { return c11(pthread_cond_broadcast((pthread_cond_t *)condition)); }

int cnd_wait(cnd_t *condition, mtx_t *mutex) {
    return c11(pthread_cond_wait((pthread_cond_t *)condition, (pthread_mutex_t *)mutex));
}

int cnd_timedwait(cnd_t *restrict condition, mtx_t *restrict mutex, const struct timespec *restrict deadline) {
    return c11(pthread_cond_timedwait((pthread_cond_t *)condition, (pthread_mutex_t *)mutex, deadline));
}

void cnd_destroy(cnd_t *condition) { pthread_cond_destroy((pthread_cond_t *)condition); }

#else

long rkafka_sanitizer_routed_threads(void) { return -1; }
long rkafka_sanitizer_routed_locks(void) { return -1; }

#endif
