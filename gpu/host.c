/* The host device backend: a device whose memory is host memory, for machines without a GPU and for tests.
 *
 * It is a real device, not a mock: memory is limited by a capacity and handed out by an allocator, copies queued on
 * a stream really run later on another thread, in order, and events complete when that thread reaches them.
 *
 * Memory. Each opened device owns one memfd of its capacity (sparse: pages exist only once touched), mapped shared.
 * Allocations are first-fit ranges of it, 256-byte aligned; a free gives whole pages back to the kernel (punching a
 * hole), so the process's memory follows what is allocated. Living in a memfd is what lets another process import an
 * allocation: it reopens the same file through /proc/<pid>/fd/<n> and maps it (see host_ipc_import).
 *
 * Streams. One worker thread per stream pops operations from a FIFO and runs them: copies and sets with memcpy and
 * memset, host functions (the host "kernels"), event records and waits. The stream's lock orders every enqueue
 * before the worker's dequeue, so the worker sees what the caller wrote before it queued the work, and
 * synchronize (which takes the same lock after the worker counted the operation done) sees what the worker wrote. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gpu/device.h"
#include "base/error.h"
#include "base/futex.h"
#include "base/log.h"

/* ---- discovery ------------------------------------------------------------------------------------------------ */

/* XO_HOST_DEVICES=n shows n host devices (each with an equal share of memory), to try multi-device code without
 * GPUs. Default 1. */
static int host_device_count(void)
{
    const char *s = getenv("XO_HOST_DEVICES");
    if (!s || !*s) return 1;
    char *end;
    long n = strtol(s, &end, 10);
    if (*end || n < 1 || n > 64) {
        xo_log_warn("XO_HOST_DEVICES=\"%s\" is not a number from 1 to 64; using 1", s);
        return 1;
    }
    return (int)n;
}

static uint64_t physical_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return (pages > 0 && page > 0) ? (uint64_t)pages * (uint64_t)page : 0;
}

static xo_status_t host_discover(xo_device_info_t *infos, size_t cap, size_t *n_p)
{
    int n = host_device_count();
    char cpus[XO_DEVICE_CPULIST_MAX];
    if (!xo__read_cpulist("/sys/devices/system/cpu/online", cpus, sizeof cpus)) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        if (ncpu > 1) snprintf(cpus, sizeof cpus, "0-%ld", ncpu - 1);
        else snprintf(cpus, sizeof cpus, "0");
    }
    for (int i = 0; i < n && (size_t)i < cap; i++) {
        xo_device_info_t *d = &infos[i];
        d->index = i;
        snprintf(d->name, sizeof d->name, "host memory (%d of %d)", i, n);
        d->mem_total = physical_memory() / (uint64_t)n;
        d->pci_bus_id[0] = '\0';
        snprintf(d->local_cpulist, sizeof d->local_cpulist, "%s", cpus);
    }
    *n_p = (size_t)n;
    return XO_OK;
}

/* ---- device state --------------------------------------------------------------------------------------------- */

typedef struct extent {
    size_t off, len;
} extent_t;

/* An imported memfd of some process, mapped once and shared by every import of it. A mapping whose last import
 * was closed stays mapped (idle) for the next import of the same memory: a pool that borrows buffers from the same
 * peer call after call then maps nothing and takes no page faults (an mmap of the exporter's whole device memory
 * and its first touches cost more than the copies of a small call). At most MAX_IDLE_IMPORTS stay idle per device;
 * an idle one is checked against the exporter's fd before it is used again, and dropped once its process is gone. */
typedef struct import_map {
    struct import_map *next;
    int32_t pid;
    int32_t fd;           /* the exporter's fd number of the memfd, to revalidate an idle mapping */
    uint64_t ino, devno;
    uint8_t *base;
    size_t size;
    uint32_t refs;        /* open imports; 0: idle */
    uint64_t last_used;   /* a counter value, for evicting the least recently used idle mapping */
} import_map_t;

#define MAX_IDLE_IMPORTS 4

typedef struct host_dev {
    int fd;
    uint8_t *base;
    size_t size;       /* the memfd's size: capacity rounded up to a page */
    uint64_t ino, devno;
    size_t page;

    pthread_mutex_t lock; /* free, n_free, cap_free, free_bytes, imports */
    extent_t *free;       /* free ranges, sorted by offset, never adjacent (merged on free) */
    size_t n_free, cap_free;
    size_t free_bytes;
    import_map_t *imports;
    uint64_t import_clock;
} host_dev_t;

