/* The device interface's common layer: the ordered registry of backends, and the public functions of
 * include/xoscar/gpu.h, which check their arguments and device pointers here, once for every backend, then call the
 * backend's op (gpu/device.h). */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/device.h"
#include "base/error.h"
#include "base/log.h"
#include "base/plugin.h"

/* ---- registry ------------------------------------------------------------------------------------------------- */

/* Preference order: a real GPU first. The cuda backend is a plugin (libxoscar-cuda.so, base/plugin.h), loaded when
 * the registry is first used; without it the registry is what a build without CUDA has, the host backend alone.
 * Adding a backend is one file and one line here. */
#define MAX_BACKENDS 2
static const xo_device_ops_t *backends[MAX_BACKENDS];
static size_t n_backends; /* written once under backends_built, read after it: the once orders the two */

/* Every mandatory op must be there, and the name must fit an IPC handle's header. */
static bool ops_complete(const xo_device_ops_t *o)
{
    return o->name && strlen(o->name) < sizeof(((xo__ipc_header_t *)0)->backend) && o->discover && o->open &&
           o->close && o->alloc && o->free && o->memcpy && o->memset && o->mem_info && o->stream_create &&
           o->stream_destroy && o->stream_synchronize && o->stream_wait_event && o->launch_host && o->event_create &&
           o->event_destroy && o->event_record && o->event_synchronize && o->event_query && o->ipc_export &&
           o->ipc_import && o->ipc_close;
}

static void build_registry(void)
{
    const xo_device_ops_t *cuda =
        xo__plugin_load("cuda", XO_PLUGIN_DEVICE, XO_DEVICE_PLUGIN_LAYOUT, "the host device backend only");
    if (cuda && ops_complete(cuda) && strcmp(cuda->name, "cuda") == 0) backends[n_backends++] = cuda;
    else if (cuda) xo_log_error("plugin cuda: its device ops table lacks a mandatory op or its name; not used");
    /* The host backend is part of the core: a missing op there is a build mistake. */
    assert(ops_complete(&xo__device_host_ops));
    backends[n_backends++] = &xo__device_host_ops;
}

static pthread_once_t backends_built = PTHREAD_ONCE_INIT;

const xo_device_ops_t *xo_device_backend_at(size_t i)
{
    pthread_once(&backends_built, build_registry);
    return i < n_backends ? backends[i] : NULL;
}

const xo_device_ops_t *xo_device_backend_find(const char *name)
{
    if (!name) return NULL;
    for (size_t i = 0; xo_device_backend_at(i); i++)
        if (strcmp(backends[i]->name, name) == 0) return backends[i];
    return NULL;
}

xo_status_t xo__device_backend_missing(const char *name)
{
    xo_device_backend_at(0); /* the plugin has been looked for */
    const char *why = xo__plugin_why(name);
    if (why) return xo__error_set(XO_ENOTSUP, "no device backend \"%s\": plugin %s: %s", name, name, why);
    return xo__error_set(XO_ENOTSUP, "no device backend \"%s\" (this runtime knows cuda and host)", name);
}

const char *xo_device_backend_name(const xo_device_ops_t *backend) { return backend ? backend->name : "(none)"; }

xo_status_t xo_device_discover(const xo_device_ops_t *backend, xo_device_info_t *infos, size_t cap, size_t *n_p)
{
    if (n_p) *n_p = 0;
    if (!backend || !n_p || (cap && !infos)) return xo__error_set(XO_EINVAL, "xo_device_discover: NULL argument");
    if (cap) memset(infos, 0, cap * sizeof *infos);
    return backend->discover(infos, cap, n_p);
}

/* ---- helpers ---------------------------------------------------------------------------------------------------- */

static size_t round_up(size_t n) { return (n + XO_DEVICE_ALIGN - 1) / XO_DEVICE_ALIGN * XO_DEVICE_ALIGN; }

/* ---- range tables (sorted by base, disjoint) ------------------------------------------------------------------ */

/* The index of the first range whose base is > p. */
static size_t range_upper(const xo__range_table_t *t, uintptr_t p)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->v[mid].base <= p) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The range that contains [p, p + n), or NULL. */
static xo__range_t *range_find(const xo__range_table_t *t, uintptr_t p, size_t n)
{
    size_t i = range_upper(t, p);
    if (i == 0) return NULL;
    xo__range_t *r = &t->v[i - 1];
    if (p - r->base >= r->size && !(n == 0 && p == r->base)) return NULL;
    if (n > r->size - (p - r->base)) return NULL;
    return r;
}

