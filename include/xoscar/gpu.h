/* Xoscar-C devices: one interface over GPUs (the "cuda" backend) and host memory (the "host" backend).
 *
 * A backend is found by name (xo_device_backend_find) and discovers its devices; an opened device (xo_device_t)
 * allocates memory, copies between host and device and within the device, runs work in streams (queues whose
 * operations run in order, asynchronously to the caller), records events that complete when a stream reaches them,
 * reports its memory (for placement policies), and exports allocations to other processes as a fixed-size opaque
 * handle that those processes import.
 *
 * Backends, in preference order:
 *   cuda  the CUDA runtime API; only in builds that found the CUDA toolkit (XO_WITH_CUDA=ON). On a machine without
 *         a usable GPU it discovers 0 devices and says why (the CUDA error text); it never aborts.
 *   host  a real device whose memory is host memory: every allocation lives in one memfd mapping per opened device
 *         (so other processes can import it), sized by a capacity fixed at open; each stream is a worker thread that
 *         runs its queued operations in order; events complete when their stream's worker reaches them. It runs
 *         everywhere, so code written against this interface is tested on machines without a GPU.
 *
 * Device pointers. Memory from xo_device_alloc is named by a plain pointer, as in CUDA. Every function that takes a
 * device pointer checks that the whole range lies in one live allocation of that device (or one imported mapping):
 * a freed, foreign or host pointer fails with XO_EINVAL and a text naming it, on every backend. Interior pointers
 * (base + offset) are fine wherever a range is checked; xo_device_free wants the base pointer.
 *
 * Errors: XO_EINVAL (bad pointer, handle, size, or argument), XO_ENOMEM (over the device's capacity; the text names
 * the requested and free bytes), XO_EDEVICE (the device or its driver failed; the text carries the backend's error,
 * e.g. "cudaMalloc: out of memory (cudaErrorMemoryAllocation)"), XO_ESYS (a system call failed, with its errno
 * text), XO_ENOTSUP (an optional operation the backend lacks). The text is in xo_last_error(). Out-parameters are
 * written only on XO_OK, except where a comment says otherwise.
 *
 * Threading: every function is thread-safe unless its comment says otherwise. A device, its streams and events may be
 * used from any thread. Destroying or closing an object while another thread still uses it is the caller's bug.
 *
 * Ownership of buffers passed between actors (the rule the runtime's device-buffer calls implement):
 *   - The process that allocated a buffer owns it and is the only one that frees it. A buffer is lent to a receiver
 *     (an actor in this pool, or another process through an IPC handle), never given away.
 *   - The sender keeps the buffer alive, unmodified, until the receiver says it is done with it: for a call, until
 *     the reply (or the call's failure) arrives; for a tell, until an explicit release message. Freeing or
 *     rewriting it earlier is a use-after-free on the receiver's side, which no backend detects across processes.
 *   - A receiver in another process imports the handle, uses the memory, and calls xo_device_ipc_close before it
 *     reports that it is done. It never frees the imported pointer.
 *   - Work a receiver queued on a stream that reads or writes the buffer counts as use: the receiver synchronizes
 *     that stream (or an event recorded after the work) before it reports that it is done.
 * See gpu/README.md for the reasoning and an example. */
#ifndef XOSCAR_GPU_H
#define XOSCAR_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "xoscar/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------------------------- */
/* Types                                                                                                              */

typedef struct xo_device_ops xo_device_ops_t;       /* a backend: its operations table (read-only, static storage) */
typedef struct xo_device xo_device_t;               /* an opened device */
typedef struct xo_device_stream xo_device_stream_t; /* an in-order queue of asynchronous work on one device */
typedef struct xo_device_event xo_device_event_t;   /* a marker in a stream, complete when the stream reaches it */

#define XO_DEVICE_NAME_MAX 128
#define XO_DEVICE_CPULIST_MAX 256
#define XO_DEVICE_BUS_ID_MAX 32
#define XO_DEVICE_IPC_HANDLE_SIZE 128

