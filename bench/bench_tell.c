/* In-pool tell throughput into ONE stateful actor, from plain threads. The clock stops when a final "get" returns:
 * a sender's calls run in the order sent, so that reply means every tell before it has run. The count it returns
 * is checked, so a lost or doubled message fails the run instead of flattering it. */
#include <pthread.h>

#include "bench.h"

#define SENDERS 8

typedef struct sender {
    const xo_ref_t *ref;
    size_t n;
    pthread_barrier_t *go;
    int rc;
} sender_t;

static int tell_n(const xo_ref_t *ref, size_t n)
{
    for (size_t i = 0; i < n; i++) BENCH_CHECK(xo_tell(ref, "inc", NULL));
    return 0;
}

static void *sender_main(void *arg)
{
    sender_t *s = arg;
    pthread_barrier_wait(s->go);
    s->rc = tell_n(s->ref, s->n);
    return NULL;
}

static int run_senders(const bench_opts_t *opts, unsigned n_senders, size_t n, double *rate_p)
{
    xo_pool_t *pool = bench_pool_start(opts);
    xo_ref_t *ref;
    BENCH_CHECK(xo_create_actor(&bench_counter_class, NULL, xo_pool_address(pool), NULL, &ref));
    size_t per = n / n_senders;
    n = per * n_senders;
    int rc = 0;
    uint64_t t0, t1;
    if (n_senders == 1) {
        t0 = bench_now_ns();
        rc = tell_n(ref, n);
    } else {
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, n_senders + 1);
        sender_t s[SENDERS];
        pthread_t th[SENDERS];
        for (unsigned i = 0; i < n_senders; i++) {
            s[i] = (sender_t){.ref = ref, .n = per, .go = &go};
            pthread_create(&th[i], NULL, sender_main, &s[i]);
        }
        pthread_barrier_wait(&go);
        t0 = bench_now_ns();
        for (unsigned i = 0; i < n_senders; i++) {
            pthread_join(th[i], NULL);
            rc |= s[i].rc;
        }
        pthread_barrier_destroy(&go);
    }
    /* After the joins every tell is in the mailbox, so this get queues behind all of them. */
    int64_t count = 0;
    if (rc == 0) rc = bench_counter_get(ref, &count);
    t1 = bench_now_ns();
    if (rc == 0 && count != (int64_t)n) {
        fprintf(stderr, "tell: counter is %lld after %zu tells\n", (long long)count, n);
        rc = -1;
    }
    *rate_p = (double)n / ((double)(t1 - t0) / 1e9);
    xo_ref_free(ref);
    xo_pool_stop(pool);
    return rc;
}

static const bench_metric_spec_t m_one = {
    .name = "tell.1sender", .unit = "msg/s", .ref = "mpsc.malloc", .goal = BENCH_GOAL_RATIO_MIN, .target = 0.8};
static const bench_metric_spec_t m_eight = {
    .name = "tell.8senders", .unit = "msg/s", .ref = "mpsc.malloc", .goal = BENCH_GOAL_RATIO_MIN, .target = 0.8};

int bench_tell(const bench_opts_t *opts)
{
    size_t n = opts->quick ? 100000 : 1000000;
    double rate;
    if (run_senders(opts, 1, n, &rate)) return -1;
    bench_report(&m_one, rate);
    if (run_senders(opts, SENDERS, n, &rate)) return -1;
    bench_report(&m_eight, rate);
    return 0;
}