static xo__range_t *range_exact(const xo__range_table_t *t, uintptr_t p)
{
    size_t i = range_upper(t, p);
    return (i && t->v[i - 1].base == p) ? &t->v[i - 1] : NULL;
}

static bool range_insert(xo__range_table_t *t, uintptr_t base, size_t size)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        xo__range_t *v = realloc(t->v, cap * sizeof *v);
        if (!v) return false;
        t->v = v;
        t->cap = cap;
    }
    size_t i = range_upper(t, base);
    memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof *t->v);
    t->v[i] = (xo__range_t){.base = base, .size = size, .opens = 1};
    t->n++;
    return true;
}

static void range_remove(xo__range_table_t *t, xo__range_t *r)
{
    size_t i = (size_t)(r - t->v);
    memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof *t->v);
    t->n--;
}

bool xo__device_has_range(xo_device_t *dev, const void *p, size_t n)
{
    pthread_mutex_lock(&dev->lock);
    bool ok = range_find(&dev->allocs, (uintptr_t)p, n) || range_find(&dev->imports, (uintptr_t)p, n);
    pthread_mutex_unlock(&dev->lock);
    return ok;
}

/* XO_OK when [p, p + n) is device memory of dev: in one allocation or one import. */
static xo_status_t check_device_range(xo_device_t *dev, const void *p, size_t n, const char *what)
{
    pthread_mutex_lock(&dev->lock);
    bool ok = range_find(&dev->allocs, (uintptr_t)p, n) || range_find(&dev->imports, (uintptr_t)p, n);
    pthread_mutex_unlock(&dev->lock);
    if (ok) return XO_OK;
    return xo__error_set(XO_EINVAL, "device %s: %s %p (+%zu bytes) is not in a live allocation or import of this device",
                        xo__device_label(dev), what, p, n);
}

/* ---- devices -------------------------------------------------------------------------------------------------- */

xo_status_t xo_device_open(const xo_device_ops_t *backend, int index, const xo_device_config_t *cfg,
                           xo_device_t **dev_p)
{
    if (!backend || !dev_p) return xo__error_set(XO_EINVAL, "xo_device_open: NULL argument");
    if (index < 0) return xo__error_set(XO_EINVAL, "xo_device_open: %s device index %d is negative", backend->name, index);
    xo_device_config_t defaults = {0};
    if (!cfg) cfg = &defaults;
    xo_device_t *dev = calloc(1, sizeof *dev);
    if (!dev) return xo__error_set(XO_ENOMEM, "out of memory");
    dev->ops = backend;
    dev->index = index;
    dev->capacity = cfg->capacity;
    pthread_mutex_init(&dev->lock, NULL);
    xo_status_t st = backend->open(dev, cfg);
    if (st != XO_OK) {
        pthread_mutex_destroy(&dev->lock);
        free(dev);
        return st;
    }
    xo_log_debug("device %s opened, capacity %" PRIu64 " bytes", xo__device_label(dev), dev->capacity);
    *dev_p = dev;
    return XO_OK;
}

void xo_device_close(xo_device_t *dev)
{
    if (!dev) return;
    while (dev->streams) xo_device_stream_destroy(dev->streams);
    /* Imports before allocations: an import may be of this process's own memory (host). */
    for (size_t i = 0; i < dev->imports.n; i++)
        for (uint32_t k = 0; k < dev->imports.v[i].opens; k++) dev->ops->ipc_close(dev, (void *)dev->imports.v[i].base);
    if (dev->allocs.n)
        xo_log_debug("device %s closed with %zu live allocations; freeing them", xo__device_label(dev), dev->allocs.n);
    for (size_t i = 0; i < dev->allocs.n; i++)
        dev->ops->free(dev, (void *)dev->allocs.v[i].base, dev->allocs.v[i].size);
    dev->ops->close(dev);
    free(dev->allocs.v);
    free(dev->imports.v);
    pthread_mutex_destroy(&dev->lock);
    free(dev);
}

const xo_device_ops_t *xo_device_backend(const xo_device_t *dev) { return dev->ops; }
int xo_device_index(const xo_device_t *dev) { return dev->index; }

