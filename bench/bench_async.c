/* What the async mechanism costs. Inside one method of actor A, the same work (increment a counter) is done n times
 * four ways, and the loop is timed as a whole (no clock read per call):
 *   direct   a plain C call of a noinline function: the floor
 *   tell     xo_tell to actor B, then one xo_call to wait for the last: a message per call, no suspension
 *   call     xo_call to actor B: message + future + A's fiber suspended and resumed + reply
 *   self     xo_call to A itself: the same chain, so the runtime runs it while "loop" is suspended (reentrancy)
 * The overhead of the suspend/resume path per call is call - direct; call - tell isolates what waiting for the
 * reply adds to sending the message.
 *
 * For scale, a bench-local context switch (the same registers as the runtime's: rbx, rbp, r12-r15, mxcsr, x87 cw)
 * is timed as a there-and-back pair; an actor round trip needs at least four switches (A -> scheduler loop -> B ->
 * loop -> A). The cost of one clock_gettime is reported too, since pingpong times each call with two of them. */
#include <string.h>

#include "bench.h"

/* ---- a minimal context switch, for the floor ----------------------------------------------------------------- */

void bench_ctx_switch(void **save_sp, void *load_sp);
__asm__(".text\n"
        ".globl bench_ctx_switch\n"
        ".hidden bench_ctx_switch\n"
        ".type bench_ctx_switch, @function\n"
        "bench_ctx_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size bench_ctx_switch, .-bench_ctx_switch\n");

static void *g_main_sp, *g_fib_sp;
static volatile uint64_t g_fib_count;

static void fiber_body(void)
{
    for (;;) {
        g_fib_count++;
        bench_ctx_switch(&g_fib_sp, g_main_sp);
    }
}

static double bare_switch_pair_ns(size_t n)
{
    size_t size = 64 * 1024;
    char *stack = malloc(size);
    if (!stack) return 0;
    uint64_t *sp = (uint64_t *)(((uintptr_t)stack + size) & ~(uintptr_t)15);
    *--sp = 0;                                    /* fake return address of fiber_body: keeps rsp % 16 == 8 */
    *--sp = (uint64_t)(uintptr_t)fiber_body;     /* popped by ret */
    for (int i = 0; i < 6; i++) *--sp = 0;       /* rbp rbx r12 r13 r14 r15 */
    *--sp = 0x1F80ull | (0x037Full << 32);        /* mxcsr, x87 control word */
    g_fib_sp = sp;
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) bench_ctx_switch(&g_main_sp, g_fib_sp);
    uint64_t t1 = bench_now_ns();
    free(stack);
    return (double)(t1 - t0) / (double)n;
}

/* ---- the actor ----------------------------------------------------------------------------------------------- */

typedef struct asyncer {
    xo_ref_t *peer;
    int64_t local;
} asyncer_t;

enum { MODE_DIRECT, MODE_TELL, MODE_CALL, MODE_SELF };

__attribute__((noinline)) static void work(int64_t *counter)
{
    ++*counter;
    __asm__ volatile("" ::: "memory"); /* keep the loop from being folded into one add */
}

static xo_status_t asyncer_init(xo_ctx_t *ctx, void *state, const msgpack_object *args)
{
    asyncer_t *a = state;
    xo_str_t uid;
    xo_status_t st = xo_unpack(args, "s", &uid);
    if (st != XO_OK) return st;
    char buf[128];
    snprintf(buf, sizeof buf, "%.*s", (int)uid.len, uid.ptr);
    return xo_actor_ref(xo_ctx_address(ctx), buf, &a->peer);
}

static void asyncer_fini(void *state) { xo_ref_free(((asyncer_t *)state)->peer); }

static xo_status_t asyncer_work(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    work(&((asyncer_t *)state)->local);
    return XO_OK;
}

