/* Device buffers and kernels through actors (issue #5), on the device backend of --device (host, the default, or
 * cuda): the same code on every backend, so a GPU machine runs what this one runs.
 *
 * devbuf: bandwidth of a lent device buffer by path. A driver actor in the main pool of a host (in this process)
 * allocates src and dst on its pool's device and, per iteration, times:
 *   dev.<be>.d2d.<size>      xo_device_memcpy(dst, src, DEVICE_TO_DEVICE) directly: the reference of every ratio
 *   dev.<be>.raw.<size>      the same copy without our layer: memcpy (host: its device memory is this process's
 *                            memory) or cudaMemcpy + cudaStreamSynchronize (cuda)
 *   dev.<be>.inproc.<size>   xo_call(sink, "copy", buf) to a BenchDevSink in the same pool: the descriptor carries
 *                            the pointer, the sink copies it D2D into its own allocation and replies
 *   dev.<be>.ipc.<size>      the same to a sink in sub pool 1 of the host (an xoscar-pool process owning its own
 *                            device of the same backend): the descriptor carries an IPC handle (host: the memfd;
 *                            cuda: CUDA IPC), the sink imports it, copies D2D, and the import is closed on return
 *   dev.<be>.ipcwarm.<size>  not the runtime's path: the sub pool's sink gets the device layer's IPC handle
 *                            (xo_device_ipc_export, once) as bytes and keeps its import open across calls, so it
 *                            copies out of a warm mapping: what an import cache in the runtime would give.
 *                            Measured in the staged host (next line), interleaved with the staged calls: an
 *                            import held in the ipc host would be shared by the runtime's imports there
 *   dev.<be>.staged.<size>   the same with XO_DEVICE_IPC=0 in the sub pool (a second host): the sink fetches the
 *                            bytes from the owner pool's xo.devbuf service into a staged copy (the cross-host
 *                            path, run between two processes of this host)
 * Bandwidth = size / the path's median time (GB/s, 1e9 B/s); ratio to d2d. Per path also
 *   dev.<be>.<path>.<size>.hop      the median call time minus the median d2d time of the same run: what the hop
 *                                   adds to the copy the receiver must do anyway (us)
 *   dev.<be>.<path>.<size>.unpack   (ipc, staged) the receiver's xo_unpack_device_buf alone: the import, or the
 *                                   whole staged fetch (us)
 *   dev.<be>.ipc.<size>.copy        the receiver's D2D copy out of the import, timed inside the method (us): next
 *                                   to 1 / d2d it shows what reading a fresh mapping costs (host: page faults)
 * Sizes 4 KiB, 1 MiB, 16 MiB, 256 MiB (--quick: 4 KiB, 1 MiB). Targets (issue #5, stated for CUDA IPC, applied
 * to the ipc path of every backend): hop <= 10 us, 256 MiB bandwidth >= 0.9x d2d.
 *
 * devlaunch: a small kernel (SAXPY of 256 floats from examples/kernels: the CUDA kernel, or on host its C function
 * through xo_device_launch_host) launched and its stream synchronized, median of many, each timed:
 *   launch.<be>.direct        on a stream of a device this thread opened itself (no actor)
 *   launch.<be>.inproc        xo_call(sink, "launch") from this thread to a sink in the host's main pool; the sink
 *                             launches on its stream of its pool's device and synchronizes
 *   launch.<be>.remote        the same to a sink in sub pool 1 (another process)
 *   launch.<be>.<where>.over  the call's time minus direct: what going through an actor adds
 *   launch.<be>.<where>.noop  xo_call of an empty method of the same sink: the call alone
 *
 * Without the backend (not built, or no device: cuda here) both skip with its text; nothing is estimated. */
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <xoscar/device_buf.h>
#include <xoscar/host.h>
#include <xoscar/module.h>

#include "bench.h"
#include "kernels/kernels.h"

#ifndef XO_BENCH_DEVICE_MODULE
#error "XO_BENCH_DEVICE_MODULE (path of the xo_bench_device module) must be defined by the build"
#endif
#ifndef XO_BENCH_POOL_BINARY
#define XO_BENCH_POOL_BINARY NULL
#endif

#ifdef XO_BENCH_CUDA
/* bench_device_cuda.c: cudaMemcpy device-to-device on device `index`, then waits for it. 0, or -1 with the CUDA
 * error text in why. */
int bench_cuda_d2d(int index, void *dst, const void *src, size_t n, char *why, size_t why_len);
#endif

#define CALL_TIMEOUT_MS 120000
#define N_DSIZES 4
#define MAX_TARGETS 2
#define FILL 0x5a /* the bytes of every lent buffer */

static const size_t dsizes[N_DSIZES] = {4096, 1u << 20, 16u << 20, 256u << 20};

/* ---- metric specs: static (the parent reads the specs a forked child reports), one table per backend ------------ */

typedef struct size_specs {
    bench_metric_spec_t d2d, raw, inproc, ipc, staged, ipcwarm;
    bench_metric_spec_t inproc_hop, ipc_hop, staged_hop, ipc_unpack, staged_unpack, ipc_copy, ipcwarm_hop;
} size_specs_t;

