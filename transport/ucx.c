/* The UCX backend: ucx://host:port or ucx://[v6addr]:port (port 0: ephemeral, see xo__listener_url), on UCP.
 *
 * It is the plugin libxoscar-ucx.so (transport/CMakeLists.txt, base/plugin.h), with its own copy of the socket
 * helpers (sock.c): the core has no DT_NEEDED on libucp and registry.c lists the backend when the plugin loads.
 *
 * Design.
 *   - One ucp_context per process, created by the first listener or channel and cleaned up with the last one
 *     (refcounted), so a process that stops using UCX holds none of its fds or threads. UCX is not fork-safe:
 *     a child forked while its parent had ucx objects open gets XO_ENOTSUP from listen and connect.
 *   - One ucp_worker per listener and one per channel. A channel's worker carries exactly one endpoint, so its
 *     event fd means "this channel has work" and a channel maps onto one epoll registration, like the other
 *     backends. An accepted endpoint is created from the listener's conn_request on the channel's own worker.
 *   - Workers are UCS_THREAD_MODE_SERIALIZED and every call on a worker (or its endpoint) is made under the
 *     channel's mutex `lock`: senders, the receiver and shutdown all progress the same worker, one at a time.
 *     UCX callbacks (AM arrival, send completion, endpoint error) run inside ucp_worker_progress and therefore
 *     also under `lock`; they only touch fields documented as guarded by it.
 *   - A frame is one active message (ucp_am_send_nbx, id XO_UCX_AM_FRAME). The AM header is a fixed prefix:
 *     u32 magic "XOU1" | u32 header_len | u32 nsegs | u32 flags (0) | u64 seq. The data is an iov of
 *     u64 seg_len[nsegs], the header and the segments, each of the three kinds of part zero-padded to 64 bytes,
 *     so that the receiver takes the data into one 64-byte-aligned block, in place, with every part aligned.
 *     (The lengths travel in the data, not the AM header: UCX caps a rendezvous header near 8 KiB, less than
 *     1024 lengths.) UCX picks eager or rendezvous by size; the receiver pulls a rendezvous straight into the
 *     block with ucp_am_recv_data_nbx. Before allocating, the receiver checks magic, flags, nsegs, the header
 *     length and the data length against max_frame (plus padding); the segment lengths are checked once the
 *     data is there. An oversize rendezvous is refused in the AM callback, so its data never crosses.
 *   - Ordering. seq numbers frames in the order their sends were posted (under `lock`); the receiver queues a
 *     frame at its AM's arrival and hands frames out strictly in that order once complete, so a rendezvous
 *     frame still being pulled holds back later ones. A gap in seq is a protocol error.
 *   - Setup. UCX's wireup needs both sides to progress. accept waits until its endpoint is flushed (wired up)
 *     and then sends a READY message (XO_UCX_AM_READY); connect returns once READY came. So when both calls
 *     have returned, neither side needs the other to progress for the setup to finish.
 *   - Closing. xo__channel_close starts a flushing ucp_ep_close_nbx and gives it CLOSE_FLUSH_MS (the peer must
 *     progress for it to finish), then destroys the worker. Shutdown, and a receive error, force-close the
 *     endpoint (pending sends complete with an error) and destroy the worker at once. Destroying the worker
 *     closes its TCP connections, which is what tells the peer even when the data path is backed up.
 *   - Endpoints use UCP_ERR_HANDLING_MODE_PEER: a dead or closed peer calls the endpoint's error callback (the
 *     kernel resets the TCP connections of a killed process at once), which ends the channel: frames already
 *     queued are still delivered, then recv returns XO_ECLOSED; pending sends complete with an error.
 *   - The event loop. xo__channel_fd returns an epoll set holding the worker's event fd (ucp_worker_get_efd) and
 *     an eventfd of the channel (`rx_efd`). Senders progress the worker too, and ucp_worker_arm consumes the
 *     worker's wakeup: when a sender's progress delivers a frame it signals rx_efd, so a frame taken in by
 *     another thread still wakes the loop. recv arms the worker (ucp_worker_arm) and clears rx_efd, both under
 *     `lock`, before it reports XO_ETIMEDOUT. Waiting threads sleep in poll(), never spin.
 *   - Environment. When UCX_TLS is not set, the context is configured with TLS=tcp: it runs without RDMA hardware,
 *     and UCX's shared-memory transports cannot be used with peer-failure handling anyway. When UCX_RNDV_THRESH
 *     is not set it is 256k: smaller frames go eagerly and their send completes without the receiver taking
 *     part, as with a socket buffer. UCX_TCP_TX_SEG_SIZE and UCX_TCP_RX_SEG_SIZE default to 256k (measured: UCX's 8k
 *     default made large calls over tcp 2.5x slower). The UCX_* variables still override all of these
 *     (UCX_TLS=rc,tcp on InfiniBand). */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <ucp/api/ucp.h>

#include "base/error.h"
#include "base/log.h"
#include "base/plugin.h"
#include "transport/warm_blocks.h"
#include "transport/le.h"
#include "transport/channel.h"
#include "transport/sock.h"

#define XO_UCX_MAGIC 0x31554f58u /* "XOU1" read as a little-endian u32 */
#define XO_UCX_AM_FRAME 0x58u
#define XO_UCX_AM_READY 0x59u /* accept -> connect, once: the server's side of the connection is set up */
#define XO_UCX_PREFIX_LEN 24u
/* Blocking waits sleep in slices this long and look at the shutdown flag between them. */
#define WAIT_SLICE_MS 100
/* How long close waits for frames already handed to UCX to leave before it drops the endpoint. */
#define CLOSE_FLUSH_MS 100
/* How long accept waits for an accepted connection's setup (both sides progress through UCX's wireup), as shm's
 * accept waits for its handshake. */
#define ACCEPT_WIREUP_MS 2000

static const uint8_t zero_pad[64];


/* ---- the process's context ---- */

