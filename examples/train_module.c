/* Data-parallel training with collectives: an actor module for examples/train_client.
 *
 *   Trainer.train(rank, size, rendezvous, group, steps, lr, seed) -> [first mse, last mse, |w - w*|, backend, ms]
 *
 * Every trainer holds its own shard of a linear-regression problem (y = X w* + noise, 4096 rows of 16 features,
 * generated from the seed and its rank) and runs full-batch gradient descent on the same weights w. Each step it
 * computes its shard's gradient and squared error, puts them in one buffer on its pool's device and averages that
 * buffer over the group with xo_coll_allreduce (NCCL between GPUs, the runtime's host backend otherwise), so every
 * trainer takes the same step. The gradient arithmetic runs on the CPU; the allreduce runs on the device buffer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xoscar/collective.h"
#include "xoscar/device_buf.h"
#include "xoscar/module.h"

#define FEATURES 16
#define ROWS 4096

/* A small deterministic generator (the shard depends on seed and rank only). */
static double uniform(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / (double)(1ull << 53) * 2.0 - 1.0; /* [-1, 1) */
}

static double true_w(int j) { return 0.5 * sin((double)j + 1.0); }

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef struct shard {
    double x[ROWS][FEATURES];
    double y[ROWS];
} shard_t;

static void make_shard(shard_t *d, int64_t seed, int rank)
{
    uint64_t s = (uint64_t)seed * 1000003u + (uint64_t)rank + 1u;
    for (int i = 0; i < ROWS; i++) {
        double y = 0;
        for (int j = 0; j < FEATURES; j++) {
            d->x[i][j] = uniform(&s);
            y += d->x[i][j] * true_w(j);
        }
        d->y[i] = y + 0.01 * uniform(&s);
    }
}

/* g[0..FEATURES) = sum over rows of 2 (x.w - y) x / total_rows, g[FEATURES] = sum of (x.w - y)^2 / total_rows. */
static void local_gradient(const shard_t *d, const double *w, double total_rows, double *g)
{
    memset(g, 0, (FEATURES + 1) * sizeof *g);
    for (int i = 0; i < ROWS; i++) {
        double r = -d->y[i];
        for (int j = 0; j < FEATURES; j++) r += d->x[i][j] * w[j];
        for (int j = 0; j < FEATURES; j++) g[j] += 2.0 * r * d->x[i][j] / total_rows;
        g[FEATURES] += r * r / total_rows;
    }
}

static xo_status_t fail(xo_ctx_t *ctx, xo_status_t st, const char *what)
{
    char text[512]; /* copied first: the ctx's error text and xo_last_error() may be one buffer */
    snprintf(text, sizeof text, "%s", xo_last_error());
    return xo_ctx_error(ctx, st, "%s: %s", what, text);
}

static xo_status_t trainer_train(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)state;
    int rank, size, steps;
    xo_str_t rdv, group;
    double lr;
    int64_t seed;
    xo_status_t st = xo_unpack(args, "iissidl", &rank, &size, &rdv, &group, &steps, &lr, &seed);
    if (st != XO_OK) return st;
    if (size < 1 || rank < 0 || rank >= size || steps < 1 || rdv.len >= 256 || group.len >= 128)
        return xo_ctx_error(ctx, XO_EBADARGS, "train: bad rank, size, steps or names");
    xo_device_t *dev = xo_ctx_device(ctx);
    if (!dev) return xo_ctx_error(ctx, XO_EINVAL, "train: pool %s owns no device", xo_ctx_address(ctx));
    char rdv_c[256], group_c[128];
    snprintf(rdv_c, sizeof rdv_c, "%.*s", (int)rdv.len, rdv.ptr);
    snprintf(group_c, sizeof group_c, "%.*s", (int)group.len, group.ptr);

    shard_t *d = malloc(sizeof *d);
    if (!d) return xo_ctx_error(ctx, XO_ENOMEM, "out of memory for the shard");
    make_shard(d, seed, rank);
    double w[FEATURES] = {0}, g[FEATURES + 1], first_mse = -1, mse = -1;
    void *buf = NULL;
    xo_coll_t *coll = NULL;
    xo_coll_config_t cfg = {.name = group_c, .rank = rank, .size = size, .rendezvous = rdv_c};
    double t0 = now_ms();
    if ((st = xo_device_alloc(dev, sizeof g, &buf)) != XO_OK) st = fail(ctx, st, "allocating the gradient");
    if (st == XO_OK && (st = xo_coll_init(&cfg, &coll)) != XO_OK) st = fail(ctx, st, "joining the group");
    for (int step = 0; st == XO_OK && step < steps; step++) {
        local_gradient(d, w, (double)ROWS * size, g);
        st = xo_device_memcpy(dev, buf, g, sizeof g, XO_MEMCPY_HOST_TO_DEVICE, NULL);
        if (st == XO_OK) st = xo_coll_allreduce(coll, buf, buf, FEATURES + 1, XO_DTYPE_FLOAT64, XO_REDUCE_SUM);
        if (st == XO_OK) st = xo_device_memcpy(dev, g, buf, sizeof g, XO_MEMCPY_DEVICE_TO_HOST, NULL);
        if (st != XO_OK) {
            st = fail(ctx, st, "averaging the gradient");
            break;
        }
        mse = g[FEATURES]; /* of the weights before this step, over every trainer's rows */
        if (step == 0) first_mse = mse;
        for (int j = 0; j < FEATURES; j++) w[j] -= lr * g[j];
    }
    double err = 0;
    for (int j = 0; j < FEATURES; j++) err += (w[j] - true_w(j)) * (w[j] - true_w(j));
    if (st == XO_OK) st = xo_pack(out, "[dddsd]", first_mse, mse, sqrt(err), xo_coll_backend(coll), now_ms() - t0);
    xo_coll_destroy(coll);
    if (buf) xo_device_free(dev, buf);
    free(d);
    return st;
}

static const xo_method_t trainer_methods[] = {{.name = "train", .fn = trainer_train}};
static const xo_actor_class_t trainer_class = {
    .abi_version = XO_CLASS_ABI_V1, .name = "Trainer", .methods = trainer_methods, .n_methods = 1};

XO_MODULE_DEFINE("train", &trainer_class);
