/* The receiver side of device buffers across hosts (services/devbuf/devbuf.h): a buffer of the receiver's device, filled
 * from the owner's "xo.devbuf" service in chunks. Several chunks are in flight at once so that a fetch costs about
 * one round trip plus the bytes, not one round trip per chunk; each arriving chunk is copied host -> device while
 * the next ones travel. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "services/devbuf/devbuf.h"
#include "runtime/remote.h"

/* Defaults measured on shared memory between two processes (the report of issue #5): chunks under the shm
 * transport's out-of-band threshold (256 KiB) travel through its ring's reused pages, while larger ones pay a fresh
 * memfd each (page allocation and freeing), which halved the bandwidth at 4 MiB. 32 in flight keep the pipe full
 * without outgrowing the 4 MiB ring. Over TCP the same sizes fill a LAN link. */
#define CHUNK_DEFAULT ((uint64_t)128 << 10)
#define CHUNK_MIN ((uint64_t)4 << 10)
#define WINDOW_DEFAULT 32
#define WINDOW_MAX 64
#define DEFAULT_TIMEOUT_MS 60000

typedef struct {
    xo_future_t *f;
    uint64_t off, len;
} slot_t;

/* A positive integer from the environment, clamped to [lo, hi]; def when unset or not a number. */
static uint64_t env_u64(const char *name, uint64_t def, uint64_t lo, uint64_t hi)
{
    const char *e = getenv(name);
    char *end = NULL;
    unsigned long long v = e ? strtoull(e, &end, 10) : 0;
    if (!e || end == e || v == 0) return def;
    return v < lo ? lo : v > hi ? hi : (uint64_t)v;
}

int64_t xo__devbuf_timeout_ms(void)
{
    return (int64_t)env_u64("XO_DEVICE_STAGE_TIMEOUT_MS", DEFAULT_TIMEOUT_MS, 1, INT64_MAX / 2);
}