static struct {
    pthread_mutex_t lock;
    ucp_context_h ctx;
    pid_t pid; /* the process that created ctx */
    int refs;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Takes a reference to the process's context, creating it on first use. */
static xo_status_t ctx_get(ucp_context_h *ctx_p)
{
    xo_status_t st = XO_OK;
    pthread_mutex_lock(&g.lock);
    if (g.ctx && g.pid != getpid()) {
        /* Inherited through fork while the parent had UCX objects open. UCX is not fork-safe: its async thread
         * did not come along, and its epoll set is shared with the parent, so connection events would go to
         * the parent. Refuse instead of hanging; fork before opening ucx channels, or exec. */
        pthread_mutex_unlock(&g.lock);
        return xo__error_set(XO_ENOTSUP, "ucx: this process was forked from one with open ucx listeners or "
                                        "channels; UCX cannot be used in such a child (fork first, or exec)");
    }
    if (!g.ctx) {
        ucp_config_t *cfg = NULL;
        ucs_status_t s = ucp_config_read(NULL, NULL, &cfg);
        if (s == UCS_OK && !getenv("UCX_TLS")) s = ucp_config_modify(cfg, "TLS", "tcp");
        /* Frames up to this size go eagerly: the send completes once UCX has the data, without waiting for
         * the receiver to take part (as a socket buffer would); larger ones use rendezvous, pulled by the
         * receiver straight into the frame. */
        if (s == UCS_OK && !getenv("UCX_RNDV_THRESH")) s = ucp_config_modify(cfg, "RNDV_THRESH", "256k");
        /* UCX's tcp transport moves data in segments of TX_SEG_SIZE (8k by default): across two network
         * namespaces, 256k segments both ways made large calls 2.4-2.7x faster (64 MiB: 0.9-1.0 -> 2.4-2.7 GB/s,
         * bench/results/2026-12-04-warm-blocks.md). Harmless where UCX runs over other transports. */
        if (s == UCS_OK && !getenv("UCX_TCP_TX_SEG_SIZE")) s = ucp_config_modify(cfg, "TCP_TX_SEG_SIZE", "256k");
        if (s == UCS_OK && !getenv("UCX_TCP_RX_SEG_SIZE")) s = ucp_config_modify(cfg, "TCP_RX_SEG_SIZE", "256k");
        if (s == UCS_OK) {
            ucp_params_t p = {
                .field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED | UCP_PARAM_FIELD_NAME,
                .features = UCP_FEATURE_AM | UCP_FEATURE_WAKEUP,
                .mt_workers_shared = 1,
                .name = "xoscar",
            };
            s = ucp_init(&p, cfg, &g.ctx);
        }
        if (cfg) ucp_config_release(cfg);
        if (s != UCS_OK) {
            g.ctx = NULL;
            st = xo__error_set(XO_ESYS, "ucx: ucp_init: %s", ucs_status_string(s));
        } else {
            g.pid = getpid();
        }
    }
    if (st == XO_OK) {
        g.refs++;
        *ctx_p = g.ctx;
    }
    pthread_mutex_unlock(&g.lock);
    return st;
}

static void ctx_put(ucp_context_h ctx)
{
    pthread_mutex_lock(&g.lock);
    if (ctx == g.ctx && --g.refs == 0) {
        ucp_cleanup(g.ctx);
        g.ctx = NULL;
    }
    pthread_mutex_unlock(&g.lock);
}

static xo_status_t worker_new(ucp_context_h ctx, ucp_worker_h *w_p, int *efd_p)
{
    ucp_worker_params_t wp = {
        .field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE,
        .thread_mode = UCS_THREAD_MODE_SERIALIZED,
    };
    ucp_worker_h w;
    ucs_status_t s = ucp_worker_create(ctx, &wp, &w);
    if (s != UCS_OK) return xo__error_set(XO_ESYS, "ucx: ucp_worker_create: %s", ucs_status_string(s));
    s = ucp_worker_get_efd(w, efd_p);
    if (s != UCS_OK) {
        ucp_worker_destroy(w);
        return xo__error_set(XO_ESYS, "ucx: ucp_worker_get_efd: %s", ucs_status_string(s));
    }
    *w_p = w;
    return XO_OK;
}

/* Progresses w until it has nothing more to do, then arms its event fd. Returns false when arming found new
 * events (progress again). */
static bool progress_and_arm(ucp_worker_h w)
{
    while (ucp_worker_progress(w)) {
    }
    return ucp_worker_arm(w) == UCS_OK;
}

/* ---- channel ---- */

typedef struct rx_item {
    struct rx_item *next;
    uint64_t seq;
    bool done;
    xo_frame_t f;
} rx_item_t;

typedef struct ucx_chan {
    xo_channel_t base;
    ucp_context_h ctx;
    /* Guards the worker, the endpoint and everything below up to the next comment; UCX callbacks run under it. */
    pthread_mutex_t lock;
    ucp_worker_h worker;
    ucp_ep_h ep;          /* NULL once closed */
    void *close_req;      /* a pending ucp_ep_close_nbx */
    bool ep_failed;       /* the error callback ran: the peer is gone */
    bool peer_ready;      /* (client) the server's READY message came */
    ucs_status_t ep_status;
    uint64_t tx_seq;      /* seq of the next frame posted */
    uint64_t rx_seq;      /* seq of the next frame handed out */
    uint64_t rx_next_arrival; /* seq the next arriving AM must carry */
    rx_item_t *rx_head, *rx_tail;
    xo_status_t rx_err;   /* a protocol error seen in the AM callback, reported once by recv */
    char rx_err_text[160];
    bool rx_dead;         /* recv reported the end: later calls return XO_ECLOSED */

    /* Set once by shutdown (any thread) or an error; read without the lock to cut waits short. */
    atomic_bool shut;
    int worker_efd;       /* owned by the worker */
    int rx_efd;           /* eventfd: a frame was queued or the channel ended */
    int shut_efd;         /* eventfd: set once by shutdown, wakes blocked senders */
    int epfd;             /* epoll set {worker_efd, rx_efd}: xo__channel_fd */
} ucx_chan_t;

static void signal_fd(int fd)
{
    uint64_t one = 1;
    ssize_t r = write(fd, &one, sizeof one);
    (void)r; /* EAGAIN means already signalled */
}

static void clear_fd(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    (void)r;
}

/* Closes the endpoint without waiting for the peer (caller holds lock). Pending sends complete with an error. */
static void ep_force_close(ucx_chan_t *c)
{
    if (!c->ep) return;
    ucp_request_param_t p = {.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS, .flags = UCP_EP_CLOSE_FLAG_FORCE};
    void *r = ucp_ep_close_nbx(c->ep, &p);
    c->ep = NULL;
    if (UCS_PTR_IS_PTR(r)) c->close_req = r;
}

/* Ends the channel's UCX side for good (caller holds lock): force-closes the endpoint, which completes pending
 * operations with an error, lets a pending close finish (bounded), and destroys the worker. Destroying the
 * worker closes its TCP connections, which is what tells the peer at once even when the data path is backed
 * up. Later calls see worker NULL and return XO_ECLOSED. */
static void teardown(ucx_chan_t *c)
{
    if (!c->worker) return;
    ep_force_close(c);
    int64_t deadline = xo__deadline(CLOSE_FLUSH_MS);
    while (c->close_req && ucp_request_check_status(c->close_req) == UCS_INPROGRESS &&
           xo__remaining_ms(deadline) != 0) {
        if (!ucp_worker_progress(c->worker) && progress_and_arm(c->worker))
            xo__poll1(c->worker_efd, POLLIN, xo__deadline(10));
    }
    while (ucp_worker_progress(c->worker)) {
    }
    if (c->close_req) ucp_request_free(c->close_req);
    c->close_req = NULL;
    /* A rendezvous still running is dropped with the worker; its slot stays queued until chan_free. */
    ucp_worker_destroy(c->worker);
    c->worker = NULL;
    c->worker_efd = -1;
    signal_fd(c->rx_efd);
}

static void ep_error_cb(void *arg, ucp_ep_h ep, ucs_status_t status)
{
    ucx_chan_t *c = arg;
    if (c->ep_failed) return;
    c->ep_failed = true;
    c->ep_status = status;
    xo_log_debug("ucx channel: peer failed (%s)", ucs_status_string(status));
    signal_fd(c->rx_efd);
}

/* Appends the slot of an arriving frame (caller holds lock). */
static void rx_push(ucx_chan_t *c, rx_item_t *it)
{
    it->next = NULL;
    if (c->rx_tail) c->rx_tail->next = it;
    else c->rx_head = it;
    c->rx_tail = it;
}

static void rx_fail_in_cb(ucx_chan_t *c, xo_status_t st)
{
    if (c->rx_err == XO_OK) {
        c->rx_err = st;
        snprintf(c->rx_err_text, sizeof c->rx_err_text, "%s", xo_last_error());
    }
    signal_fd(c->rx_efd);
}

/* Frees a frame that will not be handed out, and its memory (heap or a warm block; see the AM callback). */
static void rx_item_free(rx_item_t *it)
{
    if (it->f.release) it->f.release(it->f.release_arg);
    else free(it->f.mem);
    free(it);
}

/* Slot markers in f.nsegs for frames that will never be handed out. */
#define SLOT_CUT SIZE_MAX       /* the transfer failed: the peer is gone */
#define SLOT_BAD (SIZE_MAX - 1) /* the lengths did not check out: rx_err says why */

/* Lays out a frame whose data has arrived at mem + table: checks the segment lengths at the start of the data
 * against max_frame and the data length, and fills the segment table (caller holds lock). */
static void rx_finish(ucx_chan_t *c, rx_item_t *it, size_t table, size_t length)
{
    uint8_t *mem = (uint8_t *)it->f.header - table, *d = mem + table;
    size_t ns = it->f.nsegs, max = c->base.opts.max_frame, hl = it->f.header_len;
    size_t total = hl, off = align64(8 * ns) + align64(hl);
    xo_status_t bad = XO_OK;
    /* Every length is checked against what is left of max before any sum: nothing can overflow. */
    for (size_t i = 0; bad == XO_OK && i < ns; i++) {
        uint64_t l = get64(d + 8 * i);
        if (l > max - total)
            bad = xo__error_set(XO_EMSGSIZE, "recv: frame larger than max_frame %zu (segment %zu: %llu bytes)", max, i,
                               (unsigned long long)l);
        else {
            total += (size_t)l;
            off += align64((size_t)l);
        }
    }
    if (bad == XO_OK && off != length)
        bad = xo__error_set(XO_EPROTO, "recv: %zu data bytes for a frame of %zu", length, off);
    if (bad != XO_OK) {
        rx_fail_in_cb(c, bad);
        it->f.nsegs = SLOT_BAD;
        return;
    }
    it->f.header = d + align64(8 * ns);
    off = align64(8 * ns) + align64(hl);
    for (size_t i = 0; i < ns; i++) {
        size_t l = (size_t)get64(d + 8 * i);
        it->f.segs[i] = (xo_seg_t){d + off, l};
        off += align64(l);
    }
}

typedef struct rndv_ctx {
    ucx_chan_t *c;
    rx_item_t *it;
    size_t table, length;
} rndv_ctx_t;

static void rndv_done_cb(void *request, ucs_status_t status, size_t length, void *user_data)
{
    rndv_ctx_t *r = user_data;
    ucx_chan_t *c = r->c;
    if (status != UCS_OK) {
        /* The frame cannot complete: the channel is ending (error callback) or the transfer failed. */
        if (!c->ep_failed) {
            c->ep_failed = true;
            c->ep_status = status;
        }
        r->it->f.nsegs = SLOT_CUT;
    } else {
        rx_finish(c, r->it, r->table, r->length);
    }
    r->it->done = true;
    signal_fd(c->rx_efd);
    free(r);
    ucp_request_free(request);
}

/* An arriving frame (runs inside ucp_worker_progress, under lock). The AM header is the fixed prefix; the
 * segment lengths lead the data. An eager frame is copied out at once; a rendezvous one is pulled into its
 * block, after a bound on its size (max_frame plus padding) is checked, so an oversize one never crosses. */
static ucs_status_t am_cb(void *arg, const void *header, size_t header_length, void *data, size_t length,
                          const ucp_am_recv_param_t *param)
{
    ucx_chan_t *c = arg;
    bool rndv = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
    if (c->rx_err != XO_OK || c->rx_dead) return rndv ? UCS_ERR_CANCELED : UCS_OK;
    const uint8_t *h = header;
    size_t max = c->base.opts.max_frame;
    if (header_length != XO_UCX_PREFIX_LEN) {
        rx_fail_in_cb(c, xo__error_set(XO_EPROTO, "recv: AM header of %zu bytes", header_length));
        return rndv ? UCS_ERR_CANCELED : UCS_OK;
    }
    uint32_t magic = get32(h), hl = get32(h + 4), ns = get32(h + 8), flags = get32(h + 12);
    uint64_t seq = get64(h + 16);
    xo_status_t bad = XO_OK;
    if (magic != XO_UCX_MAGIC || flags != 0)
        bad = xo__error_set(XO_EPROTO, "recv: bad frame prefix (magic 0x%08x, flags 0x%x)", magic, flags);
    else if (ns > XO_FRAME_MAX_SEGS)
        bad = xo__error_set(XO_EPROTO, "recv: frame announces %u segments, at most %u", ns, XO_FRAME_MAX_SEGS);
    else if (seq != c->rx_next_arrival)
        bad = xo__error_set(XO_EPROTO, "recv: frame #%llu where #%llu was due", (unsigned long long)seq,
                           (unsigned long long)c->rx_next_arrival);
    else if (hl > max)
        bad = xo__error_set(XO_EMSGSIZE, "recv: frame header of %u bytes exceeds max_frame %zu", hl, max);
    else if (length > max + align64(8 * (size_t)ns) + 64 * ((size_t)ns + 1))
        bad = xo__error_set(XO_EMSGSIZE, "recv: frame of %zu bytes exceeds max_frame %zu", length, max);
    else if (length < align64(8 * (size_t)ns) + align64(hl))
        bad = xo__error_set(XO_EPROTO, "recv: %zu data bytes for %u segments and a %u-byte header", length, ns, hl);
    if (bad != XO_OK) {
        rx_fail_in_cb(c, bad);
        /* A refused rendezvous completes the sender's send with this status; the data never crosses. */
        return rndv ? UCS_ERR_MESSAGE_TRUNCATED : UCS_OK;
    }
    c->rx_next_arrival++;

    size_t table = align64((size_t)ns * sizeof(xo_seg_t));
    rx_item_t *it = calloc(1, sizeof *it);
    /* A large frame takes pages already mapped (transport/warm_blocks.h): fresh ones fault and zero while the data
     * lands, as on the stream channels. */
    bool warm = table + length >= XO_WARM_MIN;
    size_t cap;
    uint8_t *mem = warm ? xo__warm_take(table + length, &cap) : aligned_alloc(64, table + length ? table + length : 64);
    rndv_ctx_t *rc = rndv ? malloc(sizeof *rc) : NULL;
    if (!it || !mem || (rndv && !rc)) {
        free(it);
        if (warm) xo__warm_give(mem);
        else free(mem);
        free(rc);
        rx_fail_in_cb(c, xo__error_set(XO_ENOMEM, "recv: no memory for a %zu-byte frame", table + length));
        return rndv ? UCS_ERR_NO_MEMORY : UCS_OK;
    }
    it->seq = seq;
    if (warm) {
        it->f.release = xo__warm_give;
        it->f.release_arg = mem;
    } else {
        it->f.mem = mem;
    }
    it->f.segs = ns ? (xo_seg_t *)mem : NULL;
    it->f.nsegs = ns;
    it->f.header = mem + table;
    it->f.header_len = hl;
    rx_push(c, it);
    if (!rndv) {
        if (length) memcpy(mem + table, data, length);
        rx_finish(c, it, table, length);
        it->done = true;
        signal_fd(c->rx_efd);
        return UCS_OK;
    }
    *rc = (rndv_ctx_t){c, it, table, length};
    ucp_request_param_t p = {
        .op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_DATATYPE,
        .cb.recv_am = rndv_done_cb,
        .user_data = rc,
        .datatype = ucp_dt_make_contig(1),
    };
    ucs_status_ptr_t r = ucp_am_recv_data_nbx(c->worker, data, mem + table, length, &p);
    if (r == NULL) {
        rx_finish(c, it, table, length);
        free(rc);
        it->done = true;
        signal_fd(c->rx_efd);
    } else if (UCS_PTR_IS_ERR(r)) {
        free(rc);
        it->f.nsegs = SLOT_CUT;
        it->done = true;
        if (!c->ep_failed) {
            c->ep_failed = true;
            c->ep_status = UCS_PTR_STATUS(r);
        }
        signal_fd(c->rx_efd);
    }
    return UCS_OK;
}

static ucs_status_t ready_cb(void *arg, const void *header, size_t header_length, void *data, size_t length,
                             const ucp_am_recv_param_t *param)
{
    ucx_chan_t *c = arg;
    c->peer_ready = true;
    return UCS_OK;
}

/* Waits for events on the worker (caller holds lock; it is released while sleeping). Sleeps only if arming
 * found nothing pending; at most ms milliseconds (negative: WAIT_SLICE_MS). */
static void wait_worker(ucx_chan_t *c, int fd, int ms)
{
    if (!progress_and_arm(c->worker)) return;
    pthread_mutex_unlock(&c->lock);
    struct pollfd p[2] = {{fd, POLLIN, 0}, {c->shut_efd, POLLIN, 0}};
    if (poll(p, 2, ms < 0 || ms > WAIT_SLICE_MS ? WAIT_SLICE_MS : ms) < 0 && errno != EINTR)
        xo_log_debug("ucx channel: poll: %s", strerror(errno));
    pthread_mutex_lock(&c->lock);
}

typedef struct send_ctx {
    bool done;
    ucs_status_t status;
} send_ctx_t;

/* Frees the request here, so that a sender woken after a teardown never touches the destroyed worker's
 * requests. */
static void send_done_cb(void *request, ucs_status_t status, void *user_data)
{
    send_ctx_t *s = user_data;
    s->status = status;
    s->done = true;
    ucp_request_free(request);
}

static xo_status_t chan_send(xo_channel_t *ch, const xo_frame_t *f)
{
    ucx_chan_t *c = (ucx_chan_t *)ch;
    if (f->header_len > UINT32_MAX) return xo__error_set(XO_EMSGSIZE, "send: header longer than 4 GiB");
    size_t hlen = XO_UCX_PREFIX_LEN, lens_len = 8 * f->nsegs;
    uint8_t *hdr = malloc(hlen + align64(lens_len));
    ucp_dt_iov_t *iov = malloc(sizeof *iov * (2 * f->nsegs + 3));
    if (!hdr || !iov) {
        free(hdr);
        free(iov);
        return xo__error_set(XO_ENOMEM, "send: no memory for %zu segments", f->nsegs);
    }
    put32(hdr, XO_UCX_MAGIC);
    put32(hdr + 4, (uint32_t)f->header_len);
    put32(hdr + 8, (uint32_t)f->nsegs);
    put32(hdr + 12, 0);
    /* The data: the segment lengths (zero-padded to 64 bytes), then each part padded to 64 bytes. */
    uint8_t *lens = hdr + hlen;
    memset(lens, 0, align64(lens_len));
    size_t n = 0, data_len = align64(lens_len);
    if (lens_len) iov[n++] = (ucp_dt_iov_t){lens, align64(lens_len)};
    for (size_t i = 0; i <= f->nsegs; i++) {
        const void *p = i ? f->segs[i - 1].data : f->header;
        size_t l = i ? f->segs[i - 1].len : f->header_len;
        if (i) put64(lens + 8 * (i - 1), l);
        if (!l) continue;
        iov[n++] = (ucp_dt_iov_t){(void *)p, l};
        if (align64(l) != l) iov[n++] = (ucp_dt_iov_t){(void *)zero_pad, align64(l) - l};
        data_len += align64(l);
    }

    send_ctx_t sc = {0};
    ucp_request_param_t p = {
        .op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_DATATYPE,
        .cb.send = send_done_cb,
        .user_data = &sc,
        .datatype = UCP_DATATYPE_IOV,
    };
    if (n == 0) p.datatype = ucp_dt_make_contig(1); /* UCX asserts on an empty iov */
    xo_status_t st = XO_OK;
    pthread_mutex_lock(&c->lock);
    if (atomic_load_explicit(&c->shut, memory_order_relaxed) || !c->ep || !c->worker) {
        st = xo__error_set(XO_ECLOSED, "send: channel shut down");
    } else if (c->ep_failed) {
        st = xo__error_set(XO_ECLOSED, "send: peer closed the channel (%s)", ucs_status_string(c->ep_status));
    } else {
        put64(hdr + 16, c->tx_seq++);
        ucs_status_ptr_t r = ucp_am_send_nbx(c->ep, XO_UCX_AM_FRAME, hdr, hlen, n ? (void *)iov : NULL, n, &p);
        if (UCS_PTR_IS_ERR(r)) {
            st = xo__error_set(XO_ECLOSED, "send: %s", ucs_status_string(UCS_PTR_STATUS(r)));
        } else if (r != NULL) {
            /* Wait for completion: the caller's buffers are ours until then. A shutdown force-closes the
             * endpoint, which completes the request with an error, so this never outlives the channel. */
            while (!sc.done && c->worker) {
                if (atomic_load_explicit(&c->shut, memory_order_relaxed)) teardown(c);
                else if (!ucp_worker_progress(c->worker) && !sc.done) wait_worker(c, c->worker_efd, WAIT_SLICE_MS);
            }
            if (!sc.done) st = xo__error_set(XO_ECLOSED, "send: channel shut down");
            else if (sc.status != UCS_OK)
                st = xo__error_set(XO_ECLOSED, "send: %s%s", ucs_status_string(sc.status),
                                  atomic_load(&c->shut) ? " (channel shut down)" : "");
        }
    }
    /* Nothing may be left in the worker's pending queue when the lock goes: let a receiver see the frames and
     * errors this progress delivered. */
    pthread_mutex_unlock(&c->lock);
    (void)data_len;
    free(hdr);
    free(iov);
    return st;
}

/* Takes the frame at the head of the queue when it is complete (caller holds lock). */
static bool rx_take(ucx_chan_t *c, xo_frame_t *out, xo_status_t *st)
{
    rx_item_t *it = c->rx_head;
    if (!it || !it->done) return false;
    c->rx_head = it->next;
    if (!c->rx_head) c->rx_tail = NULL;
    if (it->f.nsegs == SLOT_BAD) {
        rx_item_free(it);
        return false; /* rx_err reports it */
    }
    if (it->f.nsegs == SLOT_CUT) {
        rx_item_free(it);
        c->rx_dead = true;
        *st = xo__error_set(XO_ECLOSED, "recv: a frame was cut off: the peer is gone");
        return true;
    }
    c->rx_seq++;
    *out = it->f;
    free(it);
    *st = XO_OK;
    return true;
}

static xo_status_t chan_recv(xo_channel_t *ch, int timeout_ms, xo_frame_t *out)
{
    ucx_chan_t *c = (ucx_chan_t *)ch;
    int64_t deadline = xo__deadline(timeout_ms);
    xo_status_t st;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        if (c->rx_dead || !c->worker) {
            c->rx_dead = true;
            st = xo__error_set(XO_ECLOSED, "recv: channel closed");
            break;
        }
        while (ucp_worker_progress(c->worker)) {
        }
        if (rx_take(c, out, &st)) break;
        if (c->rx_err != XO_OK) {
            /* Logged here, where the receiver decides; the endpoint goes so that the peer learns at once. */
            st = xo__error_set(c->rx_err, "%s", c->rx_err_text);
            xo_log_error("ucx channel: %s; closing it", c->rx_err_text);
            c->rx_dead = true;
            atomic_store(&c->shut, true);
            signal_fd(c->shut_efd);
            teardown(c);
            break;
        }
        if (atomic_load_explicit(&c->shut, memory_order_relaxed)) {
            c->rx_dead = true;
            st = xo__error_set(XO_ECLOSED, "recv: channel shut down");
            break;
        }
        if (c->ep_failed && (!c->rx_head || c->rx_head->done)) {
            c->rx_dead = true;
            st = xo__error_set(XO_ECLOSED, "recv: peer closed the channel (%s)", ucs_status_string(c->ep_status));
            break;
        }
        /* Nothing complete: clear our own signal, arm the worker, and sleep unless something came meanwhile. */
        clear_fd(c->rx_efd);
        if (!progress_and_arm(c->worker)) continue;
        if (c->rx_head && c->rx_head->done) continue;
        int left = xo__remaining_ms(deadline);
        if (left == 0) {
            st = xo__error_set(XO_ETIMEDOUT, "recv: nothing within %d ms", timeout_ms);
            break;
        }
        pthread_mutex_unlock(&c->lock);
        struct pollfd p[2] = {{c->epfd, POLLIN, 0}, {c->shut_efd, POLLIN, 0}};
        if (poll(p, 2, left < 0 || left > WAIT_SLICE_MS ? WAIT_SLICE_MS : left) < 0 && errno != EINTR) {
            pthread_mutex_lock(&c->lock);
            st = xo__error_set(XO_ESYS, "recv: poll: %s", strerror(errno));
            break;
        }
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

static void chan_shutdown(xo_channel_t *ch)
{
    ucx_chan_t *c = (ucx_chan_t *)ch;
    atomic_store(&c->shut, true);
    signal_fd(c->shut_efd);
    signal_fd(c->rx_efd);
    pthread_mutex_lock(&c->lock);
    teardown(c);
    pthread_mutex_unlock(&c->lock);
}

static int chan_fd(xo_channel_t *ch) { return ((ucx_chan_t *)ch)->epfd; }

/* Releases everything of a channel whose endpoint is closed or never existed (no other thread uses it). */
static void chan_free(ucx_chan_t *c)
{
    teardown(c);
    for (rx_item_t *it = c->rx_head, *next; it; it = next) {
        next = it->next;
        rx_item_free(it);
    }
    if (c->epfd >= 0) close(c->epfd);
    if (c->rx_efd >= 0) close(c->rx_efd);
    if (c->shut_efd >= 0) close(c->shut_efd);
    pthread_mutex_destroy(&c->lock);
    if (c->ctx) ctx_put(c->ctx);
    free(c);
}

static void chan_close(xo_channel_t *ch)
{
    ucx_chan_t *c = (ucx_chan_t *)ch;
    if (c->ep && !c->ep_failed) {
        /* A flushing close: frames already handed to UCX leave first and the peer is told. chan_free waits for
         * it, bounded (a peer that does not read must not hang close), then the worker goes. */
        ucp_request_param_t p = {0};
        void *r = ucp_ep_close_nbx(c->ep, &p);
        c->ep = NULL;
        if (UCS_PTR_IS_PTR(r)) c->close_req = r;
    }
    chan_free(c);
}

static const xo_channel_ops_t ucx_channel_ops = {
    .send = chan_send,
    .recv = chan_recv,
    .shutdown = chan_shutdown,
    .close = chan_close,
    .fd = chan_fd,
};

extern const xo_transport_ops_t xo__ucx_transport;

/* A channel with its own worker, AM handler and fds, but no endpoint yet. */
static xo_status_t chan_new(const xo_chan_opts_t *opts, ucx_chan_t **c_p)
{
    ucx_chan_t *c = calloc(1, sizeof *c);
    if (!c) return xo__error_set(XO_ENOMEM, "no memory for a channel");
    c->base = (xo_channel_t){.ops = &ucx_channel_ops, .tran = &xo__ucx_transport, .opts = *opts};
    pthread_mutex_init(&c->lock, NULL);
    atomic_init(&c->shut, false);
    c->rx_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c->shut_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    xo_status_t st = XO_OK;
    if (c->rx_efd < 0 || c->shut_efd < 0 || c->epfd < 0)
        st = xo__error_set(XO_ESYS, "ucx: eventfd/epoll: %s", strerror(errno));
    if (st == XO_OK) st = ctx_get(&c->ctx);
    if (st == XO_OK) st = worker_new(c->ctx, &c->worker, &c->worker_efd);
    if (st == XO_OK) {
        struct epoll_event e1 = {.events = EPOLLIN, .data.fd = c->worker_efd};
        struct epoll_event e2 = {.events = EPOLLIN, .data.fd = c->rx_efd};
        if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->worker_efd, &e1) < 0 ||
            epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->rx_efd, &e2) < 0)
            st = xo__error_set(XO_ESYS, "ucx: epoll_ctl: %s", strerror(errno));
    }
    if (st == XO_OK) {
        ucp_am_handler_param_t hp = {
            .field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_FLAGS |
                          UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG,
            .id = XO_UCX_AM_FRAME,
            .flags = UCP_AM_FLAG_WHOLE_MSG,
            .cb = am_cb,
            .arg = c,
        };
        ucs_status_t s = ucp_worker_set_am_recv_handler(c->worker, &hp);
        if (s == UCS_OK) {
            hp.id = XO_UCX_AM_READY;
            hp.cb = ready_cb;
            s = ucp_worker_set_am_recv_handler(c->worker, &hp);
        }
        if (s != UCS_OK) st = xo__error_set(XO_ESYS, "ucx: set_am_recv_handler: %s", ucs_status_string(s));
    }
    if (st != XO_OK) {
        chan_free(c);
        return st;
    }
    *c_p = c;
    return XO_OK;
}

