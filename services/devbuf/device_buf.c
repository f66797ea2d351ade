/* Device buffer descriptors in messages (include/xoscar/device_buf.h). The descriptor is an msgpack ext value,
 * version 3 (integers big-endian):
 *
 *   "XODB" version(1) boot_id(36) netns(8) pid(4) ptr(8) size(8) flags(1) ipc_handle(XO_DEVICE_IPC_HANDLE_SIZE)
 *   token(16) event_ptr(8) event_handle(XO_DEVICE_IPC_HANDLE_SIZE) address_len(1) address(address_len)
 *
 * boot_id and netns (the inode of the sender's network namespace) say "same host": an IPC handle is only importable
 * there, and a process in another network namespace is this project's model of another host (containers on one
 * machine may not share /proc either). flags bit 0: the handle is there (a backend that cannot export still lends
 * by staging). The raw pointer lets the same process skip the import. token and address serve staging: the owner
 * pool's address (empty when no pool of a process address owns the device) and the proof that it lent the range
 * (services/devbuf/devbuf.h). flags bit 2: the buffer is ready only when the sender's event completes (event_ptr for the
 * same process, event_handle for others: xo_pack_device_buf_ready). The length is checked to the byte against
 * address_len; any other version is refused. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpu/device.h"
#include "runtime/core.h"
#include "services/devbuf/devbuf.h"
#include "base/log.h"
#include "runtime/remote.h"
#include "xoscar/device_buf.h"
#ifdef XO_HAVE_NCCL
#include "services/nccl/nccl_api.h"
#endif

#define DESC_MAGIC "XODB"
#define DESC_VERSION 3
#define BOOT_ID_LEN 36
#define FLAG_HAS_IPC 0x1u
#define FLAG_OWNER_NCCL 0x2u /* the owner's device is cuda and its runtime has NCCL: it can send GPU to GPU */
#define FLAG_HAS_EVENT 0x4u  /* ready when the sender's event completes */

/* Field offsets. */
enum {
    OFF_VERSION = 4,
    OFF_BOOT = 5,
    OFF_NETNS = OFF_BOOT + BOOT_ID_LEN,
    OFF_PID = OFF_NETNS + 8,
    OFF_PTR = OFF_PID + 4,
    OFF_SIZE = OFF_PTR + 8,
    OFF_FLAGS = OFF_SIZE + 8,
    OFF_IPC = OFF_FLAGS + 1,
    OFF_TOKEN = OFF_IPC + XO_DEVICE_IPC_HANDLE_SIZE,
    OFF_EVENT_PTR = OFF_TOKEN + XO_DEVBUF_TOKEN_LEN,
    OFF_EVENT = OFF_EVENT_PTR + 8,
    OFF_ADDR_LEN = OFF_EVENT + XO_DEVICE_IPC_HANDLE_SIZE,
    DESC_FIXED = OFF_ADDR_LEN + 1,
    DESC_MAX = DESC_FIXED + 255,
};

/* ---- host identity --------------------------------------------------------------------------------------------- */

static unsigned char host_id[BOOT_ID_LEN + 8]; /* boot_id, then the netns inode (big-endian) */
static pthread_once_t host_once = PTHREAD_ONCE_INIT;

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

static void read_host_id(void)
{
    /* Unreadable parts stay '?' / 0: two such processes look like one host, and then the import itself decides
     * (it fails cleanly when the memory is not reachable). */
    memset(host_id, '?', BOOT_ID_LEN);
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, host_id, BOOT_ID_LEN);
        (void)n;
        close(fd);
    }
    struct stat sb;
    put_be(host_id + BOOT_ID_LEN, stat("/proc/self/ns/net", &sb) == 0 ? (uint64_t)sb.st_ino : 0, 8);
}

/* XO_DEVICE_IPC=0 turns same-host imports off: buffers from other processes are staged as if from another host.
 * Read at each unpack, so a process may change it between calls. */
static bool ipc_allowed(void)
{
    const char *e = getenv("XO_DEVICE_IPC");
    return !(e && strcmp(e, "0") == 0);
}

const unsigned char *xo__host_id(void)
{
    pthread_once(&host_once, read_host_id);
    return host_id;
}

bool xo__device_ipc_allowed(void) { return ipc_allowed(); }

/* ---- packing --------------------------------------------------------------------------------------------------- */

