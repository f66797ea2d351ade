/* Xoscar-C: the actor runtime's public API.
 *
 * Actors are C objects: a class (xo_actor_class_t) gives their state size, lifecycle hooks and a table of named
 * methods. Actors live in pools; a pool is a set of scheduler threads in one process, named by an address. A ref
 * (address, uid) reaches an actor; on a ref you call (wait for the result), send (get a future), tell (no reply) or
 * batch many delayed calls into one message.
 *
 * Arguments and results are msgpack (msgpack-c). xo_args()/xo_pack() build them from a short format string,
 * xo_unpack() reads them back; the full msgpack-c API is available for anything else.
 *
 * Waiting: inside an actor method, every blocking call in this header (xo_call, xo_future_wait, xo_create_actor,
 * xo_sleep_ms...) suspends only the method's fiber; the pool's thread goes on running other actors. Outside a pool
 * (a plain thread) they block the thread.
 *
 * Threading: every function here is thread-safe unless its comment says otherwise.
 *
 * Ownership: a function that takes ownership says "consumes"; a function that returns memory says who frees it.
 * Out-parameters (suffix _p) are written only on XO_OK. */
#ifndef XOSCAR_XOSCAR_H
#define XOSCAR_XOSCAR_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xoscar/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------------------------- */
/* Opaque types                                                                                                       */

typedef struct xo_pool xo_pool_t;         /* a pool: scheduler threads in this process, with an address */
typedef struct xo_ref xo_ref_t;           /* a reference to an actor: (address, uid) plus a cached route */
typedef struct xo_future xo_future_t;     /* the reply of one send, or a promise completed by user code */
typedef struct xo_result xo_result_t;     /* a reply's value (msgpack), owned by the caller */
typedef struct xo_args xo_args_t;         /* encoded call arguments (a msgpack array) */
typedef struct xo_ctx xo_ctx_t;           /* what a running method knows: its actor, pool and call */
typedef struct xo_delayed xo_delayed_t;   /* a call built by xo_delay, sent by xo_batch */
typedef struct xo_batch_out xo_batch_out_t; /* where a batch handler writes one result per call */

/* Timeouts are in milliseconds; XO_FOREVER waits without limit. */
#define XO_FOREVER (-1)

/* ---------------------------------------------------------------------------------------------------------------- */
/* Strings and bytes read from msgpack point into the message and are NOT NUL-terminated.                            */

typedef struct xo_str {
    const char *ptr;
    size_t len;
} xo_str_t;

typedef struct xo_bytes {
    const void *ptr;
    size_t len;
} xo_bytes_t;

/* True when s equals the NUL-terminated c. */
XO_API bool xo_str_eq(xo_str_t s, const char *c);

/* ---------------------------------------------------------------------------------------------------------------- */
/* Encoding and decoding with a format string.
 *
 * Pack formats (xo_args, xo_pack), one character per value:
 *   i int   l int64_t   u uint64_t   d double   t bool (as int)   n nil
 *   s const char * (NUL-terminated; NULL packs nil)   b const void *, size_t (binary)
 *   S xo_str_t (by value)   o const msgpack_object *
 *   B const void *, size_t: a binary lent, not copied, in call arguments (xo_args): the bytes must stay valid and
 *     unchanged until the call that consumes the arguments returns (xo_call, xo_send, xo_tell, ...). To another
 *     process they are then copied once, straight into the shared segment or the socket; to this process, and
 *     wherever else (xo_batch, xo_create_actor), they are copied in as with 'b'. In a method's result (its `out`
 *     packer) for a caller in another process, likewise lent: the bytes (the actor's state, the method's own
 *     arguments, memory the actor owns) must stay valid and unchanged until the method returns, and are copied
 *     once into the reply's frame, which is sent before the actor runs anything else; for a caller in this
 *     process, and in a batch's results, they are copied at once. At most 16 per argument list or result travel
 *     lent; more are copied in.
 *   [ ... ]  an array of the values between the brackets   { ... } a map: keys and values alternate
 * Unpack formats (xo_unpack, xo_result_unpack), one character per value, each taking a pointer:
 *   i int*   l int64_t*   u uint64_t*   d double* (accepts integers)   t bool*   s xo_str_t*   b xo_bytes_t*
 *   o const msgpack_object** (any value)   n (expects nil, no pointer)   [ ... ] a nested array
 *   |  the values after it are optional: missing ones (or nil) leave their pointee unchanged
 *   *  allow more values than the format names (ignored) */

