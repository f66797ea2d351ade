/* The shared-memory backend: shm://name.
 *
 * Setup: the listener is an abstract SOCK_SEQPACKET unix socket "@xoscar-shm/<name>" (no file anywhere). The
 * connecting side creates one sealed memfd holding two rings (see shm_ring.h), maps it and passes the fd in its
 * hello message; the listener validates size and seals, maps it and acks. Nothing is ever named in /dev/shm: the
 * memory lives as long as a mapping or an fd does.
 *
 * Data: a frame is one record in the sender's ring. Parts of at least XO_SEGPOOL_PART_MIN bytes (and every part,
 * when the inline record would take more than a quarter of the ring) travel out of band, in a segment of the
 * direction's pool (shm_segpool.h): both sides keep it mapped, the sender copies the parts into it and names its
 * slot in the record, and the received frame points into the receiver's mapping until xo__frame_release frees the
 * segment for the next frame. So a large payload is copied once on the way, into pages that are already mapped.
 * When no pooled segment is free (the receiver holds many frames) parts of at least XO_SHM_OOB_MIN bytes go into a
 * fresh sealed memfd instead, whose fd is passed over the setup socket *before* the record, and smaller ones inline.
 *
 * Waiting: the receiver busy-polls the ring for spin_us, then sleeps in poll() on the setup socket; the sender
 * rings a one-byte doorbell on that socket only when the receiver's flag says it sleeps. The same socket reports
 * the peer's death (EOF/POLLHUP), so a sleeping receiver never outlives its peer. A sender waiting for ring space
 * sleeps on a futex in the segment, in slices, checking for the peer's death between them (the socket belongs to
 * the receiving thread, so the sender cannot read doorbells from it).
 *
 * Polling (recv_nowait without XO_RECV_ARM): the reader keeps its flag clear, so writers never ring, and whoever
 * polls watches the ring positions instead; the doorbells of a flag a writer took are remembered (bell_owed) and
 * read before the next arming, so the socket does not stay readable with stale bells.
 *
 * Threads: senders are serialised by send_lock (the ring is single-producer); one receiving thread at a time. */
#include "transport/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "base/log_limit.h"
#include "transport/channel.h"
#include "transport/shm_ctl.h"
#include "transport/shm_ring.h"
#include "transport/shm_segpool.h"

#define SHM_MAGIC 0x31534f58u /* "XOS1": the handshake */
#define SHM_VERSION 2u /* 2: pooled out-of-band segments */
#define DATA_OFF 4096u /* the two ring control blocks, then the data areas */
#define OOB_ALIGN 4096u
#define HELLO_WAIT_MS 2000 /* an accepted client must say hello within this, whatever accept's timeout */
#define PENDING_MAX 64     /* accepted clients waiting for their hello, per listener; a new one past it drops the oldest */
#define WAIT_SLICE_MS 100  /* the receiver's poll slices (a shutdown flag is seen within one) */
#define WRITER_SLICE_MS 10 /* a sender waiting for space checks for the peer's death this often */
#define WRITER_SPINS 2000

typedef struct hello {
    uint32_t magic;
    uint32_t version;
    uint64_t cap;
} hello_t;

typedef struct ack {
    uint32_t magic;
    int32_t status;
} ack_t;

typedef struct shm_chan {
    xo_channel_t base;
    int sock;
    uint8_t *seg;
    size_t seg_len;
    xo_ring_t tx, rx;
    atomic_bool shut;      /* xo__channel_shutdown was called, or the stream broke */
    atomic_bool peer_gone; /* the receiver saw EOF on the setup socket: senders stop at once */
    pthread_mutex_t send_lock;

    /* Senders, under send_lock. */
    uint64_t tx_tail;
    uint64_t tx_head_cache;

    /* The receiving thread only. */
    uint64_t rx_head;
    bool rx_dead;
    bool armed;     /* we set rx.reader_sleeping and nobody has cleared it yet, as far as we know */
    bool bell_owed; /* a writer cleared our flag: its doorbell is (or will be) on the socket, unread */
    int *fdq;   /* memfds received ahead of their records, in order */
    size_t fdq_head, fdq_len, fdq_cap;
    uint64_t desc[2 * (XO_FRAME_MAX_SEGS + 1)];
    xo_segpool_rx_t rxpool;       /* the peer's segments, mapped */
    bool fresh[XO_SEGPOOL_SLOTS]; /* a slot was registered and no XO_REC_POOL_NEW record has used it yet */

    /* Senders: after the fields of every frame, so that those keep the cache lines they had before the pool. */
    xo_segpool_tx_t txpool; /* our segments for what we send (its own lock) */
} shm_chan_t;

/* A client accepted before its hello has come. */
typedef struct pending {
    int sock;
    int64_t deadline; /* xo__now_ms time */
} pending_t;

/* Accept never waits for a hello when it is not asked to wait (an I/O thread would stall for every silent client):
 * clients accepted before their hello wait in pend[], and the fd an event loop watches (epfd) signals the listening
 * socket, every pending client and a timer for the earliest hello deadline, so that accept is called again when a
 * hello comes in, or when a silent client is to be dropped. */
typedef struct shm_listener {
    xo_listener_t base;
    int fd;    /* the listening socket */
    int epfd;  /* lis_fd: fd, the pending clients and tfd */
    int tfd;   /* timerfd armed for pend[0]'s deadline (accept order is deadline order) */
    pending_t pend[PENDING_MAX];
    size_t n_pend;
} shm_listener_t;

extern const xo_transport_ops_t xo__shm_transport;

static inline size_t align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Shared (not FUTEX_PRIVATE) futexes: the word lives in memory mapped by two processes. */
static void futex_wait(_Atomic uint32_t *word, uint32_t val, int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, val, &ts, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word) { syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0); }

xo_status_t xo__shm_sockaddr(const char *name, xo_sockaddr_t *out)
{
    if (!name[0] || strchr(name, '/')) return xo__error_set(XO_EINVAL, "shm url: bad name '%s'", name);
    char abs[XO_URL_MAX + 16];
    int n = snprintf(abs, sizeof abs, "@xoscar-shm/%s", name);
    if (n < 0 || (size_t)n >= sizeof abs) return xo__error_set(XO_EINVAL, "shm url: name too long");
    return xo__sockaddr_unix(abs, out);
}

/* ---- the out-of-band fd queue (receiver only) ---- */

