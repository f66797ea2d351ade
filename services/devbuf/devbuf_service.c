/* The owner side of device buffers across hosts (services/devbuf/devbuf.h): the "xo.devbuf" service actor, which copies a
 * lent range of its pool's device into a reply, and the tokens that say which ranges were lent.
 *
 * Why a token: any pool that knows the cluster secret may call this service, and a device pointer is easy to
 * guess. A descriptor carries HMAC(key of this process, address, ptr, size); the service recomputes it, so a peer
 * reads only ranges it was lent (and, within the lend rule, only while they are lent: a range read after the owner
 * freed it fails in the device layer, unless the owner has since allocated the same addresses again, which the lend
 * rule makes the peer's bug, not a leak to strangers). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "services/devbuf/devbuf.h"
#include "base/log.h"

/* ---- tokens ---------------------------------------------------------------------------------------------------- */

static unsigned char token_key[32];
static bool token_key_ok;
static pthread_once_t token_once = PTHREAD_ONCE_INIT;

static void draw_token_key(void)
{
    token_key_ok = getrandom(token_key, sizeof token_key, 0) == (ssize_t)sizeof token_key;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}

bool xo__devbuf_token(const char *address, uint64_t ptr, uint64_t size, unsigned char out[XO_DEVBUF_TOKEN_LEN])
{
    pthread_once(&token_once, draw_token_key);
    if (!token_key_ok) {
        xo__error_set(XO_ESYS, "cannot draw the device buffer token key: getrandom failed");
        return false;
    }
    size_t alen = strlen(address);
    unsigned char msg[8 + 256 + 16];
    if (alen > 255) alen = 255; /* addresses are shorter; the descriptor cannot carry more anyway */
    memcpy(msg, "xodb-v2", 8);  /* with its NUL: a domain separator */
    memcpy(msg + 8, address, alen);
    put_u64(msg + 8 + alen, ptr);
    put_u64(msg + 16 + alen, size);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), token_key, (int)sizeof token_key, msg, 24 + alen, md, &mdlen) ||
        mdlen < XO_DEVBUF_TOKEN_LEN) {
        xo__error_set(XO_ESYS, "HMAC-SHA256 failed for a device buffer token");
        return false;
    }
    memcpy(out, md, XO_DEVBUF_TOKEN_LEN);
    return true;
}

/* ---- the pools that serve their device ------------------------------------------------------------------------- */

typedef struct service {
    xo_pool_t *pool;
    struct service *next;
} service_t;

static pthread_mutex_t services_lock = PTHREAD_MUTEX_INITIALIZER;
static service_t *services; /* the states of the live service actors */

bool xo__devbuf_owner_address(const xo_device_t *dev, char *addr, size_t len)
{
    bool found = false;
    pthread_mutex_lock(&services_lock);
    for (service_t *s = services; s && dev; s = s->next) {
        if (s->pool->device == dev) {
            found = (size_t)snprintf(addr, len, "%s", s->pool->address) < len;
            break;
        }
    }
    pthread_mutex_unlock(&services_lock);
    return found;
}

static xo_status_t service_init(xo_ctx_t *ctx, void *state, const msgpack_object *args)
{
    (void)args;
    service_t *s = state;
    s->pool = ctx->actor->pool;
    pthread_mutex_lock(&services_lock);
    s->next = services;
    services = s;
    pthread_mutex_unlock(&services_lock);
    return XO_OK;
}

static void service_fini(void *state)
{
    pthread_mutex_lock(&services_lock);
    for (service_t **pp = &services; *pp; pp = &(*pp)->next) {
        if (*pp == state) {
            *pp = ((service_t *)state)->next;
            break;
        }
    }
    pthread_mutex_unlock(&services_lock);
}

