// promo-mock-broker: librdkafka's mock cluster (rdkafka_mock.h) hosted in its own process, so that other
// processes (the tests' `promo run` members) reach it over real TCP.
//
//   promo-mock-broker [--brokers N] TOPIC:PARTITIONS...
//
// Prints "bootstrap <host:port,...>" on stdout once listening, then reads commands from stdin, one per line,
// answering "ok" or "error <why>":
//   down <broker-id>            take a broker down (its connections are closed, it refuses new ones)
//   up <broker-id>              bring it back
//   rtt <broker-id> <ms>        add round-trip time to every response of that broker
//   error <api-key> <code> <n>  make the next n requests of that API fail with that error code
//   topic <name> <partitions>   create one more topic
// and exits on "quit", end of input, SIGTERM or SIGINT.
//
// The mock cluster implements consumer groups, idempotent and transactional producers, but keeps only a few MiB
// per partition, does no compaction and has no CreateTopics: topics are created here.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stopping = 0;
static void on_signal(int sig) { (void)sig; stopping = 1; }

static int create_topic(rd_kafka_mock_cluster_t *cluster, const char *name, int partitions) {
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(cluster, name, partitions, 1);
    if (err) {
        fprintf(stderr, "promo-mock-broker: cannot create %s: %s\n", name, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int brokers = 1;
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    // The handle only owns the cluster; it connects nowhere.
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) { fprintf(stderr, "promo-mock-broker: %s\n", errstr); return 1; }

    int first_topic = 1;
    if (argc > 2 && strcmp(argv[1], "--brokers") == 0) { brokers = atoi(argv[2]); first_topic = 3; }
    rd_kafka_mock_cluster_t *cluster = rd_kafka_mock_cluster_new(rk, brokers);
    if (!cluster) { fprintf(stderr, "promo-mock-broker: cannot start the mock cluster\n"); return 1; }
    // Members join within a test's time frame; the default 3 s initial delay only slows tests down.
    rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 100);

    for (int i = first_topic; i < argc; i++) {
        char name[256];
        int partitions = 0;
        if (sscanf(argv[i], "%255[^:]:%d", name, &partitions) != 2 || partitions < 1) {
            fprintf(stderr, "promo-mock-broker: expected TOPIC:PARTITIONS, got %s\n", argv[i]);
            return 2;
        }
        if (create_topic(cluster, name, partitions)) return 1;
    }

    struct sigaction action = {0};
    action.sa_handler = on_signal;
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);

    printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(cluster));
    fflush(stdout);

    char line[512];
    while (!stopping && fgets(line, sizeof line, stdin)) {
        char command[32] = "", name[256] = "";
        int a = 0, b = 0, c = 0;
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        int fields = sscanf(line, "%31s", command);
        if (fields < 1) continue;
        if (strcmp(command, "quit") == 0) break;
        if (strcmp(command, "down") == 0 && sscanf(line, "%*s %d", &a) == 1) {
            err = rd_kafka_mock_broker_set_down(cluster, a);
        } else if (strcmp(command, "up") == 0 && sscanf(line, "%*s %d", &a) == 1) {
            err = rd_kafka_mock_broker_set_up(cluster, a);
        } else if (strcmp(command, "rtt") == 0 && sscanf(line, "%*s %d %d", &a, &b) == 2) {
            err = rd_kafka_mock_broker_set_rtt(cluster, a, b);
        } else if (strcmp(command, "error") == 0 && sscanf(line, "%*s %d %d %d", &a, &b, &c) == 3 && c > 0) {
            rd_kafka_resp_err_t *errors = calloc((size_t)c, sizeof *errors);
            for (int i = 0; i < c; i++) errors[i] = (rd_kafka_resp_err_t)b;
            rd_kafka_mock_push_request_errors_array(cluster, (int16_t)a, (size_t)c, errors);
            free(errors);
        } else if (strcmp(command, "topic") == 0 && sscanf(line, "%*s %255s %d", name, &a) == 2 && a > 0) {
            if (create_topic(cluster, name, a)) { printf("error cannot create %s\n", name); fflush(stdout); continue; }
        } else {
            printf("error unknown command: %s", line);
            fflush(stdout);
            continue;
        }
        if (err) printf("error %s\n", rd_kafka_err2str(err)); else printf("ok\n");
        fflush(stdout);
    }
    rd_kafka_mock_cluster_destroy(cluster);
    rd_kafka_destroy(rk);
    return 0;
}
