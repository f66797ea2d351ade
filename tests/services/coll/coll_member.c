/* CollMember: an actor that is one member of a collective group, for the collectives tests. Built into the test
 * executable (in-process groups) and into the xo_test_coll module (members in sub pool processes).
 *
 *   run(name, rank, size, rendezvous, backend, op, dtype, reduce_op, root, repeat, timeout_ms, input)
 *       -> [backend chosen, output bytes, algorithm of the last operation]
 *     Joins the group, copies input (bin) into a buffer on the pool's device (host memory when the pool has none),
 *     runs op ("allreduce", "broadcast", "allgather", "reduce_scatter": the input is size blocks, "barrier")
 *     `repeat` times on it, and returns the output buffer's bytes.
 *     op "allreduce_inplace" allreduces the buffer onto itself; op "join" only joins and leaves. The output of
 *     allgather is size times the input.
 *     Rooted ops ("reduce", "gather": the input is count elements; "scatter": size blocks, read on root only) return
 *     root's output and nothing elsewhere; members off root pass NULL for the buffer they do not use. Their
 *     "_inplace" forms give root's recv as send (reduce), send as root's block of recv (gather) and recv as root's
 *     block of send (scatter). "alltoall": the input is size blocks, so is the output.
 *
 *   check(name, rank, size, rendezvous, op, count) -> [matches the CPU reference, algorithm]
 *     For callers that cannot build inputs (the xoscar CLI in the multi-host test): member r's input is
 *     coll_input(r, i) (below), op is "allreduce" (sum of int64) or "allgather"; the member computes the expected
 *     output itself and compares. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll_member.h"
#include "xoscar/collective.h"
#include "xoscar/device_buf.h"

/* A buffer on the pool's device, or host memory. */
static xo_status_t buf_alloc(xo_device_t *dev, size_t n, void **p)
{
    if (dev) return xo_device_alloc(dev, n ? n : 1, p);
    *p = malloc(n ? n : 1);
    return *p ? XO_OK : XO_ENOMEM;
}

static void buf_free(xo_device_t *dev, void *p)
{
    if (!p) return;
    if (dev) xo_device_free(dev, p);
    else free(p);
}

static xo_status_t buf_copy(xo_device_t *dev, void *dst, const void *src, size_t n, xo_memcpy_kind_t kind)
{
    if (dev) return xo_device_memcpy(dev, dst, src, n, kind, NULL);
    memcpy(dst, src, n);
    return XO_OK;
}

static char *dup_str(xo_str_t s)
{
    char *c = malloc(s.len + 1);
    if (c) {
        memcpy(c, s.ptr, s.len);
        c[s.len] = '\0';
    }
    return c;
}