#define DEV_(BE, SZ, W) "dev." BE "." W "." SZ
#define SIZE_SPECS(BE, SZ, BW_GOAL, BW_TARGET)                                                                   \
    {                                                                                                           \
        .d2d = {.name = DEV_(BE, SZ, "d2d"), .unit = "GB/s"},                                                   \
        .raw = {.name = DEV_(BE, SZ, "raw"), .unit = "GB/s", .ref = DEV_(BE, SZ, "d2d")},                       \
        .inproc = {.name = DEV_(BE, SZ, "inproc"), .unit = "GB/s", .ref = DEV_(BE, SZ, "d2d")},                 \
        .ipc = {.name = DEV_(BE, SZ, "ipc"), .unit = "GB/s", .ref = DEV_(BE, SZ, "d2d"), .goal = BW_GOAL,        \
                .target = BW_TARGET},                                                                           \
        .staged = {.name = DEV_(BE, SZ, "staged"), .unit = "GB/s", .ref = DEV_(BE, SZ, "d2d")},                 \
        .inproc_hop = {.name = DEV_(BE, SZ, "inproc") ".hop", .unit = "us"},                                    \
        .ipc_hop = {.name = DEV_(BE, SZ, "ipc") ".hop", .unit = "us", .goal = BENCH_GOAL_VALUE_MAX, .target = 10}, \
        .staged_hop = {.name = DEV_(BE, SZ, "staged") ".hop", .unit = "us"},                                    \
        .ipc_unpack = {.name = DEV_(BE, SZ, "ipc") ".unpack", .unit = "us"},                                    \
        .staged_unpack = {.name = DEV_(BE, SZ, "staged") ".unpack", .unit = "us"},                              \
        .ipc_copy = {.name = DEV_(BE, SZ, "ipc") ".copy", .unit = "us"},                                        \
        .ipcwarm = {.name = DEV_(BE, SZ, "ipcwarm"), .unit = "GB/s", .ref = DEV_(BE, SZ, "d2d")},               \
        .ipcwarm_hop = {.name = DEV_(BE, SZ, "ipcwarm") ".hop", .unit = "us"},                                  \
    }
#define BACKEND_SPECS(BE)                                                                                        \
    {SIZE_SPECS(BE, "4KiB", BENCH_GOAL_NONE, 0), SIZE_SPECS(BE, "1MiB", BENCH_GOAL_NONE, 0),                     \
     SIZE_SPECS(BE, "16MiB", BENCH_GOAL_NONE, 0), SIZE_SPECS(BE, "256MiB", BENCH_GOAL_RATIO_MIN, 0.9)}

static const size_specs_t dev_specs[2][N_DSIZES] = {BACKEND_SPECS("host"), BACKEND_SPECS("cuda")};

typedef struct launch_specs {
    bench_metric_spec_t direct, inproc, remote, inproc_over, remote_over, inproc_noop, remote_noop;
} launch_specs_t;

#define LAUNCH_SPECS(BE)                                                                                         \
    {                                                                                                           \
        .direct = {.name = "launch." BE ".direct", .unit = "us"},                                               \
        .inproc = {.name = "launch." BE ".inproc", .unit = "us", .ref = "launch." BE ".direct"},                \
        .remote = {.name = "launch." BE ".remote", .unit = "us", .ref = "launch." BE ".direct"},                \
        .inproc_over = {.name = "launch." BE ".inproc.over", .unit = "us"},                                     \
        .remote_over = {.name = "launch." BE ".remote.over", .unit = "us"},                                     \
        .inproc_noop = {.name = "launch." BE ".inproc.noop", .unit = "us"},                                     \
        .remote_noop = {.name = "launch." BE ".remote.noop", .unit = "us"},                                     \
    }
static const launch_specs_t launch_specs[2] = {LAUNCH_SPECS("host"), LAUNCH_SPECS("cuda")};

/* ---- which device ---------------------------------------------------------------------------------------------- */

typedef struct devsel {
    int which;                  /* 0 host, 1 cuda: the row of the spec tables */
    const xo_device_ops_t *be;
    int index;
    char name[32];              /* "host:0", what the pools are configured with */
} devsel_t;

/* Resolves opts->device ("host", "cuda", "cuda:1"). 0 when the device is there; 1 after a skip (the backend is
 * missing or has no such device: its text); -1 on a bad option. */
