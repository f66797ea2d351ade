/* The receiver side of device buffers across hosts (runtime/devbuf.h): a buffer of the receiver's device, filled
 * from the owner's "xo.devbuf" service in chunks. Several chunks are in flight at once so that a fetch costs about
 * one round trip plus the bytes, not one round trip per chunk; each arriving chunk is copied host -> device while
 * the next ones travel. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/devbuf.h"
#include "runtime/remote.h"

#define CHUNK ((uint64_t)4 << 20)
#define WINDOW 4
#define DEFAULT_TIMEOUT_MS 60000

typedef struct {
    xo_future_t *f;
    uint64_t off, len;
} slot_t;

/* How long one chunk may take. A dead owner fails its chunks at once (XO_EPOOLDIED); this bounds a peer that
 * is alive but stuck, or a network that drops everything silently. */
static int64_t chunk_timeout_ms(void)
{
    const char *e = getenv("XO_DEVICE_STAGE_TIMEOUT_MS");
    long long v = e ? atoll(e) : 0;
    return v > 0 ? (int64_t)v : DEFAULT_TIMEOUT_MS;
}

xo_status_t xo__devbuf_stage(xo_device_t *dev, const char *owner, uint64_t ptr, uint64_t size,
                             const unsigned char token[XO_DEVBUF_TOKEN_LEN], void **ptr_p)
{
    char why[XO_ERROR_TEXT_MAX];
    void *dst = NULL;
    xo_status_t st = xo_device_alloc(dev, (size_t)size, &dst);
    if (st != XO_OK) {
        snprintf(why, sizeof why, "%s", xo_last_error());
        return xo_error_set(st, "cannot stage a %" PRIu64 "-byte device buffer from pool %s: %s", size, owner, why);
    }
    int64_t timeout = chunk_timeout_ms();
    slot_t ring[WINDOW];
    size_t head = 0, inflight = 0;
    uint64_t next = 0, done = 0;
    while (done < size) {
        while (inflight < WINDOW && next < size) {
            uint64_t len = size - next < CHUNK ? size - next : CHUNK;
            xo_args_t *a = xo_args("uubuu", ptr, size, (const void *)token, (size_t)XO_DEVBUF_TOKEN_LEN, next, len);
            if (!a) {
                st = xo_error_set(XO_ENOMEM, "out of memory staging a device buffer");
                goto fail;
            }
            xo_future_t *f = NULL;
            st = xo_remote_send(owner, XO_WIRE_CALL, xo_chain_new(), XO_DEVBUF_SERVICE_UID, "read", a, true, &f);
            if (st != XO_OK) {
                snprintf(why, sizeof why, "%s", xo_last_error());
                st = xo_error_set(st, "cannot fetch a device buffer from pool %s: %s", owner, why);
                goto fail;
            }
            ring[(head + inflight) % WINDOW] = (slot_t){.f = f, .off = next, .len = len};
            inflight++;
            next += len;
        }
        slot_t s = ring[head];
        head = (head + 1) % WINDOW;
        inflight--;
        xo_result_t *r = NULL;
        st = xo_future_wait(s.f, timeout, &r);
        if (st == XO_ETIMEDOUT) xo_future_request_cancel(s.f);
        xo_future_unref(s.f);
        if (st != XO_OK) {
            if (st == XO_ETIMEDOUT)
                snprintf(why, sizeof why, "no answer in %" PRId64 " ms (XO_DEVICE_STAGE_TIMEOUT_MS)", timeout);
            else
                snprintf(why, sizeof why, "%s", xo_last_error());
            st = xo_error_set(st, "fetching bytes %" PRIu64 "..%" PRIu64 " of a %" PRIu64 "-byte device buffer from "
                                  "pool %s: %s", s.off, s.off + s.len, size, owner, why);
            goto fail;
        }
        const msgpack_object *v = xo_result_value(r);
        if (!v || v->type != MSGPACK_OBJECT_BIN || v->via.bin.size != s.len) {
            xo_result_free(r);
            st = xo_error_set(XO_EPROTO, "pool %s answered a device buffer read of %" PRIu64 " bytes with something "
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
    for (; inflight > 0; inflight--, head = (head + 1) % WINDOW) {
        xo_future_request_cancel(ring[head].f);
        xo_future_unref(ring[head].f);
    }
    xo_device_free(dev, dst);
    return st;
}