/* Packs the values described by fmt into pk. XO_EINVAL on a bad format. */
XO_API xo_status_t xo_pack(msgpack_packer *pk, const char *fmt, ...);

/* Builds call arguments. Returns a new xo_args_t the caller owns (freed by xo_args_free, or consumed by the call
 * that it is passed to); never NULL (NULL means "no arguments" to the calls). On a bad format it returns an argument
 * list that every consuming call (xo_call, xo_send, xo_tell, xo_tell_delay, xo_batch, xo_create_actor*,
 * xo_promise_resolve) refuses, consuming it, with XO_EINVAL and a text naming the format and what is wrong with
 * it; out of memory, likewise with XO_ENOMEM. */
XO_API xo_args_t *xo_args(const char *fmt, ...);

/* An argument list of exactly n values to push with the msgpack-c API through xo_args_packer(). Pushing more or
 * fewer than n values makes a malformed message, which the target rejects with XO_EPROTO. Owned like xo_args(). */
XO_API xo_args_t *xo_args_new(uint32_t n);
XO_API msgpack_packer *xo_args_packer(xo_args_t *args);
XO_API void xo_args_free(xo_args_t *args);

/* Reads args (a msgpack array) into the pointers described by fmt. On a mismatch returns XO_EBADARGS with an
 * error text naming the argument ("argument 2: expected string, got int"); inside a method, returning that status
 * sends the text to the caller. */
XO_API xo_status_t xo_unpack(const msgpack_object *args, const char *fmt, ...);

/* ---------------------------------------------------------------------------------------------------------------- */
/* Actor classes                                                                                                      */

/* A method. args is a msgpack array (possibly empty); the method packs exactly one value into out (packing nothing
 * returns nil). Return XO_OK, or an error status after xo_ctx_error() to send its text to the caller. state is the
 * actor's state (class state_size bytes, zeroed before init).
 *
 * args, and every string and binary read from it (xo_unpack "s", "b", "o"), is lent to the method, the same rule as
 * device buffers: valid until the method returns (for a method that suspends, until it finally returns), read-only,
 * and a dangling pointer afterwards. A large binary (64 KiB or more) from another process is not copied for the
 * method: on the same host it is a view into the shared segment it came in, which the sender reuses for its next
 * message once the method has returned; from another host, into the block it was received into. Copy what must
 * outlive the call. Likewise the bytes of a result (xo_result_value, xo_result_unpack) are valid until
 * xo_result_free. */
typedef xo_status_t (*xo_method_fn)(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out);

/* A batch handler: n calls of one extensible method, with their argument arrays. For each i in [0, n) it packs a
 * value into xo_batch_result(out, i) or sets an error with xo_batch_error(out, i, ...); a call left untouched
 * returns nil. Returning an error status fails every call of the batch with that status and the ctx error text. */
typedef xo_status_t (*xo_batch_fn)(xo_ctx_t *ctx, void *state, size_t n, const msgpack_object *const *args,
                                   xo_batch_out_t *out);

/* Method flags. */
#define XO_METHOD_EXTENSIBLE 0x1u /* may be called in batches (xo_batch) */
/* Xoscar's no_lock: a call of this method on a stateful actor does not wait for the actor's one-message-at-a-time
 * turn. It runs while another method of the actor is suspended in a wait (not in parallel with running code: the
 * actor's activations share one scheduler thread), and while it is suspended itself the actor goes on taking other
 * messages. Meant for status queries and for callbacks that release a waiting method. The method must leave the
 * state consistent at each of its own waits, as the others do at theirs. No effect on stateless actors. */
#define XO_METHOD_NO_LOCK 0x2u

typedef struct xo_method {
    const char *name;
    xo_method_fn fn;      /* the plain method; may be NULL when batch is set (a single call runs as a batch of one) */
    xo_batch_fn batch;    /* optional batch handler, for XO_METHOD_EXTENSIBLE methods */
    uint32_t flags;
} xo_method_t;