static int select_device(const char *bench, const bench_opts_t *opts, devsel_t *d)
{
    const char *spec = opts->device ? opts->device : "host";
    char be[16];
    size_t blen = strcspn(spec, ":");
    if (blen == 0 || blen >= sizeof be) {
        fprintf(stderr, "%s: bad --device \"%s\" (host, cuda, or backend:index)\n", bench, spec);
        return -1;
    }
    memcpy(be, spec, blen);
    be[blen] = '\0';
    d->index = spec[blen] == ':' ? atoi(spec + blen + 1) : 0;
    d->which = strcmp(be, "host") == 0 ? 0 : strcmp(be, "cuda") == 0 ? 1 : -1;
    if (d->which < 0) {
        fprintf(stderr, "%s: --device %s: only host and cuda have benchmarks\n", bench, spec);
        return -1;
    }
    snprintf(d->name, sizeof d->name, "%s:%d", be, d->index);
    d->be = xo_device_backend_find(be);
    char why[240];
    if (!d->be) {
        snprintf(why, sizeof why, "%s: the %s device backend is not in this build (cuda: no CUDA toolkit at configure "
                 "time, or XO_WITH_CUDA=OFF)", d->name, be);
        bench_skip(bench, why);
        return 1;
    }
    size_t n = 0;
    xo_status_t st = xo_device_discover(d->be, NULL, 0, &n);
    if (st != XO_OK || n == 0 || d->index < 0 || (size_t)d->index >= n) {
        if (st != XO_OK) snprintf(why, sizeof why, "%s: %s", d->name, xo_last_error());
        else snprintf(why, sizeof why, "%s: the %s backend found %zu device(s)", d->name, be, n);
        bench_skip(bench, why);
        return 1;
    }
    return 0;
}

/* ---- the driver: an actor of the main pool that owns the lent buffers ------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double median_ns(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_u64);
    return n % 2 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2;
}

/* "transfer" (u size, u iters, t baseline, then per target: s addr, s uid, s mode) -> [d2d, raw, (call, unpack,
 * copy) per target], medians in ns (d2d and raw 0 without baseline). mode "desc": sink.copy(descriptor), the
 * runtime's path; "handle": sink.copy_handle(IPC handle exported once), the sink keeping its import open across
 * calls (the device layer's IPC with a warm mapping), then sink.forget() before src is freed. Per iteration (after
 * one untimed warm-up that lets each sink grow its target and checks the first and last byte it copied): the
 * direct copies, then one call per target, in that order, so every path sees the same cache and load. */