static xo_status_t host_open(xo_device_t *dev, const xo_device_config_t *cfg)
{
    int n = host_device_count();
    if (dev->index >= n)
        return xo__error_set(XO_EINVAL, "host device %d does not exist: there %s %d (XO_HOST_DEVICES sets how many)",
                            dev->index, n == 1 ? "is" : "are", n);
    uint64_t capacity = cfg->capacity ? cfg->capacity : physical_memory() / (uint64_t)n;
    if (capacity == 0) return xo__error_set(XO_ECONFIG, "host device %d: cannot tell the memory size", dev->index);
    long page = sysconf(_SC_PAGESIZE);
    host_dev_t *h = calloc(1, sizeof *h);
    if (!h) return xo__error_set(XO_ENOMEM, "out of memory");
    h->page = page > 0 ? (size_t)page : 4096;
    h->size = (size_t)((capacity + h->page - 1) / h->page * h->page);
    h->fd = -1;
    char name[32];
    snprintf(name, sizeof name, "xo-host-device-%d", dev->index);
    h->fd = memfd_create(name, MFD_CLOEXEC);
    xo_status_t st = XO_OK;
    struct stat sb;
    if (h->fd < 0) {
        st = xo__error_set(XO_ESYS, "host device %d: memfd_create: %s", dev->index, strerror(errno));
        goto fail;
    }
    if (ftruncate(h->fd, (off_t)h->size) != 0) {
        st = xo__error_set(XO_ESYS, "host device %d: ftruncate to %zu bytes: %s", dev->index, h->size, strerror(errno));
        goto fail;
    }
    /* MAP_NORESERVE: the capacity is a limit, not a commitment; pages are allocated when first touched. */
    void *base = mmap(NULL, h->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, h->fd, 0);
    if (base == MAP_FAILED) {
        st = xo__error_set(XO_ESYS, "host device %d: mmap of %zu bytes: %s", dev->index, h->size, strerror(errno));
        goto fail;
    }
    h->base = base;
    if (fstat(h->fd, &sb) != 0) {
        st = xo__error_set(XO_ESYS, "host device %d: fstat: %s", dev->index, strerror(errno));
        munmap(h->base, h->size);
        goto fail;
    }
    h->ino = (uint64_t)sb.st_ino;
    h->devno = (uint64_t)sb.st_dev;
    h->free = malloc(16 * sizeof *h->free);
    if (!h->free) {
        munmap(h->base, h->size);
        st = xo__error_set(XO_ENOMEM, "out of memory");
        goto fail;
    }
    h->cap_free = 16;
    h->free[0] = (extent_t){.off = 0, .len = h->size};
    h->n_free = 1;
    h->free_bytes = h->size;
    pthread_mutex_init(&h->lock, NULL);
    dev->capacity = capacity;
    dev->impl = h;
    return XO_OK;
fail:
    if (h->fd >= 0) close(h->fd);
    free(h);
    return st;
}

static void host_close(xo_device_t *dev)
{
    host_dev_t *h = dev->impl;
    /* Imports were closed by device.c; an open mapping left here would be a refcount bug, so say so. */
    for (import_map_t *m = h->imports, *next; m; m = next) {
        next = m->next;
        if (m->refs) xo_log_warn("host device %d: import of process %d still mapped at close", dev->index, (int)m->pid);
        munmap(m->base, m->size);
        free(m);
    }
    munmap(h->base, h->size);
    close(h->fd);
    free(h->free);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* ---- allocator ------------------------------------------------------------------------------------------------ */

static xo_status_t host_alloc(xo_device_t *dev, size_t size, void **ptr_p)
{
    host_dev_t *h = dev->impl;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n_free; i++) {
        extent_t *e = &h->free[i];
        if (e->len < size) continue;
        size_t off = e->off;
        e->off += size;
        e->len -= size;
        if (e->len == 0) {
            memmove(e, e + 1, (h->n_free - i - 1) * sizeof *e);
            h->n_free--;
        }
        h->free_bytes -= size;
        pthread_mutex_unlock(&h->lock);
        *ptr_p = h->base + off;
        return XO_OK;
    }
    size_t free_bytes = h->free_bytes, n_free = h->n_free;
    pthread_mutex_unlock(&h->lock);
    return xo__error_set(XO_ENOMEM, "device %s: cannot allocate %zu bytes: %zu of %zu bytes free, but in %zu ranges "
                        "none of which is that large (fragmented)", xo__device_label(dev), size, free_bytes, h->size,
                        n_free);
}