static xo_status_t fdq_push(shm_chan_t *c, int fd)
{
    if (c->fdq_len == c->fdq_cap) {
        size_t ncap = c->fdq_cap ? c->fdq_cap * 2 : 16;
        int *q = malloc(ncap * sizeof *q);
        if (!q) {
            close(fd);
            return xo__error_set(XO_ENOMEM, "shm: no memory for the fd queue");
        }
        for (size_t i = 0; i < c->fdq_len; i++) q[i] = c->fdq[(c->fdq_head + i) % c->fdq_cap];
        free(c->fdq);
        c->fdq = q;
        c->fdq_cap = ncap;
        c->fdq_head = 0;
    }
    c->fdq[(c->fdq_head + c->fdq_len++) % c->fdq_cap] = fd;
    return XO_OK;
}

static int fdq_pop(shm_chan_t *c)
{
    if (c->fdq_len == 0) return -1;
    int fd = c->fdq[c->fdq_head];
    c->fdq_head = (c->fdq_head + 1) % c->fdq_cap;
    c->fdq_len--;
    return fd;
}

/* Reads every pending control message without waiting: doorbells are dropped, memfds queued, pooled segments
 * mapped. XO_ECLOSED (and peer_gone set) at EOF; XO_EPROTO for a message we never send, XO_EPROTO or XO_EMSGSIZE
 * for a segment we refuse (see ctl_fatal). */
static xo_status_t ctl_drain(shm_chan_t *c)
{
    for (;;) {
        char b[8];
        int fds[2], nfds;
        long r = xo__ctl_recv(c->sock, b, sizeof b, fds, 2, &nfds);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return XO_OK;
            if (errno == EPROTO) return xo__error_set(XO_EPROTO, "shm: empty control message with descriptors");
            atomic_store_explicit(&c->peer_gone, true, memory_order_relaxed);
            return xo__error_set(XO_ECLOSED, "shm: setup socket: %s", strerror(errno));
        }
        if (r == 0) {
            atomic_store_explicit(&c->peer_gone, true, memory_order_relaxed);
            return xo__error_set(XO_ECLOSED, "shm: peer closed the channel");
        }
        if (r == 1 && b[0] == XO_CTL_DOORBELL && nfds == 0) continue;
        if (r == 1 && b[0] == XO_CTL_FD && nfds == 1) {
            xo_status_t st = fdq_push(c, fds[0]);
            if (st != XO_OK) return st;
            continue;
        }
        if (r == 5 && b[0] == XO_CTL_SEG && nfds == 1) {
            /* Installed at once: the sender registers a slot anew only after we freed its old segment, so no record
             * still waiting in the ring names the mapping this replaces. */
            uint32_t slot;
            memcpy(&slot, b + 1, sizeof slot);
            xo_status_t st = xo__segpool_rx_register(&c->rxpool, slot, fds[0], c->base.opts.max_frame);
            if (st != XO_OK) return st;
            c->fresh[slot] = true;
            continue;
        }
        for (int i = 0; i < nfds; i++) close(fds[i]);
        return xo__error_set(XO_EPROTO, "shm: unexpected control message (%ld bytes, first 0x%02x, %d fds)", r,
                            (unsigned char)b[0], nfds);
    }
}

/* The errors of ctl_drain that end the channel (the others: XO_OK, XO_ECLOSED). */
static bool ctl_fatal(xo_status_t st) { return st == XO_EPROTO || st == XO_ENOMEM || st == XO_EMSGSIZE; }

/* ---- send ---- */

static inline void part_of(const xo_frame_t *f, size_t i, const void **p, size_t *len)
{
    if (i == 0) {
        *p = f->header;
        *len = f->header_len;
    } else {
        *p = f->segs[i - 1].data;
        *len = f->segs[i - 1].len;
    }
}

/* The pieces of part i (a gathered segment's, or the part itself as one); *one is the storage for the latter. */
static size_t pieces_of(const xo_frame_t *f, size_t i, xo_seg_t *one, const xo_seg_t **pcs)
{
    if (i > 0 && f->gather && f->gather[i - 1].n) {
        *pcs = f->gather[i - 1].pieces;
        return f->gather[i - 1].n;
    }
    const void *p;
    size_t len;
    part_of(f, i, &p, &len);
    *one = (xo_seg_t){.data = (void *)p, .len = len};
    *pcs = one;
    return 1;
}

/* The pooled-part threshold: XO_SEGPOOL_PART_MIN, or XO_SHM_POOL_MIN=<bytes> (read once; for measuring the
 * crossover with the ring, see shm_segpool.h). */