/* Class flags. */
#define XO_ACTOR_STATEFUL 0x0u  /* the default: one message at a time */
#define XO_ACTOR_STATELESS 0x1u /* messages may run concurrently on the pool's threads */

/* Lifecycle hooks. Order: init (with the create arguments), after_create; then methods; then before_destroy,
 * fini. init and after_create failing fail the create (nothing is left behind: fini runs when init succeeded).
 * before_destroy failing is reported to xo_destroy_actor's caller, and the actor is destroyed anyway.
 * fini releases what init acquired; it must not call other actors. Every hook except fini may wait on actors. */
typedef xo_status_t (*xo_init_fn)(xo_ctx_t *ctx, void *state, const msgpack_object *args);
typedef xo_status_t (*xo_hook_fn)(xo_ctx_t *ctx, void *state);
typedef void (*xo_fini_fn)(void *state);

#define XO_CLASS_ABI_V1 1u

/* A class. Versioned: set abi_version to XO_CLASS_ABI_V1; later versions only add fields at the end.
 * The struct and everything it points to must outlive every pool that uses it (static storage, typically). */
typedef struct xo_actor_class {
    uint32_t abi_version;
    uint32_t flags;               /* XO_ACTOR_STATEFUL or XO_ACTOR_STATELESS */
    const char *name;             /* unique in a process; creates travel by class name */
    size_t state_size;
    xo_init_fn init;              /* optional */
    xo_hook_fn after_create;      /* optional */
    xo_hook_fn before_destroy;    /* optional */
    xo_fini_fn fini;              /* optional */
    const xo_method_t *methods;   /* array of n_methods */
    size_t n_methods;
} xo_actor_class_t;

/* Makes a class known to this process by name (creates name classes). Registering the same struct twice is fine;
 * another struct with the same name is XO_EEXIST. xo_create_actor registers its class itself. */
XO_API xo_status_t xo_register_class(const xo_actor_class_t *cls);

/* ---------------------------------------------------------------------------------------------------------------- */
/* Pools                                                                                                              */

typedef struct xo_pool_config {
    const char *address;    /* this pool's address; NULL: "inproc://<pid>.<n>", unique in the process */
    unsigned n_threads;     /* scheduler threads; 0: one per CPU the starting thread may run on (its affinity) */
    size_t fiber_stack_size;/* bytes per method fiber; 0: 256 KiB. Guard page below each stack. */
    unsigned spin_us;       /* how long an idle scheduler thread spins before it sleeps; 0: default (50 us) */
    const char *device;     /* the device the pool owns: "host", "host:1", "cuda:0"; NULL: none (xoscar/device_buf.h) */
    uint64_t device_capacity; /* bytes the device may hand out; 0: the backend's default */
} xo_pool_config_t;

/* Starts a pool in this process. cfg may be NULL for defaults. The caller owns the pool and stops it with
 * xo_pool_stop. XO_EEXIST when the address is taken by another pool of this process. */
XO_API xo_status_t xo_pool_start(const xo_pool_config_t *cfg, xo_pool_t **pool_p);

/* Stops the pool: destroys its actors (before_destroy, fini), fails every queued call with XO_ECLOSED, joins its
 * threads and frees it. Must not be called from one of the pool's own threads. */
XO_API void xo_pool_stop(xo_pool_t *pool);

/* The pool's address (owned by the pool). */
XO_API const char *xo_pool_address(const xo_pool_t *pool);

/* The number of live actors in the pool. */
XO_API size_t xo_pool_actor_count(const xo_pool_t *pool);

/* ---------------------------------------------------------------------------------------------------------------- */
/* Actors and refs                                                                                                    */

/* Creates an actor of cls at address, with uid (NULL: a generated one), passing args (consumed; NULL = none) to
 * init. Waits for init and after_create. On XO_OK *ref_p is a new ref the caller frees with xo_ref_free.
 * Errors: XO_EEXIST (uid taken), XO_EHOOK (init/after_create failed; xo_last_error has its text), XO_ENOCLASS,
 * XO_EUNREACHABLE (no pool at address). */
XO_API xo_status_t xo_create_actor(const xo_actor_class_t *cls, xo_args_t *args, const char *address,
                                   const char *uid, xo_ref_t **ref_p);

