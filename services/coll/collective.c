/* Collectives (include/xoscar/collective.h): joining a group, choosing its backend, and the checks every operation
 * makes before the backend runs it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/coll/coll.h"
#include "runtime/core.h"
#include "services/devbuf/devbuf.h"
#ifdef XO_HAVE_NCCL
#include "services/nccl/nccl_api.h"
#endif

#define DEFAULT_TIMEOUT_MS 60000

size_t xo_dtype_size(xo_dtype_t dt)
{
    switch (dt) {
    case XO_DTYPE_INT8:
    case XO_DTYPE_UINT8: return 1;
    case XO_DTYPE_INT32:
    case XO_DTYPE_UINT32:
    case XO_DTYPE_FLOAT32: return 4;
    case XO_DTYPE_INT64:
    case XO_DTYPE_UINT64:
    case XO_DTYPE_FLOAT64: return 8;
    }
    return 0;
}

const char *xo_coll_backend(const xo_coll_t *g) { return g ? g->backend->name : NULL; }
const char *xo_coll_last_algorithm(const xo_coll_t *g) { return g && g->last_algorithm ? g->last_algorithm : ""; }
int xo_coll_rank(const xo_coll_t *g) { return g ? g->rank : -1; }
int xo_coll_size(const xo_coll_t *g) { return g ? g->size : 0; }

xo_status_t xo__coll_fail(xo_coll_t *g, xo_status_t st, const char *fmt, ...)
{
    char text[XO_ERROR_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (g->broken == XO_OK) {
        g->broken = st;
        free(g->broken_text);
        g->broken_text = strdup(text);
    }
    return xo__error_set(st, "%s", text);
}

void xo__coll_register_classes(void)
{
    xo_register_class(&xo_coll_rendezvous_class);
    xo_register_class(&xo_coll_endpoint_class);
}

/* ---- the rendezvous ---- */

static xo_status_t open_rendezvous(xo_coll_t *g, const char *address)
{
    size_t n = strlen(g->name) + 16;
    char *uid = malloc(n);
    if (!uid) return xo__error_set(XO_ENOMEM, "out of memory");
    snprintf(uid, n, "xo.coll.rdv/%s", g->name);
    /* The first member creates it; the others find it (a create that lost the race sees XO_EEXIST). */
    xo_status_t st = xo_create_actor(&xo_coll_rendezvous_class, NULL, address, uid, &g->rendezvous);
    if (st == XO_EEXIST) st = xo_actor_ref(address, uid, &g->rendezvous);
    if (st != XO_OK) {
        char text[XO_ERROR_TEXT_MAX];
        snprintf(text, sizeof text, "%s", xo_last_error());
        st = xo__error_set(st, "collective group %s: the rendezvous at %s: %s", g->name, address, text);
    }
    free(uid);
    return st;
}

xo_status_t xo__coll_exchange(xo_coll_t *g, const void *blob, size_t len, xo_result_t **all_p)
{
    int phase = g->next_phase++;
    xo_result_t *r = NULL;
    xo_status_t st =
        xo_call(g->rendezvous, "exchange", xo_args("iiib", phase, g->rank, g->size, blob, len), g->timeout_ms, &r);
    if (st == XO_ETIMEDOUT) {
        int arrived = -1, size = 0;
        xo_result_t *a = NULL;
        if (xo_call(g->rendezvous, "arrived", NULL, 5000, &a) == XO_OK) xo_result_unpack(a, "[ii]", &arrived, &size);
        xo_result_free(a);
        return xo__error_set(st, "collective group %s: %d of %d members joined within %lld ms", g->name,
                            arrived < 0 ? 1 : arrived, g->size, (long long)g->timeout_ms);
    }
    if (st != XO_OK) {
        char text[XO_ERROR_TEXT_MAX];
        snprintf(text, sizeof text, "%s", xo_last_error());
        return xo__error_set(st, "collective group %s: joining: %s", g->name, text);
    }
    const msgpack_object *v = xo_result_value(r);
    if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size != (uint32_t)g->size) {
        xo_result_free(r);
        return xo__error_set(XO_EPROTO, "collective group %s: a malformed answer from the rendezvous", g->name);
    }
    *all_p = r;
    return XO_OK;
}

