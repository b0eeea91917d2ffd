#include "sanitizer_support.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif

#if __has_feature(address_sanitizer)
#include <stdlib.h>

/* librdkafka's (rdkafka.h); declared here to keep this target free of librdkafka's headers.
 * The executables this target is linked into link librdkafka. */
int rd_kafka_wait_destroyed(int timeout_ms);

/* A client is destroyed on a thread of its own once its stream and its last record are gone
 * (ClientHandleOwner), so a process that exits right after its last stream (the last test of a
 * run) can exit while librdkafka is still freeing it, and LeakSanitizer, which checks at exit,
 * reported those blocks as leaked. This handler is registered after LeakSanitizer's (which the
 * runtime registers before any constructor runs), so it runs first: it waits, at most 10 s,
 * until every librdkafka client of the process is destroyed. A client that is never destroyed
 * still shows as a leak once the wait ends. */
static void waitForClientsToBeDestroyed(void) { (void)rd_kafka_wait_destroyed(10000); }

__attribute__((constructor)) static void registerWaitForClients(void) { atexit(waitForClientsToBeDestroyed); }
#endif