static void host_free(xo_device_t *dev, void *ptr, size_t size)
{
    host_dev_t *h = dev->impl;
    size_t off = (size_t)((uint8_t *)ptr - h->base);

    /* Give the whole pages inside the range back to the kernel; the partial pages at its ends may hold neighbours. */
    size_t first = (off + h->page - 1) / h->page * h->page, last = (off + size) / h->page * h->page;
    if (last > first && fallocate(h->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)first,
                                  (off_t)(last - first)) != 0)
        xo_log_debug("host device %d: punching %zu bytes: %s", dev->index, last - first, strerror(errno));

    pthread_mutex_lock(&h->lock);
    size_t i = 0; /* the first free range after off */
    size_t lo = 0, hi = h->n_free;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (h->free[mid].off < off) lo = mid + 1;
        else hi = mid;
    }
    i = lo;
    bool merge_prev = i > 0 && h->free[i - 1].off + h->free[i - 1].len == off;
    bool merge_next = i < h->n_free && off + size == h->free[i].off;
    if (merge_prev && merge_next) {
        h->free[i - 1].len += size + h->free[i].len;
        memmove(&h->free[i], &h->free[i + 1], (h->n_free - i - 1) * sizeof *h->free);
        h->n_free--;
    } else if (merge_prev) {
        h->free[i - 1].len += size;
    } else if (merge_next) {
        h->free[i].off = off;
        h->free[i].len += size;
    } else {
        if (h->n_free == h->cap_free) {
            extent_t *v = realloc(h->free, 2 * h->cap_free * sizeof *v);
            if (!v) {
                /* The range is lost to this device until it closes; accounting in device.c stays right. */
                pthread_mutex_unlock(&h->lock);
                xo_log_error("host device %d: out of memory for the free list; %zu bytes leak", dev->index, size);
                return;
            }
            h->free = v;
            h->cap_free *= 2;
        }
        memmove(&h->free[i + 1], &h->free[i], (h->n_free - i) * sizeof *h->free);
        h->free[i] = (extent_t){.off = off, .len = size};
        h->n_free++;
    }
    h->free_bytes += size;
    pthread_mutex_unlock(&h->lock);
}

static xo_status_t host_mem_info(xo_device_t *dev, uint64_t *free_p, uint64_t *total_p)
{
    host_dev_t *h = dev->impl;
    pthread_mutex_lock(&h->lock);
    *free_p = h->free_bytes;
    pthread_mutex_unlock(&h->lock);
    *total_p = h->size;
    return XO_OK;
}

/* ---- events --------------------------------------------------------------------------------------------------- */

/* An event counts its records: a record gets the next number, and the stream that reaches it raises `completed` to
 * at least that number. The latest record is complete when completed >= recorded. Queued operations hold a reference,
 * so an event destroyed with a record still queued lives until the stream drops it.
 *
 * The counters are atomics and waiters sleep on a futex word that every completion bumps, rather than a mutex and a
 * condition variable, because an exportable event keeps them in a shared page that other processes map: a process
 * dying inside a critical section would leave a shared mutex locked, while a futex word holds no lock. `waiters`
 * spares the wake-up system call when nobody sleeps (the usual case: a stream records, nobody waits). */
#define EVENT_STATE_MAGIC 0x45564f58u /* "XOVE" */
#define EVENT_PAGE 4096

typedef struct host_event_state {
    uint32_t magic;
    _Atomic int wake;         /* futex word: bumped at each completion */
    _Atomic int waiters;      /* threads (of any process) about to sleep or sleeping on wake */
    uint32_t pad;
    _Atomic uint64_t recorded;  /* the latest record's number (only the creating process records) */
    _Atomic uint64_t completed; /* the highest record number a stream has reached */
} host_event_state_t;

typedef struct host_event {
    host_event_state_t *st; /* &local, or the shared page */
    host_event_state_t local;
    void *page;      /* exportable and imported events: the shared page's mapping */
    int fd;          /* exportable: the page's memfd, kept open because importers reopen it by its number */
    uint64_t ino, devno;
    pid_t exporter;  /* imported: the exporting process (its death ends waits); 0 otherwise */
    int32_t exporter_fd; /* imported: the page's fd in the exporter, with ino and devno above */
    atomic_int refs;
} host_event_t;

static void event_complete(host_event_t *e, uint64_t gen)
{
    host_event_state_t *s = e->st;
    uint64_t c = atomic_load_explicit(&s->completed, memory_order_relaxed);
    /* release: a waiter that sees the new number sees what the stream did before it (the copies it waits for). */
    while (c < gen && !atomic_compare_exchange_weak_explicit(&s->completed, &c, gen, memory_order_release,
                                                             memory_order_relaxed)) {
    }
    atomic_fetch_add(&s->wake, 1);
    if (atomic_load(&s->waiters) > 0) xo_futex_wake_shared(&s->wake, INT32_MAX); /* the page may be shared */
}

static bool exporter_still_has(int32_t pid, int32_t fd, uint64_t ino, uint64_t devno);

