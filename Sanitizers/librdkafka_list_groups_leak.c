/* librdkafka 2.0.2 alone leaks one 176-byte queue (an rd_kafka_q_t, allocated in rd_kafka_new)
 * for each client that ever called rd_kafka_ListConsumerGroups, however many times and however
 * the client is destroyed: the leak LeakSanitizer reports for every lag reader (README,
 * "Sanitizers"; Sources/ReactiveKafka/Lag/LagReader.swift lists groups each round). Evidence
 * only; not part of any build.
 *
 *   clang -g -fsanitize=address Sanitizers/librdkafka_list_groups_leak.c -lrdkafka \
 *     -o /tmp/list_groups_leak
 *   ASAN_OPTIONS=detect_leaks=1 /tmp/list_groups_leak CALLS
 *
 * CALLS 0: the client is created, a queue made and destroyed, the client destroyed: no leak.
 * CALLS 1 or 5: as 0, with that many ListConsumerGroups answered on the queue (each result
 * event destroyed) before: "176 byte(s) leaked in 1 allocation(s)" either way (December 2026,
 * an in-process mock broker). */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    char error[512];
    int calls = argc > 1 ? atoi(argv[1]) : 1;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", error, sizeof error) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "%s\n", error);
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
    if (!rk) {
        fprintf(stderr, "%s\n", error);
        return 2;
    }
    rd_kafka_queue_t *queue = rd_kafka_queue_new(rk);
    for (int i = 0; i < calls; i++) {
        rd_kafka_ListConsumerGroups(rk, NULL, queue);
        rd_kafka_event_t *result = rd_kafka_queue_poll(queue, 10000);
        fprintf(stderr, "ListConsumerGroups %d: %s\n", i, result ? rd_kafka_event_name(result) : "no answer");
        if (result) rd_kafka_event_destroy(result);
    }
    rd_kafka_queue_destroy(queue);
    rd_kafka_destroy(rk);
    fprintf(stderr, "clients left: %d\n", rd_kafka_wait_destroyed(5000) == 0 ? 0 : 1);
    return 0;
}
