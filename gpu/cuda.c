/* The CUDA device backend, on the CUDA runtime API. Compiled (by the C compiler, against the toolkit's headers) into
 * the plugin libxoscar-cuda.so, only when the toolkit is found (gpu/CMakeLists.txt); device.c's registry lists it
 * when the plugin loads (base/plugin.h), so the core never needs libcudart to load.
 *
 * Current device. CUDA's current device is per thread, and a pool's methods run on many threads; so every op first
 * makes dev->index the calling thread's current device (cudaGetDevice is a cheap read; cudaSetDevice only when it
 * differs). Open calls cudaSetDevice before anything else, so that a process bound to one GPU creates its context
 * there first.
 *
 * Synchronous copies (stream NULL) run on the legacy default stream and wait for it: cudaMemcpy alone returns before
 * a device-to-device copy has finished. Our streams are non-blocking, so that work is not ordered against them, as
 * gpu.h says for every backend.
 *
 * Errors keep CUDA's text: "cudaMalloc: out of memory (cudaErrorMemoryAllocation)". */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "gpu/device.h"
#include "base/error.h"
#include "base/log.h"

static xo_status_t cuda_fail(xo_status_t st, cudaError_t e, const char *what)
{
    return xo__error_set(st, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}
#define CUDA_CHECK(call, what)                                                                                    \
    do {                                                                                                          \
        cudaError_t e_ = (call);                                                                                  \
        if (e_ != cudaSuccess) return cuda_fail(XO_EDEVICE, e_, what);                                            \
    } while (0)

static xo_status_t use_device(const xo_device_t *dev)
{
    int cur = -1;
    if (cudaGetDevice(&cur) == cudaSuccess && cur == dev->index) return XO_OK;
    CUDA_CHECK(cudaSetDevice(dev->index), "cudaSetDevice");
    return XO_OK;
}

/* ---- discovery ------------------------------------------------------------------------------------------------ */

static xo_status_t cuda_discover(xo_device_info_t *infos, size_t cap, size_t *n_p)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        *n_p = 0;
        return cuda_fail(XO_EDEVICE, e, "cudaGetDeviceCount");
    }
    if (n == 0) {
        *n_p = 0;
        return xo__error_set(XO_EDEVICE, "cudaGetDeviceCount: the CUDA runtime sees 0 devices");
    }
    for (int i = 0; i < n && (size_t)i < cap; i++) {
        xo_device_info_t *d = &infos[i];
        struct cudaDeviceProp prop;
        /* Neither call creates a context. */
        e = cudaGetDeviceProperties(&prop, i);
        if (e != cudaSuccess) {
            *n_p = 0;
            return cuda_fail(XO_EDEVICE, e, "cudaGetDeviceProperties");
        }
        d->index = i;
        snprintf(d->name, sizeof d->name, "%.*s", (int)sizeof d->name - 1, prop.name);
        d->mem_total = (uint64_t)prop.totalGlobalMem;
        char bus[XO_DEVICE_BUS_ID_MAX] = "";
        if (cudaDeviceGetPCIBusId(bus, (int)sizeof bus, i) == cudaSuccess) {
            /* CUDA writes "0000:3B:00.0"; sysfs names it in lower case. */
            for (char *c = bus; *c; c++)
                if (*c >= 'A' && *c <= 'F') *c = (char)(*c - 'A' + 'a');
            snprintf(d->pci_bus_id, sizeof d->pci_bus_id, "%s", bus);
            char path[128];
            snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/local_cpulist", bus);
            if (!xo__read_cpulist(path, d->local_cpulist, sizeof d->local_cpulist))
                xo_log_debug("cuda device %d: no %s", i, path);
        }
    }
    *n_p = (size_t)n;
    return XO_OK;
}

/* ---- device state --------------------------------------------------------------------------------------------- */

/* An imported allocation, opened once per process (CUDA refuses a second open) and shared by its imports. After its
 * last close it stays open, idle, for the next import of the same allocation (cudaIpcOpenMemHandle costs tens of
 * microseconds, and a pool that borrows the same buffers call after call would pay it every time): at most
 * XO_CUDA_IPC_CACHE (default 4) idle ones per device, least recently used first out, and those whose exporting
 * process is gone are closed at the next close. While idle, a mapping keeps the exporter's memory from being
 * reclaimed even if the exporter freed it (CUDA frees it at the last close): XO_CUDA_IPC_CACHE=0 turns this off. */