static bool process_gone(pid_t pid) { return pid > 0 && kill(pid, 0) != 0 && errno == ESRCH; }

/* An imported event's exporter is gone once it no longer holds the event's page: that also covers an exporter that
 * has exited but is not reaped yet (a zombie has no files), which kill(pid, 0) would call alive. */
static bool exporter_gone(const host_event_t *e)
{
    return e->exporter && !exporter_still_has(e->exporter, e->exporter_fd, e->ino, e->devno);
}

/* Waits until record gen has completed. An imported event also stops waiting when its exporter is gone (checked
 * every 100 ms): XO_EDEVICE then. */
static xo_status_t event_wait(host_event_t *e, uint64_t gen)
{
    host_event_state_t *s = e->st;
    if (atomic_load_explicit(&s->completed, memory_order_acquire) >= gen) return XO_OK;
    atomic_fetch_add(&s->waiters, 1);
    xo_status_t st = XO_OK;
    for (;;) {
        int w = atomic_load(&s->wake);
        if (atomic_load_explicit(&s->completed, memory_order_acquire) >= gen) break;
        xo_futex_wait_shared(&s->wake, w, e->exporter ? 100 * 1000000LL : -1);
        if (e->exporter && atomic_load(&s->completed) < gen && exporter_gone(e)) {
            st = xo__error_set(XO_EDEVICE, "the process that exported this event (%d) is gone with record %" PRIu64
                              " pending", (int)e->exporter, gen);
            break;
        }
    }
    atomic_fetch_sub(&s->waiters, 1);
    return st;
}

static void event_unref(host_event_t *e)
{
    /* acq_rel: the last owner must see every other owner's writes before it frees the event. */
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1) {
        if (e->page) munmap(e->page, EVENT_PAGE);
        if (e->fd >= 0) close(e->fd);
        free(e);
    }
}

static host_event_t *event_alloc(void)
{
    host_event_t *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->st = &e->local;
    e->local.magic = EVENT_STATE_MAGIC;
    e->fd = -1;
    atomic_init(&e->refs, 1);
    return e;
}

static xo_status_t host_event_create(xo_device_t *dev, void **event_p)
{
    host_event_t *e = event_alloc();
    if (!e) return xo__error_set(XO_ENOMEM, "out of memory");
    *event_p = e;
    return XO_OK;
}

/* The handle's payload: where importers find the page (as for memory: /proc/<pid>/fd/<fd>, checked by inode). */
typedef struct host_event_ipc {
    int32_t pid;
    int32_t fd;
    uint64_t ino, devno;
} host_event_ipc_t;

static xo_status_t host_event_create_ipc(xo_device_t *dev, void **event_p, void *payload, size_t *len_p)
{
    host_event_t *e = event_alloc();
    if (!e) return xo__error_set(XO_ENOMEM, "out of memory");
    struct stat sb;
    e->fd = memfd_create("xo-device-event", MFD_CLOEXEC);
    if (e->fd < 0 || ftruncate(e->fd, EVENT_PAGE) != 0 || fstat(e->fd, &sb) != 0) {
        int err = errno;
        event_unref(e);
        return xo__error_set(XO_ESYS, "device %s: memfd for a shared event: %s", xo__device_label(dev), strerror(err));
    }
    e->page = mmap(NULL, EVENT_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, e->fd, 0);
    if (e->page == MAP_FAILED) {
        int err = errno;
        e->page = NULL;
        event_unref(e);
        return xo__error_set(XO_ESYS, "device %s: mmap of a shared event: %s", xo__device_label(dev), strerror(err));
    }
    e->st = e->page; /* a fresh memfd reads as zeros: counters at 0 */
    e->st->magic = EVENT_STATE_MAGIC;
    e->ino = (uint64_t)sb.st_ino;
    e->devno = (uint64_t)sb.st_dev;
    host_event_ipc_t m = {.pid = (int32_t)getpid(), .fd = e->fd, .ino = e->ino, .devno = e->devno};
    _Static_assert(sizeof m <= XO_DEVICE_IPC_PAYLOAD_MAX, "host event IPC payload too large");
    memcpy(payload, &m, sizeof m);
    *len_p = sizeof m;
    *event_p = e;
    return XO_OK;
}

static int open_exporter_fd(int32_t pid, int32_t fd, int *err_p);

