/* The shm backend's pool of reusable out-of-band segments: see shm_segpool.h for the protocol.
 *
 * Why a pool: a fresh memfd per frame paid, per MiB, page allocation and zeroing on the sender, mmap and page-table
 * setup on the receiver, and freeing on the way out (~0.5 ms per MiB on a 2-vCPU VM: 64 MiB moved at 0.67 GB/s
 * against 6.5 GB/s for memcpy). A segment that stays mapped on both sides costs that once; afterwards a frame is
 * one memcpy into warm pages.
 *
 * Memory ordering of a segment's state word (the only thing both sides write):
 *   receiver: last read of the data, then store FREE (release)
 *   sender:   load FREE (acquire), then write the data, then publish the record (the ring's seq_cst tail store)
 * so the sender never overwrites bytes the receiver may still read, and the receiver, which loads the tail with
 * acquire, sees the new bytes. The receiver's own `held` flag is cleared before that FREE store, so the receiving
 * thread sees it clear when the next record naming the slot arrives (the chain above carries it). */
#include "transport/shm_segpool.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "transport/channel.h"

struct xo_segpool_rseg {
    _Atomic uint32_t refs;
    _Atomic bool held; /* a received frame points into it (set by the receiving thread, cleared by the release) */
    uint8_t *map;
    size_t map_len;
    size_t cap;
};

static inline size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

static inline _Atomic uint32_t *state_of(uint8_t *map) { return (_Atomic uint32_t *)map; }

/* Set once hugetlb memfds failed here (no huge pages reserved, the usual case): later segments skip the attempt. */
static atomic_bool no_hugetlb;

/* A new sealed memfd of len bytes, mapped and populated. Huge pages where the system has them (hugetlbfs pages,
 * else transparent huge pages by madvise where shmem allows it), plain pages otherwise. On XO_OK *map_p and *fd_p
 * are the caller's. */