xo_status_t xo_device_alloc(xo_device_t *dev, size_t size, void **ptr_p)
{
    if (!dev || !ptr_p) return xo__error_set(XO_EINVAL, "xo_device_alloc: NULL argument");
    if (size == 0) return xo__error_set(XO_EINVAL, "device %s: cannot allocate 0 bytes", xo__device_label(dev));
    if (size > SIZE_MAX - XO_DEVICE_ALIGN)
        return xo__error_set(XO_ENOMEM, "device %s: cannot allocate %zu bytes", xo__device_label(dev), size);
    size_t rounded = round_up(size);

    /* Reserve the bytes first, so that concurrent allocations cannot together exceed the capacity while the backend
     * works without the lock. */
    pthread_mutex_lock(&dev->lock);
    if (dev->capacity && (dev->used > dev->capacity || rounded > dev->capacity - dev->used)) {
        uint64_t free_bytes = dev->used > dev->capacity ? 0 : dev->capacity - dev->used;
        pthread_mutex_unlock(&dev->lock);
        return xo__error_set(XO_ENOMEM, "device %s: cannot allocate %zu bytes: %" PRIu64 " of %" PRIu64 " bytes free",
                            xo__device_label(dev), size, free_bytes, dev->capacity);
    }
    dev->used += rounded;
    pthread_mutex_unlock(&dev->lock);

    void *p = NULL;
    xo_status_t st = dev->ops->alloc(dev, rounded, &p);
    pthread_mutex_lock(&dev->lock);
    if (st == XO_OK && !range_insert(&dev->allocs, (uintptr_t)p, rounded)) {
        pthread_mutex_unlock(&dev->lock);
        dev->ops->free(dev, p, rounded);
        pthread_mutex_lock(&dev->lock);
        st = xo__error_set(XO_ENOMEM, "out of memory for the allocation table");
    }
    if (st != XO_OK) dev->used -= rounded;
    pthread_mutex_unlock(&dev->lock);
    if (st == XO_OK) *ptr_p = p;
    return st;
}

xo_status_t xo_device_free(xo_device_t *dev, void *ptr)
{
    if (!dev) return xo__error_set(XO_EINVAL, "xo_device_free: NULL device");
    pthread_mutex_lock(&dev->lock);
    xo__range_t *r = range_exact(&dev->allocs, (uintptr_t)ptr);
    if (!r) {
        bool inside = range_find(&dev->allocs, (uintptr_t)ptr, 0) != NULL;
        bool imported = range_find(&dev->imports, (uintptr_t)ptr, 0) != NULL;
        pthread_mutex_unlock(&dev->lock);
        return xo__error_set(XO_EINVAL, "device %s: cannot free %p: %s", xo__device_label(dev), ptr,
                            inside     ? "it points inside an allocation, not at its start"
                            : imported ? "it is an import (close it with xo_device_ipc_close)"
                                       : "not a live allocation of this device (freed already, or never allocated here)");
    }
    size_t size = r->size;
    range_remove(&dev->allocs, r);
    pthread_mutex_unlock(&dev->lock);
    dev->ops->free(dev, ptr, size);
    pthread_mutex_lock(&dev->lock);
    dev->used -= size;
    pthread_mutex_unlock(&dev->lock);
    return XO_OK;
}

xo_status_t xo_device_memcpy(xo_device_t *dev, void *dst, const void *src, size_t n, xo_memcpy_kind_t kind,
                             xo_device_stream_t *stream)
{
    if (!dev || !dst || !src) return xo__error_set(XO_EINVAL, "xo_device_memcpy: NULL argument");
    if (stream && stream->dev != dev)
        return xo__error_set(XO_EINVAL, "xo_device_memcpy: the stream belongs to another device");
    xo_status_t st;
    switch (kind) {
    case XO_MEMCPY_HOST_TO_DEVICE:
        st = check_device_range(dev, dst, n, "destination");
        break;
    case XO_MEMCPY_DEVICE_TO_HOST:
        st = check_device_range(dev, src, n, "source");
        break;
    case XO_MEMCPY_DEVICE_TO_DEVICE:
        st = check_device_range(dev, dst, n, "destination");
        if (st == XO_OK) st = check_device_range(dev, src, n, "source");
        break;
    default:
        return xo__error_set(XO_EINVAL, "xo_device_memcpy: bad kind %d", (int)kind);
    }
    if (st != XO_OK) return st;
    if (n == 0) return XO_OK;
    return dev->ops->memcpy(dev, dst, src, n, kind, stream ? stream->impl : NULL);
}

