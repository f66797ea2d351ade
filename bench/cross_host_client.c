/* cross_host_client: the client side of bench/cross_host.sh (issue #4): calls and tells from this process (no pool
 * of its own) to a BenchEcho actor in an xoscar-pool on another host, over whatever XO_TRANSPORT forces.
 *
 *   cross_host_client ADDRESS LABEL [--quick]       measure; one JSON object per metric on stdout
 *   cross_host_client --tcp-server PORT             raw TCP ping-pong server (the bare-socket limit)
 *   cross_host_client --tcp-client HOST PORT LABEL [--quick]   raw TCP ping-pong client: 8 B round trips
 *   cross_host_client --bulk ADDRESS LABEL [--quick]   bulk calls (bench/bulk_netns.sh); JSON lines as above
 *   cross_host_client --stream-server PORT          raw TCP stream sink (the bulk limit where iperf3 is missing)
 *   cross_host_client --stream-client HOST PORT LABEL [--quick]   raw TCP stream: 1 MiB writes for 3 s (1 s quick)
 *
 * Metrics (LABEL.name), every call timed on its own, building the argument included:
 *   call.<size>.p50/p99   xo_call(echo, "len", bytes[size]), sizes 8 B, 1 KiB, 64 KiB (us)
 *   tell.8B               N xo_tell(echo, "add", bytes[8]), then one "get" (runs after them); count checked (msg/s)
 *   calls_seq             sequential xo_call(echo, "ping") (call/s)
 *   calls_conc64          xo_send with 64 futures outstanding, a sliding window (call/s)
 *   batch100              xo_batch of 100 delayed "add" calls (extensible: one message, one handler call each
 *                         way), sequential batches; messages (calls) per second, count checked
 *   batch100_x4           the same from 4 threads at once (4 batches in flight)
 *   batch1000             xo_batch of 1000 calls, sequential
 * --bulk metrics (LABEL.name, GB/s = 1e9 B/s, size / p50 of calls each timed on its own), sizes 64 KiB, 1 MiB,
 * 16 MiB, 64 MiB, 256 MiB (--quick: up to 16 MiB; XO_BENCH_BULK_MAX=<bytes> stops earlier), as bench_bulk.c:
 *   bulk.args.<size>      xo_call(echo, "len", 'b' bytes): the argument built (copied) included
 *   bulk.lent.<size>      the same with 'B' (the caller's bytes lent, not copied into the arguments)
 *   bulk.result.<size>    xo_call(echo, "fill", size), the reply unpacked
 *   bulk.rtt8             the 8 B "len" call (us)
 * One "sum" call per size checks the bytes that arrive, the first "fill" the bytes that come back.
 * Uses only the public API (<xoscar/xoscar.h>, xo_create_actor_by_name from <xoscar/module.h>) and bench.h helpers. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <xoscar/module.h>

#include "bench.h"
#include "bench_fold.h"

#define TIMEOUT_MS 60000
#define WINDOW 64

static const char *g_label;
static char g_payload[64 * 1024];
static char *g_bulk; /* the bulk payload, the pattern of BenchEcho's "fill" */
static uint64_t g_lat[20000];

static void emit(const char *name, double value, const char *unit)
{
    printf("{\"name\": \"%s.%s\", \"value\": %.6g, \"unit\": \"%s\"}\n", g_label, name, value, unit);
    fflush(stdout);
}

#define CHECK(expr)                                                                                         \
    do {                                                                                                    \
        xo_status_t st_ = (expr);                                                                           \
        if (st_ != XO_OK) {                                                                                 \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #expr, xo_status_name(st_),        \
                    xo_last_error());                                                                       \
            exit(1);                                                                                        \
        }                                                                                                   \
    } while (0)

static int64_t get_count(const xo_ref_t *echo)
{
    xo_result_t *r = NULL;
    int64_t n = 0;
    CHECK(xo_call(echo, "get", NULL, TIMEOUT_MS, &r));
    CHECK(xo_result_unpack(r, "l", &n));
    xo_result_free(r);
    return n;
}