/* What discovery learns about one device. */
typedef struct xo_device_info {
    int index;                                     /* the index xo_device_open takes */
    char name[XO_DEVICE_NAME_MAX];                 /* e.g. "NVIDIA H100 80GB HBM3", "host memory" */
    uint64_t mem_total;                            /* bytes of device memory (host: its share of physical memory) */
    char pci_bus_id[XO_DEVICE_BUS_ID_MAX];         /* "0000:3b:00.0" (lower case, as sysfs spells it); "" for host */
    char local_cpulist[XO_DEVICE_CPULIST_MAX];     /* the CPUs near the device, in the kernel's cpulist format
                                                    * ("0-15,32-47"): /sys/bus/pci/devices/<bus id>/local_cpulist for a
                                                    * GPU, the online CPUs for host; "" when unknown */
} xo_device_info_t;

/* Options for xo_device_open. Zero-initialise and set what you need. */
typedef struct xo_device_config {
    /* The most bytes this opened device hands out at once (allocations are counted rounded up to 256 bytes). host:
     * the size of its memory (0: physical memory divided by the number of host devices). cuda: a limit on this
     * handle's allocations, below the GPU's own memory (0: none, only the GPU's memory limits). */
    uint64_t capacity;
} xo_device_config_t;

typedef enum xo_memcpy_kind {
    XO_MEMCPY_HOST_TO_DEVICE = 1,
    XO_MEMCPY_DEVICE_TO_HOST = 2,
    XO_MEMCPY_DEVICE_TO_DEVICE = 3,
} xo_memcpy_kind_t;

/* Memory of an opened device, in bytes. */
typedef struct xo_device_mem_info {
    uint64_t free;  /* what an allocation could get now: min(device free, capacity - used) */
    uint64_t total; /* the capacity when one is set, else the device's memory */
    uint64_t used;  /* held by this opened device's live allocations (rounded up to 256 bytes each) */
} xo_device_mem_info_t;

/* An exported allocation: plain bytes, safe to copy into a message and send to another process of this host. */
typedef struct xo_device_ipc_handle {
    unsigned char bytes[XO_DEVICE_IPC_HANDLE_SIZE];
} xo_device_ipc_handle_t;

/* ---------------------------------------------------------------------------------------------------------------- */
/* Backends                                                                                                           */

/* The backend called name ("cuda", "host"), or NULL when there is none in this build. Non-blocking; the result is
 * static storage. */
XO_API const xo_device_ops_t *xo_device_backend_find(const char *name);

/* The i-th backend in preference order (cuda before host), or NULL past the last. */
XO_API const xo_device_ops_t *xo_device_backend_at(size_t i);

/* The backend's name (static storage). */
XO_API const char *xo_device_backend_name(const xo_device_ops_t *backend);

/* Finds the backend's devices and writes up to cap of them into infos (may be NULL when cap is 0). *n_p is written in
 * every case: the number of devices (which may exceed cap), or 0 on an error, so a caller that only wants a count may
 * ignore the status. Blocking (reads sysfs; cuda: initialises the CUDA driver but creates no context, so a later
 * process-wide device choice is not disturbed).
 * XO_EDEVICE with the backend's text when it cannot look (cuda: "cudaGetDeviceCount: no CUDA-capable device is
 * detected (cudaErrorNoDevice)"); *n_p is then 0. */
XO_API xo_status_t xo_device_discover(const xo_device_ops_t *backend, xo_device_info_t *infos, size_t cap,
                                      size_t *n_p);

/* ---------------------------------------------------------------------------------------------------------------- */
/* Devices                                                                                                            */

/* Opens device index of backend. cfg may be NULL (defaults). On XO_OK the caller owns *dev_p and closes it with
 * xo_device_close. Blocking. cuda: calls cudaSetDevice(index) first (a pool bound to a GPU opens it before any other
 * CUDA call; every later operation sets the calling thread's current device to index before it calls CUDA).
 * host: creates the memfd that holds the device's memory. XO_EINVAL for a bad index, XO_EDEVICE or XO_ESYS. */
XO_API xo_status_t xo_device_open(const xo_device_ops_t *backend, int index, const xo_device_config_t *cfg,
                                  xo_device_t **dev_p);