xo_device_t *xo_ctx_device(const xo_ctx_t *ctx) { return ctx && ctx->actor ? ctx->actor->pool->device : NULL; }

xo_device_t *xo_pool_device(const xo_pool_t *pool) { return pool ? pool->device : NULL; }

static xo_status_t pack_desc(msgpack_packer *pk, xo_device_t *dev, const void *ptr, size_t size,
                             xo_device_event_t *ready)
{
    if (!pk || !dev || !ptr) return xo__error_set(XO_EINVAL, "a device buffer needs a packer, a device and a pointer");
    xo_device_ipc_handle_t eh;
    if (ready) {
        if (ready->dev != dev)
            return xo__error_set(XO_EINVAL, "xo_pack_device_buf_ready: the event belongs to another device than the "
                                           "buffer");
        xo_status_t st = xo_device_ipc_export_event(ready, &eh);
        if (st != XO_OK) return st; /* not shareable: a receiver in another process could not wait for it */
    }
    pthread_once(&host_once, read_host_id);
    unsigned char d[DESC_MAX];
    memset(d, 0, sizeof d);
    xo_device_ipc_handle_t h;
    xo_status_t st = xo_device_ipc_export(dev, ptr, &h);
    if (st == XO_EINVAL) return st; /* not a live allocation of dev: nothing to lend */
    bool has_ipc = st == XO_OK;     /* a backend that cannot export (no CUDA IPC here) still lends by staging */
    char addr[256];
    size_t alen = xo__devbuf_owner_address(dev, addr, sizeof addr) ? strlen(addr) : 0;
    if (alen > 255) alen = 0;
    memcpy(d, DESC_MAGIC, 4);
    d[OFF_VERSION] = DESC_VERSION;
    memcpy(d + OFF_BOOT, host_id, sizeof host_id);
    put_be(d + OFF_PID, (uint64_t)getpid(), 4);
    put_be(d + OFF_PTR, (uint64_t)(uintptr_t)ptr, 8);
    put_be(d + OFF_SIZE, (uint64_t)size, 8);
    d[OFF_FLAGS] = has_ipc ? FLAG_HAS_IPC : 0;
#ifdef XO_HAVE_NCCL
    /* The owner can serve an NCCL pull only with the NCCL plugin loaded. */
    if (strcmp(xo_device_backend_name(xo_device_backend(dev)), "cuda") == 0 && xo__nccl_api())
        d[OFF_FLAGS] |= FLAG_OWNER_NCCL;
#endif
    if (has_ipc) memcpy(d + OFF_IPC, h.bytes, sizeof h.bytes);
    if (alen && !xo__devbuf_token(addr, (uint64_t)(uintptr_t)ptr, (uint64_t)size, d + OFF_TOKEN)) return XO_ESYS;
    if (ready) {
        d[OFF_FLAGS] |= FLAG_HAS_EVENT;
        put_be(d + OFF_EVENT_PTR, (uint64_t)(uintptr_t)ready, 8);
        memcpy(d + OFF_EVENT, eh.bytes, sizeof eh.bytes);
    }
    d[OFF_ADDR_LEN] = (unsigned char)alen;
    memcpy(d + DESC_FIXED, addr, alen);
    size_t len = DESC_FIXED + alen;
    if (msgpack_pack_ext(pk, len, XO_EXT_DEVICE_BUF) != 0 || msgpack_pack_ext_body(pk, d, len) != 0)
        return xo__error_set(XO_ENOMEM, "out of memory packing a device buffer");
    if (!has_ipc) xo__error_clear(); /* the failed export's text is not this call's error */
    return XO_OK;
}

xo_status_t xo_pack_device_buf(msgpack_packer *pk, xo_device_t *dev, const void *ptr, size_t size)
{
    return pack_desc(pk, dev, ptr, size, NULL);
}

xo_status_t xo_pack_device_buf_ready(msgpack_packer *pk, xo_device_t *dev, const void *ptr, size_t size,
                                     xo_device_event_t *ready)
{
    if (!ready) return xo__error_set(XO_EINVAL, "xo_pack_device_buf_ready needs an event");
    return pack_desc(pk, dev, ptr, size, ready);
}

/* ---- holding and releasing ------------------------------------------------------------------------------------- */

/* The staged copies alive in this process, so that a release tells them from imports (and never frees a pointer
 * that is neither: an owner's own buffer handed to xo_release_device_buf by mistake stays allocated). */