/* A ref to (address, uid), checked: XO_ENOACTOR when no such actor exists now. The caller frees *ref_p. */
XO_API xo_status_t xo_actor_ref(const char *address, const char *uid, xo_ref_t **ref_p);

/* True when the actor exists now. */
XO_API bool xo_has_actor(const xo_ref_t *ref);

/* Destroys the actor: runs after the messages already queued for it, calls before_destroy then fini. Later calls
 * through any ref get XO_ENOACTOR, until an actor with the same uid is created again. An actor may destroy itself. */
XO_API xo_status_t xo_destroy_actor(const xo_ref_t *ref);

/* xo_destroy_actor waiting at most timeout_ms (XO_FOREVER: as xo_destroy_actor). When the destroy is not done by
 * then, the caller gets XO_ETIMEDOUT at the deadline and the destroy goes on without it, cancelled as a timed-out
 * call is: before_destroy sees xo_ctx_cancelled() and its waits (xo_sleep_ms, calls to other actors) end at once with
 * XO_ECANCELED; when the hook returns the actor is destroyed as after a failing before_destroy (fini runs, later
 * calls get XO_ENOACTOR). The destroy is never undone. A hook that blocks its thread without waiting (a busy loop,
 * a blocking syscall) cannot be cut short: the actor is destroyed when it returns. */
XO_API xo_status_t xo_destroy_actor_timeout(const xo_ref_t *ref, int64_t timeout_ms);

/* The ref's parts (owned by the ref). */
XO_API const char *xo_ref_address(const xo_ref_t *ref);
XO_API const char *xo_ref_uid(const xo_ref_t *ref);

/* A new ref to the same actor; the caller frees it. NULL when out of memory. */
XO_API xo_ref_t *xo_ref_dup(const xo_ref_t *ref);
XO_API void xo_ref_free(xo_ref_t *ref);

/* ---------------------------------------------------------------------------------------------------------------- */
/* Calls                                                                                                              */

/* Calls method with args (consumed) and waits up to timeout_ms for the reply. On XO_OK, *result_p (when result_p
 * is not NULL) is the reply value, freed by the caller with xo_result_free. On an error the method's text is in
 * xo_last_error(). On XO_ETIMEDOUT the call is also cancelled (it will not run if it has not started). */
XO_API xo_status_t xo_call(const xo_ref_t *ref, const char *method, xo_args_t *args, int64_t timeout_ms,
                           xo_result_t **result_p);

/* Sends a call and returns at once with a future for its reply (the caller frees it with xo_future_free, which
 * does not cancel the call). args is consumed. */
XO_API xo_status_t xo_send(const xo_ref_t *ref, const char *method, xo_args_t *args, xo_future_t **future_p);

/* Sends a call without a reply. args is consumed. Calls told by one sender to one actor run in the order told,
 * and before any later call from that sender. */
XO_API xo_status_t xo_tell(const xo_ref_t *ref, const char *method, xo_args_t *args);

/* Tells after delay_ms. args is consumed. The target is resolved when the delay ends; a missing actor then is
 * ignored (logged at debug level), as Xoscar's tell_delay ignores connection failures. */
XO_API xo_status_t xo_tell_delay(const xo_ref_t *ref, const char *method, xo_args_t *args, int64_t delay_ms);

/* ---------------------------------------------------------------------------------------------------------------- */
/* Futures                                                                                                            */

/* Waits up to timeout_ms for the future. XO_ETIMEDOUT leaves the future pending (wait again or free it). On XO_OK
 * *result_p (when not NULL) is the value, which the caller frees; the future keeps no copy, so a second wait after
 * XO_OK returns XO_EINVAL. An error reply returns its status, with its text in xo_last_error(). One waiter at a time. */
XO_API xo_status_t xo_future_wait(xo_future_t *future, int64_t timeout_ms, xo_result_t **result_p);

/* True when the reply is there (a wait would not block). */
XO_API bool xo_future_done(const xo_future_t *future);

/* Asks for the call to be cancelled and returns at once; the future is always answered afterwards: with
 * XO_ECANCELED when the method had not started, or with what the method returns (its value if it completed; a
 * method waiting on another actor sees its wait fail with XO_ECANCELED and decides). */
XO_API void xo_future_cancel(xo_future_t *future);