xo_status_t xo_device_memset(xo_device_t *dev, void *dst, int value, size_t n, xo_device_stream_t *stream)
{
    if (!dev || !dst) return xo__error_set(XO_EINVAL, "xo_device_memset: NULL argument");
    if (stream && stream->dev != dev)
        return xo__error_set(XO_EINVAL, "xo_device_memset: the stream belongs to another device");
    xo_status_t st = check_device_range(dev, dst, n, "destination");
    if (st != XO_OK || n == 0) return st;
    return dev->ops->memset(dev, dst, value, n, stream ? stream->impl : NULL);
}

xo_status_t xo_device_mem_info(xo_device_t *dev, xo_device_mem_info_t *info_p)
{
    if (!dev || !info_p) return xo__error_set(XO_EINVAL, "xo_device_mem_info: NULL argument");
    uint64_t free_bytes = 0, total = 0;
    xo_status_t st = dev->ops->mem_info(dev, &free_bytes, &total);
    if (st != XO_OK) return st;
    pthread_mutex_lock(&dev->lock);
    uint64_t used = dev->used;
    pthread_mutex_unlock(&dev->lock);
    if (dev->capacity) {
        uint64_t left = used >= dev->capacity ? 0 : dev->capacity - used;
        if (free_bytes > left) free_bytes = left;
        total = dev->capacity;
    }
    *info_p = (xo_device_mem_info_t){.free = free_bytes, .total = total, .used = used};
    return XO_OK;
}

/* ---- streams -------------------------------------------------------------------------------------------------- */

xo_status_t xo_device_stream_create(xo_device_t *dev, xo_device_stream_t **stream_p)
{
    if (!dev || !stream_p) return xo__error_set(XO_EINVAL, "xo_device_stream_create: NULL argument");
    xo_device_stream_t *s = calloc(1, sizeof *s);
    if (!s) return xo__error_set(XO_ENOMEM, "out of memory");
    s->dev = dev;
    xo_status_t st = dev->ops->stream_create(dev, &s->impl);
    if (st != XO_OK) {
        free(s);
        return st;
    }
    pthread_mutex_lock(&dev->lock);
    s->next = dev->streams;
    if (dev->streams) dev->streams->prev = s;
    dev->streams = s;
    pthread_mutex_unlock(&dev->lock);
    *stream_p = s;
    return XO_OK;
}

void xo_device_stream_destroy(xo_device_stream_t *stream)
{
    if (!stream) return;
    xo_device_t *dev = stream->dev;
    pthread_mutex_lock(&dev->lock);
    if (stream->prev) stream->prev->next = stream->next;
    else dev->streams = stream->next;
    if (stream->next) stream->next->prev = stream->prev;
    pthread_mutex_unlock(&dev->lock);
    dev->ops->stream_destroy(dev, stream->impl);
    free(stream);
}

xo_status_t xo_device_stream_synchronize(xo_device_stream_t *stream)
{
    if (!stream) return xo__error_set(XO_EINVAL, "xo_device_stream_synchronize: NULL stream");
    return stream->dev->ops->stream_synchronize(stream->dev, stream->impl);
}

xo_status_t xo_device_launch_host(xo_device_stream_t *stream, void (*fn)(void *), void *arg)
{
    if (!stream || !fn) return xo__error_set(XO_EINVAL, "xo_device_launch_host: NULL argument");
    return stream->dev->ops->launch_host(stream->dev, stream->impl, fn, arg);
}

xo_status_t xo_device_launch_kernel(xo_device_stream_t *stream, const void *kernel, const unsigned grid[3],
                                    const unsigned block[3], size_t shmem_bytes, void **args)
{
    if (!stream || !kernel || !grid || !block) return xo__error_set(XO_EINVAL, "xo_device_launch_kernel: NULL argument");
    xo_device_t *dev = stream->dev;
    if (!dev->ops->launch_kernel)
        return xo__error_set(XO_ENOTSUP, "device %s runs no device kernels (queue a C function with "
                            "xo_device_launch_host instead)", xo__device_label(dev));
    return dev->ops->launch_kernel(dev, stream->impl, kernel, grid, block, shmem_bytes, args);
}

void *xo_device_stream_native(xo_device_stream_t *stream)
{
    if (!stream || !stream->dev->ops->stream_native) return NULL;
    return stream->dev->ops->stream_native(stream->dev, stream->impl);
}

xo_status_t xo_device_stream_wait_event(xo_device_stream_t *stream, xo_device_event_t *event)
{
    if (!stream || !event) return xo__error_set(XO_EINVAL, "xo_device_stream_wait_event: NULL argument");
    if (stream->dev != event->dev)
        return xo__error_set(XO_EINVAL, "xo_device_stream_wait_event: the event belongs to another device");
    return stream->dev->ops->stream_wait_event(stream->dev, stream->impl, event->impl);
}