static size_t pool_min(void)
{
    static _Atomic size_t cached;
    size_t v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (!v) {
        const char *e = getenv("XO_SHM_POOL_MIN");
        v = e && *e ? (size_t)strtoull(e, NULL, 10) : XO_SEGPOOL_PART_MIN;
        if (!v) v = 1;
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v;
}

/* Where parts go: out of band from min bytes on (XO_SEGPOOL_PART_MIN into a pooled segment, XO_SHM_OOB_MIN into
 * a fresh memfd), or all of them (all_oob). */
typedef struct oob_plan {
    bool all_oob;
    size_t min;
} oob_plan_t;

static inline bool goes_oob(size_t len, oob_plan_t o) { return o.all_oob ? len > 0 : len >= o.min; }

/* Bytes of the record for f, and of its out-of-band area. */
static void plan(const xo_frame_t *f, oob_plan_t all_oob, uint64_t *rec_len, uint64_t *oob_size)
{
    size_t nparts = f->nsegs + 1;
    uint64_t rec = XO_REC_HDR_LEN + XO_REC_DESC_LEN * nparts, oob = 0;
    for (size_t i = 0; i < nparts; i++) {
        const void *p;
        size_t len;
        part_of(f, i, &p, &len);
        if (goes_oob(len, all_oob)) oob = align_up(oob + len, OOB_ALIGN);
        else rec += align_up(len, 8);
    }
    *rec_len = rec;
    *oob_size = oob;
}

/* Copies the out-of-band parts into a pooled segment's data, laid out as plan() counted them. */
static void oob_fill(const xo_frame_t *f, oob_plan_t all_oob, uint8_t *data)
{
    uint64_t off = 0;
    for (size_t i = 0; i <= f->nsegs; i++) {
        const void *p;
        size_t len;
        part_of(f, i, &p, &len);
        if (!goes_oob(len, all_oob)) continue;
        xo_seg_t one;
        const xo_seg_t *pcs;
        size_t n = pieces_of(f, i, &one, &pcs), at = 0;
        for (size_t k = 0; k < n; at += pcs[k++].len)
            if (pcs[k].len) memcpy(data + off + at, pcs[k].data, pcs[k].len);
        off = align_up(off + len, OOB_ALIGN);
    }
}

/* Writes the out-of-band parts into a new sealed memfd. On XO_OK *fd_p owns it. pwrite copies straight into the
 * memfd's pages: no mapping, no page faults on this side. */
static xo_status_t oob_create(const xo_frame_t *f, oob_plan_t all_oob, uint64_t size, int *fd_p)
{
    int fd = memfd_create("xo-shm-oob", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return xo__error_set(XO_ESYS, "shm send: memfd_create: %s", strerror(errno));
    if (ftruncate(fd, (off_t)size) < 0) {
        int e = errno;
        close(fd);
        return xo__error_set(e == ENOSPC || e == ENOMEM ? XO_ENOMEM : XO_ESYS, "shm send: %llu-byte memfd: %s",
                            (unsigned long long)size, strerror(e));
    }
    uint64_t off = 0;
    for (size_t i = 0; i <= f->nsegs; i++) {
        const void *p;
        size_t len;
        part_of(f, i, &p, &len);
        if (!goes_oob(len, all_oob)) continue;
        xo_seg_t one;
        const xo_seg_t *pcs;
        size_t n = pieces_of(f, i, &one, &pcs), at = 0;
        for (size_t k = 0; k < n; at += pcs[k++].len) {
            const uint8_t *src = pcs[k].data;
            for (size_t done = 0, plen = pcs[k].len; done < plen;) {
                ssize_t w = pwrite(fd, src + done, plen - done, (off_t)(off + at + done));
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) {
                    int e = errno;
                    close(fd);
                    return xo__error_set(XO_ENOMEM, "shm send: writing the out-of-band segment: %s", strerror(e));
                }
                done += (size_t)w;
            }
        }
        off = align_up(off + len, OOB_ALIGN);
    }
    /* Sealed against shrinking, a peer that keeps its fd cannot truncate the pages under our mapping (SIGBUS). */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        int e = errno;
        close(fd);
        return xo__error_set(XO_ESYS, "shm send: sealing: %s", strerror(e));
    }
    *fd_p = fd;
    return XO_OK;
}

static bool peer_hung_up(shm_chan_t *c)
{
    struct pollfd p = {.fd = c->sock, .events = POLLRDHUP};
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
        atomic_store_explicit(&c->peer_gone, true, memory_order_relaxed);
        return true;
    }
    return false;
}

static bool tx_has_room(shm_chan_t *c, uint64_t need) { return c->tx.cap - (c->tx_tail - c->tx_head_cache) >= need; }

/* Waits until the tx ring has need bytes free. Caller holds send_lock. */
static xo_status_t wait_space(shm_chan_t *c, uint64_t need)
{
    xo_ring_ctl_t *ctl = c->tx.ctl;
    for (int spins = 0;; spins++) {
        if (tx_has_room(c, need)) return XO_OK;
        /* Acquire pairs with the reader's store of head: it finished copying out what we will overwrite. */
        c->tx_head_cache = atomic_load_explicit(&ctl->head, memory_order_acquire);
        if (tx_has_room(c, need)) return XO_OK;
        if (atomic_load_explicit(&c->shut, memory_order_relaxed))
            return xo__error_set(XO_ECLOSED, "shm send: channel shut down");
        if (atomic_load_explicit(&c->peer_gone, memory_order_relaxed) || (spins % 64 == 63 && peer_hung_up(c)))
            return xo__error_set(XO_ECLOSED, "shm send: peer closed the channel");
        if (spins < WRITER_SPINS) {
            cpu_relax();
            continue;
        }
        /* Dekker: our seq_cst store of writer_waiting and load of head against the reader's seq_cst store of head
         * and load of writer_waiting (see shm_ring.h). */
        atomic_store_explicit(&ctl->writer_waiting, 1, memory_order_seq_cst);
        c->tx_head_cache = atomic_load_explicit(&ctl->head, memory_order_seq_cst);
        if (tx_has_room(c, need)) {
            atomic_store_explicit(&ctl->writer_waiting, 0, memory_order_relaxed);
            return XO_OK;
        }
        futex_wait(&ctl->writer_waiting, 1, WRITER_SLICE_MS);
        if (peer_hung_up(c)) return xo__error_set(XO_ECLOSED, "shm send: peer closed the channel");
    }
}

static void chan_shutdown(xo_channel_t *ch)
{
    shm_chan_t *c = (shm_chan_t *)ch;
    atomic_store_explicit(&c->shut, true, memory_order_relaxed);
    shutdown(c->sock, SHUT_RDWR);
    /* A sender of ours may sleep waiting for space: let it see the flag now rather than after its slice. */
    futex_wake(&c->tx.ctl->writer_waiting);
}

/* Decides where f's parts go for out-of-band parts from min bytes on. */
static oob_plan_t plan_for(const shm_chan_t *c, const xo_frame_t *f, size_t min, uint64_t *rec_len, uint64_t *oob_size)
{
    oob_plan_t o = {.all_oob = false, .min = min};
    plan(f, o, rec_len, oob_size);
    if (*rec_len > c->tx.cap / 4) {
        /* Many medium parts: an inline record this large would hog the ring, so everything goes out of band
         * (the record is then at most the descriptor table, 16 KiB). */
        o.all_oob = true;
        plan(f, o, rec_len, oob_size);
    }
    return o;
}