static void ep_params_common(ucx_chan_t *c, ucp_ep_params_t *ep)
{
    ep->field_mask |= UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
    ep->err_mode = UCP_ERR_HANDLING_MODE_PEER;
    ep->err_handler.cb = ep_error_cb;
    ep->err_handler.arg = c;
}

/* Waits until the endpoint's connection is set up (caller holds lock): a flush completes once both sides have
 * progressed through UCX's wireup, which is why connect and accept both wait here. UCS_OK, UCS_INPROGRESS (not
 * within timeout_ms), or the error that ended the endpoint (the error callback ran: nothing listens there, or the
 * peer went away). */
static ucs_status_t wait_wireup(ucx_chan_t *c, int timeout_ms)
{
    ucp_request_param_t fp = {0};
    void *r = ucp_ep_flush_nbx(c->ep, &fp);
    int64_t deadline = xo__deadline(timeout_ms);
    while (UCS_PTR_IS_PTR(r) && ucp_request_check_status(r) == UCS_INPROGRESS && !c->ep_failed) {
        int left = xo__remaining_ms(deadline);
        if (left == 0) break;
        if (!ucp_worker_progress(c->worker)) wait_worker(c, c->worker_efd, left);
    }
    ucs_status_t fs = UCS_PTR_IS_PTR(r) ? ucp_request_check_status(r) : UCS_PTR_STATUS(r);
    if (UCS_PTR_IS_PTR(r)) {
        if (fs == UCS_INPROGRESS) ucp_request_cancel(c->worker, r);
        while (ucp_request_check_status(r) == UCS_INPROGRESS && ucp_worker_progress(c->worker)) {
        }
        ucp_request_free(r);
    }
    if (c->ep_failed) return c->ep_status;
    return fs;
}