static xo_status_t host_event_ipc_import(xo_device_t *dev, const void *payload, size_t len, void **event_p)
{
    host_event_ipc_t m;
    if (len != sizeof m) return xo__error_set(XO_EINVAL, "device %s: malformed host event handle", xo__device_label(dev));
    memcpy(&m, payload, sizeof m);
    if (m.pid <= 0 || m.fd < 0)
        return xo__error_set(XO_EINVAL, "device %s: malformed host event handle", xo__device_label(dev));
    int err = 0;
    int fd = open_exporter_fd(m.pid, m.fd, &err);
    if (fd < 0) {
        if (process_gone(m.pid))
            return xo__error_set(XO_EINVAL, "device %s: stale event handle: process %d that exported it is gone",
                                xo__device_label(dev), (int)m.pid);
        return xo__error_set(err == ENOENT ? XO_EINVAL : XO_ESYS, "device %s: cannot open the event of process %d (fd "
                            "%d): %s", xo__device_label(dev), (int)m.pid, (int)m.fd,
                            err == ENOENT ? "stale handle (the event was destroyed)" : strerror(err));
    }
    struct stat sb;
    void *page = MAP_FAILED;
    if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_ino == m.ino && (uint64_t)sb.st_dev == m.devno &&
        sb.st_size >= EVENT_PAGE)
        page = mmap(NULL, EVENT_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (page == MAP_FAILED || ((host_event_state_t *)page)->magic != EVENT_STATE_MAGIC) {
        if (page != MAP_FAILED) munmap(page, EVENT_PAGE);
        return xo__error_set(XO_EINVAL, "device %s: stale event handle: fd %d of process %d is no longer the event it "
                            "exported", xo__device_label(dev), (int)m.fd, (int)m.pid);
    }
    host_event_t *e = event_alloc();
    if (!e) {
        munmap(page, EVENT_PAGE);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    e->page = page;
    e->st = page;
    e->exporter = (pid_t)m.pid;
    e->exporter_fd = m.fd;
    e->ino = m.ino;
    e->devno = m.devno;
    *event_p = e;
    return XO_OK;
}

static void host_event_destroy(xo_device_t *dev, void *event) { event_unref(event); }

static xo_status_t host_event_synchronize(xo_device_t *dev, void *event)
{
    host_event_t *e = event;
    return event_wait(e, atomic_load_explicit(&e->st->recorded, memory_order_acquire));
}

static xo_status_t host_event_query(xo_device_t *dev, void *event)
{
    host_event_t *e = event;
    uint64_t target = atomic_load_explicit(&e->st->recorded, memory_order_acquire);
    if (atomic_load_explicit(&e->st->completed, memory_order_acquire) >= target) return XO_OK;
    if (exporter_gone(e))
        return xo__error_set(XO_EDEVICE, "the process that exported this event (%d) is gone with a record pending",
                            (int)e->exporter);
    return XO_EAGAIN;
}

/* ---- streams -------------------------------------------------------------------------------------------------- */

typedef enum op_kind { OP_COPY, OP_SET, OP_HOSTFN, OP_RECORD, OP_WAIT } op_kind_t;

typedef struct op {
    struct op *next;
    op_kind_t kind;
    union {
        struct {
            void *dst;
            const void *src;
            size_t n;
        } copy;
        struct {
            void *dst;
            int value;
            size_t n;
        } set;
        struct {
            void (*fn)(void *);
            void *arg;
        } hostfn;
        struct {
            host_event_t *event;
            uint64_t gen; /* record: the record's number; wait: the record to wait for */
        } ev;
    } u;
} op_t;

typedef struct host_stream {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work_cv; /* the worker waits for work or stop */
    pthread_cond_t done_cv; /* synchronize waits for done to reach its target */
    op_t *head, *tail;
    uint64_t queued, done;
    bool stop;
} host_stream_t;

static void run_op(op_t *op)
{
    switch (op->kind) {
    case OP_COPY:
        memmove(op->u.copy.dst, op->u.copy.src, op->u.copy.n);
        break;
    case OP_SET:
        memset(op->u.set.dst, op->u.set.value, op->u.set.n);
        break;
    case OP_HOSTFN:
        op->u.hostfn.fn(op->u.hostfn.arg);
        break;
    case OP_RECORD:
        event_complete(op->u.ev.event, op->u.ev.gen);
        event_unref(op->u.ev.event);
        break;
    case OP_WAIT:
        if (event_wait(op->u.ev.event, op->u.ev.gen) != XO_OK)
            xo_log_warn("a device stream's wait ended without its event: %s", xo_last_error());
        event_unref(op->u.ev.event);
        break;
    }
}

static void *stream_main(void *arg)
{
    host_stream_t *s = arg;
    pthread_setname_np(pthread_self(), "xo-dstream");
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->head && !s->stop) pthread_cond_wait(&s->work_cv, &s->lock);
        if (!s->head) break; /* stop, and nothing left: destroy drains the queue first */
        op_t *op = s->head;
        s->head = op->next;
        if (!s->head) s->tail = NULL;
        pthread_mutex_unlock(&s->lock);
        run_op(op);
        free(op);
        pthread_mutex_lock(&s->lock);
        s->done++;
        pthread_cond_broadcast(&s->done_cv);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static xo_status_t enqueue(host_stream_t *s, const op_t *tmpl)
{
    op_t *op = malloc(sizeof *op);
    if (!op) return xo__error_set(XO_ENOMEM, "out of memory for a stream operation");
    *op = *tmpl;
    op->next = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->tail) s->tail->next = op;
    else s->head = op;
    s->tail = op;
    s->queued++;
    pthread_cond_signal(&s->work_cv);
    pthread_mutex_unlock(&s->lock);
    return XO_OK;
}