static xo_status_t driver_transfer(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)state;
    uint64_t size, iters;
    bool baseline;
    xo_status_t st = xo_unpack(args, "uut*", &size, &iters, &baseline);
    if (st != XO_OK) return st;
    size_t n_t = (args->via.array.size - 3) / 3;
    bool by_handle[MAX_TARGETS] = {false};
    if (n_t < 1 || n_t > MAX_TARGETS || iters < 1 || size < 1)
        return xo_ctx_error(ctx, XO_EBADARGS, "transfer: 1..%d targets, iters and size >= 1", MAX_TARGETS);
    xo_device_t *dev = xo_ctx_device(ctx);
    if (!dev) return xo_ctx_error(ctx, XO_EINVAL, "transfer: the main pool owns no device");
    xo_ref_t *t[MAX_TARGETS] = {0};
    for (size_t k = 0; k < n_t && st == XO_OK; k++) {
        const msgpack_object *a = &args->via.array.ptr[3 + 3 * k], *u = a + 1, *mode = a + 2;
        char addr[256], uid[128];
        if (a->type != MSGPACK_OBJECT_STR || u->type != MSGPACK_OBJECT_STR || mode->type != MSGPACK_OBJECT_STR) {
            st = xo_ctx_error(ctx, XO_EBADARGS, "transfer: target %zu: address, uid and mode are strings", k);
            break;
        }
        by_handle[k] = mode->via.str.size == 6 && memcmp(mode->via.str.ptr, "handle", 6) == 0;
        snprintf(addr, sizeof addr, "%.*s", (int)a->via.str.size, a->via.str.ptr);
        snprintf(uid, sizeof uid, "%.*s", (int)u->via.str.size, u->via.str.ptr);
        if (xo_actor_ref(addr, uid, &t[k]) != XO_OK)
            st = xo_ctx_error(ctx, XO_EINVAL, "transfer: ref %s/%s: %s", addr, uid, xo_last_error());
    }
    void *src = NULL, *dst = NULL;
    const size_t cols = 2 + 3 * MAX_TARGETS;
    uint64_t *v = st == XO_OK ? calloc(cols * iters, sizeof *v) : NULL; /* column c: v[c * iters + i] */
    if (st == XO_OK && !v) st = XO_ENOMEM;
    if (st == XO_OK && (st = xo_device_alloc(dev, size, &src)) != XO_OK) st = xo_ctx_error(ctx, st, "src: %s", xo_last_error());
    if (st == XO_OK && (st = xo_device_alloc(dev, size, &dst)) != XO_OK) st = xo_ctx_error(ctx, st, "dst: %s", xo_last_error());
    /* touched before timing: first touches would time page faults (host) rather than copies */
    if (st == XO_OK) st = xo_device_memset(dev, src, FILL, size, NULL);
    if (st == XO_OK) st = xo_device_memset(dev, dst, 2, size, NULL);
    bool cuda = strcmp(xo_device_backend_name(xo_device_backend(dev)), "cuda") == 0;
    xo_device_ipc_handle_t handle;
    if (st == XO_OK && (st = xo_device_ipc_export(dev, src, &handle)) != XO_OK)
        st = xo_ctx_error(ctx, st, "xo_device_ipc_export: %s", xo_last_error());
    for (int64_t i = -1; st == XO_OK && i < (int64_t)iters; i++) {
        uint64_t t0 = bench_now_ns(), t1 = t0, t2 = t0;
        if (baseline) {
            st = xo_device_memcpy(dev, dst, src, size, XO_MEMCPY_DEVICE_TO_DEVICE, NULL);
            t1 = bench_now_ns();
            if (st != XO_OK) {
                st = xo_ctx_error(ctx, st, "xo_device_memcpy D2D: %s", xo_last_error());
                break;
            }
            if (!cuda) {
                memcpy(dst, src, size);
            } else {
#ifdef XO_BENCH_CUDA
                char why[256];
                if (bench_cuda_d2d(xo_device_index(dev), dst, src, size, why, sizeof why) != 0) {
                    st = xo_ctx_error(ctx, XO_EDEVICE, "%s", why);
                    break;
                }
#else
                st = xo_ctx_error(ctx, XO_ENOTSUP, "cuda device but the bench was built without XO_BENCH_CUDA");
                break;
#endif
            }
            t2 = bench_now_ns();
        }
        if (i >= 0) v[0 * iters + (uint64_t)i] = t1 - t0, v[1 * iters + (uint64_t)i] = t2 - t1;
        for (size_t k = 0; k < n_t && st == XO_OK; k++) {
            xo_args_t *a;
            if (by_handle[k]) {
                a = xo_args("but", handle.bytes, sizeof handle.bytes, (uint64_t)size, (int)(i < 0));
            } else if ((a = xo_args_new(2)) != NULL) {
                msgpack_packer *pk = xo_args_packer(a);
                st = xo_pack_device_buf(pk, dev, src, size);
                if (st == XO_OK) st = (i < 0 ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) == 0 ? XO_OK : XO_ENOMEM;
                if (st != XO_OK) {
                    xo_args_free(a);
                    st = xo_ctx_error(ctx, st, "xo_pack_device_buf: %s", xo_last_error());
                    break;
                }
            }
            if (!a) {
                st = XO_ENOMEM;
                break;
            }
            xo_result_t *r = NULL;
            uint64_t c0 = bench_now_ns();
            st = xo_call(t[k], by_handle[k] ? "copy_handle" : "copy", a, CALL_TIMEOUT_MS, &r);
            uint64_t c1 = bench_now_ns();
            uint64_t unpack = 0, copy = 0;
            int64_t b0 = -1, b1 = -1;
            if (st == XO_OK) st = xo_result_unpack(r, "[uull]", &unpack, &copy, &b0, &b1);
            xo_result_free(r);
            if (st == XO_OK && i < 0 && (b0 != FILL || b1 != FILL)) { /* the warm-up call checks the receiver's copy */
                st = xo_ctx_error(ctx, XO_EPROTO, "target %zu copied bytes %lld..%lld, sent %d", k, (long long)b0,
                                  (long long)b1, FILL);
                break;
            }
            if (st != XO_OK) {
                st = xo_ctx_error(ctx, st, "copy call to target %zu, %llu bytes: %s", k, (unsigned long long)size,
                                  xo_last_error());
                break;
            }
            if (i >= 0) {
                v[(2 + 3 * k) * iters + (uint64_t)i] = c1 - c0;
                v[(3 + 3 * k) * iters + (uint64_t)i] = unpack;
                v[(4 + 3 * k) * iters + (uint64_t)i] = copy;
            }
        }
    }
    if (st == XO_OK) {
        msgpack_pack_array(out, (uint32_t)(2 + 3 * n_t));
        for (size_t c = 0; c < 2 + 3 * n_t; c++) msgpack_pack_double(out, median_ns(v + c * iters, (size_t)iters));
    }
    for (size_t k = 0; k < n_t; k++) /* the sinks holding imports of src close them before it is freed */
        if (t[k] && by_handle[k] && xo_call(t[k], "forget", NULL, CALL_TIMEOUT_MS, NULL) != XO_OK && st == XO_OK)
            st = xo_ctx_error(ctx, XO_EPROTO, "forget: %s", xo_last_error());
    if (src) xo_device_free(dev, src);
    if (dst) xo_device_free(dev, dst);
    free(v);
    for (size_t k = 0; k < n_t; k++) xo_ref_free(t[k]);
    return st;
}

static const xo_method_t driver_methods[] = {{.name = "transfer", .fn = driver_transfer}};
static const xo_actor_class_t driver_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .name = "BenchDevDriver",
    .methods = driver_methods,
    .n_methods = 1,
};

/* ---- set-up: a host whose main pool and one sub pool own a device of the chosen backend --------------------- */

typedef struct setup {
    xo_host_t *host;
    xo_ref_t *local, *remote; /* BenchDevSink in the main pool and in sub pool 1 */
    char local_uid[64], remote_uid[64];
} setup_t;

static void teardown(setup_t *s)
{
    xo_ref_free(s->local);
    xo_ref_free(s->remote);
    if (s->host) xo_host_stop(s->host);
    memset(s, 0, sizeof *s);
}