static xo_status_t member_run(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)state;
    xo_str_t name, rdv, backend, op;
    int rank, size, dtype, rop, root, repeat;
    int64_t timeout_ms;
    xo_bytes_t input;
    xo_status_t st = xo_unpack(args, "siisssiiiilb", &name, &rank, &size, &rdv, &backend, &op, &dtype, &rop, &root,
                               &repeat, &timeout_ms, &input);
    if (st != XO_OK) return st;
    char *name_c = dup_str(name), *rdv_c = dup_str(rdv), *backend_c = dup_str(backend);
    xo_coll_config_t cfg = {.name = name_c, .rank = rank, .size = size, .rendezvous = rdv_c, .backend = backend_c,
                            .timeout_ms = timeout_ms};
    xo_coll_t *g = NULL;
    xo_device_t *dev = xo_ctx_device(ctx);
    void *in = NULL, *res = NULL, *host = NULL;
    size_t es = xo_dtype_size((xo_dtype_t)dtype), count = es ? input.len / es : 0;
    size_t n = (size_t)(size > 0 ? size : 1), block = input.len / n;
    bool is_root = rank == root;
    bool rooted = xo_str_eq(op, "reduce") || xo_str_eq(op, "reduce_inplace") || xo_str_eq(op, "gather") ||
                  xo_str_eq(op, "gather_inplace") || xo_str_eq(op, "scatter") || xo_str_eq(op, "scatter_inplace");
    bool gather = xo_str_eq(op, "gather") || xo_str_eq(op, "gather_inplace");
    bool scatter = xo_str_eq(op, "scatter") || xo_str_eq(op, "scatter_inplace");
    size_t out_len = xo_str_eq(op, "allgather") || gather ? input.len * n
                     : xo_str_eq(op, "reduce_scatter")    ? block
                                                          : input.len;
    size_t out_off = 0; /* where the output starts in res */
    size_t res_len = out_len;
    if (scatter) {
        out_len = block, res_len = input.len;
        out_off = xo_str_eq(op, "scatter_inplace") && is_root ? block * (size_t)root : 0;
    }
    bool no_output = xo_str_eq(op, "join") || xo_str_eq(op, "barrier") || (rooted && !is_root && !scatter);
    if (!name_c || !rdv_c || !backend_c) st = XO_ENOMEM;
    if (st == XO_OK) st = xo_coll_init(&cfg, &g);
    if (st == XO_OK) st = buf_alloc(dev, input.len, &in);
    if (st == XO_OK) st = buf_alloc(dev, res_len, &res);
    if (st == XO_OK) st = buf_copy(dev, in, input.ptr, input.len, XO_MEMCPY_HOST_TO_DEVICE);
    for (int i = 0; st == XO_OK && i < repeat && !xo_str_eq(op, "join"); i++) {
        if (xo_str_eq(op, "allreduce")) {
            st = xo_coll_allreduce(g, in, res, count, (xo_dtype_t)dtype, (xo_reduce_op_t)rop);
        } else if (xo_str_eq(op, "allreduce_inplace")) {
            st = buf_copy(dev, res, in, input.len, XO_MEMCPY_DEVICE_TO_DEVICE);
            if (st == XO_OK) st = xo_coll_allreduce(g, res, res, count, (xo_dtype_t)dtype, (xo_reduce_op_t)rop);
        } else if (xo_str_eq(op, "broadcast")) {
            st = buf_copy(dev, res, in, input.len, XO_MEMCPY_DEVICE_TO_DEVICE);
            if (st == XO_OK) st = xo_coll_broadcast(g, res, count, (xo_dtype_t)dtype, root);
        } else if (xo_str_eq(op, "allgather")) {
            st = xo_coll_allgather(g, in, res, count, (xo_dtype_t)dtype);
        } else if (xo_str_eq(op, "reduce_scatter")) {
            st = xo_coll_reduce_scatter(g, in, res, count / (size_t)size, (xo_dtype_t)dtype, (xo_reduce_op_t)rop);
        } else if (xo_str_eq(op, "reduce")) {
            st = xo_coll_reduce(g, in, is_root ? res : NULL, count, (xo_dtype_t)dtype, (xo_reduce_op_t)rop, root);
        } else if (xo_str_eq(op, "reduce_inplace")) {
            st = is_root ? buf_copy(dev, res, in, input.len, XO_MEMCPY_DEVICE_TO_DEVICE) : XO_OK;
            void *send = is_root ? res : in;
            if (st == XO_OK)
                st = xo_coll_reduce(g, send, is_root ? res : NULL, count, (xo_dtype_t)dtype, (xo_reduce_op_t)rop, root);
        } else if (xo_str_eq(op, "gather")) {
            st = xo_coll_gather(g, in, is_root ? res : NULL, count, (xo_dtype_t)dtype, root);
        } else if (xo_str_eq(op, "gather_inplace")) {
            char *mine = (char *)res + input.len * (size_t)root;
            st = is_root ? buf_copy(dev, mine, in, input.len, XO_MEMCPY_DEVICE_TO_DEVICE) : XO_OK;
            if (st == XO_OK) st = xo_coll_gather(g, is_root ? mine : in, is_root ? res : NULL, count, (xo_dtype_t)dtype, root);
        } else if (xo_str_eq(op, "scatter")) {
            st = xo_coll_scatter(g, is_root ? in : NULL, res, count / n, (xo_dtype_t)dtype, root);
        } else if (xo_str_eq(op, "scatter_inplace")) {
            /* root: send is res (a copy of the input), recv is its own block of it; others receive at res. */
            st = is_root ? buf_copy(dev, res, in, input.len, XO_MEMCPY_DEVICE_TO_DEVICE) : XO_OK;
            char *recv = (char *)res + (is_root ? block * (size_t)root : 0);
            if (st == XO_OK) st = xo_coll_scatter(g, is_root ? res : NULL, recv, count / n, (xo_dtype_t)dtype, root);
        } else if (xo_str_eq(op, "alltoall")) {
            st = xo_coll_alltoall(g, in, res, count / n, (xo_dtype_t)dtype);
        } else if (xo_str_eq(op, "barrier")) {
            st = xo_coll_barrier(g);
        } else {
            st = xo_ctx_error(ctx, XO_EBADARGS, "unknown op %.*s", (int)op.len, op.ptr);
        }
    }
    if (st == XO_OK && (host = malloc(out_len ? out_len : 1)) == NULL) st = XO_ENOMEM;
    if (st == XO_OK && !no_output)
        st = buf_copy(dev, host, (char *)res + out_off, out_len, XO_MEMCPY_DEVICE_TO_HOST);
    if (st == XO_OK) {
        msgpack_pack_array(out, 3);
        xo_pack(out, "s", xo_coll_backend(g));
        msgpack_pack_bin(out, no_output ? 0 : out_len);
        msgpack_pack_bin_body(out, host, no_output ? 0 : out_len);
        xo_pack(out, "s", xo_coll_last_algorithm(g));
    } else { /* copied first: the ctx's error text and xo_last_error() may be the same buffer */
        char text[512];
        snprintf(text, sizeof text, "%s", xo_last_error());
        st = xo_ctx_error(ctx, st, "%s", text);
    }
    free(host);
    buf_free(dev, in);
    buf_free(dev, res);
    xo_coll_destroy(g);
    free(name_c), free(rdv_c), free(backend_c);
    return st;
}

