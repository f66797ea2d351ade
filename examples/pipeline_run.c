/* The pipeline's client side: run it, print where each stage ran, check against the CPU. */
#include "pipeline_run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints the failed call and returns 1. */
static int failed(const char *what, xo_status_t st)
{
    fprintf(stderr, "%s: %s: %s\n", what, xo_status_name(st), xo_last_error());
    return 1;
}

int pipeline_run(xo_ref_t *producer, const char *main_address, const char *transform_uid, const char *reduce_uid,
                 int64_t n, double a)
{
    xo_result_t *r;
    xo_status_t st =
        xo_call(producer, "run", xo_args("ldsss", n, a, main_address, transform_uid, reduce_uid), 60000, &r);
    if (st != XO_OK) return failed("Producer.run", st);
    double sum;
    xo_str_t p[3], d[3];
    st = xo_result_unpack(r, "[dssssss]", &sum, &p[0], &d[0], &p[1], &d[1], &p[2], &d[2]);
    if (st != XO_OK) {
        xo_result_free(r);
        return failed("Producer.run's result", st);
    }
    /* The CPU reference: x[i] = i % 1000, y[i] = 1, y = a*x + y in float, then the sum (in double). */
    double ref = 0;
    for (int64_t i = 0; i < n; i++) ref += (double)((float)a * (float)(i % 1000) + 1.0f);
    printf("pipeline over %lld floats (x[i] = i %% 1000, y = 1): produce, y = %g*x + y, sum\n", (long long)n, a);
    const char *stage[3] = {"produced", "transformed", "reduced"};
    for (int i = 0; i < 3; i++)
        printf("  %-11s in pool %.*s on %.*s\n", stage[i], (int)p[i].len, p[i].ptr, (int)d[i].len, d[i].ptr);
    /* The device sums in float (CUDA: a tree of partial sums; host: in double, rounded to float at the end):
     * a relative error of a few float roundings. */
    bool ok = fabs(sum - ref) <= 1e-5 * fabs(ref);
    printf("  sum %.9g, CPU reference %.9g: %s\n", sum, ref, ok ? "match" : "MISMATCH");
    xo_result_free(r);
    return ok ? 0 : 1;
}

/* Calls ref.method(args) and returns its result (the caller frees it), or NULL with the error printed. */
static xo_result_t *call(xo_ref_t *ref, const char *method, xo_args_t *args)
{
    xo_result_t *r = NULL;
    xo_status_t st = xo_call(ref, method, args, 60000, &r);
    if (st != XO_OK) {
        char what[128];
        snprintf(what, sizeof what, "Kernels.%s in %s", method, xo_ref_address(ref));
        failed(what, st);
        return NULL;
    }
    return r;
}

int pipeline_kernels_saxpy_check(xo_ref_t *const kernels[3], int64_t n, double a)
{
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    xo_result_t *rx = NULL, *ry = NULL, *rs = NULL, *rsum = NULL;
    const msgpack_object *dx, *dy;
    double sum = 0, ref = 0;
    int rc = 1;
    if (!x || !y) goto out;
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)(i % 1000);
        y[i] = 1.0f;
        ref += (double)((float)a * x[i] + 1.0f);
    }
    if (!(rx = call(kernels[0], "upload", xo_args("b", x, (size_t)n * sizeof *x)))) goto out;
    if (!(ry = call(kernels[0], "upload", xo_args("b", y, (size_t)n * sizeof *y)))) goto out;
    if (xo_result_unpack(rx, "o", &dx) != XO_OK || xo_result_unpack(ry, "o", &dy) != XO_OK) goto out;
    if (!(rs = call(kernels[1], "saxpy_buf", xo_args("doo", a, dx, dy)))) goto out;  /* y = a x + y, in place */
    if (!(rsum = call(kernels[2], "sum_buf", xo_args("o", dy)))) goto out;
    if (xo_result_unpack(rsum, "d", &sum) != XO_OK) goto out;
    bool ok = fabs(sum - ref) <= 1e-5 * fabs(ref);
    printf("Kernels on device buffers: x, y uploaded in %s, y = %g*x + y in %s (saxpy_buf), summed in %s (sum_buf): "
           "%.9g, CPU %.9g: %s\n",
           xo_ref_address(kernels[0]), a, xo_ref_address(kernels[1]), xo_ref_address(kernels[2]), sum, ref,
           ok ? "match" : "MISMATCH");
    rc = ok ? 0 : 1;
