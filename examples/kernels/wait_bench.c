/* What waiting for a stream costs the other actors of a pool: a pool with one scheduler thread owns a host device;
 * a Kernels actor runs a long matmul there while the main thread pings another actor of the same pool. With
 * XO_K_WAIT=sync the method blocks the scheduler thread in xo_device_stream_synchronize, so the pings wait for the
 * kernel; with the default wait (an event polled between 1 ms xo_sleep_ms) only the method is suspended. Also the
 * price of polling: the latency of a small kernel call under both waits.
 *
 *   kernels_wait_bench KERNELS_MODULE.so [matmul size = 384] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xoscar/module.h>
#include <xoscar/xoscar.h>

#include "check.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static xo_status_t ping(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out) { return XO_OK; }
static const xo_method_t ping_methods[] = {{.name = "ping", .fn = ping}};
static const xo_actor_class_t ping_class = {
    .abi_version = XO_CLASS_ABI_V1, .name = "Ping", .methods = ping_methods, .n_methods = 1};

/* One matmul of size n on k while pinging p from this thread; prints the ping latencies seen meanwhile. */
static void during_matmul(const char *mode, xo_ref_t *k, xo_ref_t *p, int n, const float *a)
{
    /* First alone: the wait's own cost (the pings below take a CPU from the kernel on a small machine). */
    setenv("XO_K_WAIT", mode, 1);
    double t0 = now_ms();
    xo_result_t *r0;
    CHECK(xo_call(k, "matmul", xo_args("iiibb", n, n, n, a, (size_t)n * n * sizeof *a, a, (size_t)n * n * sizeof *a),
                  60000, &r0));
    xo_result_free(r0);
    double alone = now_ms() - t0;
    static double lat[100000];
    size_t cnt = 0;
    xo_future_t *f;
    t0 = now_ms();
    CHECK(xo_send(k, "matmul", xo_args("iiibb", n, n, n, a, (size_t)n * n * sizeof *a, a, (size_t)n * n * sizeof *a),
                  &f));
    while (!xo_future_done(f) && cnt < sizeof lat / sizeof lat[0]) {
        double s = now_ms();
        xo_result_t *r;
        CHECK(xo_call(p, "ping", NULL, 60000, &r));
        xo_result_free(r);
        lat[cnt++] = now_ms() - s;
    }
    xo_result_t *r;
    CHECK(xo_future_wait(f, 60000, &r));
    double total = now_ms() - t0;
    xo_result_free(r);
    xo_future_free(f);
    qsort(lat, cnt, sizeof lat[0], cmp_double);
    printf("  wait=%-4s matmul %dx%dx%d: %6.1f ms alone, %6.1f ms while pinged; %6zu pings meanwhile: median %7.3f ms, "
           "max %6.1f ms\n",
           mode, n, n, n, alone, total, cnt, cnt ? lat[cnt / 2] : 0.0, cnt ? lat[cnt - 1] : 0.0);
}

/* The latency of a small kernel call (a sum of 1024 floats: copy in, kernel, copy out, wait). */
static void small_calls(const char *mode, xo_ref_t *k)
{
    setenv("XO_K_WAIT", mode, 1);
    float x[1024];
    for (int i = 0; i < 1024; i++) x[i] = 1.0f;
    enum { N = 300 };
    static double lat[N];
    for (int i = 0; i < N; i++) {
        double s = now_ms();
        xo_result_t *r;
        CHECK(xo_call(k, "sum", xo_args("b", x, sizeof x), 10000, &r));
        xo_result_free(r);
        lat[i] = now_ms() - s;
    }
    qsort(lat, N, sizeof lat[0], cmp_double);
    printf("  wait=%-4s sum of 1024 floats, %d calls: median %.3f ms, p90 %.3f ms\n", mode, N, lat[N / 2],
           lat[N * 9 / 10]);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s KERNELS_MODULE.so [matmul size]\n", argv[0]);
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 384;
    CHECK(xo_module_load(argv[1], NULL));
    xo_pool_config_t cfg = {.n_threads = 1, .device = "host:0", .device_capacity = 256u << 20};
    xo_pool_t *pool;
    CHECK(xo_pool_start(&cfg, &pool));
    xo_ref_t *k, *p;
    CHECK(xo_create_actor_by_name("Kernels", NULL, xo_pool_address(pool), "k", &k));
    CHECK(xo_create_actor(&ping_class, NULL, xo_pool_address(pool), "p", &p));
    float *a = malloc((size_t)n * n * sizeof *a);
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = (float)(i % 7) / 8.0f;
    printf("one pool, 1 scheduler thread, device host:0; a Kernels actor and a Ping actor in it\n");
    for (int rep = 0; rep < 2; rep++) {
        during_matmul("sync", k, p, n, a);
        during_matmul("poll", k, p, n, a);
    }
    small_calls("sync", k);
    small_calls("poll", k);
    small_calls("sync", k);
    small_calls("poll", k);
    free(a);
    xo_ref_free(k);
    xo_ref_free(p);
    xo_pool_stop(pool);
    return 0;
}
