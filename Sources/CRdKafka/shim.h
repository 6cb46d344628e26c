#include <librdkafka/rdkafka.h>

// rd_kafka_producev is variadic, which Swift cannot call: one fixed-argument form of the calls the service makes.
// RD_KAFKA_PARTITION_UA lets the configured partitioner choose; the bytes are copied before it returns.
static inline rd_kafka_resp_err_t promo_rd_kafka_produce(rd_kafka_t *rk, const char *topic, int32_t partition,
                                                         const void *key, size_t key_len,
                                                         const void *value, size_t value_len) {
    return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, value_len),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
}

// The same with one header and a message opaque (handed back in its delivery report).
static inline rd_kafka_resp_err_t promo_rd_kafka_produce_header(rd_kafka_t *rk, const char *topic, int32_t partition,
                                                                const void *key, size_t key_len,
                                                                const void *value, size_t value_len,
                                                                const char *header, const void *header_value,
                                                                size_t header_len, void *opaque) {
    return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, value_len),
                             RD_KAFKA_V_HEADER(header, header_value, (ssize_t)header_len),
                             RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
}