/* Creates a sink in pool process_index and checks which process it lives in. On 0, *ref_p is the caller's (freed by
 * teardown through the setup that holds it). */
static int make_sink(setup_t *s, size_t process_index, xo_ref_t **ref_p, char *uid, size_t uid_len)
{
    snprintf(uid, uid_len, "bench.devsink.%zu", process_index);
    xo_placement_t p = {.strategy = "process_index", .process_index = process_index};
    xo_status_t st = xo_host_create_actor(s->host, "BenchDevSink", NULL, uid, &p, ref_p);
    if (st != XO_OK) {
        fprintf(stderr, "create BenchDevSink in pool %zu: %s: %s\n", process_index, xo_status_name(st),
                xo_last_error());
        return -1;
    }
    xo_result_t *r = NULL;
    int64_t pid = 0;
    st = xo_call(*ref_p, "pid", NULL, CALL_TIMEOUT_MS, &r);
    if (st == XO_OK) st = xo_result_unpack(r, "l", &pid);
    xo_result_free(r);
    if (st != XO_OK || (process_index == 0) != (pid == getpid())) {
        fprintf(stderr, "BenchDevSink in pool %zu: pid %lld (bench %d): %s\n", process_index, (long long)pid,
                (int)getpid(), st == XO_OK ? "wrong process" : xo_last_error());
        return -1;
    }
    return 0;
}

/* stage: start the host with XO_DEVICE_IPC=0, inherited by the sub pool (its receiver stages). On 0, s owns the
 * host and both refs until teardown(s); on -1 nothing is left. */
static int setup(const bench_opts_t *opts, const devsel_t *d, bool stage, setup_t *s)
{
    memset(s, 0, sizeof *s);
    const char *modules[] = {XO_BENCH_DEVICE_MODULE};
    /* host: the memfd is sized, not filled; cuda: 0, the GPU's memory is the limit. The main pool holds src, dst
     * and the in-process sink's copy; the sub pool its copy and (staged) the staged copy. */
    uint64_t cap = d->which == 0 ? (opts->quick ? (64ull << 20) : (1ull << 30)) : 0;
    xo_sub_pool_config_t sub = {.n_threads = opts->threads, .device = d->name, .device_capacity = cap};
    xo_host_config_t cfg = {.n_sub_pools = 1, .sub_pools = &sub, .modules = modules, .n_modules = 1,
                            .main_threads = opts->threads, .main_device = d->name, .main_device_capacity = cap,
                            .pool_binary = XO_BENCH_POOL_BINARY};
    if (stage) setenv("XO_DEVICE_IPC", "0", 1);
    xo_status_t st = xo_host_start(&cfg, &s->host);
    unsetenv("XO_DEVICE_IPC");
    if (st != XO_OK) {
        fprintf(stderr, "xo_host_start (devices %s): %s: %s\n", d->name, xo_status_name(st), xo_last_error());
        s->host = NULL;
        return -1;
    }
    if (make_sink(s, 0, &s->local, s->local_uid, sizeof s->local_uid) != 0 ||
        make_sink(s, 1, &s->remote, s->remote_uid, sizeof s->remote_uid) != 0) {
        teardown(s);
        return -1;
    }
    return 0;
}

/* ---- devbuf ---------------------------------------------------------------------------------------------------- */

static size_t n_iters(const bench_opts_t *opts, int k)
{
    static const size_t full[N_DSIZES] = {500, 100, 20, 5};
    static const size_t quick[N_DSIZES] = {50, 10, 0, 0};
    return opts->quick ? quick[k] : full[k];
}

/* One driver.transfer to two targets, each (address, uid, mode); med (the caller's, n_med entries) gets 2 + 3 * 2
 * medians (ns). */
static int transfer(xo_ref_t *driver, size_t size, size_t iters, bool baseline, const char *const tg[2][3],
                    double *med, size_t n_med)
{
    xo_args_t *a = xo_args("uutssssss", (uint64_t)size, (uint64_t)iters, (int)baseline, tg[0][0], tg[0][1], tg[0][2],
                           tg[1][0], tg[1][1], tg[1][2]);
    xo_result_t *r = NULL;
    xo_status_t st = xo_call(driver, "transfer", a, CALL_TIMEOUT_MS, &r);
    const msgpack_object *o = st == XO_OK ? xo_result_value(r) : NULL;
    if (st == XO_OK && (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != n_med)) st = XO_EPROTO;
    for (size_t i = 0; st == XO_OK && i < n_med; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_FLOAT64 && e->type != MSGPACK_OBJECT_FLOAT32) st = XO_EPROTO;
        else med[i] = e->via.f64;
    }
    xo_result_free(r);
    if (st != XO_OK) {
        fprintf(stderr, "devbuf: transfer of %zu bytes: %s: %s\n", size, xo_status_name(st), xo_last_error());
        return -1;
    }
    return 0;
}

