/* Device buffer descriptors in messages (include/xoscar/device_buf.h). The descriptor is an msgpack ext value:
 *
 *   "XODB" version(1) boot_id(36) pid(u32 BE) ptr(u64 BE) size(u64 BE) ipc_handle(XO_DEVICE_IPC_HANDLE_SIZE)
 *
 * boot_id (the kernel's, per boot) tells "same host": an IPC handle is only importable there. The raw pointer lets
 * the same process skip the import. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/core.h"
#include "xoscar/device_buf.h"

#define DESC_MAGIC "XODB"
#define DESC_VERSION 1
#define BOOT_ID_LEN 36
#define DESC_LEN (4 + 1 + BOOT_ID_LEN + 4 + 8 + 8 + XO_DEVICE_IPC_HANDLE_SIZE)

static char boot_id[BOOT_ID_LEN + 1];
static pthread_once_t boot_once = PTHREAD_ONCE_INIT;

static void read_boot_id(void)
{
    memset(boot_id, '?', BOOT_ID_LEN);
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, boot_id, BOOT_ID_LEN);
        (void)n;
        close(fd);
    }
}

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

xo_device_t *xo_ctx_device(const xo_ctx_t *ctx) { return ctx && ctx->actor ? ctx->actor->pool->device : NULL; }

xo_device_t *xo_pool_device(const xo_pool_t *pool) { return pool ? pool->device : NULL; }

xo_status_t xo_pack_device_buf(msgpack_packer *pk, xo_device_t *dev, const void *ptr, size_t size)
{
    if (!pk || !dev || !ptr) return xo_error_set(XO_EINVAL, "a device buffer needs a packer, a device and a pointer");
    pthread_once(&boot_once, read_boot_id);
    unsigned char d[DESC_LEN], *p = d;
    xo_device_ipc_handle_t h;
    xo_status_t st = xo_device_ipc_export(dev, ptr, &h);
    if (st != XO_OK) return st;
    memcpy(p, DESC_MAGIC, 4), p += 4;
    *p++ = DESC_VERSION;
    memcpy(p, boot_id, BOOT_ID_LEN), p += BOOT_ID_LEN;
    put_be(p, (uint64_t)getpid(), 4), p += 4;
    put_be(p, (uint64_t)(uintptr_t)ptr, 8), p += 8;
    put_be(p, (uint64_t)size, 8), p += 8;
    memcpy(p, h.bytes, sizeof h.bytes);
    if (msgpack_pack_ext(pk, DESC_LEN, XO_EXT_DEVICE_BUF) != 0 || msgpack_pack_ext_body(pk, d, DESC_LEN) != 0)
        return xo_error_set(XO_ENOMEM, "out of memory packing a device buffer");
    return XO_OK;
}

static xo_status_t remember_import(void *ptr)
{
    xo_worker_t *w = xo_worker_current();
    if (!w) return XO_OK; /* a plain thread releases its imports itself */
    if (w->n_imports == w->cap_imports) {
        size_t ncap = w->cap_imports ? w->cap_imports * 2 : 4;
        void **n = realloc(w->imports, ncap * sizeof *n);
        if (!n) return xo_error_set(XO_ENOMEM, "out of memory");
        w->imports = n;
        w->cap_imports = ncap;
    }
    w->imports[w->n_imports++] = ptr;
    return XO_OK;
}

void xo_worker_close_imports(xo_worker_t *w)
{
    xo_device_t *dev = w->actor ? w->actor->pool->device : NULL;
    for (size_t i = 0; dev && i < w->n_imports; i++) xo_device_ipc_close(dev, w->imports[i]);
    w->n_imports = 0;
}

xo_status_t xo_unpack_device_buf(xo_device_t *dev, const msgpack_object *o, void **ptr_p, size_t *size_p,
                                 bool *imported_p)
{
    if (!o || o->type != MSGPACK_OBJECT_EXT || o->via.ext.type != XO_EXT_DEVICE_BUF || o->via.ext.size != DESC_LEN)
        return xo_error_set(XO_EBADARGS, "expected a device buffer (msgpack ext %d)", XO_EXT_DEVICE_BUF);
    const unsigned char *p = (const unsigned char *)o->via.ext.ptr;
    if (memcmp(p, DESC_MAGIC, 4) != 0 || p[4] != DESC_VERSION)
        return xo_error_set(XO_EBADARGS, "not a device buffer descriptor of this version");
    pthread_once(&boot_once, read_boot_id);
    bool same_host = memcmp(p + 5, boot_id, BOOT_ID_LEN) == 0;
    pid_t pid = (pid_t)get_be(p + 5 + BOOT_ID_LEN, 4);
    void *ptr = (void *)(uintptr_t)get_be(p + 9 + BOOT_ID_LEN, 8);
    size_t size = (size_t)get_be(p + 17 + BOOT_ID_LEN, 8);
    if (!same_host)
        return xo_error_set(XO_ENOTSUP, "a device buffer from another host cannot be imported (staging through host "
                                        "memory or NCCL is not built yet)");
    if (pid == getpid()) { /* same process: the pointer itself */
        *ptr_p = ptr;
        if (size_p) *size_p = size;
        if (imported_p) *imported_p = false;
        return XO_OK;
    }
    if (!dev) return xo_error_set(XO_EINVAL, "this pool owns no device to import a device buffer into");
    xo_device_ipc_handle_t h;
    memcpy(h.bytes, p + 25 + BOOT_ID_LEN, sizeof h.bytes);
    void *mapped = NULL;
    xo_status_t st = xo_device_ipc_import(dev, &h, &mapped);
    if (st != XO_OK) return st;
    st = remember_import(mapped);
    if (st != XO_OK) {
        xo_device_ipc_close(dev, mapped);
        return st;
    }
    *ptr_p = mapped;
    if (size_p) *size_p = size;
    if (imported_p) *imported_p = true;
    return XO_OK;
}