xo_status_t xo__coll_exchange_get(const xo_result_t *all, int size, int r, xo_bytes_t *blob_p)
{
    const msgpack_object *v = xo_result_value(all);
    if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size != (uint32_t)size || r < 0 || r >= size ||
        v->via.array.ptr[r].type != MSGPACK_OBJECT_BIN)
        return xo__error_set(XO_EPROTO, "a malformed answer from the rendezvous");
    blob_p->ptr = v->via.array.ptr[r].via.bin.ptr;
    blob_p->len = v->via.array.ptr[r].via.bin.size;
    return XO_OK;
}

/* ---- joining ---- */

/* The PCI bus id of the pool's CUDA device into out (XO_DEVICE_BUS_ID_MAX bytes, zeros when unknown): NCCL refuses
 * two ranks on one GPU, so members that share one must not choose it. */
static void device_bus_id(const xo_coll_t *g, char out[XO_DEVICE_BUS_ID_MAX])
{
    memset(out, 0, XO_DEVICE_BUS_ID_MAX);
    if (!g->dev || strcmp(xo_device_backend_name(xo_device_backend(g->dev)), "cuda") != 0) return;
    xo_device_info_t infos[16];
    size_t n = 0;
    int idx = xo_device_index(g->dev);
    if (xo_device_discover(xo_device_backend(g->dev), infos, 16, &n) == XO_OK && idx >= 0 && (size_t)idx < n && idx < 16)
        memcpy(out, infos[idx].pci_bus_id, XO_DEVICE_BUS_ID_MAX);
    xo__error_clear();
}

/* The join blob: capabilities (1 byte), the requested backend's length (1 byte) and name, this host's identity
 * (XO_HOST_ID_LEN bytes), the CUDA device's bus id (XO_DEVICE_BUS_ID_MAX bytes), the pool's address. */
#define JOIN_FIXED (XO_HOST_ID_LEN + XO_DEVICE_BUS_ID_MAX)
static xo_status_t join_blob(const xo_coll_t *g, const char *backend, unsigned char **blob_p, size_t *len_p)
{
    size_t bl = strlen(backend), al = strlen(g->pool->address);
    unsigned char *b = malloc(2 + bl + JOIN_FIXED + al);
    if (!b) return xo__error_set(XO_ENOMEM, "out of memory");
    unsigned caps = 0;
    const char *dev_backend = g->dev ? xo_device_backend_name(xo_device_backend(g->dev)) : "";
#ifdef XO_HAVE_NCCL
    /* Only a member whose process has the NCCL plugin can take part in an NCCL group. */
    if (strcmp(dev_backend, "cuda") == 0 && xo__nccl_api()) caps |= XO_COLL_CAN_NCCL;
#endif
    const char *shm_env = getenv("XO_COLL_SHM");
    if (strcmp(dev_backend, "host") == 0 && xo__device_ipc_allowed() && !(shm_env && strcmp(shm_env, "0") == 0))
        caps |= XO_COLL_CAN_SHM;
    b[0] = (unsigned char)caps;
    b[1] = (unsigned char)bl;
    memcpy(b + 2, backend, bl);
    memcpy(b + 2 + bl, xo__host_id(), XO_HOST_ID_LEN);
    device_bus_id(g, (char *)b + 2 + bl + XO_HOST_ID_LEN);
    memcpy(b + 2 + bl + JOIN_FIXED, g->pool->address, al);
    *blob_p = b;
    *len_p = 2 + bl + JOIN_FIXED + al;
    return XO_OK;
}

