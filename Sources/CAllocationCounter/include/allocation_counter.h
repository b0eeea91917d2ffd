#ifndef ALLOCATION_COUNTER_H
#define ALLOCATION_COUNTER_H
#include <stdint.h>
/* Counts heap allocations made by the whole process (every thread), by
 * interposing malloc and friends in the executable that links this target.
 * Used by `rkafka bench` to report allocations per message. */
uint64_t allocation_counter_allocations(void);
uint64_t allocation_counter_bytes(void);
#endif