static xo_status_t chan_send(xo_channel_t *ch, const xo_frame_t *f)
{
    shm_chan_t *c = (shm_chan_t *)ch;
    size_t nparts = f->nsegs + 1;
    uint64_t rec_len, oob_size;
    oob_plan_t all_oob = plan_for(c, f, pool_min(), &rec_len, &oob_size);
    /* Outside the lock: concurrent senders copy their large payloads in parallel. */
    xo_seg_lease_t lease = {.reg_fd = -1};
    bool pooled = false;
    if (oob_size) {
        xo_status_t st = xo__segpool_tx_take(&c->txpool, oob_size, &lease);
        if (st == XO_OK) {
            pooled = true;
            oob_fill(f, all_oob, lease.data);
        } else {
            if (st != XO_EAGAIN) xo_log_debug("shm send: no pooled segment (%s): a fresh memfd", xo_last_error());
            all_oob = plan_for(c, f, XO_SHM_OOB_MIN, &rec_len, &oob_size);
        }
    }
    int oob_fd = -1;
    if (oob_size && !pooled) {
        xo_status_t st = oob_create(f, all_oob, oob_size, &oob_fd);
        if (st != XO_OK) return st;
    }

    pthread_mutex_lock(&c->send_lock);
    xo_status_t st = XO_OK;
    if (atomic_load_explicit(&c->shut, memory_order_relaxed) ||
        atomic_load_explicit(&c->peer_gone, memory_order_relaxed))
        st = xo__error_set(XO_ECLOSED, "shm send: channel closed");
    bool sent_fd = false, registered = false, published = false;
    if (st == XO_OK && lease.reg_fd >= 0) {
        /* The segment goes first: when the receiver meets the record, the mapping is on its socket. */
        char msg[5] = {XO_CTL_SEG};
        memcpy(msg + 1, &lease.slot, sizeof lease.slot);
        st = xo__ctl_send(c->sock, msg, sizeof msg, lease.reg_fd, INT64_MAX, &c->shut);
        registered = st == XO_OK;
    }
    if (st == XO_OK && oob_fd >= 0) {
        /* The fd goes first: when the receiver meets the record, its memfd is already queued on its socket. */
        char tag = XO_CTL_FD;
        st = xo__ctl_send(c->sock, &tag, 1, oob_fd, INT64_MAX, &c->shut);
        sent_fd = st == XO_OK;
    }
    if (st == XO_OK) st = wait_space(c, rec_len);
    if (st == XO_OK) {
        const xo_ring_t *r = &c->tx;
        uint64_t pos = c->tx_tail;
        uint32_t flags = pooled ? XO_REC_POOL | lease.slot | (lease.reg_fd >= 0 ? XO_REC_POOL_NEW : 0) : 0;
        uint32_t h[4] = {XO_REC_MAGIC, (uint32_t)rec_len, (uint32_t)nparts, flags};
        xo__ring_put(r, pos, h, sizeof h);
        xo__ring_put(r, pos + 16, &oob_size, 8);
        uint64_t in_off = XO_REC_HDR_LEN + XO_REC_DESC_LEN * nparts, oob_off = 0;
        for (size_t i = 0; i < nparts; i++) {
            const void *p;
            size_t len;
            part_of(f, i, &p, &len);
            uint64_t d[2] = {len, 0};
            if (goes_oob(len, all_oob)) {
                d[1] = XO_REC_OOB | oob_off;
                oob_off = align_up(oob_off + len, OOB_ALIGN);
            } else {
                d[1] = in_off;
                xo_seg_t one;
                const xo_seg_t *pcs;
                size_t n = pieces_of(f, i, &one, &pcs), at = 0;
                for (size_t k = 0; k < n; at += pcs[k++].len)
                    if (pcs[k].len) xo__ring_put(r, pos + in_off + at, pcs[k].data, pcs[k].len);
                in_off += align_up(len, 8);
            }
            xo__ring_put(r, pos + XO_REC_HDR_LEN + XO_REC_DESC_LEN * i, d, sizeof d);
        }
        c->tx_tail = pos + rec_len;
        /* Publishes the record (release for its bytes, those of a pooled segment too) and is the writer's half of
         * the Dekker pair. */
        atomic_store_explicit(&r->ctl->tail, c->tx_tail, memory_order_seq_cst);
        published = true;
        if (atomic_load_explicit(&r->ctl->reader_sleeping, memory_order_seq_cst) &&
            atomic_exchange_explicit(&r->ctl->reader_sleeping, 0, memory_order_relaxed)) {
            /* A full socket already holds messages that will wake the reader: do not wait for room. */
            char tag = XO_CTL_DOORBELL;
            xo__ctl_send(c->sock, &tag, 1, -1, 0, NULL);
        }
    }
    pthread_mutex_unlock(&c->send_lock);
    if (oob_fd >= 0) close(oob_fd);
    if (pooled) xo__segpool_tx_done(&c->txpool, &lease, registered, published);
    /* A memfd sent without its record would pair with the next record's descriptors, and a segment registered
     * without its record would leave the receiver's slot state out of step: the stream is broken. */
    if (st != XO_OK && (sent_fd || registered)) chan_shutdown(ch);
    return st;
}

/* ---- receive ---- */

static xo_status_t rx_fail(shm_chan_t *c, xo_status_t st)
{
    xo_log_limited(XO_LOG_ERROR, "shm channel: %s; closing it", xo_last_error()); /* a peer can repeat it at will */
    c->rx_dead = true;
    chan_shutdown(&c->base);
    return st;
}

/* Maps a received out-of-band memfd after checking it is what the record says and cannot shrink. Consumes fd. */
static xo_status_t oob_map(int fd, uint64_t size, void **map_p)
{
    struct stat sb;
    int seals = fcntl(fd, F_GET_SEALS);
    xo_status_t st = XO_OK;
    if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size != size)
        st = xo__error_set(XO_EPROTO, "shm recv: out-of-band segment is not %llu bytes", (unsigned long long)size);
    else if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        st = xo__error_set(XO_EPROTO, "shm recv: out-of-band segment is not sealed");
    void *m = MAP_FAILED;
    if (st == XO_OK) {
        /* MAP_POPULATE maps every page now, in one go, instead of one fault per page while the frame is read. */
        m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
        if (m == MAP_FAILED) st = xo__error_set(XO_ENOMEM, "shm recv: mmap %llu bytes: %s", (unsigned long long)size,
                                               strerror(errno));
    }
    close(fd);
    if (st == XO_OK) *map_p = m;
    return st;
}

