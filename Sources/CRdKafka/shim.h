#ifndef CRDKAFKA_SHIM_H
#define CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#ifdef __linux__
/* The consumer engine's wake-up is an eventfd on Linux (a pipe elsewhere). */
#include <sys/eventfd.h>
#endif
#endif