/* ---- IPC ------------------------------------------------------------------------------------------------------ */

xo_status_t xo_device_ipc_export(xo_device_t *dev, const void *ptr, xo_device_ipc_handle_t *handle_p)
{
    if (!dev || !handle_p) return xo__error_set(XO_EINVAL, "xo_device_ipc_export: NULL argument");
    pthread_mutex_lock(&dev->lock);
    xo__range_t *r = range_find(&dev->allocs, (uintptr_t)ptr, 1);
    uintptr_t base = r ? r->base : 0;
    size_t size = r ? r->size : 0;
    pthread_mutex_unlock(&dev->lock);
    if (!r)
        return xo__error_set(XO_EINVAL, "device %s: cannot export %p: not in a live allocation of this device%s",
                            xo__device_label(dev), ptr,
                            check_device_range(dev, ptr, 1, "pointer") == XO_OK ? " (imports cannot be re-exported)"
                                                                                  : "");
    xo_device_ipc_handle_t h;
    memset(&h, 0, sizeof h);
    xo__ipc_header_t hdr = {.magic = XO_DEVICE_IPC_MAGIC, .version = XO_DEVICE_IPC_VERSION};
    memcpy(hdr.backend, dev->ops->name, strlen(dev->ops->name)); /* fits: checked by check_backends */
    size_t len = 0;
    xo_status_t st = dev->ops->ipc_export(dev, (void *)base, size, (uintptr_t)ptr - base, h.bytes + sizeof hdr, &len);
    if (st != XO_OK) return st;
    assert(len <= XO_DEVICE_IPC_PAYLOAD_MAX);
    hdr.payload_len = (uint16_t)len;
    memcpy(h.bytes, &hdr, sizeof hdr);
    *handle_p = h;
    return XO_OK;
}

xo_status_t xo_device_ipc_import(xo_device_t *dev, const xo_device_ipc_handle_t *handle, void **ptr_p)
{
    if (!dev || !handle || !ptr_p) return xo__error_set(XO_EINVAL, "xo_device_ipc_import: NULL argument");
    xo__ipc_header_t hdr;
    memcpy(&hdr, handle->bytes, sizeof hdr);
    if (hdr.magic != XO_DEVICE_IPC_MAGIC || hdr.version != XO_DEVICE_IPC_VERSION ||
        hdr.payload_len > XO_DEVICE_IPC_PAYLOAD_MAX || memchr(hdr.backend, '\0', sizeof hdr.backend) == NULL)
        return xo__error_set(XO_EINVAL, "device %s: not an IPC handle (bad magic or version)", xo__device_label(dev));
    if (strcmp(hdr.backend, dev->ops->name) != 0)
        return xo__error_set(XO_EINVAL, "device %s: the handle was exported by backend \"%s\", not \"%s\"",
                            xo__device_label(dev), hdr.backend, dev->ops->name);
    void *p = NULL;
    size_t size = 0;
    xo_status_t st = dev->ops->ipc_import(dev, handle->bytes + sizeof hdr, hdr.payload_len, &p, &size);
    if (st != XO_OK) return st;
    pthread_mutex_lock(&dev->lock);
    xo__range_t *r = range_exact(&dev->imports, (uintptr_t)p);
    bool ok = true;
    if (r) r->opens++;
    else ok = range_insert(&dev->imports, (uintptr_t)p, size);
    pthread_mutex_unlock(&dev->lock);
    if (!ok) {
        dev->ops->ipc_close(dev, p);
        return xo__error_set(XO_ENOMEM, "out of memory for the import table");
    }
    *ptr_p = p;
    return XO_OK;
}

xo_status_t xo_device_ipc_close(xo_device_t *dev, void *ptr)
{
    if (!dev) return xo__error_set(XO_EINVAL, "xo_device_ipc_close: NULL device");
    pthread_mutex_lock(&dev->lock);
    xo__range_t *r = range_exact(&dev->imports, (uintptr_t)ptr);
    if (!r) {
        pthread_mutex_unlock(&dev->lock);
        return xo__error_set(XO_EINVAL, "device %s: %p is not an open import of this device (closed already, or not "
                            "returned by xo_device_ipc_import)", xo__device_label(dev), ptr);
    }
    if (--r->opens == 0) range_remove(&dev->imports, r);
    pthread_mutex_unlock(&dev->lock);
    dev->ops->ipc_close(dev, ptr);
    return XO_OK;
}