out:
    if (rx && xo_result_unpack(rx, "o", &dx) == XO_OK) xo_result_free(call(kernels[0], "release", xo_args("o", dx)));
    if (ry && xo_result_unpack(ry, "o", &dy) == XO_OK) xo_result_free(call(kernels[0], "release", xo_args("o", dy)));
    xo_result_free(rx);
    xo_result_free(ry);
    xo_result_free(rs);
    xo_result_free(rsum);
    free(x);
    free(y);
    return rc;
}

int pipeline_matmul_check(xo_ref_t *const kernels[3], int m, int k, int n)
{
    size_t na = (size_t)m * k, nb = (size_t)k * n, nc = (size_t)m * n;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b);
    double *ref = calloc(nc, sizeof *ref);
    int rc = 1;
    xo_result_t *ra = NULL, *rb = NULL, *rc_buf = NULL, *rd = NULL;
    const msgpack_object *da, *db, *dc;
    xo_bytes_t c;
    if (!a || !b || !ref) goto out;
    for (size_t i = 0; i < na; i++) a[i] = (float)((int)(i * 7 % 13) - 6) / 8.0f;
    for (size_t i = 0; i < nb; i++) b[i] = (float)((int)(i * 5 % 11) - 5) / 8.0f;
    for (int i = 0; i < m; i++)
        for (int kk = 0; kk < k; kk++)
            for (int j = 0; j < n; j++) ref[(size_t)i * n + j] += (double)a[(size_t)i * k + kk] * b[(size_t)kk * n + j];

    /* A and B on the first pool's device; C = A B on the second's, from the buffers lent across processes. */
    if (!(ra = call(kernels[0], "upload", xo_args("b", a, na * sizeof *a)))) goto out;
    if (!(rb = call(kernels[0], "upload", xo_args("b", b, nb * sizeof *b)))) goto out;
    if (xo_result_unpack(ra, "o", &da) != XO_OK || xo_result_unpack(rb, "o", &db) != XO_OK) goto out;
    if (!(rc_buf = call(kernels[1], "matmul_buf", xo_args("iiioo", m, k, n, da, db)))) goto out;
    if (xo_result_unpack(rc_buf, "o", &dc) != XO_OK) goto out;
    /* C read back in the third pool (an import of the second pool's memory there). */
    if (!(rd = call(kernels[2], "download", xo_args("o", dc)))) goto out;
    if (xo_result_unpack(rd, "b", &c) != XO_OK || c.len != nc * sizeof(float)) {
        fprintf(stderr, "Kernels.download: %zu bytes, want %zu\n", c.len, nc * sizeof(float));
        goto out;
    }
    size_t bad = 0;
    for (size_t i = 0; i < nc; i++) {
        float v;
        memcpy(&v, (const char *)c.ptr + i * sizeof v, sizeof v);
        if ((double)v != ref[i] && bad++ == 0)
            fprintf(stderr, "matmul: C[%zu][%zu] = %.9g, CPU %.9g\n", i / n, i % n, v, ref[i]);
    }
    printf("matmul %dx%d by %dx%d (tiled): A, B uploaded in %s, C = A B in %s, read back in %s: %s\n", m, k, k, n,
           xo_ref_address(kernels[0]), xo_ref_address(kernels[1]), xo_ref_address(kernels[2]),
           bad ? "MISMATCH" : "equal to the CPU's, exactly");
    rc = bad ? 1 : 0;
out:
    /* Each buffer goes back to the actor that owns it (the lend rule: only the owner frees). */
    if (rc_buf && xo_result_unpack(rc_buf, "o", &dc) == XO_OK) xo_result_free(call(kernels[1], "release", xo_args("o", dc)));
    if (ra && xo_result_unpack(ra, "o", &da) == XO_OK) xo_result_free(call(kernels[0], "release", xo_args("o", da)));
    if (rb && xo_result_unpack(rb, "o", &db) == XO_OK) xo_result_free(call(kernels[0], "release", xo_args("o", db)));
    xo_result_free(ra);
    xo_result_free(rb);
    xo_result_free(rc_buf);
    xo_result_free(rd);
    free(a);
    free(b);
    free(ref);
    return rc;
}