typedef struct staged {
    xo_device_t *dev;
    void *ptr;
    struct staged *next;
} staged_t;

static pthread_mutex_t staged_lock = PTHREAD_MUTEX_INITIALIZER;
static staged_t *staged_list;

static bool staged_add(xo_device_t *dev, void *ptr)
{
    staged_t *s = malloc(sizeof *s);
    if (!s) return false;
    *s = (staged_t){.dev = dev, .ptr = ptr};
    pthread_mutex_lock(&staged_lock);
    s->next = staged_list;
    staged_list = s;
    pthread_mutex_unlock(&staged_lock);
    return true;
}

static bool staged_take(xo_device_t *dev, void *ptr)
{
    staged_t *found = NULL;
    pthread_mutex_lock(&staged_lock);
    for (staged_t **pp = &staged_list; *pp; pp = &(*pp)->next) {
        if ((*pp)->dev == dev && (*pp)->ptr == ptr) {
            found = *pp;
            *pp = found->next;
            break;
        }
    }
    pthread_mutex_unlock(&staged_lock);
    free(found);
    return found != NULL;
}

xo_status_t xo_release_device_buf(xo_device_t *dev, void *ptr)
{
    if (!dev || !ptr) return xo__error_set(XO_EINVAL, "xo_release_device_buf needs a device and a pointer");
    if (staged_take(dev, ptr)) return xo_device_free(dev, ptr);
    if (xo_device_ipc_close(dev, ptr) == XO_OK) return XO_OK;
    return xo__error_set(XO_EINVAL,
                        "xo_release_device_buf: %p is neither a staged copy nor an open import of this device (a "
                        "same-process buffer is the owner's and needs no release)",
                        ptr);
}

static void release_hold(xo_worker_t *w, void *ptr)
{
    xo_device_t *dev = w->actor ? w->actor->pool->device : NULL;
    if (dev) xo_release_device_buf(dev, ptr);
}

/* Inside a method, what the receiver holds is released when the method returns. */
static xo_status_t remember_hold(void *ptr)
{
    return xo__worker_on_return(release_hold, ptr);
}

/* ---- unpacking ------------------------------------------------------------------------------------------------- */

/* Parses and checks a descriptor; addr gets the owner's address (NUL-terminated, "" when none). */
static xo_status_t parse(const msgpack_object *o, const unsigned char **d_p, char addr[256])
{
    if (!o || o->type != MSGPACK_OBJECT_EXT || o->via.ext.type != XO_EXT_DEVICE_BUF)
        return xo__error_set(XO_EBADARGS, "expected a device buffer (msgpack ext %d)", XO_EXT_DEVICE_BUF);
    const unsigned char *d = (const unsigned char *)o->via.ext.ptr;
    size_t n = o->via.ext.size;
    if (n < OFF_ADDR_LEN + 1 || memcmp(d, DESC_MAGIC, 4) != 0)
        return xo__error_set(XO_EBADARGS, "not a device buffer descriptor (%zu bytes, bad magic or too short)", n);
    if (d[OFF_VERSION] != DESC_VERSION)
        return xo__error_set(XO_EBADARGS, "device buffer descriptor version %u; this build reads version %u",
                            d[OFF_VERSION], DESC_VERSION);
    size_t alen = d[OFF_ADDR_LEN];
    if (n != DESC_FIXED + alen)
        return xo__error_set(XO_EBADARGS, "device buffer descriptor of %zu bytes; its fields make %zu", n,
                            (size_t)DESC_FIXED + alen);
    if (d[OFF_FLAGS] & ~(FLAG_HAS_IPC | FLAG_OWNER_NCCL | FLAG_HAS_EVENT))
        return xo__error_set(XO_EBADARGS, "device buffer descriptor with unknown flags 0x%x", d[OFF_FLAGS]);
    if (memchr(d + DESC_FIXED, '\0', alen))
        return xo__error_set(XO_EBADARGS, "device buffer descriptor with a NUL in its owner's address");
    memcpy(addr, d + DESC_FIXED, alen);
    addr[alen] = '\0';
    if (alen && !xo__remote_address_ok(addr))
        return xo__error_set(XO_EBADARGS, "device buffer descriptor with a bad owner address \"%s\"", addr);
    uint64_t ptr = get_be(d + OFF_PTR, 8), size = get_be(d + OFF_SIZE, 8);
    if (ptr == 0 || size > SIZE_MAX || ptr + size < ptr)
        return xo__error_set(XO_EBADARGS, "device buffer descriptor with a bad range 0x%" PRIx64 " (+%" PRIu64 ")", ptr,
                            size);
    *d_p = d;
    return XO_OK;
}