static void round_trips(const xo_ref_t *echo, bool quick)
{
    static const size_t sizes[] = {8, 1024, 64 * 1024};
    static const char *const names[] = {"8B", "1KiB", "64KiB"};
    for (int k = 0; k < 3; k++) {
        size_t n = quick ? (k == 2 ? 200 : 1000) : (k == 2 ? 2000 : 10000), warm = n / 10;
        for (size_t i = 0; i < warm + n; i++) {
            xo_result_t *r = NULL;
            uint64_t got = 0, t0 = bench_now_ns();
            CHECK(xo_call(echo, "len", xo_args("b", g_payload, sizes[k]), TIMEOUT_MS, &r));
            uint64_t t1 = bench_now_ns();
            CHECK(xo_result_unpack(r, "u", &got));
            xo_result_free(r);
            if (got != sizes[k]) {
                fprintf(stderr, "len replied %llu for %zu\n", (unsigned long long)got, sizes[k]);
                exit(1);
            }
            if (i >= warm) g_lat[i - warm] = t1 - t0;
        }
        char name[64];
        snprintf(name, sizeof name, "call.%s.p50", names[k]);
        emit(name, bench_percentile(g_lat, n, 50) / 1e3, "us");
        snprintf(name, sizeof name, "call.%s.p99", names[k]);
        emit(name, bench_percentile(g_lat, n, 99) / 1e3, "us");
    }
}

static void tells(const xo_ref_t *echo, bool quick)
{
    size_t n = quick ? 20000 : 200000;
    int64_t before = get_count(echo);
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) CHECK(xo_tell(echo, "add", xo_args("b", g_payload, (size_t)8)));
    int64_t after = get_count(echo);
    uint64_t t1 = bench_now_ns();
    if ((size_t)(after - before) != n) {
        fprintf(stderr, "tell: %lld arrived of %zu\n", (long long)(after - before), n);
        exit(1);
    }
    emit("tell.8B", (double)n * 1e9 / (double)(t1 - t0), "msg/s");
}

static void rates(const xo_ref_t *echo, bool quick)
{
    size_t n = quick ? 2000 : 20000;
    for (size_t i = 0; i < n / 10; i++) CHECK(xo_call(echo, "ping", NULL, TIMEOUT_MS, NULL));
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) CHECK(xo_call(echo, "ping", NULL, TIMEOUT_MS, NULL));
    emit("calls_seq", (double)n * 1e9 / (double)(bench_now_ns() - t0), "call/s");

    n = quick ? 5000 : 100000;
    xo_future_t *win[WINDOW] = {0};
    t0 = bench_now_ns();
    for (size_t i = 0; i < n + WINDOW; i++) {
        xo_future_t **slot = &win[i % WINDOW];
        if (*slot) {
            CHECK(xo_future_wait(*slot, TIMEOUT_MS, NULL));
            xo_future_free(*slot);
            *slot = NULL;
        }
        if (i < n) CHECK(xo_send(echo, "ping", NULL, slot));
    }
    emit("calls_conc64", (double)n * 1e9 / (double)(bench_now_ns() - t0), "call/s");
}

typedef struct batch_job {
    const xo_ref_t *echo;
    size_t items, rounds;
} batch_job_t;

static void *batch_rounds(void *arg)
{
    batch_job_t *j = arg;
    xo_delayed_t **calls = malloc(j->items * sizeof *calls);
    xo_status_t *sts = malloc(j->items * sizeof *sts);
    xo_result_t **res = malloc(j->items * sizeof *res);
    for (size_t r = 0; r < j->rounds; r++) {
        for (size_t i = 0; i < j->items; i++) calls[i] = xo_delay("add", NULL);
        CHECK(xo_batch(j->echo, calls, j->items, TIMEOUT_MS, sts, res, NULL));
        for (size_t i = 0; i < j->items; i++) {
            CHECK(sts[i]);
            xo_result_free(res[i]);
        }
    }
    free(calls);
    free(sts);
    free(res);
    return NULL;
}

static void batches(const xo_ref_t *echo, const char *name, size_t items, size_t rounds, int threads)
{
    batch_job_t job = {.echo = echo, .items = items, .rounds = rounds / 10 ? rounds / 10 : 1};
    batch_rounds(&job); /* warm-up */
    job.rounds = rounds;
    int64_t before = get_count(echo);
    pthread_t th[8];
    uint64_t t0 = bench_now_ns();
    for (int t = 0; t < threads; t++) pthread_create(&th[t], NULL, batch_rounds, &job);
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    uint64_t t1 = bench_now_ns();
    int64_t after = get_count(echo);
    size_t total = items * rounds * (size_t)threads;
    if ((size_t)(after - before) != total) {
        fprintf(stderr, "%s: counted %lld of %zu\n", name, (long long)(after - before), total);
        exit(1);
    }
    emit(name, (double)total * 1e9 / (double)(t1 - t0), "msg/s");
}

/* ---- raw TCP ping-pong: 8 bytes each way on one connection, TCP_NODELAY, blocking reads -------------------- */