static xo_status_t parse_addr(const xo_url_t *url, xo_sockaddr_t *a)
{
    return xo__sockaddr_tcp(url->rest, a);
}

static xo_status_t ucx_connect(const xo_url_t *url, const xo_chan_opts_t *opts, int timeout_ms, xo_channel_t **ch_p)
{
    xo_sockaddr_t a;
    xo_status_t st = parse_addr(url, &a);
    if (st != XO_OK) return st;
    ucx_chan_t *c;
    st = chan_new(opts, &c);
    if (st != XO_OK) return st;
    ucp_ep_params_t ep = {
        .field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR,
        .flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER,
        .sockaddr = {.addr = (const struct sockaddr *)&a.ss, .addrlen = a.len},
    };
    ep_params_common(c, &ep);
    pthread_mutex_lock(&c->lock);
    ucs_status_t s = ucp_ep_create(c->worker, &ep, &c->ep);
    if (s != UCS_OK) {
        c->ep = NULL;
        pthread_mutex_unlock(&c->lock);
        chan_free(c);
        return xo__error_set(XO_EREFUSED, "connect %s: %s", url->rest, ucs_status_string(s));
    }
    /* Wireup needs both sides to progress. The client's flush completes before the server's does, so the client
     * keeps progressing until the server says READY: when both calls return, neither side still needs the
     * other to progress for the connection's setup. */
    int64_t deadline = xo__deadline(timeout_ms);
    ucs_status_t why = UCS_OK;
    while (why == UCS_OK && !c->peer_ready) {
        int left = xo__remaining_ms(deadline);
        if (c->ep_failed) why = c->ep_status;
        else if (left == 0) why = UCS_INPROGRESS;
        else if (!ucp_worker_progress(c->worker)) wait_worker(c, c->worker_efd, left);
    }
    if (why == UCS_INPROGRESS)
        st = xo__error_set(XO_ETIMEDOUT, "connect %s: not accepted within %d ms", url->rest, timeout_ms);
    else if (why != UCS_OK)
        st = xo__error_set(XO_EREFUSED, "connect %s: %s", url->rest, ucs_status_string(why));
    if (st != XO_OK) ep_force_close(c);
    pthread_mutex_unlock(&c->lock);
    if (st != XO_OK) {
        chan_free(c);
        return st;
    }
    *ch_p = &c->base;
    return XO_OK;
}