int bench_devbuf(const bench_opts_t *opts)
{
    static int skipped; /* a skip is said once; the other repetitions of this child return at once */
    if (skipped) return 0;
    devsel_t d;
    int sel = select_device("devbuf", opts, &d);
    if (sel != 0) {
        skipped = sel > 0;
        return sel > 0 ? 0 : -1;
    }
    const size_specs_t *sp = dev_specs[d.which];
    setup_t s;
    if (setup(opts, &d, false, &s) != 0) return -1;
    xo_ref_t *driver = NULL;
    int rc = 0;
    if (xo_create_actor(&driver_class, NULL, xo_host_address(s.host), NULL, &driver) != XO_OK) {
        fprintf(stderr, "devbuf: create driver: %s\n", xo_last_error());
        rc = -1;
    }
    const char *main_addr = xo_host_address(s.host), *sub_addr = xo_host_sub_pool_address(s.host, 1);
    double d2d_ns[N_DSIZES] = {0};
    for (int k = 0; k < N_DSIZES && rc == 0; k++) {
        size_t n = n_iters(opts, k), size = dsizes[k];
        if (!n) continue;
        double m[8];
        /* d2d, raw, then (call, unpack, copy) of inproc and ipc */
        const char *const tg[2][3] = {{main_addr, s.local_uid, "desc"}, {sub_addr, s.remote_uid, "desc"}};
        if (transfer(driver, size, n, true, tg, m, 8) != 0) {
            rc = -1;
            break;
        }
        d2d_ns[k] = m[0];
        bench_report(&sp[k].d2d, (double)size / m[0]);
        bench_report(&sp[k].raw, (double)size / m[1]);
        bench_report(&sp[k].inproc, (double)size / m[2]);
        bench_report(&sp[k].inproc_hop, (m[2] - m[0]) / 1e3);
        bench_report(&sp[k].ipc, (double)size / m[5]);
        bench_report(&sp[k].ipc_hop, (m[5] - m[0]) / 1e3);
        bench_report(&sp[k].ipc_unpack, m[6] / 1e3);
        bench_report(&sp[k].ipc_copy, m[7] / 1e3);
    }
    xo_ref_free(driver);
    driver = NULL;
    teardown(&s);
    if (rc != 0) return rc;

    /* the staged path: a second host whose sub pool has XO_DEVICE_IPC=0; hop against the d2d of the first */
    if (setup(opts, &d, true, &s) != 0) return -1;
    if (xo_create_actor(&driver_class, NULL, xo_host_address(s.host), NULL, &driver) != XO_OK) {
        fprintf(stderr, "devbuf: create driver: %s\n", xo_last_error());
        rc = -1;
    }
    sub_addr = xo_host_sub_pool_address(s.host, 1);
    for (int k = 0; k < N_DSIZES && rc == 0; k++) {
        size_t n = n_iters(opts, k), size = dsizes[k];
        if (!n) continue;
        double m[8];
        /* staged (call, unpack, copy), then ipcwarm: in this host, whose sub pool stages, so that the import the
         * sink holds for it cannot share its mapping with the runtime's imports of the ipc path (they would find
         * it open and skip the map) */
        const char *const tg[2][3] = {{sub_addr, s.remote_uid, "desc"}, {sub_addr, s.remote_uid, "handle"}};
        if (transfer(driver, size, n, false, tg, m, 8) != 0) {
            rc = -1;
            break;
        }
        bench_report(&sp[k].staged, (double)size / m[2]);
        bench_report(&sp[k].staged_hop, (m[2] - d2d_ns[k]) / 1e3);
        bench_report(&sp[k].staged_unpack, m[3] / 1e3);
        bench_report(&sp[k].ipcwarm, (double)size / m[5]);
        bench_report(&sp[k].ipcwarm_hop, (m[5] - d2d_ns[k]) / 1e3);
    }
    xo_ref_free(driver);
    teardown(&s);
    return rc;
}

/* ---- devlaunch ------------------------------------------------------------------------------------------------- */

#define LAUNCH_N 256

static int call_timed(xo_ref_t *ref, const char *method, uint64_t *ns_p)
{
    uint64_t t0 = bench_now_ns();
    xo_status_t st = xo_call(ref, method, NULL, CALL_TIMEOUT_MS, NULL);
    *ns_p = bench_now_ns() - t0;
    if (st != XO_OK) {
        fprintf(stderr, "devlaunch: %s: %s: %s\n", method, xo_status_name(st), xo_last_error());
        return -1;
    }
    return 0;
}