static int full_io(int fd, char *buf, size_t n, bool wr)
{
    size_t done = 0;
    while (done < n) {
        ssize_t k = wr ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        done += (size_t)k;
    }
    return 0;
}

static int tcp_server(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 4) != 0) {
        perror("tcp server");
        return 1;
    }
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char buf[8];
        while (full_io(c, buf, 8, false) == 0 && full_io(c, buf, 8, true) == 0) {
        }
        close(c);
    }
}

static int tcp_client(const char *host, int port, bool quick)
{
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    for (int i = 0; connect(s, (struct sockaddr *)&a, sizeof a) != 0; i++) {
        if (i == 50) {
            perror("tcp client connect");
            return 1;
        }
        close(s);
        s = socket(AF_INET, SOCK_STREAM, 0);
        usleep(100000);
    }
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    size_t n = quick ? 2000 : 20000, warm = n / 10;
    char buf[8] = {0};
    for (size_t i = 0; i < warm + n; i++) {
        uint64_t t0 = bench_now_ns();
        if (full_io(s, buf, 8, true) != 0 || full_io(s, buf, 8, false) != 0) {
            fprintf(stderr, "tcp ping-pong: connection lost\n");
            return 1;
        }
        if (i >= warm) g_lat[i - warm] = bench_now_ns() - t0;
    }
    emit("rtt.8B.p50", bench_percentile(g_lat, n, 50) / 1e3, "us");
    emit("rtt.8B.p99", bench_percentile(g_lat, n, 99) / 1e3, "us");
    close(s);
    return 0;
}

/* ---- bulk calls (bench/bulk_netns.sh) --------------------------------------------------------------------------- */

#define N_BULK 5
static const size_t bulk_sizes[N_BULK] = {64u << 10, 1u << 20, 16u << 20, 64u << 20, 256u << 20};
static const char *const bulk_names[N_BULK] = {"64KiB", "1MiB", "16MiB", "64MiB", "256MiB"};
static const size_t bulk_calls[N_BULK] = {1000, 200, 20, 8, 5};
static const size_t bulk_calls_quick[N_BULK] = {200, 40, 6, 0, 0};

/* p50 (ns) of n timed calls after n/10 (at least 1) warm ones: "len" with the payload ('b' or lent 'B'), or "fill". */
static uint64_t bulk_p50(const xo_ref_t *echo, size_t size, size_t n, int kind)
{
    size_t warm = n / 10 ? n / 10 : 1;
    for (size_t i = 0; i < warm + n; i++) {
        xo_result_t *r = NULL;
        uint64_t t0 = bench_now_ns(), got = 0;
        if (kind == 2) {
            CHECK(xo_call(echo, "fill", xo_args("u", (uint64_t)size), TIMEOUT_MS, &r));
            xo_bytes_t b = {0};
            CHECK(xo_result_unpack(r, "b", &b));
            got = b.len;
            if (i == 0 && (b.len != size || bench_fold(b.ptr, b.len) != bench_fold(g_bulk, size))) {
                fprintf(stderr, "bulk: fill(%zu) returned other bytes\n", size);
                exit(1);
            }
        } else {
            CHECK(xo_call(echo, "len", xo_args(kind ? "B" : "b", g_bulk, size), TIMEOUT_MS, &r));
            CHECK(xo_result_unpack(r, "u", &got));
        }
        uint64_t t1 = bench_now_ns();
        xo_result_free(r);
        if (got != size) {
            fprintf(stderr, "bulk: %zu bytes became %llu\n", size, (unsigned long long)got);
            exit(1);
        }
        if (i >= warm) g_lat[i - warm] = t1 - t0;
    }
    return (uint64_t)bench_percentile(g_lat, n, 50);
}

