/* What the remote_*.c files share: the connection, the process's I/O state, and the functions each job offers the
 * others. Private to runtime/remote_*.c; the engine's interface is remote.h.
 *
 *   remote_io.c      connections, the I/O thread's loop, listening
 *   remote_serve.c   requests from other processes to our pools, and their replies
 *   remote_client.c  our requests to other pools, their replies, the senders' cache
 *   remote_poll.c    spinning threads that take shared-memory frames themselves
 *   remote_pause.c   a polling scheduler that leaves for work it found, and comes back
 * Which channel URLs reach a pool, and which ones a pool listens on, is the router's (transport/router.h). */
#ifndef XO_RUNTIME_REMOTE_IMPL_H
#define XO_RUNTIME_REMOTE_IMPL_H

#include "runtime/remote.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/futex.h"
#include "base/log.h"
#include "runtime/idmap.h"
#include "transport/router.h"

#define POLL_PAUSE_NS 200000 /* a paused scheduler's time before the I/O thread may take over (see "pausing") */

typedef enum { CONN_LISTENER = 1, CONN_INBOUND, CONN_OUTBOUND } conn_kind_t;

typedef struct conn {
    conn_kind_t kind;
    _Atomic int refs;
    xo_channel_t *ch;
    xo_listener_t *listener;
    xo_pool_t *pool;         /* the local pool a listener or an inbound connection serves */
    char *address;           /* outbound: the peer pool's address */
    pthread_mutex_t lock;    /* guards calls */
    xo_idmap_t calls;        /* outbound: pending replies; inbound: calls in flight (for cancel) */
    _Atomic bool dead;
    bool closing;            /* asked to close (xo__io.lock) */
    bool pollable;           /* the channel can be polled by spinning threads (set before it is shared) */
    /* The receiving side: the I/O thread or a poller (see "polling" below), one at a time. Guards the channel's
     * receive calls, authed and zone. Taken before lock, never while holding it. */
    pthread_mutex_t rx_lock;
    _Atomic int pollers;     /* threads registered to poll this connection (decremented under rx_lock) */
    _Atomic bool kick;       /* a poller left frames behind: the I/O thread should drain (see conn_kick) */
    _Atomic bool authed;     /* inbound: the peer proved the secret (set under rx_lock; the I/O thread reads it) */
    bool zone_ready;         /* zone is initialised (outbound: at once; inbound: once authed) */
    msgpack_zone zone;       /* decoding scratch */
    unsigned char nonce[32]; /* inbound: the challenge sent */
    bool in_epoll;           /* I/O thread only */
    bool ready;              /* I/O thread only: on the ready list (not fully drained) */
    struct conn *next;       /* xo__io.conns (xo__io.lock) */
    struct conn *next_ready; /* I/O thread only */
    /* I/O thread only: an inbound connection not yet authenticated is on xo__io.unauthed until its deadline. */
    bool in_unauthed;
    uint64_t auth_deadline_ns;
    struct conn *next_unauthed;
    uint64_t paused_until_ns; /* a listener that could not accept is out of epoll until then (0: it is not) */
} conn_t;

typedef struct xo__io {
    pthread_once_t once;
    xo_status_t init_st;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int epfd, wakefd;
    pthread_t thread;
    conn_t *conns;           /* every connection and listener not yet closed */
    uint64_t close_gen;      /* bumped each time the I/O thread has processed close requests */
    _Atomic uint64_t poll_gen; /* bumped when the set of connections changes: pollers take a new snapshot */
    _Atomic bool started;    /* the I/O thread runs (pollers have nothing to do before) */
    _Atomic uint64_t next_call_id;
    pthread_mutex_t connect_lock;
    pthread_once_t timers_once;
    xo_timers_t *timers;
    struct sender *senders;  /* every thread's sender cache (xo__io.lock): see "sending requests" */
    struct pauser *pausers;  /* every scheduler thread that has paused (xo__io.lock): see "polling" */
    _Atomic bool pause_watch; /* the I/O thread wakes every pause_wait_ns to look at paused pollers */
    long pause_wait_ns;       /* I/O thread only: POLL_PAUSE_NS while a pause is on, else PAUSE_GRACE_NS */
    pthread_key_t sender_key; /* frees a thread's sender cache when it exits */
    pthread_key_t pause_key;  /* frees a scheduler thread's pauser when it exits */
    /* I/O thread only: inbound connections not yet authenticated, in accept order (remote_io.c, "strangers") */
    conn_t *unauthed, *unauthed_tail;
    bool refused;             /* some were refused since the last sync (their fds close there) */
    uint64_t accept_resume_ns; /* the earliest time a paused listener goes back into epoll, 0: none is paused */
} xo__io_t;

