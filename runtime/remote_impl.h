#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "runtime/auth.h"
#include "base/futex.h"
#include "runtime/idmap.h"
#include "base/log.h"
#include "xoscar/gpu.h"

#define CONNECT_TIMEOUT_MS 3000
#define POLL_PAUSE_NS 200000 /* a paused scheduler's time before the I/O thread may take over (see "pausing") */
#define PAUSE_GRACE_NS 1000000 /* the I/O thread's look period while no pause is on but one was lately */
#define PAUSE_QUIET_ROUNDS 8
#define DRAIN_BUDGET 256
#define UID_MAX 512

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
    bool closing;            /* asked to close (io.lock) */
    bool pollable;           /* the channel can be polled by spinning threads (set before it is shared) */
    /* The receiving side: the I/O thread or a poller (see "polling" below), one at a time. Guards the channel's
     * receive calls, authed and zone. Taken before lock, never while holding it. */
    pthread_mutex_t rx_lock;
    _Atomic int pollers;     /* threads registered to poll this connection (decremented under rx_lock) */
    _Atomic bool kick;       /* a poller left frames behind: the I/O thread should drain (see conn_kick) */
    bool authed;             /* inbound: the peer proved the secret */
    msgpack_zone zone;       /* decoding scratch */
    unsigned char nonce[32]; /* inbound: the challenge sent */
    bool in_epoll;           /* I/O thread only */
    bool ready;              /* I/O thread only: on the ready list (not fully drained) */
    struct conn *next;       /* io.conns (io.lock) */
    struct conn *next_ready; /* I/O thread only */
} conn_t;
