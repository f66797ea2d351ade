/* The limit: a bare intrusive MPSC queue (Vyukov's, with a stub node) between one producer and one consumer thread,
 * nothing else. Every in-pool throughput number is divided by this one.
 *
 * Two variants, because the runtime allocates a message per tell:
 *   mpsc.malloc   the producer callocs an 80-byte node (the size of the runtime's calloc'd message header) and the
 *                 consumer frees it, so malloc's cross-thread free path is paid as a real message pays it.
 *                 This is "the limit" the ratios use.
 *   mpsc.prealloc nodes come from one preallocated array, never freed: the queue alone, an upper bound.
 * The consumer spins (pause) when the queue looks empty; it never sleeps, as a busy scheduler would not. */
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>

#include "bench.h"

typedef struct node {
    _Atomic(struct node *) next;
    uint64_t seq;
    char pad[80 - sizeof(void *) - sizeof(uint64_t)];
} node_t;

typedef struct queue {
    alignas(64) _Atomic(node_t *) head; /* producers' end */
    alignas(64) node_t *tail;           /* consumer's end */
    node_t stub;
} queue_t;

static void q_init(queue_t *q)
{
    atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
    atomic_store_explicit(&q->head, &q->stub, memory_order_relaxed);
    q->tail = &q->stub;
}

static void q_push(queue_t *q, node_t *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    /* acq_rel exchange: orders n's payload before the consumer can reach it through prev->next. */
    node_t *prev = atomic_exchange_explicit(&q->head, n, memory_order_acq_rel);
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

static node_t *q_pop(queue_t *q)
{
    node_t *tail = q->tail;
    node_t *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &q->stub) {
        if (!next) return NULL;
        q->tail = tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        q->tail = next;
        return tail;
    }
    if (tail != atomic_load_explicit(&q->head, memory_order_acquire)) return NULL; /* a push is half done */
    q_push(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (!next) return NULL;
    q->tail = next;
    return tail;
}

typedef struct run {
    queue_t q;
    size_t n;
    bool free_nodes;
    _Atomic uint64_t done_ns;
    uint64_t checksum;
} run_t;

static void *consumer(void *arg)
{
    run_t *r = arg;
    uint64_t sum = 0;
    for (size_t got = 0; got < r->n;) {
        node_t *n = q_pop(&r->q);
        if (!n) {
            __builtin_ia32_pause();
            continue;
        }
        sum += n->seq; /* read the payload, as a method reads its message */
        if (r->free_nodes) free(n);
        got++;
    }
    r->checksum = sum;
    atomic_store_explicit(&r->done_ns, bench_now_ns(), memory_order_release);
    return NULL;
}

static int one_run(size_t n, bool use_malloc, double *rate_p)
{
    run_t *r = calloc(1, sizeof *r);
    node_t *pool = use_malloc ? NULL : calloc(n, sizeof *pool);
    if (!r || (!use_malloc && !pool)) return -1;
    q_init(&r->q);
    r->n = n;
    r->free_nodes = use_malloc;
    pthread_t th;
    if (pthread_create(&th, NULL, consumer, r) != 0) return -1;
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        node_t *nd = use_malloc ? calloc(1, sizeof *nd) : &pool[i];
        if (!nd) abort();
        nd->seq = i;
        q_push(&r->q, nd);
    }
    pthread_join(th, NULL);
    uint64_t t1 = atomic_load_explicit(&r->done_ns, memory_order_acquire);
    int rc = r->checksum == (uint64_t)n * (n - 1) / 2 ? 0 : -1;
    if (rc) fprintf(stderr, "mpsc: checksum mismatch\n");
    *rate_p = (double)n / ((double)(t1 - t0) / 1e9);
    free(pool);
    free(r);
    return rc;
}

static const bench_metric_spec_t m_malloc = {
    .name = "mpsc.malloc", .unit = "msg/s",
    .note = "mpsc.malloc: 80-byte node calloc'd by the producer, freed by the consumer (like a runtime message)"};
static const bench_metric_spec_t m_prealloc = {
    .name = "mpsc.prealloc", .unit = "msg/s", .ref = "mpsc.malloc", .goal = BENCH_GOAL_NONE};

int bench_mpsc(const bench_opts_t *opts)
{
    size_t n = opts->quick ? 200000 : 2000000;
    double rate;
    if (one_run(n, true, &rate)) return -1;
    bench_report(&m_malloc, rate);
    if (one_run(n, false, &rate)) return -1;
    bench_report(&m_prealloc, rate);
    return 0;
}