/* Closes the device: destroys the streams still open (waiting for their queued work), closes imported mappings and
 * frees allocations still live, then frees dev. Events must have been destroyed before. Blocking. Pointers into its
 * memory are invalid afterwards, in this process; another process's imports of them follow the backend's rule (see
 * xo_device_ipc_import). */
XO_API void xo_device_close(xo_device_t *dev);

/* The device's backend and index. */
XO_API const xo_device_ops_t *xo_device_backend(const xo_device_t *dev);
XO_API int xo_device_index(const xo_device_t *dev);

/* Allocates size bytes of device memory (aligned to 256 bytes, content undefined). On XO_OK *ptr_p is a device
 * pointer the caller owns and frees with xo_device_free (or xo_device_close). Blocking, usually short (cuda:
 * cudaMalloc may synchronise the device). XO_EINVAL for size 0; XO_ENOMEM when it does not fit, with a text naming
 * the device, the requested bytes and the free bytes ("device host:0: cannot allocate 1048832 bytes: 524288 of
 * 1048576 bytes free"). */
XO_API xo_status_t xo_device_alloc(xo_device_t *dev, size_t size, void **ptr_p);

/* Frees an allocation by its base pointer. Work still queued on a stream that uses it must have finished (synchronize
 * first): freeing under running work is a use-after-free. XO_EINVAL, naming the pointer, when ptr is not the base
 * of a live allocation of dev (a second free, an interior pointer, an imported pointer: close those with
 * xo_device_ipc_close). Blocking. */
XO_API xo_status_t xo_device_free(xo_device_t *dev, void *ptr);

/* Copies n bytes. The device side(s) must lie in live allocations (or imports) of dev; the host side is any memory of
 * this process. stream NULL: blocks until the copy is done; it is not ordered against work queued on streams
 * (synchronize them first). A stream: queued behind the stream's earlier work and returns at once; both buffers
 * must stay valid and untouched until the stream has run it (synchronize the stream or an event recorded after).
 * cuda: a copy between the device and pageable host memory (anything not pinned, i.e. all host memory today) is
 * staged by CUDA and may block until the stream reaches it; device-to-device copies and memsets never block.
 * n == 0 is a no-op. XO_EINVAL for a pointer outside dev's memory or a bad kind; XO_EDEVICE. */
XO_API xo_status_t xo_device_memcpy(xo_device_t *dev, void *dst, const void *src, size_t n, xo_memcpy_kind_t kind,
                                    xo_device_stream_t *stream);

/* Sets n bytes of device memory at dst to (unsigned char)value; stream as for xo_device_memcpy. */
XO_API xo_status_t xo_device_memset(xo_device_t *dev, void *dst, int value, size_t n, xo_device_stream_t *stream);

/* Memory of the device, for placement (see xo_device_mem_info_t). Non-blocking for host; cuda: cudaMemGetInfo. */
XO_API xo_status_t xo_device_mem_info(xo_device_t *dev, xo_device_mem_info_t *info_p);

/* ---------------------------------------------------------------------------------------------------------------- */
/* Streams                                                                                                            */

/* Creates a stream. The caller owns *stream_p and destroys it with xo_device_stream_destroy (or xo_device_close).
 * host: starts a worker thread named "xo-dstream". cuda: a non-blocking stream (it does not synchronise with the
 * legacy default stream). */
XO_API xo_status_t xo_device_stream_create(xo_device_t *dev, xo_device_stream_t **stream_p);

/* Waits until the stream's queued work has finished, then frees the stream. Blocking. */
XO_API void xo_device_stream_destroy(xo_device_stream_t *stream);

/* Blocks until all work queued on the stream before this call has finished. Work queued meanwhile by other threads
 * may or may not be waited for. XO_EDEVICE when queued work failed (cuda: the asynchronous error). */
XO_API xo_status_t xo_device_stream_synchronize(xo_device_stream_t *stream);