xo_status_t xo__devbuf_stage(xo_device_t *dev, const char *owner, uint64_t ptr, uint64_t size,
                             const unsigned char token[XO_DEVBUF_TOKEN_LEN], void **ptr_p)
{
    char why[XO_ERROR_TEXT_MAX];
    void *dst = NULL;
    xo_status_t st = xo_device_alloc(dev, (size_t)size, &dst);
    if (st != XO_OK) {
        snprintf(why, sizeof why, "%s", xo_last_error());
        return xo__error_set(st, "cannot stage a %" PRIu64 "-byte device buffer from pool %s: %s", size, owner, why);
    }
    /* How long one chunk may take: a dead owner fails its chunks at once (XO_EPOOLDIED); this bounds a peer that is
     * alive but stuck, or a network that drops everything silently. */
    int64_t timeout = xo__devbuf_timeout_ms();
    const uint64_t chunk = env_u64("XO_DEVICE_STAGE_CHUNK", CHUNK_DEFAULT, CHUNK_MIN, XO_DEVBUF_READ_MAX);
    const size_t window = (size_t)env_u64("XO_DEVICE_STAGE_WINDOW", WINDOW_DEFAULT, 1, WINDOW_MAX);
    slot_t ring[WINDOW_MAX];
    size_t head = 0, inflight = 0;
    uint64_t next = 0, done = 0;
    while (done < size) {
        while (inflight < window && next < size) {
            uint64_t len = size - next < chunk ? size - next : chunk;
            xo_args_t *a = xo_args("uubuu", ptr, size, (const void *)token, (size_t)XO_DEVBUF_TOKEN_LEN, next, len);
            if (!a) {
                st = xo__error_set(XO_ENOMEM, "out of memory staging a device buffer");
                goto fail;
            }
            xo_future_t *f = NULL;
            st = xo__remote_send(owner, XO_WIRE_CALL, xo__chain_new(), XO_DEVBUF_SERVICE_UID, "read", a, true, &f);
            if (st != XO_OK) {
                snprintf(why, sizeof why, "%s", xo_last_error());
                st = xo__error_set(st, "cannot fetch a device buffer from pool %s: %s", owner, why);
                goto fail;
            }
            ring[(head + inflight) % window] = (slot_t){.f = f, .off = next, .len = len};
            inflight++;
            next += len;
        }
        slot_t s = ring[head];
        head = (head + 1) % window;
        inflight--;
        xo_result_t *r = NULL;
        st = xo_future_wait(s.f, timeout, &r);
        if (st == XO_ETIMEDOUT) xo__future_request_cancel(s.f);
        xo__future_unref(s.f);
        if (st != XO_OK) {
            if (st == XO_ETIMEDOUT)
                snprintf(why, sizeof why, "no answer in %" PRId64 " ms (XO_DEVICE_STAGE_TIMEOUT_MS)", timeout);
            else
                snprintf(why, sizeof why, "%s", xo_last_error());
            st = xo__error_set(st, "fetching bytes %" PRIu64 "..%" PRIu64 " of a %" PRIu64 "-byte device buffer from "
                                  "pool %s: %s", s.off, s.off + s.len, size, owner, why);
            goto fail;
        }
        const msgpack_object *v = xo_result_value(r);
        if (!v || v->type != MSGPACK_OBJECT_BIN || v->via.bin.size != s.len) {
            xo_result_free(r);
            st = xo__error_set(XO_EPROTO, "pool %s answered a device buffer read of %" PRIu64 " bytes with something "
                                         "else", owner, s.len);
            goto fail;
        }
        st = xo_device_memcpy(dev, (char *)dst + s.off, v->via.bin.ptr, (size_t)s.len, XO_MEMCPY_HOST_TO_DEVICE,
                              NULL);
        xo_result_free(r);
        if (st != XO_OK) goto fail; /* the device's text */
        done += s.len;
    }
    *ptr_p = dst;
    return XO_OK;

fail:
    /* The chunks still in flight are dropped: their replies find no waiter, and nothing writes into dst but this
     * function, so it can go now. */
    for (; inflight > 0; inflight--, head = (head + 1) % window) {
        xo__future_request_cancel(ring[head].f);
        xo__future_unref(ring[head].f);
    }
    xo_device_free(dev, dst);
    return st;
}

xo_status_t xo__devbuf_wait_ready(const char *owner, uint64_t ptr, uint64_t size,
                                  const unsigned char token[XO_DEVBUF_TOKEN_LEN], const unsigned char *event_handle)
{
    char why[XO_ERROR_TEXT_MAX];
    xo_args_t *a = xo_args("uubb", ptr, size, (const void *)token, (size_t)XO_DEVBUF_TOKEN_LEN,
                           (const void *)event_handle, (size_t)XO_DEVICE_IPC_HANDLE_SIZE);
    if (!a) return xo__error_set(XO_ENOMEM, "out of memory");
    xo_future_t *f = NULL;
    xo_status_t st = xo__remote_send(owner, XO_WIRE_CALL, xo__chain_new(), XO_DEVBUF_SERVICE_UID, "ready", a, true, &f);
    if (st == XO_OK) {
        /* The owner bounds its own wait by the same timeout; one more second lets its answer arrive. */
        int64_t timeout = xo__devbuf_timeout_ms();
        xo_result_t *r = NULL;
        st = xo_future_wait(f, timeout + 1000, &r);
        if (st == XO_ETIMEDOUT) xo__future_request_cancel(f);
        xo__future_unref(f);
        xo_result_free(r);
    }
    if (st != XO_OK) {
        snprintf(why, sizeof why, "%s", st == XO_ETIMEDOUT ? "no answer in time" : xo_last_error());
        return xo__error_set(st, "waiting for a device buffer of pool %s to be ready: %s", owner, why);
    }
    return XO_OK;
}