/* XO_OK when this pool owns a device and lent [ptr, ptr + size) (the token says so); else the error for the caller. */
static xo_status_t check_lent(xo_ctx_t *ctx, const service_t *s, uint64_t ptr, uint64_t size, xo_bytes_t token)
{
    if (!s->pool->device) return xo_ctx_error(ctx, XO_EINVAL, "pool %s owns no device", s->pool->address);
    unsigned char want[XO_DEVBUF_TOKEN_LEN];
    if (!xo__devbuf_token(s->pool->address, ptr, size, want))
        return xo_ctx_error(ctx, XO_ESYS, "pool %s cannot check a device buffer token", s->pool->address);
    if (token.len != XO_DEVBUF_TOKEN_LEN || CRYPTO_memcmp(token.ptr, want, sizeof want) != 0)
        return xo_ctx_error(ctx, XO_EAUTH,
                            "pool %s did not lend device range 0x%" PRIx64 " (+%" PRIu64 " bytes): the descriptor's "
                            "token does not match (forged, or lent by an earlier process at this address)",
                            s->pool->address, ptr, size);
    return XO_OK;
}

/* read(ptr, size, token, offset, length): the bytes [ptr + offset, ptr + offset + length) of this pool's device. */
static xo_status_t service_read(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    service_t *s = state;
    uint64_t ptr, size, off, len;
    xo_bytes_t token;
    xo_status_t st = xo_unpack(args, "uubuu", &ptr, &size, &token, &off, &len);
    if (st != XO_OK) return st;
    if ((st = check_lent(ctx, s, ptr, size, token)) != XO_OK) return st;
    xo_device_t *dev = s->pool->device;
    if (off > size || len > size - off || len > XO_DEVBUF_READ_MAX)
        return xo_ctx_error(ctx, XO_EINVAL,
                            "read of %" PRIu64 " bytes at offset %" PRIu64 " is outside the lent %" PRIu64
                            " bytes (or over the %" PRIu64 "-byte limit of one read)",
                            len, off, size, XO_DEVBUF_READ_MAX);
    if (msgpack_pack_bin(out, len) != 0) return xo_ctx_error(ctx, XO_ENOMEM, "out of memory for a device read");
    /* Copy straight into the reply buffer when the packer is the activation's own (it always is for a method). */
    xo_buf_t *b = &ctx->out;
    void *dst = NULL, *tmp = NULL;
    if (out->data == b && out->callback == xo__buf_write) {
        if (b->size + len > b->cap) {
            char *n = realloc(b->data, b->size + len);
            if (!n) return xo_ctx_error(ctx, XO_ENOMEM, "out of memory for a %" PRIu64 "-byte device read", len);
            b->data = n;
            b->cap = b->size + len;
        }
        dst = b->data + b->size;
    } else {
        dst = tmp = malloc(len ? len : 1);
        if (!tmp) return xo_ctx_error(ctx, XO_ENOMEM, "out of memory for a %" PRIu64 "-byte device read", len);
    }
    st = xo_device_memcpy(dev, dst, (const void *)(uintptr_t)(ptr + off), len, XO_MEMCPY_DEVICE_TO_HOST, NULL);
    if (st != XO_OK) {
        char why[XO_ERROR_TEXT_MAX]; /* the device's text, copied: the error buffer is also where it goes */
        snprintf(why, sizeof why, "%s", xo_last_error());
        free(tmp);
        return xo_ctx_error(ctx, st, "pool %s cannot read the lent device buffer: %s", s->pool->address, why);
    }
    if (tmp) {
        int rc = msgpack_pack_bin_body(out, tmp, len);
        free(tmp);
        if (rc != 0) return xo_ctx_error(ctx, XO_ENOMEM, "out of memory for a device read");
    } else {
        b->size += len;
    }
    return XO_OK;
}

