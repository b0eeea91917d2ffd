/* librdkafka 2.0.2 alone leaks a consumer's partition when the consumer closes after the
 * partition's fetcher started but before the client had its topic's metadata (README,
 * "Sanitizers"). Evidence for that leak and for the engine's way of freeing it
 * (Sources/ReactiveKafka/Engine/PartitionQueues.swift); not part of any build.
 *
 *   clang -g -fsanitize=address Sanitizers/librdkafka_partition_leak.c \
 *     Sources/CSanitizerSupport/sanitizer_threads.c -ISources/CSanitizerSupport/include \
 *     -lrdkafka -o /tmp/partition_leak
 *   ASAN_OPTIONS=detect_leaks=1 /tmp/partition_leak MODE [ROUNDS]
 *
 * MODE 0: no partition queue forwarded; 1: the partition's queue forwarded to an application
 * queue (as the engine does); 2: as 1, and after the close the partition queue is forwarded
 * to the application queue again before that is destroyed (the engine's step).
 * Each leaking round loses 2,856 bytes in 10 blocks (a 1-character topic name). December 2026,
 * 2 cores, runs of 20 rounds: mode 0 leaked in 20 and 15 rounds, mode 1 in 18, 19 and 16, mode 2
 * in none of 10 runs. RDDEBUG=cgrp,topic,fetch prints librdkafka's debug log. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void set(rd_kafka_conf_t *conf, const char *name, const char *value) {
    char error[256];
    if (rd_kafka_conf_set(conf, name, value, error, sizeof error) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "%s: %s\n", name, error);
        exit(2);
    }
}

int main(int argc, char **argv) {
    int mode = argc > 1 ? atoi(argv[1]) : 0;
    int rounds = argc > 2 ? atoi(argv[2]) : 20;
    const char *debug = getenv("RDDEBUG");
    char error[512];
    rd_kafka_conf_t *clusterConf = rd_kafka_conf_new();
    set(clusterConf, "log_level", "0");
    rd_kafka_t *clusterOwner = rd_kafka_new(RD_KAFKA_PRODUCER, clusterConf, error, sizeof error);
    rd_kafka_mock_cluster_t *cluster = rd_kafka_mock_cluster_new(clusterOwner, 1);
    rd_kafka_mock_topic_create(cluster, "t", 2, 1);
    srand(42);
    for (int round = 0; round < rounds; round++) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char group[64];
        snprintf(group, sizeof group, "g-%d-%d", getpid(), round);
        set(conf, "bootstrap.servers", rd_kafka_mock_cluster_bootstraps(cluster));
        set(conf, "group.id", group);
        set(conf, "auto.offset.reset", "earliest");
        set(conf, "log_level", debug ? "7" : "0");
        if (debug) set(conf, "debug", debug);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
        rd_kafka_poll_set_consumer(rk);
        rd_kafka_queue_t *appQueue = rd_kafka_queue_new(rk);
        /* The group coordinator is found meanwhile, so the fetcher starts soon after the assign;
         * the topic's metadata comes with the next refresh, after the close below. */
        usleep(100000);
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(list, "t", 1)->offset = RD_KAFKA_OFFSET_INVALID;
        rd_kafka_error_t *assignError = rd_kafka_incremental_assign(rk, list);
        rd_kafka_topic_partition_list_destroy(list);
        if (assignError) {
            fprintf(stderr, "assign: %s\n", rd_kafka_error_string(assignError));
            return 2;
        }
        rd_kafka_queue_t *partitionQueue = NULL;
        if (mode >= 1) {
            partitionQueue = rd_kafka_queue_get_partition(rk, "t", 1);
            rd_kafka_queue_forward(partitionQueue, appQueue);
            if (mode == 1) {
                rd_kafka_queue_destroy(partitionQueue);
                partitionQueue = NULL;
            }
        }
        usleep(rand() % 60000);
        rd_kafka_consumer_close(rk);
        if (partitionQueue) {
            /* The close's stop cleared the forwarding; the barriers queued since move to appQueue. */
            rd_kafka_queue_forward(partitionQueue, appQueue);
            rd_kafka_queue_destroy(partitionQueue);
        }
        rd_kafka_queue_destroy(appQueue);
        rd_kafka_destroy(rk);
    }
    rd_kafka_mock_cluster_destroy(cluster);
    rd_kafka_destroy(clusterOwner);
    /* Every client destroyed: what LeakSanitizer reports at exit is no client still being freed. */
    int left = rd_kafka_wait_destroyed(10000);
    fprintf(stderr, "mode %d, %d rounds: rd_kafka_wait_destroyed returned %d\n", mode, rounds, left);
    return 0;
}