static xo_status_t host_stream_create(xo_device_t *dev, void **stream_p)
{
    host_stream_t *s = calloc(1, sizeof *s);
    if (!s) return xo__error_set(XO_ENOMEM, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work_cv, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    int rc = pthread_create(&s->thread, NULL, stream_main, s);
    if (rc != 0) {
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->work_cv);
        pthread_cond_destroy(&s->done_cv);
        free(s);
        return xo__error_set(XO_ESYS, "device %s: cannot start a stream thread: %s", xo__device_label(dev),
                            strerror(rc));
    }
    *stream_p = s;
    return XO_OK;
}

static void host_stream_destroy(xo_device_t *dev, void *stream)
{
    host_stream_t *s = stream;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_signal(&s->work_cv);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->done_cv);
    free(s);
}

static xo_status_t host_stream_synchronize(xo_device_t *dev, void *stream)
{
    host_stream_t *s = stream;
    pthread_mutex_lock(&s->lock);
    uint64_t target = s->queued;
    while (s->done < target) pthread_cond_wait(&s->done_cv, &s->lock);
    pthread_mutex_unlock(&s->lock);
    return XO_OK;
}

static xo_status_t host_memcpy(xo_device_t *dev, void *dst, const void *src, size_t n, xo_memcpy_kind_t kind,
                               void *stream)
{
    /* Every side is memory of this process, so the kind only mattered for the range checks in device.c. memmove:
     * a device-to-device copy may overlap. */
    if (!stream) {
        memmove(dst, src, n);
        return XO_OK;
    }
    return enqueue(stream, &(op_t){.kind = OP_COPY, .u.copy = {.dst = dst, .src = src, .n = n}});
}

static xo_status_t host_memset(xo_device_t *dev, void *dst, int value, size_t n, void *stream)
{
    if (!stream) {
        memset(dst, value, n);
        return XO_OK;
    }
    return enqueue(stream, &(op_t){.kind = OP_SET, .u.set = {.dst = dst, .value = value, .n = n}});
}

static xo_status_t host_launch_host(xo_device_t *dev, void *stream, void (*fn)(void *), void *arg)
{
    return enqueue(stream, &(op_t){.kind = OP_HOSTFN, .u.hostfn = {.fn = fn, .arg = arg}});
}

static xo_status_t host_event_record(xo_device_t *dev, void *event, void *stream)
{
    host_event_t *e = event;
    uint64_t gen = atomic_fetch_add(&e->st->recorded, 1) + 1;
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed); /* the caller holds a reference: relaxed is enough */
    xo_status_t st = enqueue(stream, &(op_t){.kind = OP_RECORD, .u.ev = {.event = e, .gen = gen}});
    if (st != XO_OK) {
        /* The record never happens: count it complete, so that waiters are not stuck on it. */
        event_complete(e, gen);
        event_unref(e);
    }
    return st;
}

static xo_status_t host_stream_wait_event(xo_device_t *dev, void *stream, void *event)
{
    host_event_t *e = event;
    uint64_t gen = atomic_load_explicit(&e->st->recorded, memory_order_acquire);
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    xo_status_t st = enqueue(stream, &(op_t){.kind = OP_WAIT, .u.ev = {.event = e, .gen = gen}});
    if (st != XO_OK) event_unref(e);
    return st;
}

/* ---- IPC ------------------------------------------------------------------------------------------------------ */

typedef struct host_ipc {
    int32_t pid;
    int32_t fd;
    uint64_t ino, devno;
    uint64_t file_size; /* the memfd's size */
    uint64_t offset;    /* of the exported pointer in the memfd */
    uint64_t len;       /* bytes from there to the end of the allocation */
} host_ipc_t;