typedef struct cuda_import {
    struct cuda_import *next;
    cudaIpcMemHandle_t handle;
    uint8_t *base;
    uint64_t size;
    uint32_t refs;      /* open imports; 0: idle */
    int32_t pid;        /* the exporting process */
    uint64_t last_used;
} cuda_import_t;

typedef struct cuda_dev {
    pthread_mutex_t lock; /* imports */
    cuda_import_t *imports;
    uint64_t import_clock;
} cuda_dev_t;

static xo_status_t cuda_open(xo_device_t *dev, const xo_device_config_t *cfg)
{
    int n = 0;
    CUDA_CHECK(cudaGetDeviceCount(&n), "cudaGetDeviceCount");
    if (dev->index >= n)
        return xo__error_set(XO_EINVAL, "cuda device %d does not exist: the CUDA runtime sees %d", dev->index, n);
    /* The first call that touches a device, so the context is created on this one (cudaSetDevice initialises the
     * primary context). */
    CUDA_CHECK(cudaSetDevice(dev->index), "cudaSetDevice");
    CUDA_CHECK(cudaFree(NULL), "cudaFree(NULL) (creating the context)");
    cuda_dev_t *c = calloc(1, sizeof *c);
    if (!c) return xo__error_set(XO_ENOMEM, "out of memory");
    pthread_mutex_init(&c->lock, NULL);
    dev->impl = c;
    return XO_OK;
}

static void cuda_close(xo_device_t *dev)
{
    cuda_dev_t *c = dev->impl;
    for (cuda_import_t *im = c->imports, *next; im; im = next) {
        next = im->next;
        if (im->refs) xo_log_warn("cuda device %d: import still mapped at close", dev->index);
        cudaIpcCloseMemHandle(im->base);
        free(im);
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static xo_status_t cuda_alloc(xo_device_t *dev, size_t size, void **ptr_p)
{
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError(); /* not sticky: clear it so that later calls do not report it */
        size_t free_b = 0, total = 0;
        cudaMemGetInfo(&free_b, &total);
        return xo__error_set(XO_ENOMEM, "device %s: cannot allocate %zu bytes: %zu of %zu bytes free (cudaMalloc: %s)",
                            xo__device_label(dev), size, free_b, total, cudaGetErrorString(e));
    }
    if (e != cudaSuccess) return cuda_fail(XO_EDEVICE, e, "cudaMalloc");
    *ptr_p = p;
    return XO_OK;
}

static void cuda_free(xo_device_t *dev, void *ptr, size_t size)
{
    if (use_device(dev) != XO_OK) return;
    cudaError_t e = cudaFree(ptr);
    if (e != cudaSuccess)
        xo_log_error("cuda device %d: cudaFree(%p): %s (%s)", dev->index, ptr, cudaGetErrorString(e), cudaGetErrorName(e));
}

static enum cudaMemcpyKind kind_of(xo_memcpy_kind_t k)
{
    switch (k) {
    case XO_MEMCPY_HOST_TO_DEVICE:
        return cudaMemcpyHostToDevice;
    case XO_MEMCPY_DEVICE_TO_HOST:
        return cudaMemcpyDeviceToHost;
    default:
        return cudaMemcpyDeviceToDevice;
    }
}

static xo_status_t cuda_memcpy(xo_device_t *dev, void *dst, const void *src, size_t n, xo_memcpy_kind_t kind,
                               void *stream)
{
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;
    if (stream) {
        CUDA_CHECK(cudaMemcpyAsync(dst, src, n, kind_of(kind), (cudaStream_t)stream), "cudaMemcpyAsync");
        return XO_OK;
    }
    /* cudaMemcpy, then a wait for the device-to-device case (which cudaMemcpy does not wait for): measured on an
     * H200, the same copy as cudaMemcpyAsync on the legacy stream plus its synchronize took ~150 us more at 4 KiB. */
    CUDA_CHECK(cudaMemcpy(dst, src, n, kind_of(kind)), "cudaMemcpy");
    if (kind == XO_MEMCPY_DEVICE_TO_DEVICE) CUDA_CHECK(cudaStreamSynchronize(NULL), "cudaStreamSynchronize");
    return XO_OK;
}

static xo_status_t cuda_memset(xo_device_t *dev, void *dst, int value, size_t n, void *stream)
{
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;
    CUDA_CHECK(cudaMemsetAsync(dst, value, n, (cudaStream_t)stream), "cudaMemsetAsync");
    if (!stream) CUDA_CHECK(cudaStreamSynchronize(NULL), "cudaStreamSynchronize");
    return XO_OK;
}

static xo_status_t cuda_mem_info(xo_device_t *dev, uint64_t *free_p, uint64_t *total_p)
{
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;
    size_t f = 0, t = 0;
    CUDA_CHECK(cudaMemGetInfo(&f, &t), "cudaMemGetInfo");
    *free_p = f;
    *total_p = t;
    return XO_OK;
}

/* ---- streams and events --------------------------------------------------------------------------------------- */

static xo_status_t cuda_stream_create(xo_device_t *dev, void **stream_p)
{
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;
    cudaStream_t s;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    *stream_p = s;
    return XO_OK;
}

static void cuda_stream_destroy(xo_device_t *dev, void *stream)
{
    if (use_device(dev) != XO_OK) return;
    /* cudaStreamDestroy returns before queued work is done; gpu.h promises that destroy waits. */
    cudaError_t e = cudaStreamSynchronize((cudaStream_t)stream);
    if (e != cudaSuccess) xo_log_warn("cuda device %d: stream work failed: %s", dev->index, cudaGetErrorString(e));
    cudaStreamDestroy((cudaStream_t)stream);
}

static xo_status_t cuda_stream_synchronize(xo_device_t *dev, void *stream)
{
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;
    CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)stream), "cudaStreamSynchronize");
    return XO_OK;
}

