/* The device interface inside the library: the backend ops table and the objects every backend shares.
 *
 * The public functions (include/xoscar/gpu.h, implemented in device.c) do what is the same for every backend:
 * argument checks, the table of live allocations (double free, foreign pointers, capacity accounting), the table of
 * imports, the handle header, the error texts that name the device. Then they call the backend's op, which does only
 * what differs. Backends: host.c (always built, in the core) and cuda.c (the plugin libxoscar-cuda.so, built only
 * with the CUDA toolkit, loaded at run time: base/plugin.h); the ordered registry is in device.c.
 *
 * Ops contract, for every backend:
 *   - Ops are called with no lock of device.c held, so they may block (cudaMalloc, joining a worker).
 *   - Device pointers passed to an op have already been checked against the allocation and import tables.
 *   - An op that fails sets the error text (xo__error_set) where it decides the failure, and returns the status.
 *   - Backend objects (device state, streams, events) are opaque void * to device.c; the backend allocates and
 *     frees them. */
#ifndef XO_GPU_DEVICE_H
#define XO_GPU_DEVICE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/plugin.h"
#include "xoscar/gpu.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Allocations are counted (and aligned) in units of this many bytes, as cudaMalloc aligns them. */
#define XO_DEVICE_ALIGN 256u

/* The handle's common header; the backend owns the bytes after it. */
#define XO_DEVICE_IPC_MAGIC 0x48495258u       /* "XRIH": memory */
#define XO_DEVICE_IPC_EVENT_MAGIC 0x45495258u /* "XRIE": an event */
#define XO_DEVICE_IPC_VERSION 1u
typedef struct xo__ipc_header {
    uint32_t magic;
    uint16_t version;
    uint16_t payload_len;
    char backend[8]; /* NUL-padded backend name */
} xo__ipc_header_t;
#define XO_DEVICE_IPC_PAYLOAD_MAX (XO_DEVICE_IPC_HANDLE_SIZE - sizeof(xo__ipc_header_t))

struct xo_device_ops {
    const char *name;

    /* ---- mandatory ---- */
    /* Writes up to cap infos and sets *n_p (always, 0 on error). */
    xo_status_t (*discover)(xo_device_info_t *infos, size_t cap, size_t *n_p);
    /* Opens dev->index: sets dev->impl, and dev->capacity when the backend has its own (host). cfg is never NULL. */
    xo_status_t (*open)(xo_device_t *dev, const xo_device_config_t *cfg);
    /* Frees dev->impl. Streams, allocations and imports are gone already. */
    void (*close)(xo_device_t *dev);
    /* size is a multiple of XO_DEVICE_ALIGN and the capacity check passed. */
    xo_status_t (*alloc)(xo_device_t *dev, size_t size, void **ptr_p);
    /* ptr is the base of a live allocation of that (rounded) size, already removed from the table. */
    void (*free)(xo_device_t *dev, void *ptr, size_t size);
    /* stream NULL: synchronous. */
    xo_status_t (*memcpy)(xo_device_t *dev, void *dst, const void *src, size_t n, xo_memcpy_kind_t kind, void *stream);
    xo_status_t (*memset)(xo_device_t *dev, void *dst, int value, size_t n, void *stream);
    /* The backend's own free and total bytes (host: its arena; cuda: cudaMemGetInfo). */
    xo_status_t (*mem_info)(xo_device_t *dev, uint64_t *free_p, uint64_t *total_p);

    xo_status_t (*stream_create)(xo_device_t *dev, void **stream_p);
    void (*stream_destroy)(xo_device_t *dev, void *stream);  /* waits for its work */
    xo_status_t (*stream_synchronize)(xo_device_t *dev, void *stream);
    xo_status_t (*stream_wait_event)(xo_device_t *dev, void *stream, void *event);
    xo_status_t (*launch_host)(xo_device_t *dev, void *stream, void (*fn)(void *), void *arg);

    xo_status_t (*event_create)(xo_device_t *dev, void **event_p);
    void (*event_destroy)(xo_device_t *dev, void *event);
    xo_status_t (*event_record)(xo_device_t *dev, void *event, void *stream);
    xo_status_t (*event_synchronize)(xo_device_t *dev, void *event);
    xo_status_t (*event_query)(xo_device_t *dev, void *event); /* XO_OK, XO_EAGAIN, or an error */