static xo_status_t host_ipc_export(xo_device_t *dev, void *base, size_t size, size_t offset, void *payload,
                                   size_t *len_p)
{
    host_dev_t *h = dev->impl;
    host_ipc_t m = {.pid = (int32_t)getpid(),
                    .fd = h->fd,
                    .ino = h->ino,
                    .devno = h->devno,
                    .file_size = h->size,
                    .offset = (uint64_t)((uint8_t *)base - h->base) + offset,
                    .len = size - offset};
    _Static_assert(sizeof m <= XO_DEVICE_IPC_PAYLOAD_MAX, "host IPC payload too large");
    memcpy(payload, &m, sizeof m);
    *len_p = sizeof m;
    return XO_OK;
}

/* A descriptor for the exporter's memfd. /proc/<pid>/fd/<n> reopens the file itself and needs only "read" ptrace
 * access (same user), which Yama's ptrace_scope 1 still allows towards any process; pidfd_getfd needs "attach"
 * access, which ptrace_scope 1 grants only towards descendants, so a child could not import from its parent. Hence
 * /proc first, pidfd_getfd when /proc is not mounted. */
static int open_exporter_fd(int32_t pid, int32_t exported_fd, int *err_p)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, (int)exported_fd);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0) return fd;
    *err_p = errno;
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
    if (errno != ENOENT || access("/proc/self", F_OK) != 0) {
        int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
        if (pidfd >= 0) {
            fd = (int)syscall(SYS_pidfd_getfd, pidfd, exported_fd, 0);
            if (fd < 0) *err_p = errno;
            close(pidfd);
            if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
            return fd;
        }
    }
#endif
    return -1;
}

/* True when process pid still has, at fd, the memfd (ino, devno): one stat of /proc/<pid>/fd/<fd>. */
static bool exporter_still_has(int32_t pid, int32_t fd, uint64_t ino, uint64_t devno)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, (int)fd);
    struct stat sb;
    return stat(path, &sb) == 0 && (uint64_t)sb.st_ino == ino && (uint64_t)sb.st_dev == devno;
}