/* Reads the members' join blobs: refs to their endpoints, and the backend every member will choose alike. */
static xo_status_t meet(xo_coll_t *g, const char *requested, const xo_result_t *all, const xo_coll_backend_t **be_p)
{
    bool all_nccl = true, all_shm = true;
    int no_nccl = -1, shared_gpu_with = -1;
    for (int i = 0; i < g->size; i++) {
        xo_bytes_t b;
        xo_status_t st = xo__coll_exchange_get(all, g->size, i, &b);
        const unsigned char *p = b.ptr;
        if (st == XO_OK && (b.len < 2 || (size_t)p[1] + 2 + JOIN_FIXED > b.len))
            st = xo__error_set(XO_EPROTO, "a malformed join from rank %d", i);
        if (st != XO_OK) return st;
        size_t bl = p[1];
        if (bl != strlen(requested) || memcmp(p + 2, requested, bl) != 0)
            return xo__error_set(XO_EINVAL, "collective group %s: rank %d asked for backend \"%.*s\", rank %d for \"%s\"",
                                g->name, i, (int)bl, (const char *)p + 2, g->rank, requested);
        if (!(p[0] & XO_COLL_CAN_NCCL)) {
            all_nccl = false;
            if (no_nccl < 0) no_nccl = i;
        }
        if (!(p[0] & XO_COLL_CAN_SHM) || memcmp(p + 2 + bl, xo__host_id(), XO_HOST_ID_LEN) != 0) all_shm = false;
        char address[512];
        size_t al = b.len - 2 - bl - JOIN_FIXED;
        if (al == 0 || al >= sizeof address) return xo__error_set(XO_EPROTO, "a malformed address from rank %d", i);
        memcpy(address, p + 2 + bl + JOIN_FIXED, al);
        /* Two members on one GPU (same host, same bus id): NCCL refuses duplicate GPUs in a communicator. */
        const unsigned char *bus = p + 2 + bl + XO_HOST_ID_LEN;
        for (int k = 0; k < i && (p[0] & XO_COLL_CAN_NCCL) && bus[0]; k++) {
            xo_bytes_t o;
            if (xo__coll_exchange_get(all, g->size, k, &o) != XO_OK) continue;
            const unsigned char *q = o.ptr;
            size_t ql = q[1];
            if (o.len >= 2 + ql + JOIN_FIXED && memcmp(q + 2 + ql, p + 2 + bl, JOIN_FIXED) == 0) {
                all_nccl = false;
                if (no_nccl < 0) no_nccl = i, shared_gpu_with = k;
            }
        }
        address[al] = '\0';
        char *uid = xo__coll_endpoint_uid(g->name, i);
        /* Unchecked: a fast peer may already have finished and left by the time this member looks. */
        g->peers[i] = uid ? xo__ref_unchecked(address, uid) : NULL;
        free(uid);
        if (!g->peers[i]) return xo__error_set(XO_ENOMEM, "out of memory");
    }
    g->shm = all_shm;
    bool want_nccl = strcmp(requested, "nccl") == 0;
    if (want_nccl && !all_nccl) {
#ifdef XO_HAVE_NCCL
        /* This member on a cuda device without the plugin: its own reason is the one to give. */
        if (g->dev && strcmp(xo_device_backend_name(xo_device_backend(g->dev)), "cuda") == 0 && !xo__nccl_api()) {
            char what[300];
            snprintf(what, sizeof what, "collective group %s, backend nccl", g->name);
            return xo__nccl_missing(what);
        }
        if (shared_gpu_with >= 0)
            return xo__error_set(XO_ENOTSUP, "collective group %s: backend nccl needs one GPU per member; ranks %d and %d "
                                            "share one", g->name, shared_gpu_with, no_nccl);
        return xo__error_set(XO_ENOTSUP, "collective group %s: backend nccl needs every member on a cuda device with "
                                        "the NCCL plugin loaded; rank %d is not",
                            g->name, no_nccl);
#else
        return xo__error_set(XO_ENOTSUP, "collective group %s: this build has no NCCL", g->name);
#endif
    }
#ifdef XO_HAVE_NCCL
    if (all_nccl && strcmp(requested, "host") != 0) {
        *be_p = &xo_coll_nccl_backend;
        return XO_OK;
    }
#endif
    *be_p = &xo_coll_host_backend;
    return XO_OK;
}

/* Tells the rendezvous this member is done; the last member destroys it (so the group's name can be used again). */
static void leave_rendezvous(xo_coll_t *g)
{
    xo_result_t *r = NULL;
    bool last = false;
    if (xo_call(g->rendezvous, "leave", NULL, g->timeout_ms, &r) == XO_OK && xo_result_unpack(r, "t", &last) == XO_OK &&
        last)
        xo_destroy_actor(g->rendezvous);
    xo_result_free(r);
}

static void group_free(xo_coll_t *g)
{
    if (g->peers)
        for (int i = 0; i < g->size; i++) xo_ref_free(g->peers[i]);
    free(g->peers);
    xo_ref_free(g->rendezvous);
    pthread_mutex_destroy(&g->lock);
    free(g->broken_text);
    free(g->name);
    free(g);
}