static xo_status_t cuda_stream_wait_event(xo_device_t *dev, void *stream, void *event)
{
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;
    CUDA_CHECK(cudaStreamWaitEvent((cudaStream_t)stream, (cudaEvent_t)event, 0), "cudaStreamWaitEvent");
    return XO_OK;
}

static xo_status_t cuda_launch_host(xo_device_t *dev, void *stream, void (*fn)(void *), void *arg)
{
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;
    CUDA_CHECK(cudaLaunchHostFunc((cudaStream_t)stream, fn, arg), "cudaLaunchHostFunc");
    return XO_OK;
}

static xo_status_t cuda_launch_kernel(xo_device_t *dev, void *stream, const void *kernel, const unsigned grid[3],
                                      const unsigned block[3], size_t shmem, void **args)
{
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;
    dim3 g = {grid[0], grid[1], grid[2]}, b = {block[0], block[1], block[2]};
    CUDA_CHECK(cudaLaunchKernel(kernel, g, b, args, shmem, (cudaStream_t)stream), "cudaLaunchKernel");
    return XO_OK;
}

static void *cuda_stream_native(xo_device_t *dev, void *stream) { return stream; }

static xo_status_t cuda_event_create(xo_device_t *dev, void **event_p)
{
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;
    cudaEvent_t e;
    CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    *event_p = e;
    return XO_OK;
}

static void cuda_event_destroy(xo_device_t *dev, void *event)
{
    if (use_device(dev) == XO_OK) cudaEventDestroy((cudaEvent_t)event);
}

static xo_status_t cuda_event_record(xo_device_t *dev, void *event, void *stream)
{
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;
    CUDA_CHECK(cudaEventRecord((cudaEvent_t)event, (cudaStream_t)stream), "cudaEventRecord");
    return XO_OK;
}

static xo_status_t cuda_event_synchronize(xo_device_t *dev, void *event)
{
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;
    CUDA_CHECK(cudaEventSynchronize((cudaEvent_t)event), "cudaEventSynchronize");
    return XO_OK;
}

static xo_status_t cuda_event_query(xo_device_t *dev, void *event)
{
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;
    cudaError_t e = cudaEventQuery((cudaEvent_t)event);
    if (e == cudaSuccess) return XO_OK;
    if (e == cudaErrorNotReady) return XO_EAGAIN;
    return cuda_fail(XO_EDEVICE, e, "cudaEventQuery");
}