/* ---- listener ---- */

typedef struct conn_item {
    struct conn_item *next;
    ucp_conn_request_h req;
} conn_item_t;

typedef struct ucx_listener {
    xo_listener_t base;
    ucp_context_h ctx;
    ucp_worker_h worker; /* the listener's own, used by the accepting thread only */
    int efd;
    ucp_listener_h listener;
    conn_item_t *head, *tail; /* connection requests not yet accepted */
} ucx_listener_t;

static void conn_cb(ucp_conn_request_h req, void *arg)
{
    ucx_listener_t *ul = arg;
    conn_item_t *it = malloc(sizeof *it);
    if (!it) {
        xo_log_error("ucx listener: no memory for a connection request; rejected");
        ucp_listener_reject(ul->listener, req);
        return;
    }
    *it = (conn_item_t){.req = req};
    if (ul->tail) ul->tail->next = it;
    else ul->head = it;
    ul->tail = it;
}

/* Sends READY to the client and waits for it to leave (caller holds lock). */
static ucs_status_t send_ready(ucx_chan_t *c)
{
    send_ctx_t sc = {0};
    ucp_request_param_t p = {
        .op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA,
        .cb.send = send_done_cb,
        .user_data = &sc,
    };
    ucs_status_ptr_t r = ucp_am_send_nbx(c->ep, XO_UCX_AM_READY, NULL, 0, NULL, 0, &p);
    if (UCS_PTR_IS_ERR(r)) return UCS_PTR_STATUS(r);
    if (r == NULL) return UCS_OK;
    int64_t deadline = xo__deadline(ACCEPT_WIREUP_MS);
    while (!sc.done && !c->ep_failed && xo__remaining_ms(deadline) != 0)
        if (!ucp_worker_progress(c->worker)) wait_worker(c, c->worker_efd, xo__remaining_ms(deadline));
    if (!sc.done) teardown(c); /* completes or drops the request */
    return sc.done ? sc.status : UCS_ERR_TIMED_OUT;
}