static xo_status_t asyncer_loop(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    asyncer_t *a = state;
    int64_t mode, n;
    xo_status_t st = xo_unpack(args, "ll", &mode, &n);
    if (st != XO_OK) return st;
    xo_ref_t *self = mode == MODE_SELF ? xo_ctx_self(ctx) : NULL;
    uint64_t t0 = bench_now_ns();
    for (int64_t i = 0; i < n && st == XO_OK; i++) {
        xo_result_t *r = NULL;
        switch (mode) {
        case MODE_DIRECT: work(&a->local); break;
        case MODE_TELL: st = xo_tell(a->peer, "inc", NULL); break;
        case MODE_CALL: st = xo_call(a->peer, "inc", NULL, XO_FOREVER, &r); break;
        case MODE_SELF: st = xo_call(self, "work", NULL, XO_FOREVER, &r); break;
        }
        xo_result_free(r);
    }
    if (st == XO_OK && mode == MODE_TELL) st = xo_call(a->peer, "get", NULL, XO_FOREVER, NULL);
    uint64_t t1 = bench_now_ns();
    xo_ref_free(self);
    if (st != XO_OK) return xo_ctx_error(ctx, st, "mode %lld: %s", (long long)mode, xo_last_error());
    return xo_pack(out, "d", (double)(t1 - t0) / (double)n);
}

static const xo_method_t asyncer_methods[] = {{.name = "loop", .fn = asyncer_loop}, {.name = "work", .fn = asyncer_work}};
static const xo_actor_class_t asyncer_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .name = "BenchAsync",
    .state_size = sizeof(asyncer_t),
    .init = asyncer_init,
    .fini = asyncer_fini,
    .methods = asyncer_methods,
    .n_methods = 2,
};

static const bench_metric_spec_t m_direct = {.name = "async.direct_call", .unit = "ns"};
static const bench_metric_spec_t m_tell = {.name = "async.tell", .unit = "ns", .ref = "async.direct_call"};
static const bench_metric_spec_t m_call = {.name = "async.call", .unit = "ns", .ref = "async.direct_call"};
static const bench_metric_spec_t m_self = {.name = "async.self_call", .unit = "ns", .ref = "async.direct_call"};
static const bench_metric_spec_t m_over = {
    .name = "async.call_overhead", .unit = "ns",
    .note = "async.call_overhead = async.call - async.direct_call; async.wait_cost = async.call - async.tell"};
static const bench_metric_spec_t m_wait = {.name = "async.wait_cost", .unit = "ns"};
static const bench_metric_spec_t m_switch = {
    .name = "async.bare_switch_pair", .unit = "ns",
    .note = "async.bare_switch_pair: a bench-local asm context switch there and back (2 switches); floor for 4 per round trip"};
static const bench_metric_spec_t m_clock = {.name = "async.clock_gettime", .unit = "ns"};

static int loop(const xo_ref_t *a, int mode, size_t n, double *ns_p)
{
    xo_result_t *r = NULL;
    BENCH_CHECK(xo_call(a, "loop", xo_args("ll", (int64_t)mode, (int64_t)n), XO_FOREVER, &r));
    xo_status_t st = xo_result_unpack(r, "d", ns_p);
    xo_result_free(r);
    BENCH_CHECK(st);
    return 0;
}

int bench_async(const bench_opts_t *opts)
{
    size_t n = opts->quick ? 20000 : 200000;
    xo_pool_t *pool = bench_pool_start(opts);
    const char *addr = xo_pool_address(pool);
    xo_ref_t *b = NULL, *a = NULL;
    double direct = 0, tell = 0, call = 0, self = 0;
    int rc = -1;
    if (xo_create_actor(&bench_counter_class, NULL, addr, NULL, &b) != XO_OK ||
        xo_create_actor(&asyncer_class, xo_args("s", xo_ref_uid(b)), addr, NULL, &a) != XO_OK) {
        fprintf(stderr, "async: create: %s\n", xo_last_error());
        goto out;
    }
    if (loop(a, MODE_CALL, n / 10, &call)) goto out; /* warm-up */
    if (loop(a, MODE_DIRECT, n * 10, &direct) || loop(a, MODE_TELL, n, &tell) || loop(a, MODE_CALL, n, &call) ||
        loop(a, MODE_SELF, n, &self))
        goto out;
    rc = 0;
    bench_report(&m_direct, direct);
    bench_report(&m_tell, tell);
    bench_report(&m_call, call);
    bench_report(&m_self, self);
    bench_report(&m_over, call - direct);
    bench_report(&m_wait, call - tell);
    bench_report(&m_switch, bare_switch_pair_ns(n * 10));
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) (void)bench_now_ns();
    bench_report(&m_clock, (double)(bench_now_ns() - t0) / (double)n);
out:
    xo_ref_free(a);
    xo_ref_free(b);
    xo_pool_stop(pool);
    return rc;
}