/* Interprocess events must not time (CUDA requires cudaEventDisableTiming with cudaEventInterprocess). */
static xo_status_t cuda_event_create_ipc(xo_device_t *dev, void **event_p, void *payload, size_t *len_p)
{
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;
    cudaEvent_t e;
    CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming | cudaEventInterprocess),
               "cudaEventCreateWithFlags(interprocess)");
    cudaIpcEventHandle_t h;
    cudaError_t err = cudaIpcGetEventHandle(&h, e);
    if (err != cudaSuccess) {
        cudaEventDestroy(e);
        return cuda_fail(XO_EDEVICE, err, "cudaIpcGetEventHandle");
    }
    _Static_assert(sizeof h <= XO_DEVICE_IPC_PAYLOAD_MAX, "cuda event IPC payload too large");
    memcpy(payload, &h, sizeof h);
    *len_p = sizeof h;
    *event_p = e;
    return XO_OK;
}

static xo_status_t cuda_event_ipc_import(xo_device_t *dev, const void *payload, size_t len, void **event_p)
{
    cudaIpcEventHandle_t h;
    if (len != sizeof h)
        return xo__error_set(XO_EINVAL, "device %s: malformed CUDA event handle", xo__device_label(dev));
    memcpy(&h, payload, sizeof h);
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;
    cudaEvent_t e;
    CUDA_CHECK(cudaIpcOpenEventHandle(&e, h), "cudaIpcOpenEventHandle");
    *event_p = e;
    return XO_OK;
}

/* ---- IPC ------------------------------------------------------------------------------------------------------ */

typedef struct cuda_ipc {
    cudaIpcMemHandle_t handle; /* of the whole allocation */
    uint64_t size;             /* of the allocation */
    uint64_t offset;           /* of the exported pointer in it */
    int32_t device;            /* the exporter's device index (informational: CUDA maps it on the importer's) */
    int32_t pid;               /* the exporting process: an idle import of a process that is gone is closed */
} cuda_ipc_t;

static xo_status_t cuda_ipc_export(xo_device_t *dev, void *base, size_t size, size_t offset, void *payload,
                                   size_t *len_p)
{
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;
    cuda_ipc_t m;
    memset(&m, 0, sizeof m);
    _Static_assert(sizeof m <= XO_DEVICE_IPC_PAYLOAD_MAX, "cuda IPC payload too large");
    CUDA_CHECK(cudaIpcGetMemHandle(&m.handle, base), "cudaIpcGetMemHandle");
    m.size = size;
    m.offset = offset;
    m.device = dev->index;
    m.pid = (int32_t)getpid();
    memcpy(payload, &m, sizeof m);
    *len_p = sizeof m;
    return XO_OK;
}

static size_t ipc_cache_max(void)
{
    const char *e = getenv("XO_CUDA_IPC_CACHE");
    return e ? (size_t)strtoul(e, NULL, 10) : 4;
}

static void close_import(xo_device_t *dev, cuda_import_t *im)
{
    if (use_device(dev) == XO_OK) {
        cudaError_t e = cudaIpcCloseMemHandle(im->base);
        if (e != cudaSuccess) xo_log_warn("cuda device %d: cudaIpcCloseMemHandle: %s", dev->index, cudaGetErrorString(e));
    }
    free(im);
}