/* Queues fn(arg) on the stream, in order with its other work (cudaLaunchHostFunc on cuda). Returns at once. fn runs
 * on a thread of the backend (host: the stream's worker; cuda: the CUDA runtime's callback thread) and must not call
 * this interface or CUDA (it may block briefly, which stalls the stream). arg must stay valid until fn has run.
 * This is how the host backend runs kernels: their C implementation is the function. */
XO_API xo_status_t xo_device_launch_host(xo_device_stream_t *stream, void (*fn)(void *arg), void *arg);

/* Queues a device kernel on the stream: cudaLaunchKernel(kernel, grid, block, args, shmem, stream) on cuda, where
 * kernel is the address of a __global__ function of a CUDA module loaded in this process (linked against the shared
 * libcudart, like the runtime, so that both see the same registered kernels) and args points to the kernel's
 * arguments as cudaLaunchKernel wants them. Returns at once; launch errors (a bad configuration) are returned here,
 * errors while the kernel runs by the next synchronize. XO_ENOTSUP on backends without kernels (host: use
 * xo_device_launch_host). */
XO_API xo_status_t xo_device_launch_kernel(xo_device_stream_t *stream, const void *kernel, const unsigned grid[3],
                                           const unsigned block[3], size_t shmem_bytes, void **args);

/* The backend's own stream object (cuda: the cudaStream_t) for code that launches with <<<...>>> itself, or NULL on
 * backends without one (host). Valid until the stream is destroyed. */
XO_API void *xo_device_stream_native(xo_device_stream_t *stream);

/* Makes later work queued on stream wait until event has completed (its latest record at the time of this call).
 * Returns at once. An event never recorded is complete. */
XO_API xo_status_t xo_device_stream_wait_event(xo_device_stream_t *stream, xo_device_event_t *event);

/* ---------------------------------------------------------------------------------------------------------------- */
/* Events                                                                                                             */

/* Creates an event of dev. The caller owns *event_p (xo_device_event_destroy, before closing dev). */
XO_API xo_status_t xo_device_event_create(xo_device_t *dev, xo_device_event_t **event_p);

/* Frees the event. A record still queued on a stream is allowed: the stream drops it when it gets there. */
XO_API void xo_device_event_destroy(xo_device_event_t *event);

/* Queues the event on stream: it completes when the stream has run everything queued before it. Recording again
 * replaces the previous record (query and synchronize then concern the latest one). Returns at once. The stream and
 * the event must belong to the same device (XO_EINVAL otherwise). */
XO_API xo_status_t xo_device_event_record(xo_device_event_t *event, xo_device_stream_t *stream);

/* Blocks until the event's latest record has completed (at once for an event never recorded). */
XO_API xo_status_t xo_device_event_synchronize(xo_device_event_t *event);

/* XO_OK when the event's latest record has completed (or it was never recorded), XO_EAGAIN while it is pending.
 * Non-blocking. XO_EDEVICE when the work before it failed. */
XO_API xo_status_t xo_device_event_query(xo_device_event_t *event);

/* ---------------------------------------------------------------------------------------------------------------- */
/* Sharing memory with other processes of this host                                                                 */

/* Writes a handle for the allocation that contains ptr (ptr may be interior: the importer gets ptr, and the rest of
 * that allocation from ptr on). The handle holds no resource: dropping it needs no call. It stays importable while
 * the exporter keeps the allocation (and, host, the process and the device) alive; see the ownership rule above.
 *   host: names the exporting process, the memfd holding the device's memory (its fd number and inode) and the
 *         range. The importer reopens the memfd through /proc/<pid>/fd/<n> (a same-user process may do this under
 *         Yama ptrace_scope 1, which forbids pidfd_getfd towards a parent), falling back to pidfd_getfd, and checks
 *         the inode, so a stale handle whose fd number was reused fails instead of mapping another file.
 *   cuda: cudaIpcGetMemHandle of the allocation, plus the offset and length.
 * XO_EINVAL when ptr is not in a live allocation of dev. */
XO_API xo_status_t xo_device_ipc_export(xo_device_t *dev, const void *ptr, xo_device_ipc_handle_t *handle_p);