int bench_devlaunch(const bench_opts_t *opts)
{
    static int skipped;
    if (skipped) return 0;
    devsel_t d;
    int sel = select_device("devlaunch", opts, &d);
    if (sel != 0) {
        skipped = sel > 0;
        return sel > 0 ? 0 : -1;
    }
    const launch_specs_t *sp = &launch_specs[d.which];
    /* this thread's own device, stream and operands: the direct launch */
    xo_device_config_t dcfg = {.capacity = d.which == 0 ? (1u << 20) : 0};
    xo_device_t *dev = NULL;
    xo_device_stream_t *stream = NULL;
    void *x = NULL, *y = NULL;
    xo_status_t st = xo_device_open(d.be, d.index, &dcfg, &dev);
    if (st == XO_OK) st = xo_device_stream_create(dev, &stream);
    if (st == XO_OK) st = xo_device_alloc(dev, LAUNCH_N * sizeof(float), &x);
    if (st == XO_OK) st = xo_device_alloc(dev, LAUNCH_N * sizeof(float), &y);
    if (st == XO_OK) st = xo_device_memset(dev, x, 0, LAUNCH_N * sizeof(float), NULL);
    if (st == XO_OK) st = xo_device_memset(dev, y, 0, LAUNCH_N * sizeof(float), NULL);
    if (st != XO_OK) {
        fprintf(stderr, "devlaunch: the direct device %s: %s: %s\n", d.name, xo_status_name(st), xo_last_error());
        if (dev) xo_device_close(dev);
        return -1;
    }
    xo_k_saxpy_t kp = {.n = LAUNCH_N, .a = 2.0f, .x = x, .y = y};
    setup_t s;
    if (setup(opts, &d, false, &s) != 0) {
        xo_device_close(dev);
        return -1;
    }
    size_t n = opts->quick ? 200 : 2000, warm = n / 10;
    uint64_t *v = calloc(5 * n, sizeof *v); /* direct, inproc, inproc noop, remote, remote noop */
    int rc = v ? 0 : -1;
    for (size_t i = 0; i < warm + n && rc == 0; i++) {
        uint64_t t[5];
        uint64_t t0 = bench_now_ns();
        st = xo_k_saxpy(dev, stream, &kp);
        if (st == XO_OK) st = xo_device_stream_synchronize(stream);
        t[0] = bench_now_ns() - t0;
        if (st != XO_OK) {
            fprintf(stderr, "devlaunch: direct saxpy: %s: %s\n", xo_status_name(st), xo_last_error());
            rc = -1;
            break;
        }
        if (call_timed(s.local, "launch", &t[1]) || call_timed(s.local, "noop", &t[2]) ||
            call_timed(s.remote, "launch", &t[3]) || call_timed(s.remote, "noop", &t[4]))
            rc = -1;
        if (i >= warm)
            for (int c = 0; c < 5; c++) v[(size_t)c * n + i - warm] = t[c];
    }
    if (rc == 0) {
        double m[5];
        for (int c = 0; c < 5; c++) m[c] = median_ns(v + (size_t)c * n, n) / 1e3;
        bench_report(&sp->direct, m[0]);
        bench_report(&sp->inproc, m[1]);
        bench_report(&sp->remote, m[3]);
        bench_report(&sp->inproc_over, m[1] - m[0]);
        bench_report(&sp->remote_over, m[3] - m[0]);
        bench_report(&sp->inproc_noop, m[2]);
        bench_report(&sp->remote_noop, m[4]);
    }
    free(v);
    teardown(&s);
    xo_device_close(dev); /* destroys the stream and frees x, y */
    return rc;
}

/* ---- devready -------------------------------------------------------------------------------------------------- */

/* A producer hands a buffer its stream is still writing (a device-to-device copy stands for the kernel) to an actor
 * of another process, which copies it on its own stream. "sync": the producer synchronizes its stream, then sends a
 * plain descriptor (what callers had to do before ready events); "event": it records a shareable event and sends at
 * once (xo_pack_device_buf_ready), and the receiver's stream waits for the event on the device. Timed: from queueing
 * the producing copy to the receiver's reply (its copy done). */
#define N_RSIZES 3
static const size_t rsizes[N_RSIZES] = {1u << 20, 16u << 20, 256u << 20};

typedef struct ready_specs {
    bench_metric_spec_t sync, event;
} ready_specs_t;
#define READY_SPECS(BE, SZ)                                                                                      \
    {                                                                                                           \
        .sync = {.name = "ready." BE "." SZ ".sync", .unit = "us"},                                             \
        .event = {.name = "ready." BE "." SZ ".event", .unit = "us", .ref = "ready." BE "." SZ ".sync"},         \
    }
static const ready_specs_t ready_specs[2][N_RSIZES] = {
    {READY_SPECS("host", "1MiB"), READY_SPECS("host", "16MiB"), READY_SPECS("host", "256MiB")},
    {READY_SPECS("cuda", "1MiB"), READY_SPECS("cuda", "16MiB"), READY_SPECS("cuda", "256MiB")},
};