static xo_status_t cuda_ipc_import(xo_device_t *dev, const void *payload, size_t len, void **ptr_p, size_t *size_p)
{
    cuda_dev_t *c = dev->impl;
    cuda_ipc_t m;
    if (len != sizeof m) return xo__error_set(XO_EINVAL, "device %s: malformed cuda IPC handle", xo__device_label(dev));
    memcpy(&m, payload, sizeof m);
    if (m.size == 0 || m.offset >= m.size)
        return xo__error_set(XO_EINVAL, "device %s: malformed cuda IPC handle", xo__device_label(dev));
    xo_status_t st = use_device(dev);
    if (st != XO_OK) return st;

    /* The lock is held across cudaIpcOpenMemHandle: two threads importing one handle must not both open it (CUDA
     * refuses the second open in a process). Imports are rare; serialising them costs nothing that matters. */
    pthread_mutex_lock(&c->lock);
    for (cuda_import_t *im = c->imports; im; im = im->next) {
        if (memcmp(&im->handle, &m.handle, sizeof m.handle) == 0) {
            im->refs++;
            im->last_used = ++c->import_clock;
            pthread_mutex_unlock(&c->lock);
            *ptr_p = im->base + m.offset;
            *size_p = m.size - m.offset;
            return XO_OK;
        }
    }
    void *base = NULL;
    cudaError_t e = cudaIpcOpenMemHandle(&base, m.handle, cudaIpcMemLazyEnablePeerAccess);
    if (e == cudaErrorAlreadyMapped) {
        /* An idle mapping of memory the exporter has freed and allocated again (a new handle, the same addresses
         * there): CUDA refuses to map it twice. Seen on an H200. Close the idle mappings and open again. */
        cudaGetLastError();
        for (cuda_import_t **pp = &c->imports; *pp;) {
            cuda_import_t *old = *pp;
            if (old->refs) {
                pp = &old->next;
                continue;
            }
            *pp = old->next;
            close_import(dev, old);
        }
        e = cudaIpcOpenMemHandle(&base, m.handle, cudaIpcMemLazyEnablePeerAccess);
    }
    if (e != cudaSuccess) {
        pthread_mutex_unlock(&c->lock);
        cudaGetLastError();
        return cuda_fail(e == cudaErrorInvalidResourceHandle || e == cudaErrorInvalidValue ? XO_EINVAL : XO_EDEVICE, e,
                         "cudaIpcOpenMemHandle");
    }
    cuda_import_t *im = calloc(1, sizeof *im);
    if (!im) {
        cudaIpcCloseMemHandle(base);
        pthread_mutex_unlock(&c->lock);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    *im = (cuda_import_t){.next = c->imports, .handle = m.handle, .base = base, .size = m.size, .refs = 1,
                          .pid = m.pid, .last_used = ++c->import_clock};
    c->imports = im;
    pthread_mutex_unlock(&c->lock);
    *ptr_p = im->base + m.offset;
    *size_p = m.size - m.offset;
    return XO_OK;
}

static void cuda_ipc_close(xo_device_t *dev, void *ptr)
{
    cuda_dev_t *c = dev->impl;
    pthread_mutex_lock(&c->lock);
    bool went_idle = false;
    for (cuda_import_t *im = c->imports; im; im = im->next) {
        if ((uint8_t *)ptr < im->base || (uint8_t *)ptr >= im->base + im->size) continue;
        went_idle = im->refs > 0 && --im->refs == 0;
        break;
    }
    /* Close the idle mappings of processes that are gone, then the least recently used beyond the cache's size. */
    for (size_t max = ipc_cache_max(); went_idle;) {
        size_t idle = 0;
        cuda_import_t **victim = NULL;
        for (cuda_import_t **pp = &c->imports; *pp; pp = &(*pp)->next) {
            if ((*pp)->refs) continue;
            idle++;
            if ((*pp)->pid > 0 && kill((pid_t)(*pp)->pid, 0) != 0 && errno == ESRCH) {
                victim = pp;
                idle = SIZE_MAX;
                break;
            }
            if (!victim || (*pp)->last_used < (*victim)->last_used) victim = pp;
        }
        if (!victim || idle <= max) break;
        cuda_import_t *im = *victim;
        *victim = im->next;
        close_import(dev, im);
    }
    pthread_mutex_unlock(&c->lock);
}

static const xo_device_ops_t cuda_ops = {
    .name = "cuda",
    .discover = cuda_discover,
    .open = cuda_open,
    .close = cuda_close,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .memcpy = cuda_memcpy,
    .memset = cuda_memset,
    .mem_info = cuda_mem_info,
    .stream_create = cuda_stream_create,
    .stream_destroy = cuda_stream_destroy,
    .stream_synchronize = cuda_stream_synchronize,
    .stream_wait_event = cuda_stream_wait_event,
    .launch_host = cuda_launch_host,
    .event_create = cuda_event_create,
    .event_destroy = cuda_event_destroy,
    .event_record = cuda_event_record,
    .event_synchronize = cuda_event_synchronize,
    .event_query = cuda_event_query,
    .event_create_ipc = cuda_event_create_ipc,
    .event_ipc_import = cuda_event_ipc_import,
    .ipc_export = cuda_ipc_export,
    .ipc_import = cuda_ipc_import,
    .ipc_close = cuda_ipc_close,
    .launch_kernel = cuda_launch_kernel,
    .stream_native = cuda_stream_native,
};

XO_PLUGIN_DEFINE(XO_PLUGIN_DEVICE, "cuda", XO_DEVICE_PLUGIN_LAYOUT, &cuda_ops);