/* Reads the record at rx_head (at least one byte is published) into *out and frees its ring space. */
static xo_status_t read_record(shm_chan_t *c, xo_frame_t *out)
{
    xo_ring_t *r = &c->rx;
    uint64_t head = c->rx_head, avail = xo__ring_avail(r, head);
    size_t max = c->base.opts.max_frame;
    uint32_t h[4];
    uint64_t oob_size;
    if (avail < XO_REC_HDR_LEN || avail > r->cap) return xo__error_set(XO_EPROTO, "shm recv: ring indices corrupt");
    xo__ring_get(r, head, h, sizeof h);
    xo__ring_get(r, head + 16, &oob_size, 8);
    uint64_t rec_len = h[1], nparts = h[2], table_end = XO_REC_HDR_LEN + XO_REC_DESC_LEN * nparts;
    bool pooled = h[3] & XO_REC_POOL;
    uint32_t slot = h[3] & XO_REC_SLOT_MASK;
    if (h[0] != XO_REC_MAGIC || nparts == 0 || nparts > XO_FRAME_MAX_SEGS + 1 || rec_len % 8 || rec_len > avail ||
        rec_len < table_end ||
        (h[3] & ~(XO_REC_POOL | XO_REC_POOL_NEW | XO_REC_SLOT_MASK)) || (!pooled && h[3]) || (pooled && !oob_size))
        return xo__error_set(XO_EPROTO, "shm recv: malformed record (magic 0x%08x, %llu bytes, %llu parts, flags 0x%x)",
                            h[0], (unsigned long long)rec_len, (unsigned long long)nparts, h[3]);
    if (pooled && (h[3] & XO_REC_POOL_NEW)) {
        /* Its segment was registered just before it: make sure we have read that registration. */
        if (slot < XO_SEGPOOL_SLOTS && !c->fresh[slot]) {
            xo_status_t st = ctl_drain(c);
            if (ctl_fatal(st)) return st;
        }
        if (slot >= XO_SEGPOOL_SLOTS || !c->fresh[slot])
            return xo__error_set(XO_EPROTO, "shm recv: record names a new segment %u that never came", slot);
        c->fresh[slot] = false;
    }
    /* The memfd travels ahead of its record: take it off the queue first, so every error path closes it. */
    int fd = -1;
    if (oob_size && !pooled) {
        if (c->fdq_len == 0) {
            xo_status_t st = ctl_drain(c);
            if (ctl_fatal(st)) return st;
        }
        fd = fdq_pop(c);
        if (fd < 0) return xo__error_set(XO_EPROTO, "shm recv: record refers to a memfd that never came");
    }
    xo__ring_get(r, head + XO_REC_HDR_LEN, c->desc, XO_REC_DESC_LEN * nparts);
    size_t total = 0, inline_bytes = 0;
    xo_status_t st = XO_OK;
    for (size_t i = 0; i < nparts && st == XO_OK; i++) {
        uint64_t len = c->desc[2 * i], loc = c->desc[2 * i + 1];
        if (len > max - total) {
            st = xo__error_set(XO_EMSGSIZE, "shm recv: frame larger than max_frame %zu (part %zu: %llu bytes)", max, i,
                              (unsigned long long)len);
        } else if (loc & XO_REC_OOB) {
            uint64_t o = loc & ~XO_REC_OOB;
            if (!oob_size || o > oob_size || len > oob_size - o)
                st = xo__error_set(XO_EPROTO, "shm recv: part %zu lies outside its out-of-band segment", i);
        } else if (loc < table_end || loc > rec_len || len > rec_len - loc) {
            st = xo__error_set(XO_EPROTO, "shm recv: part %zu lies outside its record", i);
        } else {
            inline_bytes += align_up(len, 64);
        }
        total += len;
    }
    if (st == XO_OK && oob_size > (uint64_t)max + nparts * OOB_ALIGN)
        st = xo__error_set(XO_EMSGSIZE, "shm recv: %llu-byte out-of-band segment exceeds max_frame %zu",
                          (unsigned long long)oob_size, max);
    if (st != XO_OK) {
        if (fd >= 0) close(fd);
        return st;
    }

    size_t nsegs = nparts - 1, table = align_up(nsegs * sizeof(xo_seg_t), 64);
    /* malloc and align by hand rather than aligned_alloc: glibc serves small mallocs from a per-thread cache, while
     * every aligned_alloc takes the arena lock and splits a chunk (the larger part of a small frame's receive cost
     * when a stream of tells arrives). frame.mem keeps the block's start for xo__frame_release. */
    uint8_t *block = malloc(table + inline_bytes + 63);
    uint8_t *mem = block ? (uint8_t *)align_up((uintptr_t)block, 64) : NULL;
    void *map = NULL;
    xo_segpool_rseg_t *seg = NULL;
    if (!mem) st = xo__error_set(XO_ENOMEM, "shm recv: no memory for a frame");
    if (st == XO_OK && fd >= 0) st = oob_map(fd, oob_size, &map);
    else if (fd >= 0) close(fd);
    uint8_t *oob = map;
    if (st == XO_OK && pooled) st = xo__segpool_rx_take(&c->rxpool, slot, oob_size, &seg, &oob);
    if (st != XO_OK) {
        free(block);
        return st;
    }
    xo_frame_t f = {.mem = block, .map = map, .map_len = map ? oob_size : 0, .nsegs = nsegs};
    if (seg) {
        f.release = xo__segpool_rx_release;
        f.release_arg = seg;
    }
    f.segs = nsegs ? (xo_seg_t *)mem : NULL;
    size_t off = table;
    for (size_t i = 0; i < nparts; i++) {
        uint64_t len = c->desc[2 * i], loc = c->desc[2 * i + 1];
        uint8_t *p;
        if (loc & XO_REC_OOB) {
            p = oob + (loc & ~XO_REC_OOB);
        } else {
            p = mem + off;
            off += align_up(len, 64);
            if (len) xo__ring_get(r, head + loc, p, len);
        }
        if (i == 0) {
            f.header = p;
            f.header_len = len;
        } else {
            f.segs[i - 1] = (xo_seg_t){p, len};
        }
    }
    /* Frees the space (release: our copies are done before the writer may reuse it), and the reader's half of
     * the writer_waiting Dekker pair. */
    c->rx_head = head + rec_len;
    atomic_store_explicit(&r->ctl->head, c->rx_head, memory_order_seq_cst);
    if (atomic_load_explicit(&r->ctl->writer_waiting, memory_order_seq_cst) &&
        atomic_exchange_explicit(&r->ctl->writer_waiting, 0, memory_order_relaxed))
        futex_wake(&r->ctl->writer_waiting);
    *out = f;
    return XO_OK;
}

/* Takes our wake-up flag back. If a writer cleared it first, its doorbell is on its way: remember to read it. */
static void disarm(shm_chan_t *c)
{
    if (atomic_exchange_explicit(&c->rx.ctl->reader_sleeping, 0, memory_order_relaxed) == 0) c->bell_owed = true;
    c->armed = false;
}

/* Empties the setup socket (doorbells, memfds, hang-up) and maps its errors: XO_OK, or a result for the caller. */
static xo_status_t drain_socket(shm_chan_t *c, bool *retry)
{
    *retry = false;
    c->bell_owed = false;
    xo_status_t st = ctl_drain(c);
    if (ctl_fatal(st)) return rx_fail(c, st);
    if (st == XO_ECLOSED) {
        /* The peer is gone, but what it published before dying is still in the ring: deliver that first. */
        if (xo__ring_avail(&c->rx, c->rx_head) > 0) {
            *retry = true;
            return XO_OK;
        }
        c->rx_dead = true;
        return st;
    }
    return XO_OK;
}