/* Maps an allocation exported by another process (host also accepts one exported by this process) into dev's
 * address space. On XO_OK *ptr_p is usable with dev like its own memory (copies, kernels) until xo_device_ipc_close,
 * which the caller must call once per successful import; it is never passed to xo_device_free. Imports of one
 * exported allocation share one mapping (cuda: cudaIpcOpenMemHandle once, refcounted, as CUDA refuses a second open
 * in a process); importing the same handle twice returns the same pointer and needs two closes.
 * If the exporter frees the allocation (or exits) first, what the importer reads or writes is undefined (host: the
 * mapping stays valid, so nothing crashes, but the exporter may hand the memory out again; cuda: undefined).
 * XO_EINVAL for a handle that is not one (bad magic), another backend's (the text names both), or stale (the
 * exporting process or its memory is gone: the text says which); XO_EDEVICE (cuda) or XO_ESYS. Blocking. */
XO_API xo_status_t xo_device_ipc_import(xo_device_t *dev, const xo_device_ipc_handle_t *handle, void **ptr_p);

/* Releases one import of ptr (the pointer xo_device_ipc_import returned). After the last one the mapping stays,
 * idle, for the next import of the same memory (re-mapping costs tens of microseconds a call): at most 4 per device
 * (XO_CUDA_IPC_CACHE sets the cuda backend's number, 0 turns it off), least recently used first out, closed when the
 * exporting process is gone; host: revalidated against the exporter before reuse. An idle CUDA mapping keeps memory
 * the exporter freed from being reclaimed until it is evicted. ptr is unusable after this call either way.
 * XO_EINVAL when ptr is not an open import of dev. */
XO_API xo_status_t xo_device_ipc_close(xo_device_t *dev, void *ptr);

/* ---------------------------------------------------------------------------------------------------------------- */
/* Sharing events with other processes of this host                                                                 */
/*
 * Why: a process that lends a buffer still being written by its stream would otherwise have to synchronize that
 * stream on the host before it sends the buffer (cudaStreamSynchronize: the host thread waits and the GPU idles
 * between the two processes' work). With an exported event the receiver's stream waits on the device instead. */

/* Creates an event that can also be exported to other processes of this host (xo_device_ipc_export_event);
 * otherwise like xo_device_event_create. cuda: cudaEventInterprocess | cudaEventDisableTiming. host: the event's
 * state lives in a one-page memfd of its own, which importers map; waiters in other processes sleep on a futex there. */
XO_API xo_status_t xo_device_event_create_ipc(xo_device_t *dev, xo_device_event_t **event_p);

/* Writes a handle for an event made by xo_device_event_create_ipc (XO_EINVAL for any other event, imported ones
 * included). Like a memory handle: plain bytes, holding no resource, importable while the exporter keeps the event. */
XO_API xo_status_t xo_device_ipc_export_event(xo_device_event_t *event, xo_device_ipc_handle_t *handle_p);

/* Opens an exported event on dev (same backend; another process of this host, or this process: then the result
 * shares the exporter's event, which CUDA would refuse to open). The caller owns *event_p and destroys it with
 * xo_device_event_destroy. An imported event is for waiting only: xo_device_stream_wait_event,
 * xo_device_event_synchronize and xo_device_event_query see the exporter's latest record at the time of the call;
 * xo_device_event_record on it is XO_EINVAL. Destroying it right after queueing a stream wait is fine (the wait
 * stays). The exporter keeps its event, and does not record it again, until the importers are done with it (as it
 * keeps a lent buffer). If the exporting process dies with a record pending: host: waits end (synchronize returns
 * XO_EDEVICE naming the process; a stream's queued wait lets the stream go on, with a warning); cuda: undefined, as
 * CUDA documents. XO_EINVAL for a handle that is not an event handle of this backend, or a stale one; XO_EDEVICE;
 * XO_ESYS. Blocking (host: opens and maps the memfd; cuda: cudaIpcOpenEventHandle). */
XO_API xo_status_t xo_device_ipc_import_event(xo_device_t *dev, const xo_device_ipc_handle_t *handle,
                                              xo_device_event_t **event_p);

#ifdef __cplusplus
}
#endif
#endif