/* Frees the caller's hold on the future. Safe while the call is still running; its reply is then dropped. */
XO_API void xo_future_free(xo_future_t *future);

/* Calls cb(future, arg) once, when the future is done: on the thread that completes it (a pool's scheduler, the
 * process's I/O thread, a timer, a canceller, a thread that polls replies), right after the reply is visible, or at
 * once on the calling thread, before this returns, when the future is already done. For event loops that must not
 * block on a wait (asyncio, libuv): the callback hands the future over to the loop's thread.
 * Ownership: the runtime holds the future alive while cb runs; cb owns nothing and arg stays the caller's (free it
 * in cb or after cb ran). In cb, xo_future_wait(future, 0, &r) takes the reply without blocking and
 * xo_future_free may drop the caller's hold, provided the caller has not freed it already (a future freed before
 * it completes still runs cb; cb must then touch only arg). cb must be short and must not wait: it runs on
 * threads that deliver other replies. One callback per future: a second registration is XO_EINVAL, and
 * registrations must not race each other (they may race completion). XO_EINVAL for a NULL future or callback. */
XO_API xo_status_t xo_future_on_done(xo_future_t *future, void (*cb)(xo_future_t *future, void *arg), void *arg);

/* For an event loop about to sleep with calls in flight: spins up to spin_us on this thread, taking replies off this
 * process's shared-memory connections itself, as a thread blocked in xo_future_wait does, instead of leaving them to
 * the process's I/O thread and a wake-up. Futures completed here run their xo_future_on_done callbacks here. Returns
 * true as soon as it took a frame, false after spin_us without one (or inside a method, where it does nothing).
 * The connections go back to the I/O thread before it returns, so sleeping afterwards loses nothing. */
XO_API bool xo_poll_replies(int64_t spin_us);

/* A promise: a future that user code completes, e.g. a method that answers later. The caller owns it (free with
 * xo_future_free). xo_promise_resolve's value is an argument list of exactly one value (xo_args("i", 1)), consumed;
 * NULL resolves to nil. Completing twice is XO_EINVAL. */
XO_API xo_future_t *xo_promise_new(void);
XO_API xo_status_t xo_promise_resolve(xo_future_t *promise, xo_args_t *value);
XO_API xo_status_t xo_promise_reject(xo_future_t *promise, xo_status_t st, const char *fmt, ...);

/* Sleeps for ms: inside a method it suspends only the method (other actors keep running). XO_ECANCELED when the
 * call running the method is cancelled meanwhile. */
XO_API xo_status_t xo_sleep_ms(int64_t ms);

/* ---------------------------------------------------------------------------------------------------------------- */
/* Results                                                                                                            */

/* The reply value (a msgpack object pointing into the result). */
XO_API const msgpack_object *xo_result_value(const xo_result_t *result);

/* Reads the value with an unpack format (see above), e.g. xo_result_unpack(r, "i", &n). The value is treated as a
 * one-element argument list, so "i" reads an int reply and "[ii]" a reply that is an array of two ints. */
XO_API xo_status_t xo_result_unpack(const xo_result_t *result, const char *fmt, ...);

XO_API void xo_result_free(xo_result_t *result);

/* ---------------------------------------------------------------------------------------------------------------- */
/* Batches: many calls of one extensible method sent to one actor as one message.                                    */

/* A call to send later with xo_batch. args is consumed. The caller owns the returned call (xo_batch consumes it,
 * or free it with xo_delayed_free). NULL when out of memory. */
XO_API xo_delayed_t *xo_delay(const char *method, xo_args_t *args);
XO_API void xo_delayed_free(xo_delayed_t *call);

/* Sends calls[0..n) to ref as one message and waits up to timeout_ms. The calls are consumed, whatever the result.
 * On XO_OK, statuses[i] is each call's own status and results[i] its value (NULL for an error, whose text is lost
 * unless errors is given: errors[i] then gets a malloc'd text the caller frees, or NULL); the caller frees every
 * results[i]. XO_EBATCH when the calls name different methods or the method is not extensible. n == 0 returns
 * XO_OK without sending anything. results, statuses and errors each have room for n entries; errors may be NULL. */