static xo_status_t host_ipc_import(xo_device_t *dev, const void *payload, size_t len, void **ptr_p, size_t *size_p)
{
    host_dev_t *h = dev->impl;
    host_ipc_t m;
    if (len != sizeof m) return xo__error_set(XO_EINVAL, "device %s: malformed host IPC handle", xo__device_label(dev));
    memcpy(&m, payload, sizeof m);
    if (m.pid <= 0 || m.fd < 0 || m.offset > m.file_size || m.len > m.file_size - m.offset || m.len == 0)
        return xo__error_set(XO_EINVAL, "device %s: malformed host IPC handle", xo__device_label(dev));

    /* A mapping of that memfd already here is the same file: we hold it, so its inode cannot have been reused. An
     * idle one is used again only while the exporter still has that memfd open as the handle says (it may have
     * closed its device since: then the handle is stale, and the open below says so). */
    pthread_mutex_lock(&h->lock);
    for (import_map_t **pp = &h->imports; *pp; pp = &(*pp)->next) {
        import_map_t *im = *pp;
        if (im->pid != m.pid || im->ino != m.ino || im->devno != m.devno || m.offset + m.len > im->size) continue;
        if (im->refs == 0 && !exporter_still_has(im->pid, m.fd, m.ino, m.devno)) {
            *pp = im->next;
            pthread_mutex_unlock(&h->lock);
            munmap(im->base, im->size);
            free(im);
            pthread_mutex_lock(&h->lock);
            break;
        }
        im->refs++;
        im->last_used = ++h->import_clock;
        pthread_mutex_unlock(&h->lock);
        *ptr_p = im->base + m.offset;
        *size_p = m.len;
        return XO_OK;
    }
    pthread_mutex_unlock(&h->lock);

    int err = 0;
    int fd = open_exporter_fd(m.pid, m.fd, &err);
    if (fd < 0) {
        if (kill((pid_t)m.pid, 0) != 0 && errno == ESRCH)
            return xo__error_set(XO_EINVAL, "device %s: stale IPC handle: process %d that exported it is gone",
                                xo__device_label(dev), (int)m.pid);
        if (err == ENOENT)
            return xo__error_set(XO_EINVAL, "device %s: stale IPC handle: process %d has no fd %d any more (its device "
                                "was closed)", xo__device_label(dev), (int)m.pid, (int)m.fd);
        return xo__error_set(XO_ESYS, "device %s: cannot open fd %d of process %d: %s", xo__device_label(dev),
                            (int)m.fd, (int)m.pid, strerror(err));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return xo__error_set(XO_ESYS, "device %s: fstat of the imported memory: %s", xo__device_label(dev), strerror(e));
    }
    if ((uint64_t)sb.st_ino != m.ino || (uint64_t)sb.st_dev != m.devno || (uint64_t)sb.st_size < m.file_size) {
        close(fd);
        return xo__error_set(XO_EINVAL, "device %s: stale IPC handle: fd %d of process %d is no longer the device memory "
                            "it exported (inode %" PRIu64 ", the handle names %" PRIu64 ")", xo__device_label(dev),
                            (int)m.fd, (int)m.pid, (uint64_t)sb.st_ino, m.ino);
    }
    void *base = mmap(NULL, m.file_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    int map_errno = errno;
    close(fd); /* the mapping keeps the file */
    if (base == MAP_FAILED)
        return xo__error_set(XO_ESYS, "device %s: mmap of %" PRIu64 " imported bytes: %s", xo__device_label(dev),
                            m.file_size, strerror(map_errno));
    import_map_t *im = calloc(1, sizeof *im);
    if (!im) {
        munmap(base, m.file_size);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    *im = (import_map_t){.pid = m.pid, .fd = m.fd, .ino = m.ino, .devno = m.devno, .base = base,
                         .size = m.file_size, .refs = 1};
    pthread_mutex_lock(&h->lock);
    /* Another thread may have mapped the same file meanwhile: then use its mapping and drop ours. */
    im->last_used = ++h->import_clock;
    for (import_map_t *o = h->imports; o; o = o->next) {
        if (o->pid == m.pid && o->ino == m.ino && o->devno == m.devno) {
            o->refs++;
            o->last_used = im->last_used;
            pthread_mutex_unlock(&h->lock);
            munmap(base, m.file_size);
            free(im);
            *ptr_p = o->base + m.offset;
            *size_p = m.len;
            return XO_OK;
        }
    }
    im->next = h->imports;
    h->imports = im;
    pthread_mutex_unlock(&h->lock);
    *ptr_p = im->base + m.offset;
    *size_p = m.len;
    return XO_OK;
}

/* Takes out of h's list (lock held) the idle mappings to drop: those of processes that are gone, then the least
 * recently used beyond MAX_IDLE_IMPORTS. Returns them linked, for the caller to unmap outside the lock. */
static import_map_t *evict_idle(host_dev_t *h)
{
    import_map_t *out = NULL;
    for (;;) {
        size_t idle = 0;
        import_map_t **victim = NULL;
        for (import_map_t **pp = &h->imports; *pp; pp = &(*pp)->next) {
            import_map_t *im = *pp;
            if (im->refs) continue;
            idle++;
            bool dead = kill((pid_t)im->pid, 0) != 0 && errno == ESRCH;
            if (dead) {
                victim = pp;
                idle = SIZE_MAX; /* take it whatever the count */
                break;
            }
            if (!victim || im->last_used < (*victim)->last_used) victim = pp;
        }
        if (!victim || idle <= MAX_IDLE_IMPORTS) return out;
        import_map_t *im = *victim;
        *victim = im->next;
        im->next = out;
        out = im;
    }
}

static void host_ipc_close(xo_device_t *dev, void *ptr)
{
    host_dev_t *h = dev->impl;
    import_map_t *drop = NULL;
    pthread_mutex_lock(&h->lock);
    for (import_map_t *im = h->imports; im; im = im->next) {
        if ((uint8_t *)ptr < im->base || (uint8_t *)ptr >= im->base + im->size) continue;
        if (im->refs > 0 && --im->refs == 0) drop = evict_idle(h); /* stays mapped, idle, unless evicted */
        break;
    }
    pthread_mutex_unlock(&h->lock);
    for (import_map_t *im = drop, *next; im; im = next) {
        next = im->next;
        munmap(im->base, im->size);
        free(im);
    }
}

const xo_device_ops_t xo__device_host_ops = {
    .name = "host",
    .discover = host_discover,
    .open = host_open,
    .close = host_close,
    .alloc = host_alloc,
    .free = host_free,
    .memcpy = host_memcpy,
    .memset = host_memset,
    .mem_info = host_mem_info,
    .stream_create = host_stream_create,
    .stream_destroy = host_stream_destroy,
    .stream_synchronize = host_stream_synchronize,
    .stream_wait_event = host_stream_wait_event,
    .launch_host = host_launch_host,
    .event_create = host_event_create,
    .event_destroy = host_event_destroy,
    .event_record = host_event_record,
    .event_synchronize = host_event_synchronize,
    .event_query = host_event_query,
    .ipc_export = host_ipc_export,
    .ipc_import = host_ipc_import,
    .ipc_close = host_ipc_close,
    .event_create_ipc = host_event_create_ipc,
    .event_ipc_import = host_event_ipc_import,
    /* launch_kernel, stream_native: none. The host's kernels are C functions queued with launch_host. */
};