static xo_status_t lis_accept(xo_listener_t *l, int timeout_ms, xo_channel_t **ch_p)
{
    ucx_listener_t *ul = (ucx_listener_t *)l;
    int64_t deadline = xo__deadline(timeout_ms);
    for (;;) {
        while (ucp_worker_progress(ul->worker)) {
        }
        if (ul->head) break;
        if (!progress_and_arm(ul->worker)) continue;
        if (ul->head) break;
        int left = xo__remaining_ms(deadline);
        if (left == 0) return xo__error_set(XO_ETIMEDOUT, "accept: no connection within %d ms", timeout_ms);
        if (xo__poll1(ul->efd, POLLIN, xo__deadline(left < 0 || left > WAIT_SLICE_MS ? WAIT_SLICE_MS : left)) < 0 &&
            errno != EINTR)
            return xo__error_set(XO_ESYS, "accept: poll: %s", strerror(errno));
    }
    conn_item_t *it = ul->head;
    ul->head = it->next;
    if (!ul->head) ul->tail = NULL;
    ucp_conn_request_h req = it->req;
    free(it);
    ucx_chan_t *c;
    xo_status_t st = chan_new(&l->opts, &c);
    if (st != XO_OK) {
        ucp_listener_reject(ul->listener, req);
        return st;
    }
    ucp_ep_params_t ep = {.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST, .conn_request = req};
    ep_params_common(c, &ep);
    pthread_mutex_lock(&c->lock);
    ucs_status_t s = ucp_ep_create(c->worker, &ep, &c->ep);
    if (s != UCS_OK) c->ep = NULL;
    else s = wait_wireup(c, ACCEPT_WIREUP_MS);
    if (s == UCS_OK) s = send_ready(c);
    if (s != UCS_OK) ep_force_close(c);
    pthread_mutex_unlock(&c->lock);
    if (s != UCS_OK) {
        chan_free(c);
        if (s == UCS_INPROGRESS) return xo__error_set(XO_EPROTO, "accept: connection not set up within %d ms",
                                                     ACCEPT_WIREUP_MS);
        return xo__error_set(XO_ECLOSED, "accept: %s", ucs_status_string(s));
    }
    *ch_p = &c->base;
    return XO_OK;
}