/* The arguments (ptr, size, token, bin) of ready and nccl_send, checked: this pool lent [ptr, ptr + size). */
static xo_status_t unpack_lent(xo_ctx_t *ctx, const service_t *s, const msgpack_object *args, uint64_t *ptr,
                               uint64_t *size, xo_bytes_t *bin)
{
    xo_bytes_t token;
    xo_status_t st = xo_unpack(args, "uubb", ptr, size, &token, bin);
    return st != XO_OK ? st : check_lent(ctx, s, *ptr, *size, token);
}

/* ready(ptr, size, token, event handle): returns once the event the owner lent the range with has completed. The
 * event is this process's own, so the import shares it (the owner keeps it alive until the call that lent the
 * buffer is answered, which is after this). */
static xo_status_t service_ready(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)out;
    service_t *s = state;
    uint64_t ptr, size;
    xo_bytes_t handle;
    xo_status_t st = unpack_lent(ctx, s, args, &ptr, &size, &handle);
    if (st != XO_OK) return st;
    xo_device_ipc_handle_t h;
    if (handle.len != sizeof h.bytes)
        return xo_ctx_error(ctx, XO_EBADARGS, "an event handle is %zu bytes, not %zu", sizeof h.bytes, handle.len);
    memcpy(h.bytes, handle.ptr, sizeof h.bytes);
    xo_device_event_t *ev = NULL;
    st = xo_device_ipc_import_event(s->pool->device, &h, &ev);
    if (st == XO_OK) {
        st = xo__device_event_wait(ev, xo__devbuf_timeout_ms());
        xo_device_event_destroy(ev);
    }
    if (st != XO_OK) {
        char why[XO_ERROR_TEXT_MAX];
        snprintf(why, sizeof why, "%s", xo_last_error());
        return xo_ctx_error(ctx, st, "pool %s: the ready event of a lent device buffer: %s", s->pool->address, why);
    }
    return XO_OK;
}

#ifdef XO_HAVE_NCCL
/* nccl_send(ptr, size, token, unique id): sends the lent range to the caller GPU to GPU over a two-rank NCCL
 * communicator the caller set up the id for (services/devbuf/devbuf_nccl.c); answers once the bytes have left. */
static xo_status_t service_nccl_send(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)out;
    service_t *s = state;
    uint64_t ptr, size;
    xo_bytes_t id;
    xo_status_t st = unpack_lent(ctx, s, args, &ptr, &size, &id);
    if (st != XO_OK) return st;
    st = xo__devbuf_nccl_send(s->pool->device, ptr, size, id.ptr, id.len, xo__devbuf_timeout_ms());
    if (st != XO_OK) {
        char why[XO_ERROR_TEXT_MAX];
        snprintf(why, sizeof why, "%s", xo_last_error());
        return xo_ctx_error(ctx, st, "pool %s: NCCL send of a lent device buffer: %s", s->pool->address, why);
    }
    return XO_OK;
}
#endif

static const xo_method_t service_methods[] = {
    {.name = "read", .fn = service_read},
    {.name = "ready", .fn = service_ready},
#ifdef XO_HAVE_NCCL
    {.name = "nccl_send", .fn = service_nccl_send},
#endif
};

static const xo_actor_class_t service_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .flags = XO_ACTOR_STATELESS, /* reads of one fetch (and of several receivers) run in parallel */
    .name = "xo.DeviceBufferService",
    .state_size = sizeof(service_t),
    .init = service_init,
    .fini = service_fini,
    .methods = service_methods,
    .n_methods = sizeof service_methods / sizeof service_methods[0],
};

xo_status_t xo__devbuf_service_start(xo_pool_t *pool)
{
    xo_ref_t *ref = NULL;
    xo_status_t st = xo_create_actor(&service_class, NULL, pool->address, XO_DEVBUF_SERVICE_UID, &ref);
    if (st != XO_OK) {
        char why[XO_ERROR_TEXT_MAX];
        snprintf(why, sizeof why, "%s", xo_last_error());
        return xo__error_set(st, "pool %s: cannot start its device buffer service: %s", pool->address, why);
    }
    xo_ref_free(ref);
    return XO_OK;
}