    /* Writes at most XO_DEVICE_IPC_PAYLOAD_MAX bytes into payload for the allocation [base, base + size), of which
     * the importer gets [base + offset, base + size); sets *len_p. */
    xo_status_t (*ipc_export)(xo_device_t *dev, void *base, size_t size, size_t offset, void *payload, size_t *len_p);
    /* Maps the payload's range: *ptr_p and the bytes usable from it, *size_p. Refcounts shared mappings itself. */
    xo_status_t (*ipc_import)(xo_device_t *dev, const void *payload, size_t len, void **ptr_p, size_t *size_p);
    /* Releases one import of ptr (a pointer ipc_import returned). */
    void (*ipc_close)(xo_device_t *dev, void *ptr);

    /* ---- optional: NULL means XO_ENOTSUP ---- */
    xo_status_t (*launch_kernel)(xo_device_t *dev, void *stream, const void *kernel, const unsigned grid[3],
                                 const unsigned block[3], size_t shmem, void **args);
    void *(*stream_native)(xo_device_t *dev, void *stream);
    /* Creates an event other processes can import and writes its handle's payload (at most
     * XO_DEVICE_IPC_PAYLOAD_MAX bytes) and *len_p. event_destroy frees it. */
    xo_status_t (*event_create_ipc)(xo_device_t *dev, void **event_p, void *payload, size_t *len_p);
    /* Opens another process's exported event: an event for waiting only (never recorded), freed by event_destroy. */
    xo_status_t (*event_ipc_import)(xo_device_t *dev, const void *payload, size_t len, void **event_p);
};

/* A sorted table of address ranges: live allocations or imports. */
typedef struct xo__range {
    uintptr_t base;
    size_t size;
    uint32_t opens; /* imports: how many imports of this pointer are open */
} xo__range_t;

typedef struct xo__range_table {
    xo__range_t *v;
    size_t n, cap;
} xo__range_table_t;

struct xo_device {
    const xo_device_ops_t *ops;
    int index;
    uint64_t capacity;             /* 0: no limit of ours (the backend's memory is the limit) */
    void *impl;                    /* the backend's state */

    pthread_mutex_t lock;          /* guards everything below; never held across an op */
    xo__range_table_t allocs;      /* live allocations, by base */
    xo__range_table_t imports;     /* open imports, by pointer */
    uint64_t used;                 /* rounded bytes of live allocations plus reservations in flight */
    xo_device_stream_t *streams;   /* open streams (closed by xo_device_close) */
    xo_device_event_t *ipc_events; /* live exportable events, so that this process's imports of them share them */
};

struct xo_device_stream {
    xo_device_t *dev;
    void *impl;
    xo_device_stream_t *prev, *next; /* dev->streams, under dev->lock */
};

typedef enum xo__event_kind {
    XO_EVENT_LOCAL = 0, /* xo_device_event_create */
    XO_EVENT_IPC,       /* xo_device_event_create_ipc: exportable */
    XO_EVENT_IMPORTED,  /* xo_device_ipc_import_event: for waiting only */
} xo__event_kind_t;

struct xo_device_event {
    xo_device_t *dev;
    void *impl;
    xo__event_kind_t kind;
    /* XO_EVENT_IPC: its handle, the list link (dev->ipc_events, under dev->lock) and references: 1 for the creator
     * plus 1 per import in this process, which shares impl; the last one destroys impl. */
    xo_device_ipc_handle_t handle;
    xo_device_event_t *next_ipc;
    int refs;
    /* An import of this process's own event: the event it shares impl with (holding a reference); else NULL. */
    xo_device_event_t *origin;
};

/* "host:0": the device's name for error texts. Static per-thread buffer, valid until the next call on the thread. */
const char *xo__device_label(const xo_device_t *dev);

/* Whether [p, p + n) is dev's memory: inside one live allocation or one open import (dev->lock). */
bool xo__device_has_range(xo_device_t *dev, const void *p, size_t n);

/* Reads a sysfs cpulist file (e.g. /sys/bus/pci/devices/<id>/local_cpulist) into buf, trimmed. false when it cannot
 * be read (buf is then ""). */
bool xo__read_cpulist(const char *path, char *buf, size_t len);

/* Sets the error text for a device backend name the registry does not have (XO_ENOTSUP), with the reason when it is
 * a plugin that was not loaded ("no device backend \"cuda\": plugin cuda: not installed: ..."). Returns XO_ENOTSUP. */
xo_status_t xo__device_backend_missing(const char *name);

/* The backends: host in the core; cuda in its plugin (gpu/cuda.c, libxoscar-cuda.so), whose descriptor carries this
 * fingerprint of the structures it shares with device.c. */
extern const xo_device_ops_t xo__device_host_ops;
#define XO_DEVICE_PLUGIN_LAYOUT XO_PLUGIN_LAYOUT(xo_device_ops_t, xo_device_t)

#ifdef __cplusplus
}
#endif
#endif
