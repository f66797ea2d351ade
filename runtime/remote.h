/* Pools in other processes: the process's I/O thread, its listeners, and the connections to peer pools.
 *
 * A process pool's address is "host:port" (a main pool) or "host:port/N" (its sub pool N). Which channels reach it,
 * and which ones it listens on, is the router's choice (transport/router.h): shared memory then a unix socket on
 * the same host, TCP at host:(port + N) from other hosts, UCX first when XO_UCX=1; XO_TRANSPORT forces one.
 *
 * One I/O thread per process (started on first use) receives the frames nobody else takes: requests for local
 * actors become messages posted to their pool; replies complete the caller's future. Threads that spin anyway (idle
 * schedulers, callers waiting for a reply) take shared-memory frames themselves (xo__remote_poll). Every frame is
 * sent by the thread that makes it (the caller, or whichever thread completes the call). The implementation is
 * split by job into runtime/remote_*.c (remote_impl.h lists them). */
#ifndef XO_RUNTIME_REMOTE_H
#define XO_RUNTIME_REMOTE_H

#include "runtime/core.h"
#include "runtime/wire.h"

/* True when address has the form of a process pool's address ("host:port" or "host:port/N"). */
bool xo__remote_address_ok(const char *address);

/* The path a call from this process to the pool at address takes now: "inproc" for a pool of this process, else
 * the scheme of the connection in use ("shm", "unix", "tcp", "ucx"), NULL when there is none yet. Static storage. */
const char *xo__remote_path(const char *address);

/* Starts pool's listeners (shm and unix, plus TCP for a main pool). With port 0 in the address, the TCP listener
 * picks a port and pool->address is rewritten with it. */
xo_status_t xo__remote_listen(xo_pool_t *pool);

/* Stops pool's listeners and closes the channels of requests to it (before its threads stop). */
void xo__remote_unlisten(xo_pool_t *pool);

/* Sends a request (XO_WIRE_CALL, CREATE, DESTROY, HAS, LOOKUP, INFO) to the pool at address. args is consumed
 * (may be NULL). With want_reply, *f_p gets a future (one ref, the caller's) completed by the reply, or by
 * XO_EPOOLDIED when the connection is lost first. name is the method or the class name. */
xo_status_t xo__remote_send(const char *address, int type, uint64_t chain, const char *uid, const char *name,
                           xo_args_t *args, bool want_reply, xo_future_t **f_p);

/* A batch of n calls (args consumed) as one message. */
xo_status_t xo__remote_send_batch(const char *address, uint64_t chain, const char *uid, const char *method, size_t n,
                                 xo_args_t **args, xo_future_t **f_p);

/* Lets the calling thread, which spins anyway, take frames off this process's shared-memory connections instead of
 * the I/O thread (no doorbell, no wake-up): an idle scheduler of pool (requests to pool, and replies) or a plain
 * thread waiting for a reply (pool NULL: replies only). The thread stays registered with those connections until
 * xo__remote_poll_stop, which it must call before it sleeps, runs anything else for long, or exits: while registered
 * the connections rely on it to be polled. True when it handled a frame. No-op when re-entered from a frame's
 * handler or before any connection exists. */
bool xo__remote_poll(xo_pool_t *pool);
void xo__remote_poll_stop(void);

/* For an idle scheduler that found work (pool's, as last given to xo__remote_poll) and will poll again when it runs
 * dry: it lets go of every connection but its pool's inbound ones, and stays registered with those for at most a
 * short while (remote_pause.c), so that their frames wait for it rather than go to the I/O thread; past that
 * the I/O thread takes them over. xo__remote_poll or xo__remote_poll_stop ends the pause; call xo__remote_poll_stop
 * before sleeping. Falls back to xo__remote_poll_stop when another scheduler of the pool sleeps. */
void xo__remote_poll_pause(void);

/* The process's timers (for delayed tells to remote actors), started on first use. */
xo_timers_t *xo__remote_timers(void);

/* Closes the connection to address, failing its pending calls with XO_EPOOLDIED and text why (for supervision:
 * the main pool learns of a sub pool's death from its pidfd, possibly before the socket says so). */
void xo__remote_peer_died(const char *address, const char *why);

#endif
