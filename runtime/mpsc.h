/* An intrusive unbounded multi-producer single-consumer queue (Vyukov's algorithm with a stub node).
 *
 * Producers never wait for each other: a push is one atomic exchange plus one store. The consumer may briefly see
 * the queue as empty while a producer is between its exchange and its store ("inconsistent"); callers that must
 * not miss an item re-check with xo_mpsc_maybe_nonempty after publishing that they stopped consuming. Used for
 * actor mailboxes and scheduler inboxes. */
#ifndef XO_RUNTIME_MPSC_H
#define XO_RUNTIME_MPSC_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct xo_mpsc_node {
    _Atomic(struct xo_mpsc_node *) next;
} xo_mpsc_node_t;

/* head and tail live on separate cache lines: producers write head, the consumer writes tail, and a shared line
 * would bounce between their cores on every message. */
typedef struct xo_mpsc {
    _Atomic(xo_mpsc_node_t *) head;    /* producers: the last node pushed */
    alignas(64) xo_mpsc_node_t *tail;  /* consumer: the next node to pop (or the stub) */
    xo_mpsc_node_t stub;
} xo_mpsc_t;

static inline void xo_mpsc_init(xo_mpsc_t *q)
{
    atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
    atomic_store_explicit(&q->head, &q->stub, memory_order_relaxed);
    q->tail = &q->stub;
}

/* Thread-safe for any number of producers. The queue holds node until it is popped. */
static inline void xo_mpsc_push(xo_mpsc_t *q, xo_mpsc_node_t *node)
{
    atomic_store_explicit(&node->next, NULL, memory_order_relaxed);
    /* seq_cst (an xchg on x86 either way): it orders the node's payload before the consumer can reach it, and it
     * takes part in the Dekker pairing between a poster (push, then load "scheduled") and a consumer that releases
     * its token (store "scheduled", then xo_mpsc_pushed_since_empty), all seq_cst. */
    xo_mpsc_node_t *prev = atomic_exchange_explicit(&q->head, node, memory_order_seq_cst);
    atomic_store_explicit(&prev->next, node, memory_order_release);
}

/* Consumer only. Returns the oldest node, or NULL when the queue is empty or a push is half done. */
static inline xo_mpsc_node_t *xo_mpsc_pop(xo_mpsc_t *q)
{
    xo_mpsc_node_t *tail = q->tail;
    xo_mpsc_node_t *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &q->stub) {
        if (!next) return NULL;
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        q->tail = next;
        return tail;
    }
    xo_mpsc_node_t *head = atomic_load_explicit(&q->head, memory_order_acquire);
    if (tail != head) return NULL; /* a producer is between its exchange and its link: try again later */
    /* tail is the only node: park the stub behind it so tail can be handed out. */
    xo_mpsc_push(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        q->tail = next;
        return tail;
    }
    return NULL;
}

/* Consumer only. False only when the queue is certainly empty (no node pushed, none half pushed). Callers pair it
 * with a seq_cst fence after publishing "I stopped consuming" (Dekker-style with the producer's push). */
static inline bool xo_mpsc_maybe_nonempty(xo_mpsc_t *q)
{
    xo_mpsc_node_t *tail = q->tail;
    if (atomic_load_explicit(&tail->next, memory_order_acquire)) return true;
    if (tail != &q->stub) return true;
    return atomic_load_explicit(&q->head, memory_order_acquire) != tail;
}

/* Consumer side, but safe to call after giving up the consumer role, when the caller last saw the queue empty (its
 * pop returned NULL and xo_mpsc_maybe_nonempty said false): true when something was pushed since. It reads only
 * the head pointer's value, never a node, so a new consumer may be popping concurrently. */
static inline bool xo_mpsc_pushed_since_empty(xo_mpsc_t *q)
{
    return atomic_load_explicit(&q->head, memory_order_seq_cst) != &q->stub;
}

#endif