/* Dekker, the reader's half: seq_cst store of the flag, then seq_cst load of tail (see shm_ring.h). The flag is
 * stored every time, since a writer may have cleared it while we were awake. True when the ring is still empty. */
static bool arm(shm_chan_t *c)
{
    xo_ring_t *r = &c->rx;
    if (atomic_exchange_explicit(&r->ctl->reader_sleeping, 1, memory_order_seq_cst) == 0 && c->armed)
        c->bell_owed = true; /* a writer took our previous arming */
    c->armed = true;
    return atomic_load_explicit(&r->ctl->tail, memory_order_seq_cst) == c->rx_head;
}

static xo_status_t take_record(shm_chan_t *c, xo_frame_t *out)
{
    if (c->armed) disarm(c); /* we found data on our own: stop writers from ringing */
    xo_status_t st = read_record(c, out);
    return st == XO_OK ? st : rx_fail(c, st);
}

static bool chan_ready(xo_channel_t *ch)
{
    xo_ring_ctl_t *ctl = ((shm_chan_t *)ch)->rx.ctl;
    /* Both positions are atomics: a thread other than the receiver may ask. */
    return atomic_load_explicit(&ctl->tail, memory_order_relaxed) !=
           atomic_load_explicit(&ctl->head, memory_order_relaxed);
}

static xo_status_t chan_recv_nowait(xo_channel_t *ch, unsigned flags, xo_frame_t *out)
{
    shm_chan_t *c = (shm_chan_t *)ch;
    if (c->rx_dead) return xo__error_set(XO_ECLOSED, "shm recv: channel closed");
    if (!(flags & XO_RECV_ARM) && c->armed) disarm(c);
    for (;;) {
        bool any = xo__ring_avail(&c->rx, c->rx_head) > 0;
        if (any && (flags & XO_RECV_NOFRAME)) {
            if ((flags & XO_RECV_FD) || c->bell_owed) { /* stale doorbells; memfds are queued for their records */
                c->bell_owed = false;
                xo_status_t st = ctl_drain(c);
                if (ctl_fatal(st)) return rx_fail(c, st);
            }
            return XO_EAGAIN;
        }
        if (any) return take_record(c, out);
        if (atomic_load_explicit(&c->shut, memory_order_relaxed)) {
            c->rx_dead = true;
            return xo__error_set(XO_ECLOSED, "shm recv: channel shut down");
        }
        if ((flags & XO_RECV_FD) || c->bell_owed) {
            bool retry;
            xo_status_t st = drain_socket(c, &retry);
            if (st != XO_OK) return st;
            if (retry) continue;
        }
        if (!(flags & XO_RECV_ARM) || arm(c)) return XO_ETIMEDOUT;
    }
}

static xo_status_t chan_recv(xo_channel_t *ch, int timeout_ms, xo_frame_t *out)
{
    shm_chan_t *c = (shm_chan_t *)ch;
    xo_ring_t *r = &c->rx;
    if (c->rx_dead) return xo__error_set(XO_ECLOSED, "shm recv: channel closed");
    int64_t deadline = xo__deadline(timeout_ms);
    bool spun = timeout_ms == 0 || ch->opts.spin_us <= 0;
    for (;;) {
        if (xo__ring_avail(r, c->rx_head) > 0) return take_record(c, out);
        if (atomic_load_explicit(&c->shut, memory_order_relaxed)) {
            c->rx_dead = true;
            return xo__error_set(XO_ECLOSED, "shm recv: channel shut down");
        }
        if (!spun) {
            spun = true;
            int64_t until = now_ns() + (int64_t)ch->opts.spin_us * 1000;
            for (int i = 1; xo__ring_avail(r, c->rx_head) == 0; i++) {
                cpu_relax();
                if (i % 64 == 0 && now_ns() > until) break;
            }
            continue;
        }
        /* About to sleep: empty the socket first, so that poll() below waits for news only. */
        bool retry;
        xo_status_t st = drain_socket(c, &retry);
        if (st != XO_OK) return st;
        if (retry || !arm(c)) continue;
        int left = xo__remaining_ms(deadline);
        if (left == 0) return xo__error_set(XO_ETIMEDOUT, "shm recv: nothing within %d ms", timeout_ms);
        int slice = left < 0 || left > WAIT_SLICE_MS ? WAIT_SLICE_MS : left;
        if (xo__poll1(c->sock, POLLIN, xo__deadline(slice)) < 0)
            return xo__error_set(XO_ESYS, "shm recv: poll: %s", strerror(errno));
    }
}

static int chan_fd(xo_channel_t *ch) { return ((shm_chan_t *)ch)->sock; }

static void chan_close(xo_channel_t *ch)
{
    shm_chan_t *c = (shm_chan_t *)ch;
    close(c->sock); /* no shutdown(): see stream.c, a forked process may share the socket */
    munmap(c->seg, c->seg_len);
    xo__segpool_tx_fini(&c->txpool);
    xo__segpool_rx_fini(&c->rxpool); /* frames still held keep their segments mapped */
    for (int fd; (fd = fdq_pop(c)) >= 0;) close(fd);
    free(c->fdq);
    pthread_mutex_destroy(&c->send_lock);
    free(c);
}

static const xo_channel_ops_t shm_channel_ops = {
    .send = chan_send,
    .recv = chan_recv,
    .shutdown = chan_shutdown,
    .close = chan_close,
    .fd = chan_fd,
    .ready = chan_ready,
    .recv_nowait = chan_recv_nowait,
    .gather = true,
};

/* ---- setup ---- */