xo_status_t xo_coll_init(const xo_coll_config_t *cfg, xo_coll_t **group_p)
{
    if (!cfg || !group_p) return xo__error_set(XO_EINVAL, "xo_coll_init needs a config and group_p");
    if (!cfg->name || !*cfg->name || strlen(cfg->name) > 200)
        return xo__error_set(XO_EINVAL, "a collective group needs a name (1 to 200 bytes)");
    if (cfg->size < 1 || cfg->rank < 0 || cfg->rank >= cfg->size)
        return xo__error_set(XO_EINVAL, "collective group %s: rank %d is not in 0..size-1 (size %d)", cfg->name,
                            cfg->rank, cfg->size);
    if (!cfg->rendezvous || !*cfg->rendezvous)
        return xo__error_set(XO_EINVAL, "collective group %s: no rendezvous address", cfg->name);
    const char *backend = cfg->backend ? cfg->backend : "auto";
    if (strcmp(backend, "auto") != 0 && strcmp(backend, "host") != 0 && strcmp(backend, "nccl") != 0)
        return xo__error_set(XO_EINVAL, "collective group %s: unknown backend \"%s\" (expected auto, host or nccl)",
                            cfg->name, backend);
    xo_ctx_t *ctx = xo_ctx_current();
    if (!ctx || !ctx->actor)
        return xo__error_set(XO_EINVAL, "collective group %s: xo_coll_init runs inside an actor method", cfg->name);

    xo_coll_t *g = calloc(1, sizeof *g);
    if (!g) return xo__error_set(XO_ENOMEM, "out of memory");
    pthread_mutex_init(&g->lock, NULL);
    g->name = strdup(cfg->name);
    g->rank = cfg->rank;
    g->size = cfg->size;
    g->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    g->pool = ctx->actor->pool;
    g->dev = g->pool->device;
    g->peers = calloc((size_t)g->size, sizeof *g->peers);
    g->backend = &xo_coll_host_backend;
    if (!g->name || !g->peers) {
        group_free(g);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    xo_status_t st = xo__coll_mailbox_open(g); /* before joining: peers may send as soon as everyone has joined */
    if (st != XO_OK) {
        group_free(g);
        return st;
    }
    st = open_rendezvous(g, cfg->rendezvous);
    unsigned char *blob = NULL;
    size_t len = 0;
    xo_result_t *all = NULL;
    if (st == XO_OK) st = join_blob(g, backend, &blob, &len);
    if (st == XO_OK) st = xo__coll_exchange(g, blob, len, &all);
    free(blob);
    const xo_coll_backend_t *be = NULL;
    if (st == XO_OK) st = meet(g, backend, all, &be);
    xo_result_free(all);
    if (st == XO_OK) {
        g->backend = be;
        st = be->init(g);
        if (st != XO_OK) {
            char text[XO_ERROR_TEXT_MAX];
            snprintf(text, sizeof text, "%s", xo_last_error());
            be->fini(g); /* what init set up before it failed */
            xo__error_set(st, "%s", text);
        }
    }
    if (st != XO_OK) {
        char text[XO_ERROR_TEXT_MAX];
        snprintf(text, sizeof text, "%s", xo_last_error());
        if (g->rendezvous) leave_rendezvous(g);
        xo__coll_mailbox_close(g);
        group_free(g);
        return xo__error_set(st, "%s", text);
    }
    *group_p = g;
    return XO_OK;
}

void xo_coll_destroy(xo_coll_t *g)
{
    if (!g) return;
    /* The caller's last error (often why it is destroying the group) survives the calls made here. */
    char saved[XO_ERROR_TEXT_MAX];
    snprintf(saved, sizeof saved, "%s", xo_last_error());
    g->backend->fini(g);
    leave_rendezvous(g);
    xo__coll_mailbox_close(g);
    group_free(g);
    xo__error_set_text(XO_OK, saved, strlen(saved));
}

/* ---- operations ---- */

/* ---- operation signatures: what every member must agree on, carried by every message of the operation ---- */

static const char *const op_names[] = {"allreduce", "broadcast", "allgather", "reduce_scatter", "reduce",
                                       "gather",    "scatter",   "alltoall",  "barrier"};
static const char *const dtype_names[] = {"int8", "uint8", "int32", "uint32", "int64", "uint64", "float32", "float64"};
static const char *const reduce_names[] = {"sum", "prod", "min", "max"};

/* kind+1 (8 bits), dtype (8), reduce op+1 (8; 0: none), root+1 (32; 0: none). */
static uint64_t op_sig(const char *what, xo_dtype_t dt, int op, int root)
{
    uint64_t kind = 0;
    for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
        if (!strcmp(what, op_names[i])) kind = i + 1;
    return kind << 56 | (uint64_t)(dt & 0xff) << 48 | (uint64_t)((op + 1) & 0xff) << 40 | (uint32_t)(root + 1);
}

void xo__coll_sig_text(uint64_t sig, char *buf, size_t len)
{
    size_t kind = (size_t)(sig >> 56), dt = (size_t)(sig >> 48 & 0xff), op = (size_t)(sig >> 40 & 0xff);
    uint32_t root = (uint32_t)sig;
    const char *name = kind >= 1 && kind <= sizeof op_names / sizeof op_names[0] ? op_names[kind - 1] : "?";
    int w = snprintf(buf, len, "%s(%s", name, dt < sizeof dtype_names / sizeof dtype_names[0] ? dtype_names[dt] : "?");
    if (w >= 0 && (size_t)w < len && op)
        w += snprintf(buf + w, len - (size_t)w, ", %s", op <= 4 ? reduce_names[op - 1] : "?");
    if (w >= 0 && (size_t)w < len && root) w += snprintf(buf + w, len - (size_t)w, ", root %u", root - 1);
    if (w >= 0 && (size_t)w < len) snprintf(buf + w, len - (size_t)w, ")");
}

/* The checks every operation makes; on XO_OK the caller runs it and then calls end_op. op and root: -1 where the
 * operation has none. */
static xo_status_t begin_op(xo_coll_t *g, const char *what, xo_dtype_t dt, int op, int root)
{
    if (!g) return xo__error_set(XO_EINVAL, "%s: no group", what);
    xo_ctx_t *ctx = xo_ctx_current();
    if (!ctx || !ctx->actor || ctx->actor->pool != g->pool)
        return xo__error_set(XO_EINVAL, "%s on group %s: must run inside an actor method of the pool that joined it",
                            what, g->name);
    if (xo_dtype_size(dt) == 0) return xo__error_set(XO_EINVAL, "%s on group %s: unknown data type %d", what, g->name, dt);
    if (g->broken != XO_OK)
        return xo__error_set(g->broken, "group %s is broken by an earlier failure: %s", g->name,
                            g->broken_text ? g->broken_text : xo_strerror(g->broken));
    if (atomic_exchange(&g->busy, true))
        return xo__error_set(XO_EINVAL, "%s on group %s: another operation of this member is running", what, g->name);
    pthread_mutex_lock(&g->lock); /* the endpoint compares arriving messages with these */
    g->seq++;
    g->sig = op_sig(what, dt, op, root);
    g->op_error = XO_OK;
    pthread_mutex_unlock(&g->lock);
    return XO_OK;
}

static xo_status_t end_op(xo_coll_t *g, const char *what, xo_status_t st)
{
    if (st != XO_OK && g->broken == XO_OK) { /* a backend failure not recorded yet */
        char text[XO_ERROR_TEXT_MAX];
        snprintf(text, sizeof text, "%s", xo_last_error());
        xo__coll_fail(g, st, "%s on group %s: %s", what, g->name, text);
    }
    atomic_store(&g->busy, false);
    return st;
}

/* A root out of range is an argument error (below: this member's alone); g NULL is begin_op's to report. */
static xo_status_t check_root(const xo_coll_t *g, const char *what, int root)
{
    if (g && (root < 0 || root >= g->size))
        return xo__error_set(XO_EINVAL, "%s: root %d is not a rank of group %s (size %d)", what, root, g->name, g->size);
    return XO_OK;
}

static bool bad_op(xo_reduce_op_t op) { return op < XO_REDUCE_SUM || op > XO_REDUCE_MAX; }

/* Argument errors are this member's alone: returned before the operation starts, the group stays as it was (the other
 * members, which did start it, time out). */
xo_status_t xo_coll_allreduce(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                              xo_reduce_op_t op)
{
    if (bad_op(op)) return xo__error_set(XO_EINVAL, "allreduce: unknown operation %d", op);
    if (count && (!send || !recv)) return xo__error_set(XO_EINVAL, "allreduce: NULL buffer");
    xo_status_t st = begin_op(g, "allreduce", dt, (int)op, -1);
    if (st != XO_OK) return st;
    if (count) st = g->backend->allreduce(g, send, recv, count, dt, op);
    return end_op(g, "allreduce", st);
}

xo_status_t xo_coll_broadcast(xo_coll_t *g, void *buf, size_t count, xo_dtype_t dt, int root)
{
    if (check_root(g, "broadcast", root) != XO_OK) return XO_EINVAL;
    if (count && !buf) return xo__error_set(XO_EINVAL, "broadcast: NULL buffer");
    xo_status_t st = begin_op(g, "broadcast", dt, -1, root);
    if (st != XO_OK) return st;
    if (count) st = g->backend->broadcast(g, buf, count, dt, root);
    return end_op(g, "broadcast", st);
}

xo_status_t xo_coll_allgather(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt)
{
    if (count && (!send || !recv)) return xo__error_set(XO_EINVAL, "allgather: NULL buffer");
    xo_status_t st = begin_op(g, "allgather", dt, -1, -1);
    if (st != XO_OK) return st;
    if (count) st = g->backend->allgather(g, send, recv, count, dt);
    return end_op(g, "allgather", st);
}

xo_status_t xo_coll_reduce_scatter(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                   xo_reduce_op_t op)
{
    if (bad_op(op)) return xo__error_set(XO_EINVAL, "reduce_scatter: unknown operation %d", op);
    if (count && (!send || !recv)) return xo__error_set(XO_EINVAL, "reduce_scatter: NULL buffer");
    xo_status_t st = begin_op(g, "reduce_scatter", dt, (int)op, -1);
    if (st != XO_OK) return st;
    if (count) st = g->backend->reduce_scatter(g, send, recv, count, dt, op);
    return end_op(g, "reduce_scatter", st);
}

xo_status_t xo_coll_reduce(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt, xo_reduce_op_t op,
                           int root)
{
    if (bad_op(op)) return xo__error_set(XO_EINVAL, "reduce: unknown operation %d", op);
    if (check_root(g, "reduce", root) != XO_OK) return XO_EINVAL;
    if (count && (!send || (g && g->rank == root && !recv))) return xo__error_set(XO_EINVAL, "reduce: NULL buffer");
    xo_status_t st = begin_op(g, "reduce", dt, (int)op, root);
    if (st != XO_OK) return st;
    if (count) st = g->backend->reduce(g, send, recv, count, dt, op, root);
    return end_op(g, "reduce", st);
}

xo_status_t xo_coll_gather(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt, int root)
{
    if (check_root(g, "gather", root) != XO_OK) return XO_EINVAL;
    if (count && (!send || (g && g->rank == root && !recv))) return xo__error_set(XO_EINVAL, "gather: NULL buffer");
    xo_status_t st = begin_op(g, "gather", dt, -1, root);
    if (st != XO_OK) return st;
    if (count) st = g->backend->gather(g, send, recv, count, dt, root);
    return end_op(g, "gather", st);
}

xo_status_t xo_coll_scatter(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt, int root)
{
    if (check_root(g, "scatter", root) != XO_OK) return XO_EINVAL;
    if (count && (!recv || (g && g->rank == root && !send))) return xo__error_set(XO_EINVAL, "scatter: NULL buffer");
    xo_status_t st = begin_op(g, "scatter", dt, -1, root);
    if (st != XO_OK) return st;
    if (count) st = g->backend->scatter(g, send, recv, count, dt, root);
    return end_op(g, "scatter", st);
}

xo_status_t xo_coll_alltoall(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt)
{
    if (count && (!send || !recv)) return xo__error_set(XO_EINVAL, "alltoall: NULL buffer");
    xo_status_t st = begin_op(g, "alltoall", dt, -1, -1);
    if (st != XO_OK) return st;
    if (count) st = g->backend->alltoall(g, send, recv, count, dt);
    return end_op(g, "alltoall", st);
}

/* Over the mailbox whatever the backend (NCCL has no barrier; every group has its endpoints). */
xo_status_t xo_coll_barrier(xo_coll_t *g)
{
    xo_status_t st = begin_op(g, "barrier", XO_DTYPE_UINT8, -1, -1);
    if (st != XO_OK) return st;
    g->last_algorithm = "direct";
    xo_coll_sends_t sends = {0};
    st = xo__coll_barrier_round(g, &sends, 0);
    if (st == XO_OK) st = xo__coll_sends_wait(g, &sends);
    xo__coll_sends_free(&sends);
    return end_op(g, "barrier", st);
}
