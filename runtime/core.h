/* The in-process runtime's internal objects and how they refer to each other. Private to runtime/.
 *
 *   pool ─┬─ sched[i] (one thread each: run queues, a loop fiber, a cache of workers)
 *         ├─ actor table (uid → actor)
 *         └─ timers (one thread: call timeouts, delayed tells, sleeps)
 *   actor: mailbox (MPSC) + a "scheduled" token; at most one scheduler runs a stateful actor at a time.
 *   worker: one activation (a message being run) on its own fiber; suspends when the method waits.
 *   message: an intrusive node; travels mailbox → activation; owns its arguments and a ref on its reply future.
 *   future: refcounted; the waiter (a thread or a worker) and the reply's producer each hold a ref.
 *
 * Reentrancy rule (why A→B→A does not deadlock): every message carries a call-chain id, inherited by every call a
 * method makes and fresh for calls from plain threads. While a stateful actor has a suspended activation of chain
 * c, it runs only messages of chain c (they are part of the same logical flow, which is waiting on itself); other
 * messages are deferred, in arrival order, until no activation is suspended. Calls of XO_METHOD_NO_LOCK methods
 * are never deferred and do not hold the turn while they are suspended (locked_depth). */
#ifndef XO_RUNTIME_CORE_H
#define XO_RUNTIME_CORE_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/codec.h"
#include "base/error.h"
#include "runtime/fiber.h"
#include "runtime/mpsc.h"
#include "xoscar/xoscar.h"

typedef struct xo_actor xo_actor_t;
typedef struct xo_sched xo_sched_t;
typedef struct xo_ctx xo_worker_t; /* the ctx a method sees is its worker */
typedef struct xo_msg xo_msg_t;
typedef struct xo_timers xo_timers_t;

/* ---- runnables: what scheduler queues hold -------------------------------------------------------------------- */

typedef enum {
    XO_RUN_ACTOR = 1,   /* a stateful (or creating) actor with messages: run a batch of them */
    XO_RUN_MESSAGE,     /* one message for a stateless actor: run it on a worker */
    XO_RUN_RESUME,      /* a suspended worker of a stateless actor whose wait ended */
} xo_run_kind_t;

typedef struct xo_runnable {
    xo_mpsc_node_t node; /* first: queues link through it */
    uint8_t kind;
} xo_runnable_t;

/* ---- messages ------------------------------------------------------------------------------------------------- */

typedef enum {
    XO_MSG_CALL = 1, /* a call, send or tell (reply == NULL for tell) */
    XO_MSG_BATCH,
    XO_MSG_CREATE,
    XO_MSG_DESTROY,
    XO_MSG_RESUME,   /* not a message: a stateful actor's suspended worker to resume (embedded in the worker) */
} xo_msg_kind_t;

struct xo_msg {
    xo_runnable_t run;     /* first: mailbox and run-queue link */
    uint8_t kind;
    uint32_t method;       /* index into the class's methods (CALL, BATCH) */
    uint64_t chain;
    xo_actor_t *actor;     /* set (with a ref) only while a stateless message sits in a run queue */
    xo_future_t *reply;    /* holds a ref; NULL for tell */
    xo_args_t *args;       /* owned; NULL = no arguments (CALL, CREATE) */
    size_t n_calls;        /* BATCH: n_calls argument lists in batch_args (owned) */
    xo_args_t **batch_args;
};

/* Frees m and what it owns, dropping its reply ref (without completing the reply). */
void xo__msg_free(xo_msg_t *m);