/* Wraps a handshaken socket and a mapped segment. Takes both (freed on error too). */
static xo_status_t chan_new(int sock, uint8_t *seg, size_t seg_len, uint64_t cap, bool client, const xo_chan_opts_t *opts,
                            xo_channel_t **ch_p)
{
    shm_chan_t *c = calloc(1, sizeof *c);
    if (!c) {
        close(sock);
        munmap(seg, seg_len);
        return xo__error_set(XO_ENOMEM, "shm: no memory for a channel");
    }
    c->base = (xo_channel_t){.ops = &shm_channel_ops, .tran = &xo__shm_transport, .opts = *opts};
    c->sock = sock;
    c->seg = seg;
    c->seg_len = seg_len;
    xo_ring_t r0 = {(xo_ring_ctl_t *)seg, seg + DATA_OFF, cap};
    xo_ring_t r1 = {(xo_ring_ctl_t *)(seg + sizeof(xo_ring_ctl_t)), seg + DATA_OFF + cap, cap};
    /* Ring 0 carries client -> server, ring 1 server -> client. */
    c->tx = client ? r0 : r1;
    c->rx = client ? r1 : r0;
    atomic_init(&c->shut, false);
    atomic_init(&c->peer_gone, false);
    pthread_mutex_init(&c->send_lock, NULL);
    xo__segpool_tx_init(&c->txpool);
    *ch_p = &c->base;
    return XO_OK;
}

static size_t seg_size(uint64_t cap) { return DATA_OFF + 2 * (size_t)cap; }

static xo_status_t shm_connect(const xo_url_t *url, const xo_chan_opts_t *opts, int timeout_ms, xo_channel_t **ch_p)
{
    xo_sockaddr_t a;
    xo_status_t st = xo__shm_sockaddr(url->rest, &a);
    if (st != XO_OK) return st;
    int64_t deadline = xo__deadline(timeout_ms);
    int sock;
    st = xo__sock_connect(&a, SOCK_SEQPACKET, timeout_ms, &sock);
    if (st != XO_OK) return st;

    uint64_t cap = XO_SHM_RING_CAP;
    size_t len = seg_size(cap);
    uint8_t *seg = MAP_FAILED;
    int mfd = memfd_create("xo-shm-rings", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0) st = xo__error_set(XO_ESYS, "shm connect: memfd_create: %s", strerror(errno));
    else if (ftruncate(mfd, (off_t)len) < 0 || fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        st = xo__error_set(XO_ESYS, "shm connect: sizing the segment: %s", strerror(errno));
    else if ((seg = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0)) == MAP_FAILED)
        st = xo__error_set(XO_ENOMEM, "shm connect: mmap: %s", strerror(errno));
    if (st == XO_OK) {
        hello_t hello = {.magic = SHM_MAGIC, .version = SHM_VERSION, .cap = cap};
        st = xo__ctl_send(sock, &hello, sizeof hello, mfd, deadline, NULL);
    }
    if (mfd >= 0) close(mfd); /* the mapping keeps the memory; the server got its own fd */
    if (st == XO_OK) {
        ack_t ack;
        int fds[1], nfds = 0;
        long n = -1;
        for (;;) {
            n = xo__ctl_recv(sock, &ack, sizeof ack, fds, 1, &nfds);
            for (int i = 0; i < nfds; i++) close(fds[i]);
            if (n >= 0 || errno != EAGAIN) break;
            int rev = xo__poll1(sock, POLLIN, deadline);
            if (rev == 0) {
                st = xo__error_set(XO_ETIMEDOUT, "shm connect %s: no handshake reply in %d ms", url->rest, timeout_ms);
                break;
            }
        }
        if (st == XO_OK && n == 0) st = xo__error_set(XO_ECLOSED, "shm connect %s: listener hung up", url->rest);
        else if (st == XO_OK && (n != (long)sizeof ack || ack.magic != SHM_MAGIC || ack.status != 0))
            st = xo__error_set(XO_EPROTO, "shm connect %s: handshake rejected", url->rest);
    }
    if (st != XO_OK) {
        if (seg != MAP_FAILED) munmap(seg, len);
        close(sock);
        return st;
    }
    return chan_new(sock, seg, len, cap, true, opts, ch_p);
}

/* Validates a client's hello and maps its segment. Consumes seg_fd. */
static xo_status_t take_segment(const hello_t *h, long n, int seg_fd, uint8_t **seg_p, size_t *len_p)
{
    xo_status_t st = XO_OK;
    struct stat sb;
    size_t len = 0;
    int seals;
    if (n != (long)sizeof *h || h->magic != SHM_MAGIC || h->version != SHM_VERSION)
        st = xo__error_set(XO_EPROTO, "shm accept: bad hello (%ld bytes)", n);
    else if (h->cap < 4096 || h->cap > ((uint64_t)1 << 30) || (h->cap & (h->cap - 1)))
        st = xo__error_set(XO_EPROTO, "shm accept: bad ring size %llu", (unsigned long long)h->cap);
    else if (seg_fd < 0)
        st = xo__error_set(XO_EPROTO, "shm accept: hello without a segment");
    else if (fstat(seg_fd, &sb) < 0 || (size_t)sb.st_size != (len = seg_size(h->cap)))
        st = xo__error_set(XO_EPROTO, "shm accept: segment has the wrong size");
    else if ((seals = fcntl(seg_fd, F_GET_SEALS)) < 0 || !(seals & F_SEAL_SHRINK))
        st = xo__error_set(XO_EPROTO, "shm accept: segment is not sealed against shrinking");
    if (st == XO_OK) {
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, seg_fd, 0);
        if (m == MAP_FAILED) st = xo__error_set(XO_ENOMEM, "shm accept: mmap: %s", strerror(errno));
        else *seg_p = m;
    }
    if (seg_fd >= 0) close(seg_fd);
    *len_p = len;
    return st;
}

/* Arms the timer for the earliest hello deadline, or disarms it. */
static void pend_timer(shm_listener_t *sl)
{
    struct itimerspec its = {0};
    if (sl->n_pend) {
        int64_t left = sl->pend[0].deadline - xo__now_ms();
        if (left < 1) left = 1; /* 0 would disarm */
        its.it_value.tv_sec = left / 1000;
        its.it_value.tv_nsec = (left % 1000) * 1000000;
    }
    timerfd_settime(sl->tfd, 0, &its, NULL);
}

/* Takes pend[i] out of the list (and out of epfd); the caller owns its socket. */
static int pend_take(shm_listener_t *sl, size_t i)
{
    int sock = sl->pend[i].sock;
    epoll_ctl(sl->epfd, EPOLL_CTL_DEL, sock, NULL);
    memmove(&sl->pend[i], &sl->pend[i + 1], (sl->n_pend - i - 1) * sizeof sl->pend[0]);
    sl->n_pend--;
    return sock;
}

static void pend_add(shm_listener_t *sl, int sock)
{
    if (sl->n_pend == PENDING_MAX) {
        xo_log_debug("%s: dropping a client that has not said hello (%d waiting)", sl->base.url, PENDING_MAX);
        close(pend_take(sl, 0));
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = sock};
    if (epoll_ctl(sl->epfd, EPOLL_CTL_ADD, sock, &ev) != 0) {
        close(sock);
        return;
    }
    sl->pend[sl->n_pend++] = (pending_t){sock, xo__now_ms() + HELLO_WAIT_MS};
}

