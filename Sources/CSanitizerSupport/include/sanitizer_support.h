#ifndef RKAFKA_SANITIZER_SUPPORT_H
#define RKAFKA_SANITIZER_SUPPORT_H
/* Helps the sanitizers see what they cannot see on their own. Compiled only in sanitizer
 * builds (`make sanitize`); elsewhere it defines nothing but the counters below (-1).
 *
 * 1. Threads. In ThreadSanitizer and AddressSanitizer builds, this target defines C11's thread,
 * mutex and condition-variable functions (thrd_create, mtx_lock, cnd_wait, ...) on top
 * of pthreads, in the executable. librdkafka calls the C11 functions, which glibc
 * implements without going through the pthread symbols the sanitizers intercept: its
 * threads, locks and waits were invisible to them (no thread registered for
 * LeakSanitizer's stack scan, no happens-before edge for ThreadSanitizer). Symbols the
 * executable defines take precedence over libc's for librdkafka's calls, so with this
 * target linked in they reach the sanitizers' pthread interceptors.
 *
 * In other builds nothing is defined and librdkafka uses glibc's functions. */

/* 2. Synchronization.Mutex. In ThreadSanitizer builds, the contended paths of Swift's
 * Mutex (`_MutexHandle._lockSlow`, `_tryLockSlow`, `_unlockSlow`: a priority-inheritance
 * futex, locked and unlocked by the kernel) live in libswiftSynchronization, which is not
 * instrumented: ThreadSanitizer saw the uncontended lock and unlock (atomics inlined into
 * instrumented code) but not a contended hand-over, and reported races on state the mutex
 * guards. This target defines those three functions in the executable (calls to them from
 * the Swift code linked in bind here), calls the library's own, and tells ThreadSanitizer
 * the acquire (after the lock) and the release (before the unlock) on the mutex word, the
 * address its inlined atomics synchronise on. No suppression is needed for the Mutex. */

/* 3. Exit. In AddressSanitizer builds, the process waits at exit (at most 10 s) until
 * librdkafka has destroyed every client, before LeakSanitizer's check: clients are destroyed
 * on threads of their own, and one still being freed was reported as leaked
 * (leak_check_at_exit.c). */

/* How many threads were started through the pthread route; -1 in a build without a
 * sanitizer (the route is not compiled in). */
long rkafka_sanitizer_routed_threads(void);
/* How many C11 mutex locks went through the pthread route; -1 without a sanitizer. */
long rkafka_sanitizer_routed_locks(void);
/* How many contended Mutex locks and unlocks were annotated; -1 without ThreadSanitizer. */
long rkafka_sanitizer_annotated_mutex_slow_paths(void);
#endif
