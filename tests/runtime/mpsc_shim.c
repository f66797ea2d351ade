/* C side of the MPSC suite: the queue's header uses C11 atomics, which C++17 cannot include. */
#include <pthread.h>
#include <stdlib.h>

#include "runtime/mpsc.h"
#include "tests/runtime/shims.h"

typedef struct {
    xo_mpsc_node_t node;
    int producer;
    int seq;
} item_t;

typedef struct {
    xo_mpsc_t *q;
    item_t *items;
    int producer;
    int per;
} producer_arg_t;

static void *produce(void *p)
{
    producer_arg_t *a = p;
    for (int i = 0; i < a->per; i++) {
        a->items[i].producer = a->producer;
        a->items[i].seq = i;
        xo_mpsc_push(a->q, &a->items[i].node);
    }
    return NULL;
}

int shim_mpsc_empty_behaviour(void)
{
    xo_mpsc_t q;
    xo_mpsc_init(&q);
    if (xo_mpsc_pop(&q) || xo_mpsc_maybe_nonempty(&q) || xo_mpsc_pushed_since_empty(&q)) return 1;
    item_t it = {0};
    xo_mpsc_push(&q, &it.node);
    if (!xo_mpsc_maybe_nonempty(&q) || !xo_mpsc_pushed_since_empty(&q)) return 2;
    if ((item_t *)xo_mpsc_pop(&q) != &it) return 3;
    if (xo_mpsc_pop(&q) || xo_mpsc_maybe_nonempty(&q)) return 4;
    return 0;
}

int shim_mpsc_stress(int producers, int per, long *received, long *disorder)
{
    xo_mpsc_t q;
    xo_mpsc_init(&q);
    pthread_t th[16];
    producer_arg_t args[16];
    int *next = calloc((size_t)producers, sizeof *next);
    if (producers > 16 || !next) return -1;
    for (int p = 0; p < producers; p++) {
        args[p] = (producer_arg_t){&q, calloc((size_t)per, sizeof(item_t)), p, per};
        pthread_create(&th[p], NULL, produce, &args[p]);
    }
    long got = 0, bad = 0, total = (long)producers * per;
    while (got < total) {
        item_t *it = (item_t *)xo_mpsc_pop(&q);
        if (!it) continue;
        if (it->seq != next[it->producer]) bad++;
        next[it->producer] = it->seq + 1;
        got++;
    }
    for (int p = 0; p < producers; p++) pthread_join(th[p], NULL);
    int leftover = xo_mpsc_pop(&q) != NULL;
    for (int p = 0; p < producers; p++) free(args[p].items);
    free(next);
    *received = got;
    *disorder = bad;
    return leftover;
}
