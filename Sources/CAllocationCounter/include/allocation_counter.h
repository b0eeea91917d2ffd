#ifndef ALLOCATION_COUNTER_H
#define ALLOCATION_COUNTER_H
#include <stdint.h>
/* Counts heap allocations made by the whole process (every thread), by
 * interposing malloc and friends in the executable that links this target.
 * Used by `rkafka bench` to report allocations per message.
 *
 * Not in ThreadSanitizer or AddressSanitizer builds (the sanitizer owns malloc there):
 * then allocation_counter_available() is 0 and both counts stay 0. */
int allocation_counter_available(void);
uint64_t allocation_counter_allocations(void);
uint64_t allocation_counter_bytes(void);
#endif