static int lis_fd(xo_listener_t *l) { return ((ucx_listener_t *)l)->efd; }

static void lis_close(xo_listener_t *l)
{
    ucx_listener_t *ul = (ucx_listener_t *)l;
    if (ul->listener) {
        for (conn_item_t *it = ul->head, *next; it; it = next) {
            next = it->next;
            ucp_listener_reject(ul->listener, it->req);
            free(it);
        }
        ucp_listener_destroy(ul->listener);
        while (ucp_worker_progress(ul->worker)) {
        }
    }
    if (ul->worker) ucp_worker_destroy(ul->worker);
    if (ul->ctx) ctx_put(ul->ctx);
    free(ul);
}

static const xo_listener_ops_t ucx_listener_ops = {
    .accept = lis_accept,
    .close = lis_close,
    .fd = lis_fd,
};

static xo_status_t ucx_listen(const xo_url_t *url, const xo_chan_opts_t *opts, xo_listener_t **l_p)
{
    xo_sockaddr_t a;
    xo_status_t st = parse_addr(url, &a);
    if (st != XO_OK) return st;
    ucx_listener_t *ul = calloc(1, sizeof *ul);
    if (!ul) return xo__error_set(XO_ENOMEM, "no memory for a listener");
    ul->base = (xo_listener_t){.ops = &ucx_listener_ops, .tran = &xo__ucx_transport, .opts = *opts};
    st = ctx_get(&ul->ctx);
    if (st == XO_OK) st = worker_new(ul->ctx, &ul->worker, &ul->efd);
    if (st == XO_OK) {
        ucp_listener_params_t lp = {
            .field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER,
            .sockaddr = {.addr = (const struct sockaddr *)&a.ss, .addrlen = a.len},
            .conn_handler = {.cb = conn_cb, .arg = ul},
        };
        ucs_status_t s = ucp_listener_create(ul->worker, &lp, &ul->listener);
        if (s != UCS_OK) {
            ul->listener = NULL;
            st = xo__error_set(XO_ESYS, "listen %s: %s", url->rest, ucs_status_string(s));
        }
    }
    if (st == XO_OK) {
        ucp_listener_attr_t la = {.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR};
        ucs_status_t s = ucp_listener_query(ul->listener, &la);
        if (s != UCS_OK) {
            st = xo__error_set(XO_ESYS, "listen %s: ucp_listener_query: %s", url->rest, ucs_status_string(s));
        } else {
            xo_sockaddr_t bound = {.len = sizeof la.sockaddr};
            memcpy(&bound.ss, &la.sockaddr, sizeof la.sockaddr);
            char addr[XO_URL_MAX - 16];
            xo__sockaddr_format(&bound, addr, sizeof addr);
            snprintf(ul->base.url, sizeof ul->base.url, "ucx://%s", addr);
        }
    }
    /* Armed from the start, so that the fd polls readable only once a connection request is there. */
    while (st == XO_OK && !progress_and_arm(ul->worker)) {
    }
    if (st != XO_OK) {
        lis_close(&ul->base);
        return st;
    }
    *l_p = &ul->base;
    return XO_OK;
}

const xo_transport_ops_t xo__ucx_transport = {
    .scheme = "ucx",
    .same_host_only = false,
    .route = {.kind = XO_ROUTE_PORT, .port_offset = 500, .enable_env = "XO_UCX"},
    .listen = ucx_listen,
    .connect = ucx_connect,
    .listener_ops = &ucx_listener_ops,
    .channel_ops = &ucx_channel_ops,
};

XO_PLUGIN_DEFINE(XO_PLUGIN_TRANSPORT, "ucx", XO_TRANSPORT_PLUGIN_LAYOUT, &xo__ucx_transport);