/* handover(size, iters, address, uid) -> [median ns with sync, median ns with an event]; the modes alternate. */
static xo_status_t driver_handover(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)state;
    uint64_t size, iters;
    xo_str_t addr, uid;
    xo_status_t st = xo_unpack(args, "uuss", &size, &iters, &addr, &uid);
    if (st != XO_OK) return st;
    xo_device_t *dev = xo_ctx_device(ctx);
    if (!dev || iters < 1 || size < 1) return xo_ctx_error(ctx, XO_EINVAL, "handover: a device, iters, size");
    char a[256], u[128];
    snprintf(a, sizeof a, "%.*s", (int)addr.len, addr.ptr);
    snprintf(u, sizeof u, "%.*s", (int)uid.len, uid.ptr);
    xo_ref_t *sink = NULL;
    void *src = NULL, *buf = NULL;
    xo_device_stream_t *s = NULL;
    xo_device_event_t *ev = NULL;
    uint64_t *v = calloc(2 * iters, sizeof *v);
    if (!v) return XO_ENOMEM;
    if ((st = xo_actor_ref(a, u, &sink)) != XO_OK || (st = xo_device_alloc(dev, size, &src)) != XO_OK ||
        (st = xo_device_alloc(dev, size, &buf)) != XO_OK || (st = xo_device_memset(dev, src, FILL, size, NULL)) != XO_OK ||
        (st = xo_device_memset(dev, buf, 0, size, NULL)) != XO_OK || (st = xo_device_stream_create(dev, &s)) != XO_OK ||
        (st = xo_device_event_create_ipc(dev, &ev)) != XO_OK)
        st = xo_ctx_error(ctx, st, "handover set-up: %s", xo_last_error());
    for (int64_t i = -2; st == XO_OK && i < 2 * (int64_t)iters; i++) { /* two untimed warm-ups, one per mode */
        bool event = (i & 1) != 0;
        uint64_t t0 = bench_now_ns();
        st = xo_device_memcpy(dev, buf, src, size, XO_MEMCPY_DEVICE_TO_DEVICE, s);
        xo_args_t *call = st == XO_OK ? xo_args_new(1) : NULL;
        if (st == XO_OK && !call) st = XO_ENOMEM;
        if (st == XO_OK && !event) st = xo_device_stream_synchronize(s);
        if (st == XO_OK && event) st = xo_device_event_record(ev, s);
        if (st == XO_OK)
            st = event ? xo_pack_device_buf_ready(xo_args_packer(call), dev, buf, size, ev)
                       : xo_pack_device_buf(xo_args_packer(call), dev, buf, size);
        if (st != XO_OK) {
            xo_args_free(call);
            st = xo_ctx_error(ctx, st, "handover: %s", xo_last_error());
            break;
        }
        st = xo_call(sink, "copy_on", call, CALL_TIMEOUT_MS, NULL);
        uint64_t t1 = bench_now_ns();
        if (st != XO_OK) {
            st = xo_ctx_error(ctx, st, "copy_on: %s", xo_last_error());
            break;
        }
        if (i >= 0) v[(event ? iters : 0) + (uint64_t)i / 2] = t1 - t0;
    }
    if (st == XO_OK) st = xo_pack(out, "[dd]", median_ns(v, iters), median_ns(v + iters, iters));
    if (s) xo_device_stream_synchronize(s);
    xo_device_event_destroy(ev);
    xo_device_stream_destroy(s);
    if (src) xo_device_free(dev, src);
    if (buf) xo_device_free(dev, buf);
    xo_ref_free(sink);
    free(v);
    return st;
}

static const xo_method_t ready_driver_methods[] = {{.name = "handover", .fn = driver_handover}};
static const xo_actor_class_t ready_driver_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .name = "BenchDevReadyDriver",
    .methods = ready_driver_methods,
    .n_methods = 1,
};

int bench_devready(const bench_opts_t *opts)
{
    static int skipped;
    if (skipped) return 0;
    devsel_t d;
    int sel = select_device("devready", opts, &d);
    if (sel != 0) {
        skipped = sel > 0;
        return sel > 0 ? 0 : -1;
    }
    static const size_t full[N_RSIZES] = {200, 40, 8}, quick[N_RSIZES] = {20, 4, 0};
    setup_t s;
    if (setup(opts, &d, false, &s) != 0) return -1;
    xo_ref_t *driver = NULL;
    int rc = 0;
    if (xo_create_actor(&ready_driver_class, NULL, xo_host_address(s.host), NULL, &driver) != XO_OK) {
        fprintf(stderr, "devready: create driver: %s\n", xo_last_error());
        rc = -1;
    }
    for (int k = 0; k < N_RSIZES && rc == 0; k++) {
        size_t n = opts->quick ? quick[k] : full[k];
        if (!n) continue;
        xo_result_t *r = NULL;
        double sync_ns = 0, event_ns = 0;
        xo_status_t st = xo_call(driver, "handover",
                                 xo_args("uuss", (uint64_t)rsizes[k], (uint64_t)n, xo_host_sub_pool_address(s.host, 1),
                                         s.remote_uid),
                                 CALL_TIMEOUT_MS, &r);
        if (st == XO_OK) st = xo_result_unpack(r, "[dd]", &sync_ns, &event_ns);
        xo_result_free(r);
        if (st != XO_OK) {
            fprintf(stderr, "devready: %zu bytes: %s: %s\n", rsizes[k], xo_status_name(st), xo_last_error());
            rc = -1;
            break;
        }
        bench_report(&ready_specs[d.which][k].sync, sync_ns / 1e3);
        bench_report(&ready_specs[d.which][k].event, event_ns / 1e3);
    }
    xo_ref_free(driver);
    teardown(&s);
    return rc;
}