static int bulk(const char *address, bool quick)
{
    const char *e = getenv("XO_BENCH_BULK_MAX");
    size_t max = e ? (size_t)strtoull(e, NULL, 10) : 0, n_sizes = 0;
    for (size_t k = 0; k < N_BULK; k++)
        if ((quick ? bulk_calls_quick[k] : bulk_calls[k]) && (!max || bulk_sizes[k] <= max)) n_sizes = k + 1;
    size_t top = bulk_sizes[n_sizes - 1];
    g_bulk = malloc(top);
    if (!g_bulk) return 1;
    for (size_t i = 0; i < top; i++) g_bulk[i] = (char)(i * 131u);
    xo_ref_t *echo;
    CHECK(xo_create_actor_by_name("BenchEcho", NULL, address, NULL, &echo));
    for (size_t i = 0; i < 64; i++) g_payload[i] = (char)(i * 131u);
    emit("bulk.rtt8", bulk_p50(echo, 8, quick ? 300 : 3000, 0) / 1e3, "us");
    for (size_t k = 0; k < n_sizes; k++) {
        size_t size = bulk_sizes[k], n = quick ? bulk_calls_quick[k] : bulk_calls[k];
        xo_result_t *r = NULL;
        uint64_t sum = 0;
        CHECK(xo_call(echo, "sum", xo_args("B", g_bulk, size), TIMEOUT_MS, &r));
        CHECK(xo_result_unpack(r, "u", &sum));
        xo_result_free(r);
        if (sum != bench_fold(g_bulk, size)) {
            fprintf(stderr, "bulk: the pool received other bytes (%zu)\n", size);
            return 1;
        }
        static const char *const kinds[3] = {"args", "lent", "result"};
        for (int kind = 0; kind < 3; kind++) {
            char name[64];
            snprintf(name, sizeof name, "bulk.%s.%s", kinds[kind], bulk_names[k]);
            emit(name, (double)size / (double)bulk_p50(echo, size, n, kind), "GB/s");
        }
    }
    xo_destroy_actor(echo);
    xo_ref_free(echo);
    free(g_bulk);
    return 0;
}

/* ---- raw TCP stream: what one connection moves between the hosts (bulk_netns.sh's limit without iperf3) ------ */

#define STREAM_CHUNK (1u << 20)

static int stream_server(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 4) != 0) {
        perror("stream server");
        return 1;
    }
    char *buf = malloc(STREAM_CHUNK);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        while (read(c, buf, STREAM_CHUNK) > 0) {
        }
        close(c);
    }
}

static int stream_client(const char *host, int port, bool quick)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    for (int i = 0; connect(s, (struct sockaddr *)&a, sizeof a) != 0; i++) {
        if (i == 50) {
            perror("stream client connect");
            return 1;
        }
        close(s);
        s = socket(AF_INET, SOCK_STREAM, 0);
        usleep(100000);
    }
    char *buf = malloc(STREAM_CHUNK);
    memset(buf, 1, STREAM_CHUNK);
    uint64_t t0 = bench_now_ns(), end = t0 + (quick ? 1000000000ull : 3000000000ull), sent = 0, now = t0;
    while ((now = bench_now_ns()) < end) {
        if (full_io(s, buf, STREAM_CHUNK, true) != 0) {
            fprintf(stderr, "stream: connection lost\n");
            return 1;
        }
        sent += STREAM_CHUNK;
    }
    close(s);
    emit("stream.bw", (double)sent / (double)(now - t0), "GB/s");
    return 0;
}

int main(int argc, char **argv)
{
    bool quick = argc > 1 && strcmp(argv[argc - 1], "--quick") == 0;
    if (argc >= 3 && strcmp(argv[1], "--tcp-server") == 0) return tcp_server(atoi(argv[2]));
    if (argc >= 5 && strcmp(argv[1], "--tcp-client") == 0) {
        g_label = argv[4];
        return tcp_client(argv[2], atoi(argv[3]), quick);
    }
    if (argc >= 3 && strcmp(argv[1], "--stream-server") == 0) return stream_server(atoi(argv[2]));
    if (argc >= 5 && strcmp(argv[1], "--stream-client") == 0) {
        g_label = argv[4];
        return stream_client(argv[2], atoi(argv[3]), quick);
    }
    if (argc >= 4 && strcmp(argv[1], "--bulk") == 0) {
        g_label = argv[3];
        return bulk(argv[2], quick);
    }
    if (argc < 3) {
        fprintf(stderr, "usage: %s ADDRESS LABEL [--quick] | --tcp-server PORT | --tcp-client HOST PORT LABEL\n",
                argv[0]);
        return 2;
    }
    g_label = argv[2];
    for (size_t i = 0; i < sizeof g_payload; i++) g_payload[i] = (char)(i * 131u);
    xo_ref_t *echo;
    CHECK(xo_create_actor_by_name("BenchEcho", NULL, argv[1], NULL, &echo));
    round_trips(echo, quick);
    tells(echo, quick);
    rates(echo, quick);
    batches(echo, "batch100", 100, quick ? 100 : 2000, 1);
    batches(echo, "batch100_x4", 100, quick ? 50 : 1000, 4);
    batches(echo, "batch1000", 1000, quick ? 20 : 300, 1);
    xo_destroy_actor(echo);
    xo_ref_free(echo);
    return 0;
}