/* Completes m's reply (if any) with st and the current error text, then frees m. For messages that will not run. */
void xo__msg_reject(xo_msg_t *m, xo_status_t st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- futures -------------------------------------------------------------------------------------------------- */

enum { XO_FUT_PENDING = 0, XO_FUT_WAITING = 1, XO_FUT_DONE = 2 };

struct xo_future {
    _Atomic int state;          /* the futex word a waiting thread sleeps on */
    _Atomic int refs;
    _Atomic bool cancel_requested;
    atomic_flag lock;           /* guards runner and runner->awaiting */
    xo_worker_t *runner;        /* the activation running the call, while it runs */
    xo_worker_t *waiter;        /* written before state becomes WAITING; NULL: a thread waits */
    /* the reply, written before state becomes DONE */
    xo_status_t status;
    char *error;                /* malloc'd text or NULL */
    xo_result_t *result;        /* owned until taken by a wait */
    /* Optional hooks, set before the future is shared: on_done runs on the completing thread instead of a wake-up
     * (a remote call's reply is sent from there); on_cancel forwards a cancel request (to a remote pool). */
    void (*on_done)(xo_future_t *f, void *arg);
    void (*on_cancel)(xo_future_t *f, void *arg);
    void (*on_free)(void *arg);     /* frees hook_arg when the future is freed */
    void *hook_arg;
    /* Set with on_done by a hook that is done with the result when it returns and drops it (a remote caller's
     * reply, sent from on_done): the completer may then lend the result's bytes for the length of the completion
     * instead of copying them (a method's large result is sent from the buffer it was packed into). */
    bool hook_takes_result;
    /* The public completion callback (xo_future_on_done), apart from the hooks above, which remote.c owns.
     * user_cb_state goes NONE -> SET (registered) -> FIRED; whoever moves it to FIRED second runs the callback. */
    _Atomic int user_cb_state;
    void (*user_cb)(xo_future_t *f, void *arg);
    void *user_cb_arg;
    size_t n_items;             /* batch replies */
    xo_status_t *item_status;
    xo_result_t **item_results;
    char **item_errors;
    bool taken;
};

/* A new future with refs = 1 (the caller's). NULL when out of memory. */
xo_future_t *xo__future_new(void);
void xo__future_ref(xo_future_t *f);
void xo__future_unref(xo_future_t *f);

/* Publishes the reply and wakes the waiter. Consumes result and error (malloc'd text, may be NULL). Returns false
 * (and frees them) when the future was already complete. */
bool xo__future_complete(xo_future_t *f, xo_status_t st, char *error, xo_result_t *result);

/* Same for a batch reply: consumes the three arrays of n entries. */
bool xo__future_complete_batch(xo_future_t *f, size_t n, xo_status_t *st, xo_result_t **results, char **errors);

/* Waits for f (thread or worker), up to timeout_ms. XO_OK when f is complete; XO_ETIMEDOUT; XO_ECANCELED when the
 * waiting activation was cancelled. Does not take the reply. */
xo_status_t xo__future_await(xo_future_t *f, int64_t timeout_ms);

/* Requests cancellation of the call behind f and of whatever its running activation is waiting on. */
void xo__future_request_cancel(xo_future_t *f);

/* Starts creating an actor in a pool of this process; f (the caller's, which keeps its ref) completes when init and
 * after_create have run, with the uid (a string) as its value. Consumes args. Never blocks. On an error return f
 * is left untouched (not completed). */
xo_status_t xo__create_start(xo_pool_t *pool, const xo_actor_class_t *cls, xo_args_t *args, const char *uid,
                            xo_future_t *f);

/* Creates an actor of the class called class_name in the process pool at address (which must know the class,
 * e.g. from a module); this process need not. Consumes args. Waits for the reply. */
xo_status_t xo__create_remote(const char *address, const char *class_name, xo_args_t *args, const char *uid,
                             xo_ref_t **ref_p);

/* A sub pool tells its main pool's host service that an actor now lives here (add) or is gone, so that lookups
 * through the main address find actors created directly in the sub pool. Fire and forget. */
void xo__pool_report_actor(xo_pool_t *pool, const char *uid, bool add);

/* ---- workers (activations) ------------------------------------------------------------------------------------ */

/* A callback run when an activation's method returns (xo__worker_on_return). */
typedef struct xo__on_return {
    void (*fn)(xo_worker_t *w, void *arg);
    void *arg;
} xo__on_return_t;

enum { XO_W_IDLE = 0, XO_W_RUNNING, XO_W_SUSPENDED, XO_W_DONE };

struct xo_ctx {
    xo_runnable_t run;          /* resume link for stateless activations (kind XO_RUN_RESUME) */
    xo_msg_t resume_msg;        /* resume link for stateful ones (kind XO_MSG_RESUME, into the mailbox) */
    xo_fiber_t *fiber;
    xo_sched_t *home;
    xo_worker_t *next_free;
    /* the activation */
    xo_actor_t *actor;
    xo_msg_t *msg;
    uint64_t chain;
    int state;
    bool via_mailbox;           /* resume through the actor's mailbox (stateful or creating) */
    bool counted;               /* counted in actor->depth while suspended */
    bool unlocked;              /* a XO_METHOD_NO_LOCK call: not counted in actor->locked_depth */
    xo_status_t wake_status;    /* why the last wait ended: XO_OK, XO_ETIMEDOUT, XO_ECANCELED */
    xo_future_t *awaiting;      /* guarded by msg->reply->lock */
    _Atomic bool cancelled;
    msgpack_zone zone;          /* decodes the arguments, cleared per activation */
    xo__on_return_t *on_return; /* run when this activation's method returns (xo__worker_on_return) */
    size_t n_on_return, cap_on_return;
    xo_buf_t out;               /* result packing */
    xo_buf_lend_t out_lend;     /* out.lend while a call whose reply goes to another process runs (activation.c) */
    msgpack_packer out_pk;
    char error[XO_ERROR_TEXT_MAX];
};

/* Runs fn(w, arg) when the method of the current activation returns, before the next message on this worker:
 * what a layer above lends to one method (device buffers, ...) ends with it. The engine knows nothing of what it
 * releases. Callbacks run in the order registered, on the worker's thread, then are forgotten. Outside a method
 * (a plain thread) nothing is registered and XO_OK is returned: the caller keeps what it holds and releases it
 * itself. XO_ENOMEM when the list cannot grow (nothing registered). */
xo_status_t xo__worker_on_return(void (*fn)(xo_worker_t *w, void *arg), void *arg);
/* Runs and forgets w's callbacks (activation.c, once the method returned). */
void xo__worker_run_on_return(xo_worker_t *w);

/* The worker running on this thread, or NULL (a plain thread, or a scheduler's loop). */
xo_worker_t *xo__worker_current(void);

/* Suspends the current worker until xo__worker_wake. Only from a worker. Returns its wake_status. */
xo_status_t xo__worker_suspend(xo_worker_t *w);

/* Makes a suspended worker runnable again, with why its wait ended. Thread-safe; exactly one party may wake a given
 * suspension (the one that won the future's state CAS). */
void xo__worker_wake(xo_worker_t *w, xo_status_t why);

/* ---- schedulers ----------------------------------------------------------------------------------------------- */

struct xo_sched {
    xo_pool_t *pool;
    unsigned index;
    pthread_t thread;
    alignas(64) xo_mpsc_t inbox;        /* pushes from other threads */
    alignas(64) _Atomic int sleeping;   /* futex word: 1 while the thread sleeps or is about to */
    alignas(64) xo_runnable_t *local_head; /* thread-private FIFO of runnables it scheduled itself */
    xo_runnable_t *local_tail;
    /* false while the thread is in idle() (spinning or asleep). Written by the thread on entering and leaving idle,
     * never per message, on a line it writes anyway; read only by INFO (placement's live load). */
    _Atomic bool busy;
    xo_fiber_t *loop_fiber;
    xo_worker_t *free_workers;
    xo_worker_t **workers;              /* all of them, for cleanup */
    size_t n_workers, cap_workers;
    uint64_t spin_ns;
};

/* The scheduler running on this thread, or NULL. */
xo_sched_t *xo__sched_current(void);

/* Queues r on pool. home >= 0 pins it to that scheduler; -1 lets the runtime choose (the calling scheduler when it
 * is one of pool's, for locality). Wakes the chosen thread when it sleeps. */
void xo__sched_post(xo_pool_t *pool, xo_runnable_t *r, int home);

/* A worker of s ready for a new activation (cached, or new). NULL when out of memory. */
xo_worker_t *xo__sched_worker_get(xo_sched_t *s);

/* Returns a finished worker to s's cache. */
void xo__sched_worker_put(xo_sched_t *s, xo_worker_t *w);

/* Runs w on s's thread until it finishes or suspends (w->state tells which). w->home must be s. */
void xo__sched_switch_in(xo_sched_t *s, xo_worker_t *w);

/* The body of every activation: runs w->msg on w->actor and replies. Defined in actor.c. */
void xo__activation_body(xo_worker_t *w);

/* Marks the start and end of f's call being run by w (for cancellation). */
void xo__future_set_runner(xo_future_t *f, xo_worker_t *w);

/* Starts and stops the pool's scheduler threads. */
xo_status_t xo__sched_start_all(xo_pool_t *pool);
void xo__sched_stop_all(xo_pool_t *pool);

/* ---- actors --------------------------------------------------------------------------------------------------- */

enum { XO_LIFE_CREATING = 0, XO_LIFE_ALIVE, XO_LIFE_DEAD };

/* Field order follows who touches what per message (see xo__actor_post and xo__actor_run): senders read the first
 * line and write the mailbox head (its own line); the scheduler running the actor owns the lines after it. */
struct xo_actor {
    /* read by senders */
    xo_runnable_t run;                  /* the run-queue link (kind XO_RUN_ACTOR) */
    _Atomic int scheduled;              /* the token: 1 while queued or running */
    _Atomic int home;                   /* -1: any scheduler; else pinned (it has suspended activations there) */
    _Atomic int last;                   /* the scheduler that ran it last: plain-thread posts go there */
    _Atomic int life;
    /* Messages posted and messages started (or refused): their difference is what waits, for `xoscar actors`.
     * Relaxed counters beside lines the post and the run touch anyway; readers get an instant's estimate. */
    _Atomic uint64_t posted;
    const xo_actor_class_t *cls;        /* constant after creation */
    xo_pool_t *pool;                    /* valid while life != DEAD */
    void *state;
    xo_mpsc_t mailbox;                  /* head on its own line, tail on the next */
    /* the scheduler's */
    int depth;                          /* suspended activations (token holder only) */
    int locked_depth;                   /* of those, the ones holding the actor's turn (not XO_METHOD_NO_LOCK) */
    uint64_t chain;                     /* the chain of the locked ones (token holder only) */
    xo_msg_t *deferred_head, *deferred_tail;
    _Atomic int refs;
    _Atomic int activations;            /* running or suspended; fini runs when DEAD and this reaches 0 */
    _Atomic uint64_t taken;             /* see posted */
    atomic_flag fini_done;
    bool init_ok;
    bool stop_mark;                     /* pool stop: already collected */
    xo_actor_t *table_next;
    char uid[];
};

/* A new actor (refs = 1, the caller's), state zeroed. NULL when out of memory. */
xo_actor_t *xo__actor_new(xo_pool_t *pool, const xo_actor_class_t *cls, const char *uid);
void xo__actor_retain(xo_actor_t *a);
void xo__actor_release(xo_actor_t *a);

/* Delivers m to a (consumes m) and schedules a when needed. Thread-safe. */
void xo__actor_post(xo_actor_t *a, xo_msg_t *m);

/* Runs up to a batch of a's mailbox; called by a scheduler holding a's token. */
void xo__actor_run(xo_sched_t *s, xo_actor_t *a);

/* Runs one stateless message on a worker (scheduler only). */
void xo__actor_run_stateless(xo_sched_t *s, xo_msg_t *m);

/* Resumes a stateless actor's suspended worker (scheduler only). */
void xo__actor_resume_stateless(xo_sched_t *s, xo_worker_t *w);

/* Ends an activation's count; the last one of a dead actor runs fini. */
void xo__actor_activation_end(xo_actor_t *a);

/* Runs fini once, when the actor is dead and no activation remains. */
void xo__actor_try_fini(xo_actor_t *a);

/* Index of the method called name in cls, or -1. */
int xo__class_method_index(const xo_actor_class_t *cls, const char *name);

/* ---- pools ---------------------------------------------------------------------------------------------------- */

struct xo_pool {
    char *address;
    unsigned n_sched;
    xo_sched_t *sched;
    size_t fiber_stack_size;
    _Atomic unsigned rr;                /* round robin for posts from plain threads */
    _Atomic bool stopping;
    _Atomic bool threads_stop;
    bool listening;                     /* served to other processes (a host:port address) */
    char *main_address;                 /* a sub pool's main pool ("host:port" of "host:port/N"), else NULL */
    struct xo_device *device;           /* the device the pool owns, or NULL (closed after its actors' fini) */
    /* Set by a host on its main pool: finds an actor that lives in one of its sub pools (address into addr). */
    bool (*locate)(void *arg, const char *uid, char *addr, size_t len);
    void *locate_arg;
    /* A restarted sub pool's actors being re-created by its host (runtime/recovery.c). */
    pthread_mutex_t recovery_lock;
    _Atomic bool recovery_active;       /* recovering_all or a non-empty list: a miss must look */
    bool recovering_all;                /* started by a restart, before the host sent its list */
    char **recovering;                  /* sorted uids, owned */
    size_t n_recovering;
    pthread_mutex_t table_lock;
    xo_actor_t **table;                 /* open hashing on uid */
    size_t table_cap, n_actors;
    xo_timers_t *timers;
    _Atomic uint64_t uid_counter;
    uint64_t uid_seed;
    xo_pool_t *registry_next;
};

/* The engine's part of xo_pool_start (include/xoscar/xoscar.h, same contract): the pool's threads, timers, device,
 * listeners and registration, without the services that run as actors in it. The public xo_pool_start, a layer
 * up (services/pool_start.c), wraps it with them. */
xo_status_t xo__pool_start_engine(const xo_pool_config_t *cfg, xo_pool_t **pool_p);

/* Recovery after a restart (runtime/recovery.c). begin_all: every missing actor is recovering (from the pool's start
 * until the host's list). set: only the uids of the msgpack array uids (borrowed) are; NULL ends the recovery.
 * recovering: whether a call to the missing actor uid is to be answered XO_ERECOVERING. forget: uid was destroyed
 * after it came back. free: at the pool's end. */
void xo__pool_recovery_begin_all(xo_pool_t *p);
xo_status_t xo__pool_recovery_set(xo_pool_t *p, const msgpack_object *uids);
bool xo__pool_recovering(xo_pool_t *p, const char *uid);
/* The answer to a call of uid, not in p's table: XO_ERECOVERING or XO_ENOACTOR, with its text in text. */
xo_status_t xo__pool_missing_actor(xo_pool_t *p, const char *uid, char *text, size_t len);
void xo__pool_recovery_forget(xo_pool_t *p, const char *uid);
void xo__pool_recovery_free(xo_pool_t *p);

/* Packs [[uid, class, state, pending, busy], ...] of p's actors into pk (XO_WIRE_LIST; a snapshot taken under the
 * table lock, its counters read relaxed: an instant's estimate). */
void xo__pool_pack_actors(xo_pool_t *p, msgpack_packer *pk);

/* The pool of this process at address, or NULL. The pointer stays valid until that pool is stopped: stopping a
 * pool must not race with other threads' calls into it (see xo_pool_stop). */
xo_pool_t *xo__pool_find(const char *address);

/* A ref to (address, uid) made without asking whether the actor exists (it is looked up when used), for actors
 * known to exist or to come and go (a collective's peers). The caller frees it; NULL when out of memory. */
xo_ref_t *xo__ref_unchecked(const char *address, const char *uid);

/* The pool a NULL address means: the running actor's pool, else the first pool started in this process. */
xo_pool_t *xo__pool_default(void);

/* Table operations (take the table lock). insert: XO_EEXIST when taken; takes a ref. remove drops it (only if
 * the entry is a). lookup returns a new ref or NULL. */
xo_status_t xo__pool_table_insert(xo_pool_t *pool, xo_actor_t *a);
void xo__pool_table_remove(xo_pool_t *pool, xo_actor_t *a);
xo_actor_t *xo__pool_table_lookup(xo_pool_t *pool, const char *uid);

/* A pool's live load, for placement (INFO replies; create time only, never on the call path). user_actors: actors
 * whose uid does not start with "xo." (the runtime's own service actors are not load a user placed); busy: its
 * scheduler threads running work now (not in their idle spin or asleep), the calling thread left out when it is
 * one of them (it is answering this question, not working). */
size_t xo__pool_user_actor_count(xo_pool_t *pool);
unsigned xo__pool_busy_threads(xo_pool_t *pool);

/* The process registry (process.c). register: XO_EEXIST when the address is taken. */
xo_status_t xo__process_register_pool(xo_pool_t *pool);
void xo__process_unregister_pool(xo_pool_t *pool);

/* The registered class called name, or NULL. */
const xo_actor_class_t *xo__class_find(const char *name);

/* A new call-chain id, unique in the process. */
uint64_t xo__chain_new(void);

/* The chain of the current activation, or a new one on a plain thread. */
uint64_t xo__chain_current(void);

/* ---- timers --------------------------------------------------------------------------------------------------- */

typedef struct xo_timer xo_timer_t;
typedef void (*xo_timer_fn)(xo_timer_t *t);

struct xo_timer {
    uint64_t deadline_ns;
    size_t heap_index;          /* position in the heap; SIZE_MAX when not queued */
    xo_timer_fn fire;           /* runs on the timer thread with the timers' lock held: must not block or re-enter */
    xo_timer_fn drop;           /* optional: frees a timer still queued when the timers stop */
};

xo_status_t xo__timers_start(xo_timers_t **timers_p, const char *thread_name);
/* Stops the thread; timers still queued are not fired but handed to their drop function, if any. */
void xo__timers_stop(xo_timers_t *timers);
/* t stays owned by the caller and must stay valid until it fires or xo__timers_remove returns. */
void xo__timers_add(xo_timers_t *timers, xo_timer_t *t, uint64_t deadline_ns);
/* True when t was removed before firing; false when it had fired (or was never added). Never returns while t fires. */
bool xo__timers_remove(xo_timers_t *timers, xo_timer_t *t);

uint64_t xo__now_ns(void);

#endif