static xo_status_t seg_create(size_t len, uint8_t **map_p, int *fd_p)
{
#ifdef MFD_HUGETLB
    if (!atomic_load_explicit(&no_hugetlb, memory_order_relaxed)) {
        int hfd = memfd_create("xo-shm-seg", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB);
        void *m = MAP_FAILED;
        /* len is a multiple of XO_SEGPOOL_GRAIN (2 MiB), the x86-64 huge page; mmap fails when none is free. */
        if (hfd >= 0 && ftruncate(hfd, (off_t)len) == 0 &&
            fcntl(hfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
            m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, hfd, 0);
        if (m != MAP_FAILED) {
            *map_p = m;
            *fd_p = hfd;
            return XO_OK;
        }
        if (hfd >= 0) close(hfd);
        atomic_store_explicit(&no_hugetlb, true, memory_order_relaxed);
        xo_log_debug("shm: no hugetlb pages for out-of-band segments (%s); using normal pages", strerror(errno));
    }
#endif
    int fd = memfd_create("xo-shm-seg", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return xo__error_set(XO_ESYS, "shm: memfd_create for a segment: %s", strerror(errno));
    if (ftruncate(fd, (off_t)len) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        int e = errno;
        close(fd);
        return xo__error_set(e == ENOSPC || e == ENOMEM ? XO_ENOMEM : XO_ESYS, "shm: sizing a %zu-byte segment: %s",
                            len, strerror(e));
    }
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        close(fd);
        return xo__error_set(XO_ENOMEM, "shm: mapping a %zu-byte segment: %s", len, strerror(e));
    }
#ifdef MADV_HUGEPAGE
    madvise(m, len, MADV_HUGEPAGE); /* a hint: refused where shmem THP is off */
#endif
#ifdef MADV_POPULATE_WRITE
    /* All pages at once rather than one fault per 4 KiB page during the first copy; best effort. */
    madvise(m, len, MADV_POPULATE_WRITE);
#endif
    *map_p = m;
    *fd_p = fd;
    return XO_OK;
}

/* ---- sending side ---- */

void xo__segpool_tx_init(xo_segpool_tx_t *p)
{
    memset(p, 0, sizeof *p);
    for (unsigned i = 0; i < XO_SEGPOOL_SLOTS; i++) p->slot[i].fd = -1;
    pthread_mutex_init(&p->lock, NULL);
}

static void slot_clear(xo_segpool_tx_t *p, xo_segpool_tx_slot_t *s)
{
    if (s->map) munmap(s->map, s->map_len);
    if (s->fd >= 0) close(s->fd);
    p->bytes -= s->map_len;
    *s = (xo_segpool_tx_slot_t){.fd = -1};
}

void xo__segpool_tx_fini(xo_segpool_tx_t *p)
{
    for (unsigned i = 0; i < XO_SEGPOOL_SLOTS; i++) slot_clear(p, &p->slot[i]);
    pthread_mutex_destroy(&p->lock);
}

/* Free for a new frame: mapped, no sender of ours on it, and the peer has let go of it. */
static bool slot_free(xo_segpool_tx_slot_t *s)
{
    return s->map && !s->taken && atomic_load_explicit(state_of(s->map), memory_order_acquire) == XO_SEG_FREE;
}

static void lease_of(xo_segpool_tx_slot_t *s, uint32_t i, xo_seg_lease_t *l)
{
    s->taken = true;
    atomic_store_explicit(state_of(s->map), XO_SEG_BUSY, memory_order_relaxed); /* published with the record */
    *l = (xo_seg_lease_t){.slot = i, .data = s->map + XO_SEGPOOL_HDR, .cap = s->cap, .reg_fd = s->fd};
}

xo_status_t xo__segpool_tx_take(xo_segpool_tx_t *p, size_t need, xo_seg_lease_t *l)
{
    pthread_mutex_lock(&p->lock);
    int best = -1, empty = -1, victim = -1;
    for (unsigned i = 0; i < XO_SEGPOOL_SLOTS; i++) {
        xo_segpool_tx_slot_t *s = &p->slot[i];
        if (!s->map) {
            if (!s->taken && empty < 0) empty = (int)i;
            continue;
        }
        if (!slot_free(s)) continue;
        if (s->cap >= need && (best < 0 || s->cap < p->slot[best].cap)) best = (int)i;
        if (victim < 0 || s->map_len > p->slot[victim].map_len) victim = (int)i; /* frees the most room */
    }
    if (best >= 0) {
        lease_of(&p->slot[best], (uint32_t)best, l);
        pthread_mutex_unlock(&p->lock);
        return XO_OK;
    }
    size_t len = round_up(need + XO_SEGPOOL_HDR, XO_SEGPOOL_GRAIN);
    int i = -1;
    if (empty >= 0 && p->bytes + len <= XO_SEGPOOL_BYTES) {
        i = empty;
    } else if (victim >= 0 && p->bytes - p->slot[victim].map_len + len <= XO_SEGPOOL_BYTES) {
        /* The peer freed it, so it reads nothing there; it drops its mapping when this slot is registered anew. */
        i = victim;
        slot_clear(p, &p->slot[i]);
    }
    if (i < 0 || len - XO_SEGPOOL_HDR < need) { /* the second: need so large that len wrapped */
        pthread_mutex_unlock(&p->lock);
        return XO_EAGAIN;
    }
    /* Reserved (taken, no map: nobody else looks at it) while it is made outside the lock: populating a large
     * segment takes milliseconds that other senders need not wait for. */
    p->slot[i].taken = true;
    p->bytes += len;
    pthread_mutex_unlock(&p->lock);

    uint8_t *map = NULL;
    int fd = -1;
    xo_status_t st = seg_create(len, &map, &fd);
    pthread_mutex_lock(&p->lock);
    xo_segpool_tx_slot_t *s = &p->slot[i];
    if (st != XO_OK) {
        p->bytes -= len;
        s->taken = false;
    } else {
        *s = (xo_segpool_tx_slot_t){.map = map, .map_len = len, .cap = len - XO_SEGPOOL_HDR, .fd = fd};
        lease_of(s, (uint32_t)i, l);
    }
    pthread_mutex_unlock(&p->lock);
    return st;
}

void xo__segpool_tx_done(xo_segpool_tx_t *p, const xo_seg_lease_t *l, bool registered, bool published)
{
    pthread_mutex_lock(&p->lock);
    xo_segpool_tx_slot_t *s = &p->slot[l->slot];
    if (registered && s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    if (!published) atomic_store_explicit(state_of(s->map), XO_SEG_FREE, memory_order_relaxed);
    s->taken = false;
    pthread_mutex_unlock(&p->lock);
}

/* ---- receiving side ---- */

static void rseg_unref(xo_segpool_rseg_t *s)
{
    /* acq_rel: the last owner sees every other owner's accesses done before it unmaps. */
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        munmap(s->map, s->map_len);
        free(s);
    }
}

void xo__segpool_rx_fini(xo_segpool_rx_t *p)
{
    for (unsigned i = 0; i < XO_SEGPOOL_SLOTS; i++) {
        rseg_unref(p->slot[i]);
        p->slot[i] = NULL;
    }
    p->bytes = 0;
}

xo_status_t xo__segpool_rx_register(xo_segpool_rx_t *p, uint32_t slot, int fd, size_t max_frame)
{
    struct stat sb;
    int seals = -1;
    xo_status_t st = XO_OK;
    /* The largest segment a sender of ours makes for a frame this receiver accepts: parts are page-aligned in it. */
    size_t most = round_up(max_frame + (size_t)(XO_FRAME_MAX_SEGS + 1) * 4096u + XO_SEGPOOL_HDR, XO_SEGPOOL_GRAIN);
    size_t old = slot < XO_SEGPOOL_SLOTS && p->slot[slot] ? p->slot[slot]->map_len : 0, len = 0;
    if (slot >= XO_SEGPOOL_SLOTS)
        st = xo__error_set(XO_EPROTO, "shm recv: segment for slot %u (there are %u)", slot, XO_SEGPOOL_SLOTS);
    else if (fstat(fd, &sb) < 0 || sb.st_size <= (off_t)XO_SEGPOOL_HDR || (uint64_t)sb.st_size % XO_SEGPOOL_GRAIN)
        st = xo__error_set(XO_EPROTO, "shm recv: segment of a bad size");
    else if ((seals = fcntl(fd, F_GET_SEALS)) < 0 ||
             (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        st = xo__error_set(XO_EPROTO, "shm recv: segment is not sealed");
    else if (max_frame < XO_SEGPOOL_PART_MIN || (uint64_t)sb.st_size > most)
        st = xo__error_set(XO_EMSGSIZE, "shm recv: %lld-byte segment exceeds what max_frame %zu needs",
                          (long long)sb.st_size, max_frame);
    else if (p->bytes - old + (len = (size_t)sb.st_size) > XO_SEGPOOL_BYTES)
        st = xo__error_set(XO_EPROTO, "shm recv: segments beyond %zu bytes", XO_SEGPOOL_BYTES);
    xo_segpool_rseg_t *s = NULL;
    if (st == XO_OK && !(s = calloc(1, sizeof *s))) st = xo__error_set(XO_ENOMEM, "shm recv: no memory for a segment");
    if (st == XO_OK) {
        /* Populated once: the sender wrote its pages before registering, so this maps them without a fault each. */
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
        if (m == MAP_FAILED) {
            st = xo__error_set(XO_ENOMEM, "shm recv: mapping a %zu-byte segment: %s", len, strerror(errno));
            free(s);
        } else {
            s->map = m;
            s->map_len = len;
            s->cap = len - XO_SEGPOOL_HDR;
            atomic_init(&s->refs, 1);
            atomic_init(&s->held, false);
            rseg_unref(p->slot[slot]); /* a frame of the old segment keeps it mapped until it is released */
            p->slot[slot] = s;
            p->bytes = p->bytes - old + len;
        }
    }
    close(fd);
    return st;
}

xo_status_t xo__segpool_rx_take(xo_segpool_rx_t *p, uint32_t slot, uint64_t used, xo_segpool_rseg_t **seg_p,
                                uint8_t **data_p)
{
    xo_segpool_rseg_t *s = slot < XO_SEGPOOL_SLOTS ? p->slot[slot] : NULL;
    if (!s) return xo__error_set(XO_EPROTO, "shm recv: record names segment %u, never registered", slot);
    if (used > s->cap)
        return xo__error_set(XO_EPROTO, "shm recv: record uses %llu bytes of a %zu-byte segment",
                            (unsigned long long)used, s->cap);
    if (atomic_exchange_explicit(&s->held, true, memory_order_acquire))
        return xo__error_set(XO_EPROTO, "shm recv: record reuses segment %u before it was released", slot);
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed); /* the table's reference keeps it alive */
    *seg_p = s;
    *data_p = s->map + XO_SEGPOOL_HDR;
    return XO_OK;
}

void xo__segpool_rx_release(void *seg)
{
    xo_segpool_rseg_t *s = seg;
    atomic_store_explicit(&s->held, false, memory_order_relaxed);
    atomic_store_explicit(state_of(s->map), XO_SEG_FREE, memory_order_release); /* after our last read of the data */
    rseg_unref(s);
}