xo_status_t xo__device_event_wait(xo_device_event_t *ev, int64_t timeout_ms)
{
    if (!xo__worker_current()) return xo_device_event_synchronize(ev);
    /* A method: poll, so that only this method waits; the first polls back to back, for work about to finish. */
    uint64_t deadline = xo__now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (int i = 0;; i++) {
        xo_status_t st = xo_device_event_query(ev);
        if (st != XO_EAGAIN) return st;
        if (xo__now_ns() > deadline)
            return xo__error_set(XO_ETIMEDOUT, "a device buffer's ready event did not complete in %" PRId64 " ms",
                                timeout_ms);
        if (i >= 64 && (st = xo_sleep_ms(1)) != XO_OK) return st;
    }
}

/* Orders the receiver after the sender's ready event: on the device when stream is of the event's device (the
 * event is then waited for by the stream, not by this thread), else here. */
static xo_status_t await_ready(xo_device_stream_t *stream, xo_device_event_t *ev)
{
    if (stream && stream->dev == ev->dev) return xo_device_stream_wait_event(stream, ev);
    return xo__device_event_wait(ev, xo__devbuf_timeout_ms());
}

xo_status_t xo_unpack_device_buf(xo_device_t *dev, const msgpack_object *o, void **ptr_p, size_t *size_p,
                                 bool *imported_p)
{
    return xo_unpack_device_buf_on(dev, NULL, o, ptr_p, size_p, imported_p);
}

xo_status_t xo_unpack_device_buf_on(xo_device_t *dev, xo_device_stream_t *stream, const msgpack_object *o,
                                    void **ptr_p, size_t *size_p, bool *imported_p)
{
    return xo__devbuf_unpack(dev, stream, o, ptr_p, size_p, imported_p, NULL);
}