/* Completes the setup of a client whose hello may have come: XO_INPROGRESS (sock untouched) when it has not, else
 * sock is consumed: XO_OK with *ch_p, or the error (XO_EPROTO, XO_ECLOSED, XO_ENOMEM). */
static xo_status_t hello_take(shm_listener_t *sl, int sock, xo_channel_t **ch_p)
{
    hello_t h;
    int fds[1], nfds = 0;
    long n = xo__ctl_recv(sock, &h, sizeof h, fds, 1, &nfds);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return XO_INPROGRESS;
    xo_status_t st = XO_OK;
    uint8_t *seg = NULL;
    size_t len = 0;
    if (n == 0) st = xo__error_set(XO_ECLOSED, "shm accept: client hung up before its hello");
    else if (n < 0) st = xo__error_set(XO_EPROTO, "shm accept: no hello from the client (%s)", strerror(errno));
    if (st == XO_OK) st = take_segment(&h, n, nfds ? fds[0] : -1, &seg, &len);
    else if (nfds) close(fds[0]);
    if (st == XO_OK) {
        ack_t ack = {.magic = SHM_MAGIC, .status = 0};
        /* A fresh socket has room for 8 bytes: this does not wait in practice. */
        st = xo__ctl_send(sock, &ack, sizeof ack, -1, xo__deadline(WAIT_SLICE_MS), NULL);
    }
    if (st != XO_OK) {
        xo_log_debug("%s: %s", sl->base.url, xo_last_error());
        if (seg) munmap(seg, len);
        close(sock);
        return st;
    }
    return chan_new(sock, seg, len, h.cap, false, &sl->base.opts, ch_p);
}

static xo_status_t lis_accept(xo_listener_t *l, int timeout_ms, xo_channel_t **ch_p)
{
    shm_listener_t *sl = (shm_listener_t *)l;
    int64_t deadline = xo__deadline(timeout_ms);
    for (;;) {
        uint64_t expirations;
        ssize_t r = read(sl->tfd, &expirations, sizeof expirations); /* empties it; the deadlines are checked below */
        (void)r;
        xo_status_t accept_st = XO_OK;
        for (int k = 0; k < PENDING_MAX; k++) {
            int sock;
            xo_status_t st = xo__sock_accept(sl->fd, 0, &sock);
            if (st == XO_ETIMEDOUT) break;
            if (st != XO_OK) { /* out of fds, say: reported unless a pending client completes */
                accept_st = st;
                break;
            }
            pend_add(sl, sock);
        }
        int64_t now = xo__now_ms();
        for (size_t i = 0; i < sl->n_pend;) {
            xo_status_t st = hello_take(sl, sl->pend[i].sock, ch_p);
            if (st == XO_INPROGRESS && sl->pend[i].deadline > now) {
                i++;
                continue;
            }
            int sock = pend_take(sl, i);
            pend_timer(sl);
            if (st != XO_INPROGRESS) return st; /* hello_take consumed sock */
            close(sock);
            return xo__error_set(XO_EPROTO, "shm accept: no hello from the client within %d ms", HELLO_WAIT_MS);
        }
        pend_timer(sl);
        if (accept_st != XO_OK) return accept_st;
        int left = xo__remaining_ms(deadline);
        if (left == 0) return xo__error_set(XO_ETIMEDOUT, "accept: timed out after %d ms", timeout_ms);
        /* epfd also signals the timer, so a silent client's deadline ends this wait */
        if (xo__poll1(sl->epfd, POLLIN, left < 0 ? INT64_MAX : xo__deadline(left)) < 0 && errno != EINTR)
            return xo__error_set(XO_ESYS, "accept: poll: %s", strerror(errno));
    }
}

static int lis_fd(xo_listener_t *l) { return ((shm_listener_t *)l)->epfd; }

static void lis_close(xo_listener_t *l)
{
    shm_listener_t *sl = (shm_listener_t *)l;
    while (sl->n_pend) close(pend_take(sl, 0));
    if (sl->tfd >= 0) close(sl->tfd);
    if (sl->epfd >= 0) close(sl->epfd);
    close(sl->fd);
    free(sl);
}

static const xo_listener_ops_t shm_listener_ops = {
    .accept = lis_accept,
    .close = lis_close,
    .fd = lis_fd,
};

static xo_status_t shm_listen(const xo_url_t *url, const xo_chan_opts_t *opts, xo_listener_t **l_p)
{
    xo_sockaddr_t a;
    xo_status_t st = xo__shm_sockaddr(url->rest, &a);
    if (st != XO_OK) return st;
    shm_listener_t *sl = calloc(1, sizeof *sl);
    if (!sl) return xo__error_set(XO_ENOMEM, "shm: no memory for a listener");
    sl->epfd = sl->tfd = -1;
    st = xo__sock_listen(&a, SOCK_SEQPACKET, &sl->fd);
    if (st != XO_OK) {
        free(sl);
        return st;
    }
    sl->epfd = epoll_create1(EPOLL_CLOEXEC);
    sl->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = sl->fd}, tev = {.events = EPOLLIN, .data.fd = sl->tfd};
    if (sl->epfd < 0 || sl->tfd < 0 || epoll_ctl(sl->epfd, EPOLL_CTL_ADD, sl->fd, &ev) != 0 ||
        epoll_ctl(sl->epfd, EPOLL_CTL_ADD, sl->tfd, &tev) != 0) {
        st = xo__error_set(XO_ESYS, "shm listen: epoll/timerfd: %s", strerror(errno));
        lis_close(&sl->base);
        return st;
    }
    sl->base = (xo_listener_t){.ops = &shm_listener_ops, .tran = &xo__shm_transport, .opts = *opts};
    snprintf(sl->base.url, sizeof sl->base.url, "shm://%.200s", url->rest); /* the name fits sun_path */
    *l_p = &sl->base;
    return XO_OK;
}

const xo_transport_ops_t xo__shm_transport = {
    .scheme = "shm",
    .same_host_only = true,
    .route = {.kind = XO_ROUTE_NAME, .name_fmt = "%s"},
    .listen = shm_listen,
    .connect = shm_connect,
    .listener_ops = &shm_listener_ops,
    .channel_ops = &shm_channel_ops,
};