extern xo__io_t xo__io;

#define POLL_MAX 32    /* connections one thread polls; the I/O thread serves any others */

typedef struct {
    conn_t *conns[POLL_MAX]; /* retained */
    size_t n;
    uint64_t gen;    /* xo__io.poll_gen when taken */
    xo_pool_t *pool; /* the scheduler's pool (its inbound connections), or NULL */
    bool active;
    bool partial;    /* paused: only the pool's inbound connections are held (the next poll takes the rest again) */
    bool busy;       /* inside poll or stop: a frame handler that waits must not re-enter */
    struct pauser *pz; /* created at the first pause */
} poller_t;

/* ---- remote_io.c ---- */

/* A new connection of kind with one ref (the caller's), NULL when out of memory. */
conn_t *xo__conn_new(conn_kind_t kind);
static inline void xo__conn_retain(conn_t *c) { atomic_fetch_add(&c->refs, 1); }
/* Drops one ref; the last one closes the channel or listener and frees c. */
void xo__conn_release(conn_t *c);
/* Wakes the I/O thread (it rescans xo__io.conns). */
void xo__io_wake(void);
/* Hands c (and one ref) to the I/O thread. */
void xo__io_adopt(conn_t *c);
/* The connection is gone: fails what waits on it. Any thread; idempotent. */
void xo__conn_lost(conn_t *c, const char *why);
/* Handles one received frame (consumed) of c; caller holds c->rx_lock. */
void xo__conn_handle_frame(conn_t *c, xo_frame_t *fr);

/* The frame being handled, for messages that keep reading it after the handler returns: large arguments and
 * results are not copied out of the frame (for shm a pooled segment, for unix and tcp the block the body was
 * read into) but lent to the message, which holds the frame until it is freed. */
typedef struct xo_lender {
    xo_frame_t *fr;          /* the frame, until the first loan moves it into hold */
    struct frame_hold *hold; /* NULL until something borrows */
} xo_lender_t;

/* Byte strings at least this large are lent rather than copied (smaller: a copy costs less than the hold). */
#define XO_LEND_MIN XO_WIRE_SEG_MIN

/* Arguments over b (pointing into l's frame): lent when large, else copied. NULL when out of memory. */
xo_args_t *xo__lend_args(xo_lender_t *l, xo_bytes_t b);
/* A result over b (pointing into l's frame; NULL ptr: nil), lent when large, else copied. NULL when out of memory. */
xo_result_t *xo__lend_result(xo_lender_t *l, xo_bytes_t b);
/* Starts the I/O thread once; its status. */
xo_status_t xo__io_start(void);

/* ---- remote_serve.c ---- */

/* Sends w on c. XO_ECLOSED (the peer went away) is logged at debug level; every status is returned, for the callers
 * that must answer otherwise when nothing was sent (XO_EMSGSIZE: the channel is still usable). */
xo_status_t xo__conn_send(conn_t *c, xo_wire_out_t *w);
/* Serves one request received on the inbound connection c; its byte strings point into l's frame. */
void xo__serve_request(conn_t *c, const xo_wire_msg_t *m, xo_lender_t *l);

/* ---- remote_client.c ---- */

/* Completes the pending call that the reply m (on the outbound connection c) answers; its byte strings point into
 * l's frame. */
void xo__client_reply(conn_t *c, const xo_wire_msg_t *m, xo_lender_t *l);
/* xo__io.lock held: drops the dead connection c from every thread's sender cache. */
void xo__senders_forget(conn_t *c);
/* pthread key destructor of a thread's sender cache. */
void xo__sender_exit(void *arg);

/* ---- remote_poll.c ---- */

/* The calling thread's poller. */
poller_t *xo__poller_self(void);
/* Lets go of one registration with c (the last poller arms its wake-up and hands waiting frames over). */
void xo__poll_unregister(conn_t *c);

/* ---- remote_pause.c ---- */

enum { PAUSES_NONE, PAUSES_LATELY, PAUSES_ON };
/* I/O thread: takes over the registrations of pausers whose time is up (see remote_pause.c). */
int xo__pausers_check(void);
/* Owner: ends p's pause, if any. */
void xo__poll_resume(poller_t *p);
/* pthread key destructor of a scheduler thread's pauser. */
void xo__pauser_exit(void *arg);

#endif