/* mem_used() -> bytes in use on the pool's device (0 without one): the tests check that collectives leak nothing. */
static xo_status_t member_mem_used(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)state, (void)args;
    xo_device_t *dev = xo_ctx_device(ctx);
    xo_device_mem_info_t mi = {0};
    if (dev && xo_device_mem_info(dev, &mi) != XO_OK) return xo_ctx_error(ctx, XO_EDEVICE, "%s", xo_last_error());
    return xo_pack(out, "u", mi.used);
}

static int64_t coll_input(int r, size_t i) { return (int64_t)(r + 1) * 1000 + (int64_t)(i % 97) - 40; }

static xo_status_t member_check(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)state;
    xo_str_t name, rdv, op;
    int rank, size;
    int64_t count;
    xo_status_t st = xo_unpack(args, "siissl", &name, &rank, &size, &rdv, &op, &count);
    if (st != XO_OK) return st;
    bool gather = xo_str_eq(op, "allgather");
    if (count < 1 || count > (1 << 24) || size < 1 || (!gather && !xo_str_eq(op, "allreduce")))
        return xo_ctx_error(ctx, XO_EBADARGS, "check: op allreduce or allgather, 1 <= count <= 2^24");
    size_t n = (size_t)count, out_n = gather ? n * (size_t)size : n;
    int64_t *in = malloc(n * sizeof *in), *res = malloc(out_n * sizeof *res);
    char *name_c = dup_str(name), *rdv_c = dup_str(rdv);
    xo_device_t *dev = xo_ctx_device(ctx);
    void *din = NULL, *dres = NULL;
    xo_coll_t *g = NULL;
    if (!in || !res || !name_c || !rdv_c) st = xo_ctx_error(ctx, XO_ENOMEM, "out of memory");
    for (size_t i = 0; st == XO_OK && i < n; i++) in[i] = coll_input(rank, i);
    xo_coll_config_t cfg = {.name = name_c, .rank = rank, .size = size, .rendezvous = rdv_c};
    if (st == XO_OK) st = buf_alloc(dev, n * sizeof *in, &din);
    if (st == XO_OK) st = buf_alloc(dev, out_n * sizeof *res, &dres);
    if (st == XO_OK) st = buf_copy(dev, din, in, n * sizeof *in, XO_MEMCPY_HOST_TO_DEVICE);
    if (st == XO_OK) st = xo_coll_init(&cfg, &g);
    if (st == XO_OK)
        st = gather ? xo_coll_allgather(g, din, dres, n, XO_DTYPE_INT64)
                    : xo_coll_allreduce(g, din, dres, n, XO_DTYPE_INT64, XO_REDUCE_SUM);
    if (st == XO_OK) st = buf_copy(dev, res, dres, out_n * sizeof *res, XO_MEMCPY_DEVICE_TO_HOST);
    bool ok = st == XO_OK;
    for (size_t i = 0; ok && i < out_n; i++) {
        int64_t want = 0;
        if (gather) want = coll_input((int)(i / n), i % n);
        else
            for (int r = 0; r < size; r++) want += coll_input(r, i);
        ok = res[i] == want;
    }
    if (st == XO_OK) st = xo_pack(out, "[ts]", ok, xo_coll_last_algorithm(g));
    else {
        char text[512];
        snprintf(text, sizeof text, "%s", xo_last_error());
        st = xo_ctx_error(ctx, st, "%s", text);
    }
    xo_coll_destroy(g);
    buf_free(dev, din);
    buf_free(dev, dres);
    free(in), free(res), free(name_c), free(rdv_c);
    return st;
}

static const xo_method_t member_methods[] = {
    {.name = "run", .fn = member_run},
    {.name = "check", .fn = member_check},
    {.name = "mem_used", .fn = member_mem_used},
};

const xo_actor_class_t xo_test_coll_member_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .name = "CollMember",
    .methods = member_methods,
    .n_methods = 3,
};