XO_API xo_status_t xo_batch(const xo_ref_t *ref, xo_delayed_t **calls, size_t n, int64_t timeout_ms,
                            xo_status_t *statuses, xo_result_t **results, char **errors);

/* xo_batch without the wait: sends calls[0..n) (consumed, whatever the result; n > 0) as one message and returns at
 * once; on XO_OK *future_p is the batch's future, freed by the caller with xo_future_free (which does not cancel).
 * Wait for it, or hand it to an event loop with xo_future_on_done, then take the results with
 * xo_future_batch_results. The same errors as xo_batch for calls that name different methods or a method that
 * is not extensible (XO_EBATCH, at once or as the future's status across processes). */
XO_API xo_status_t xo_batch_send(const xo_ref_t *ref, xo_delayed_t **calls, size_t n, xo_future_t **future_p);

/* Waits up to timeout_ms for a batch's future and takes its results, as xo_batch returns them: n is the number of
 * calls sent; statuses[i], results[i] (the caller frees each) and errors[i] (malloc'd or NULL; errors may be NULL).
 * A failure of the whole batch returns its status. Results can be taken once (then XO_EINVAL). XO_ETIMEDOUT leaves
 * the batch running (cancel it with xo_future_cancel). */
XO_API xo_status_t xo_future_batch_results(xo_future_t *future, int64_t timeout_ms, size_t n, xo_status_t *statuses,
                                           xo_result_t **results, char **errors);

/* For batch handlers: the packer for call i's value, and the way to fail call i alone. */
XO_API msgpack_packer *xo_batch_result(xo_batch_out_t *out, size_t i);
XO_API void xo_batch_error(xo_batch_out_t *out, size_t i, xo_status_t st, const char *fmt, ...);

/* ---------------------------------------------------------------------------------------------------------------- */
/* Inside a method                                                                                                    */

/* The running actor's uid and pool address (owned by the runtime, valid during the call). */
XO_API const char *xo_ctx_uid(const xo_ctx_t *ctx);
XO_API const char *xo_ctx_address(const xo_ctx_t *ctx);

/* A new ref to the running actor (the caller frees it). */
XO_API xo_ref_t *xo_ctx_self(const xo_ctx_t *ctx);

/* True once the call being run has been cancelled by its caller. */
XO_API bool xo_ctx_cancelled(const xo_ctx_t *ctx);

/* Records the error text sent back with a failing status and returns st: `return xo_ctx_error(ctx, XO_EMETHOD,
 * "negative size %d", n);`. The arguments may include xo_last_error(), to wrap the text of a call that failed:
 * `return xo_ctx_error(ctx, st, "loading %s: %s", name, xo_last_error());`. */
XO_API xo_status_t xo_ctx_error(xo_ctx_t *ctx, xo_status_t st, const char *fmt, ...);

/* The ctx of the method running on this thread, or NULL outside actor methods. */
XO_API xo_ctx_t *xo_ctx_current(void);

/* The class of the running actor (the struct it was registered with). */
XO_API const xo_actor_class_t *xo_ctx_class(const xo_ctx_t *ctx);

/* The index in its class's methods[] of the method (or batch handler) ctx runs, or -1 in a lifecycle hook (init,
 * after_create, before_destroy). With xo_ctx_class, for classes whose hooks and methods share one function each, e.g.
 * classes built at run time for actors written in another language (the Python embedding, docs/modules.md). */
XO_API int xo_ctx_method_index(const xo_ctx_t *ctx);

/* ---------------------------------------------------------------------------------------------------------------- */
/* Security                                                                                                           */

/* Sets this process's cluster secret: every connection between pools starts with a challenge-response on it
 * (HMAC-SHA256), and a peer that fails it is disconnected before any message is read. Default: the XO_SECRET
 * environment variable, else empty. Set it before the first connection. */
XO_API void xo_set_secret(const char *secret);

/* ---------------------------------------------------------------------------------------------------------------- */
/* Debugging                                                                                                          */

/* Logs (warning level, stderr) every message that takes longer than ms to run, waits included, naming its actor,
 * class and method. 0 turns it off (the default, unless XO_SLOW_CALL_MS is set in the environment). */
XO_API void xo_set_slow_call_ms(double ms);

#ifdef __cplusplus
}
#endif
#endif