xo_status_t xo__devbuf_unpack(xo_device_t *dev, xo_device_stream_t *stream, const msgpack_object *o, void **ptr_p,
                              size_t *size_p, bool *imported_p, const char **path_p)
{
    const char *path_dummy;
    if (!path_p) path_p = &path_dummy;
    const unsigned char *d = NULL;
    char addr[256];
    xo_status_t st = parse(o, &d, addr);
    if (st != XO_OK) return st;
    pthread_once(&host_once, read_host_id);
    bool same_host = memcmp(d + OFF_BOOT, host_id, sizeof host_id) == 0;
    pid_t pid = (pid_t)get_be(d + OFF_PID, 4);
    void *ptr = (void *)(uintptr_t)get_be(d + OFF_PTR, 8);
    size_t size = (size_t)get_be(d + OFF_SIZE, 8);
    bool has_event = d[OFF_FLAGS] & FLAG_HAS_EVENT;
    xo_device_ipc_handle_t eh;
    memcpy(eh.bytes, d + OFF_EVENT, sizeof eh.bytes);
    if (!ptr_p) return xo__error_set(XO_EINVAL, "xo_unpack_device_buf needs ptr_p");
    if (stream && stream->dev != dev)
        return xo__error_set(XO_EINVAL, "xo_unpack_device_buf_on: the stream belongs to another device");
    /* Same process: the pointer itself (and the sender's own event), when the receiver's device can use it: the
     * owner's device, no device, or no handle to import. A pool that owns another device of this process imports
     * the handle into it like a pool of another process would, so that its device knows the range (it refuses
     * foreign pointers) and the lend ends with the method as for any import. */
    bool same_process = same_host && pid == getpid();
    if (same_process && (!dev || xo__device_has_range(dev, ptr, size) || !(d[OFF_FLAGS] & FLAG_HAS_IPC) ||
                         !ipc_allowed())) {
        if (has_event) {
            st = await_ready(stream, (xo_device_event_t *)(uintptr_t)get_be(d + OFF_EVENT_PTR, 8));
            if (st != XO_OK) return st;
        }
        *ptr_p = ptr;
        if (size_p) *size_p = size;
        if (imported_p) *imported_p = false;
        *path_p = "inproc";
        return XO_OK;
    }
    void *got = NULL;
    if (same_host && (d[OFF_FLAGS] & FLAG_HAS_IPC) && ipc_allowed()) {
        if (!dev) return xo__error_set(XO_EINVAL, "this pool owns no device to import a device buffer into");
        xo_device_ipc_handle_t h;
        memcpy(h.bytes, d + OFF_IPC, sizeof h.bytes);
        if (has_event) { /* the stream's wait is queued before the import: both only order later work */
            xo_device_event_t *ev = NULL;
            st = xo_device_ipc_import_event(dev, &eh, &ev);
            if (st == XO_OK) {
                st = await_ready(stream, ev);
                xo_device_event_destroy(ev); /* a queued stream wait stays */
            }
            if (st != XO_OK) return st;
        }
        st = xo_device_ipc_import(dev, &h, &got);
        if (st != XO_OK && same_process) {
            /* A backend that cannot import its own process's handles (CUDA refuses to): the pointer itself, as
             * before; on CUDA it is a unified address that kernels of the receiver's GPU reach with peer access. */
            xo__error_clear();
            *ptr_p = ptr;
            if (size_p) *size_p = size;
            if (imported_p) *imported_p = false;
            return XO_OK;
        }
        if (st != XO_OK) return st;
        *path_p = "ipc";
    } else {
        const char *where = same_host ? "another process of this host without device IPC (XO_DEVICE_IPC=0, or a "
                                        "backend that cannot export)"
                                      : "another host";
        if (!dev)
            return xo__error_set(XO_EINVAL, "a device buffer from %s is copied into the receiver's device, and this "
                                           "pool owns none (give it one: xo_pool_config_t.device)", where);
        if (!addr[0])
            return xo__error_set(XO_EUNREACHABLE, "a device buffer from %s (pid %d) cannot be fetched: its device "
                                                 "belongs to no pool with a process address (an in-process pool)",
                                where, (int)pid);
        if (size == 0) { /* nothing to copy, nothing to hold */
            *ptr_p = NULL;
            if (size_p) *size_p = 0;
            if (imported_p) *imported_p = false;
            *path_p = "staging";
            return XO_OK;
        }
        /* The owner's service waits for its event before it hands out any byte. */
        if (has_event && (st = xo__devbuf_wait_ready(addr, (uint64_t)(uintptr_t)ptr, size, d + OFF_TOKEN, eh.bytes)) != XO_OK)
            return st;
        st = XO_ENOTSUP;
#ifdef XO_HAVE_NCCL
        /* GPU to GPU when both ends can (XO_DEVICE_NCCL=0 turns it off); staging when that fails, saying why. */
        const char *nccl_env = getenv("XO_DEVICE_NCCL");
        /* Not on one host: NCCL refuses two ranks on one GPU, which two processes of one host may well share (seen
         * on an H200 with XO_DEVICE_IPC=0: "Duplicate GPU detected"). */
        if (!same_host && (d[OFF_FLAGS] & FLAG_OWNER_NCCL) &&
            strcmp(xo_device_backend_name(xo_device_backend(dev)), "cuda") == 0 && !(nccl_env && strcmp(nccl_env, "0") == 0) &&
            xo__nccl_api()) {
            st = xo__devbuf_nccl_fetch(dev, addr, (uint64_t)(uintptr_t)ptr, size, d + OFF_TOKEN,
                                       xo__devbuf_timeout_ms(), &got);
            if (st == XO_OK) *path_p = "nccl";
            else
                xo_log_warn("device buffer from %s: NCCL point-to-point failed (%s); staging it instead", addr,
                            xo_last_error());
        }
#endif
        if (st != XO_OK) {
            st = xo__devbuf_stage(dev, addr, (uint64_t)(uintptr_t)ptr, size, d + OFF_TOKEN, &got);
            *path_p = "staging";
        }
        if (st != XO_OK) return st;
        if (!staged_add(dev, got)) {
            xo_device_free(dev, got);
            return xo__error_set(XO_ENOMEM, "out of memory");
        }
    }
    st = remember_hold(got);
    if (st != XO_OK) {
        xo_release_device_buf(dev, got);
        return st;
    }
    *ptr_p = got;
    if (size_p) *size_p = size;
    if (imported_p) *imported_p = true;
    return XO_OK;
}
