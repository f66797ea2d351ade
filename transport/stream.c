/* Length-prefixed frames over stream sockets, shared by the unix and tcp backends (see stream.h for the format).
 *
 * Sending gathers prefix, header and segments into one sendmsg under the channel's send lock, so a frame is never
 * interleaved with another thread's. Receiving is a resumable state machine (prefix, lengths, body) fed from a
 * 64 KiB buffer: small frames cost one read for many frames, large bodies are read straight into the frame's
 * memory, and a timeout in the middle of a frame keeps what arrived for the next call. */
#include "transport/le.h"
#include "transport/stream.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "base/log_limit.h"
#include "transport/warm_blocks.h"

#define RBUF_SIZE (64 * 1024)
/* The buffer of a channel whose max_frame is this small or less (an acceptor before authentication): what a peer can
 * make us allocate before it has proved anything. Allocated at the first read, grown when max_frame grows. */
#define RBUF_SMALL 512
/* A body part at least this large, with nothing buffered, is read straight into the frame (one copy less). */
#define DIRECT_MIN (16 * 1024)
/* Frames with up to this many segments build their iovecs on the stack (actor fibers have small stacks). */
#define STACK_SEGS 8
/* Blocking waits poll in slices this long and check the shutdown flag between them, so that shutdown wakes a
 * waiter even where the kernel would not (it normally does at once: shutdown() wakes poll()). */
#define WAIT_SLICE_MS 100

typedef enum { RX_PREFIX, RX_LENS, RX_BODY } rx_state_t;

typedef struct stream_chan {
    xo_channel_t base;
    int fd;
    /* Set once by shutdown or by a send/receive error; read by every sender and the receiver (relaxed is
     * enough: it only stops new waits, the socket shutdown that goes with it is what wakes the kernel side). */
    atomic_bool shut;
    pthread_mutex_t send_lock; /* held for a whole frame, so frames never interleave on the wire */

    /* Receiver thread only, from here on. */
    bool rx_dead;     /* recv returned an end (EOF, error): later calls return XO_ECLOSED */
    rx_state_t state;
    uint32_t header_len;
    uint32_t nsegs;
    xo_frame_t rx;    /* the frame being filled; rx.mem is its block */
    size_t part;      /* 0 = header, i = segment i-1 */
    size_t part_off;
    size_t rstart, rend;
    uint8_t *rbuf;    /* rbuf_cap bytes, NULL before the first read */
    size_t rbuf_cap;
} stream_chan_t;

typedef struct stream_listener {
    xo_listener_t base;
    int fd;
    bool nodelay;
    char *unlink_path; /* owned; NULL for tcp and abstract unix names */
} stream_listener_t;



static void chan_shutdown(xo_channel_t *ch)
{
    stream_chan_t *c = (stream_chan_t *)ch;
    atomic_store_explicit(&c->shut, true, memory_order_relaxed);
    shutdown(c->fd, SHUT_RDWR);
}

/* ---- send ---- */

/* Writes all of iov[0..n) (modifying the iovecs as it goes). Caller holds send_lock. */
static xo_status_t write_all(stream_chan_t *c, struct iovec *iov, size_t n)
{
    while (n > 0) {
        if (atomic_load_explicit(&c->shut, memory_order_relaxed))
            return xo__error_set(XO_ECLOSED, "send: channel shut down");
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = n < IOV_MAX ? n : IOV_MAX};
        ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (xo__poll1(c->fd, POLLOUT, xo__deadline(WAIT_SLICE_MS)) < 0)
                    return xo__error_set(XO_ESYS, "send: poll: %s", strerror(errno));
                continue;
            }
            if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
                return xo__error_set(XO_ECLOSED, "send: peer closed the channel (%s)", strerror(errno));
            return xo__error_set(XO_ESYS, "send: %s", strerror(errno));
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return XO_OK;
}

static xo_status_t chan_send(xo_channel_t *ch, const xo_frame_t *f)
{
    stream_chan_t *c = (stream_chan_t *)ch;
    uint8_t pre_stack[XO_STREAM_PREFIX_LEN + 8 * STACK_SEGS];
    struct iovec iov_stack[2 + STACK_SEGS];
    uint8_t *pre = pre_stack;
    struct iovec *iov = iov_stack;
    if (f->header_len > UINT32_MAX) return xo__error_set(XO_EMSGSIZE, "send: header longer than 4 GiB");
    size_t n_iov = 0; /* an iovec per segment, or per piece of a gathered one: the kernel gathers them */
    for (size_t i = 0; i < f->nsegs; i++) n_iov += f->gather && f->gather[i].n ? f->gather[i].n : 1;
    if (f->nsegs > STACK_SEGS || n_iov > STACK_SEGS) {
        pre = malloc(XO_STREAM_PREFIX_LEN + 8 * f->nsegs);
        iov = malloc(sizeof *iov * (2 + n_iov));
        if (!pre || !iov) {
            if (pre != pre_stack) free(pre);
            if (iov != iov_stack) free(iov);
            return xo__error_set(XO_ENOMEM, "send: no memory for %zu iovecs", f->nsegs);
        }
    }
    put32(pre, XO_STREAM_MAGIC);
    put32(pre + 4, (uint32_t)f->header_len);
    put32(pre + 8, (uint32_t)f->nsegs);
    put32(pre + 12, 0);
    size_t n = 0;
    iov[n++] = (struct iovec){pre, XO_STREAM_PREFIX_LEN + 8 * f->nsegs};
    if (f->header_len) iov[n++] = (struct iovec){f->header, f->header_len};
    for (size_t i = 0; i < f->nsegs; i++) {
        put64(pre + XO_STREAM_PREFIX_LEN + 8 * i, f->segs[i].len);
        if (f->gather && f->gather[i].n) {
            const xo_seg_t *p = f->gather[i].pieces;
            for (size_t k = 0; k < f->gather[i].n; k++)
                if (p[k].len) iov[n++] = (struct iovec){p[k].data, p[k].len};
        } else if (f->segs[i].len) {
            iov[n++] = (struct iovec){f->segs[i].data, f->segs[i].len};
        }
    }

    pthread_mutex_lock(&c->send_lock);
    xo_status_t st = write_all(c, iov, n);
    pthread_mutex_unlock(&c->send_lock);
    /* A frame cut short leaves the byte stream unparseable, and a failed socket is dead anyway: end it here so
     * both sides see the channel closed rather than garbage. */
    if (st != XO_OK) chan_shutdown(ch);

    if (pre != pre_stack) free(pre);
    if (iov != iov_stack) free(iov);
    return st;
}

/* ---- receive ---- */

static size_t rbuf_want(const stream_chan_t *c)
{
    return c->base.opts.max_frame + XO_STREAM_PREFIX_LEN <= RBUF_SMALL ? RBUF_SMALL : RBUF_SIZE;
}

static inline void part_at(stream_chan_t *c, size_t i, uint8_t **p, size_t *len)
{
    if (i == 0) {
        *p = c->rx.header;
        *len = c->rx.header_len;
    } else {
        *p = c->rx.segs[i - 1].data;
        *len = c->rx.segs[i - 1].len;
    }
}

/* Allocates the frame for the lengths at lens: one 64-byte-aligned block holding the segment table, the header
 * and the segments, each part 64-byte aligned. Lengths were checked against max_frame by the caller. */
static xo_status_t rx_alloc(stream_chan_t *c, const uint8_t *lens)
{
    size_t ns = c->nsegs;
    size_t size = align64(ns * sizeof(xo_seg_t)) + align64(c->header_len);
    for (size_t i = 0; i < ns; i++) size += align64(get64(lens + 8 * i));
    /* A large frame takes a block whose pages are already mapped (transport/warm_blocks.h): a fresh one would fault and
     * zero every page while the body is read into it, about 45% of the receive copy at 64 MiB. */
    bool warm = size >= XO_WARM_MIN;
    size_t cap;
    uint8_t *mem = warm ? xo__warm_take(size, &cap) : aligned_alloc(64, size ? size : 64);
    if (!mem) return xo__error_set(XO_ENOMEM, "recv: no memory for a %zu-byte frame", size);
    memset(&c->rx, 0, sizeof c->rx);
    if (warm) {
        c->rx.release = xo__warm_give;
        c->rx.release_arg = mem;
    } else {
        c->rx.mem = mem;
    }
    c->rx.segs = ns ? (xo_seg_t *)mem : NULL;
    c->rx.nsegs = ns;
    size_t off = align64(ns * sizeof(xo_seg_t));
    c->rx.header = mem + off;
    c->rx.header_len = c->header_len;
    off += align64(c->header_len);
    for (size_t i = 0; i < ns; i++) {
        size_t l = (size_t)get64(lens + 8 * i);
        c->rx.segs[i] = (xo_seg_t){mem + off, l};
        off += align64(l);
    }
    c->part = 0;
    c->part_off = 0;
    return XO_OK;
}

/* Consumes buffered bytes. XO_OK: c->rx holds a complete frame. XO_INPROGRESS: more bytes are needed.
 * XO_EPROTO / XO_EMSGSIZE / XO_ENOMEM: the stream is bad (text set). */
static xo_status_t rx_parse(stream_chan_t *c)
{
    size_t max = c->base.opts.max_frame;
    for (;;) {
        size_t avail = c->rend - c->rstart;
        const uint8_t *p = c->rbuf ? c->rbuf + c->rstart : NULL; /* NULL before the first read (avail 0) */
        switch (c->state) {
        case RX_PREFIX: {
            if (avail < XO_STREAM_PREFIX_LEN) return XO_INPROGRESS;
            size_t room = rbuf_want(c) - XO_STREAM_PREFIX_LEN; /* the segment lengths are parsed from rbuf */
            uint32_t magic = get32(p), hl = get32(p + 4), ns = get32(p + 8), flags = get32(p + 12);
            if (magic != XO_STREAM_MAGIC || flags != 0)
                return xo__error_set(XO_EPROTO, "recv: bad frame prefix (magic 0x%08x, flags 0x%x)", magic, flags);
            if (ns > XO_FRAME_MAX_SEGS)
                return xo__error_set(XO_EPROTO, "recv: frame announces %u segments, at most %u", ns,
                                    XO_FRAME_MAX_SEGS);
            if (hl > max)
                return xo__error_set(XO_EMSGSIZE, "recv: frame header of %u bytes exceeds max_frame %zu", hl, max);
            if (8 * (size_t)ns > room)
                return xo__error_set(XO_EMSGSIZE, "recv: frame announces %u segments, too many for max_frame %zu", ns,
                                    max);
            c->header_len = hl;
            c->nsegs = ns;
            c->rstart += XO_STREAM_PREFIX_LEN;
            c->state = RX_LENS;
            continue;
        }
        case RX_LENS: {
            size_t need = 8 * (size_t)c->nsegs;
            if (avail < need) return XO_INPROGRESS;
            /* Check every length before allocating: total stays <= max, so no sum can overflow. */
            size_t total = c->header_len;
            for (size_t i = 0; i < c->nsegs; i++) {
                uint64_t l = get64(p + 8 * i);
                if (l > max - total)
                    return xo__error_set(XO_EMSGSIZE, "recv: frame larger than max_frame %zu (segment %zu: %llu bytes)",
                                        max, i, (unsigned long long)l);
                total += (size_t)l;
            }
            xo_status_t st = rx_alloc(c, p);
            if (st != XO_OK) return st;
            c->rstart += need;
            c->state = RX_BODY;
            continue;
        }
        case RX_BODY:
            while (c->part <= c->rx.nsegs) {
                uint8_t *dst;
                size_t len;
                part_at(c, c->part, &dst, &len);
                size_t n = len - c->part_off;
                if (n > avail) n = avail;
                if (n) {
                    memcpy(dst + c->part_off, c->rbuf + c->rstart, n);
                    c->part_off += n;
                    c->rstart += n;
                    avail -= n;
                }
                if (c->part_off < len) return XO_INPROGRESS;
                c->part++;
                c->part_off = 0;
            }
            c->state = RX_PREFIX;
            return XO_OK;
        }
    }
}

/* Reads what the socket has: straight into the frame when a large part is pending and nothing is buffered,
 * otherwise into rbuf. Returns bytes read, 0 at EOF, -1 with errno. */
static ssize_t rx_read(stream_chan_t *c)
{
    size_t want = rbuf_want(c);
    if (c->rbuf_cap < want) { /* the first read, or max_frame grew: what is buffered stays where it is */
        uint8_t *nb = realloc(c->rbuf, want);
        if (!nb) {
            errno = ENOMEM;
            return -1;
        }
        c->rbuf = nb;
        c->rbuf_cap = want;
    }
    if (c->rstart == c->rend) c->rstart = c->rend = 0;
    if (c->state == RX_BODY && c->rstart == c->rend) {
        struct iovec iov[64];
        int n = 0;
        size_t want = 0;
        for (size_t i = c->part; i <= c->rx.nsegs && n < 64; i++) {
            uint8_t *p;
            size_t len;
            part_at(c, i, &p, &len);
            size_t off = i == c->part ? c->part_off : 0;
            if (len > off) {
                iov[n++] = (struct iovec){p + off, len - off};
                want += len - off;
            }
        }
        if (want >= DIRECT_MIN) {
            ssize_t r = readv(c->fd, iov, n);
            if (r <= 0) return r;
            /* Advance the body cursor over what readv filled. */
            size_t left = (size_t)r;
            while (left > 0) {
                uint8_t *p;
                size_t len;
                part_at(c, c->part, &p, &len);
                size_t take = len - c->part_off;
                if (take > left) take = left;
                c->part_off += take;
                left -= take;
                if (c->part_off == len) {
                    c->part++;
                    c->part_off = 0;
                }
            }
            return r;
        }
    }
    /* Keep room for the largest run parse needs in one piece (the segment lengths, 8 KiB). */
    if (c->rbuf_cap - c->rend < c->rbuf_cap / 4 && c->rstart > 0) {
        memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
        c->rend -= c->rstart;
        c->rstart = 0;
    }
    ssize_t r = read(c->fd, c->rbuf + c->rend, c->rbuf_cap - c->rend);
    if (r > 0) c->rend += (size_t)r;
    return r;
}

/* Ends the receive side after a protocol error: logged here, where it is decided, and the socket is shut down
 * so the peer learns at once. */
static xo_status_t rx_fail(stream_chan_t *c, xo_status_t st)
{
    /* Rate-limited: anyone who reaches the port can send garbage as often as they like. */
    xo_log_limited(XO_LOG_ERROR, "%s channel: %s; closing it", c->base.tran->scheme, xo_last_error());
    c->rx_dead = true;
    chan_shutdown(&c->base);
    return st;
}

static xo_status_t chan_recv(xo_channel_t *ch, int timeout_ms, xo_frame_t *out)
{
    stream_chan_t *c = (stream_chan_t *)ch;
    if (c->rx_dead) return xo__error_set(XO_ECLOSED, "recv: channel closed");
    int64_t deadline = xo__deadline(timeout_ms);
    for (;;) {
        xo_status_t st = rx_parse(c);
        if (st == XO_OK) {
            *out = c->rx;
            memset(&c->rx, 0, sizeof c->rx);
            return XO_OK;
        }
        if (st != XO_INPROGRESS) return rx_fail(c, st);
        if (atomic_load_explicit(&c->shut, memory_order_relaxed)) {
            c->rx_dead = true;
            return xo__error_set(XO_ECLOSED, "recv: channel shut down");
        }
        ssize_t r = rx_read(c);
        if (r > 0) continue;
        if (r == 0) {
            c->rx_dead = true;
            if (c->state != RX_PREFIX || c->rstart != c->rend)
                xo_log_debug("%s channel: peer closed in the middle of a frame", ch->tran->scheme);
            return xo__error_set(XO_ECLOSED, "recv: peer closed the channel");
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int left = xo__remaining_ms(deadline);
            if (left == 0) return xo__error_set(XO_ETIMEDOUT, "recv: nothing within %d ms", timeout_ms);
            int slice = left < 0 || left > WAIT_SLICE_MS ? WAIT_SLICE_MS : left;
            if (xo__poll1(c->fd, POLLIN, xo__deadline(slice)) < 0)
                return xo__error_set(XO_ESYS, "recv: poll: %s", strerror(errno));
            continue;
        }
        c->rx_dead = true;
        if (errno == ECONNRESET || errno == EPIPE || errno == ENOTCONN)
            return xo__error_set(XO_ECLOSED, "recv: peer reset the channel (%s)", strerror(errno));
        return xo__error_set(XO_ECLOSED, "recv: %s", strerror(errno));
    }
}

static int chan_fd(xo_channel_t *ch) { return ((stream_chan_t *)ch)->fd; }

static void chan_close(xo_channel_t *ch)
{
    stream_chan_t *c = (stream_chan_t *)ch;
    /* close() without shutdown(): a process forked from ours may hold the same socket, and closing our
     * reference must not end the channel under it. The peer sees EOF when the last reference goes. */
    close(c->fd);
    xo__frame_release(&c->rx); /* a frame still being received */
    free(c->rbuf);
    pthread_mutex_destroy(&c->send_lock);
    free(c);
}

const xo_channel_ops_t xo__stream_channel_ops = {
    .send = chan_send,
    .recv = chan_recv,
    .shutdown = chan_shutdown,
    .close = chan_close,
    .fd = chan_fd,
    .gather = true,
};

xo_status_t xo__stream_channel_new(const xo_transport_ops_t *t, int fd, const xo_chan_opts_t *opts, bool nodelay,
                                   xo_channel_t **ch_p)
{
    if (nodelay) {
        /* Frames are written whole by one sendmsg; Nagle would only hold back the last packet of each. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    stream_chan_t *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return xo__error_set(XO_ENOMEM, "no memory for a channel");
    }
    c->base = (xo_channel_t){.ops = &xo__stream_channel_ops, .tran = t, .opts = *opts};
    c->fd = fd;
    atomic_init(&c->shut, false);
    pthread_mutex_init(&c->send_lock, NULL);
    c->state = RX_PREFIX;
    *ch_p = &c->base;
    return XO_OK;
}

/* ---- listener ---- */

static xo_status_t lis_accept(xo_listener_t *l, int timeout_ms, xo_channel_t **ch_p)
{
    stream_listener_t *sl = (stream_listener_t *)l;
    int fd;
    xo_status_t st = xo__sock_accept(sl->fd, timeout_ms, &fd);
    if (st != XO_OK) return st;
    return xo__stream_channel_new(l->tran, fd, &l->opts, sl->nodelay, ch_p);
}

static int lis_fd(xo_listener_t *l) { return ((stream_listener_t *)l)->fd; }

static void lis_close(xo_listener_t *l)
{
    stream_listener_t *sl = (stream_listener_t *)l;
    close(sl->fd);
    if (sl->unlink_path) {
        unlink(sl->unlink_path);
        free(sl->unlink_path);
    }
    free(sl);
}

const xo_listener_ops_t xo__stream_listener_ops = {
    .accept = lis_accept,
    .close = lis_close,
    .fd = lis_fd,
};

xo_status_t xo__stream_listen(const xo_transport_ops_t *t, const xo_sockaddr_t *a, const xo_chan_opts_t *opts,
                              bool nodelay, const char *unlink_path, xo_listener_t **l_p)
{
    stream_listener_t *sl = calloc(1, sizeof *sl);
    if (!sl) return xo__error_set(XO_ENOMEM, "no memory for a listener");
    if (unlink_path && !(sl->unlink_path = strdup(unlink_path))) {
        free(sl);
        return xo__error_set(XO_ENOMEM, "no memory for a listener");
    }
    sl->fd = -1;
    xo_status_t st = xo__sock_listen(a, SOCK_STREAM, &sl->fd);
    xo_sockaddr_t bound;
    if (st == XO_OK) st = xo__sock_local(sl->fd, &bound);
    if (st != XO_OK) {
        if (sl->fd >= 0) close(sl->fd);
        free(sl->unlink_path);
        free(sl);
        return st;
    }
    sl->base = (xo_listener_t){.ops = &xo__stream_listener_ops, .tran = t, .opts = *opts};
    sl->nodelay = nodelay;
    char addr[XO_URL_MAX - 16];
    xo__sockaddr_format(&bound, addr, sizeof addr);
    snprintf(sl->base.url, sizeof sl->base.url, "%s://%s", t->scheme, addr);
    *l_p = &sl->base;
    return XO_OK;
}

xo_status_t xo__stream_connect(const xo_transport_ops_t *t, const xo_sockaddr_t *a, const xo_chan_opts_t *opts,
                               bool nodelay, int timeout_ms, xo_channel_t **ch_p)
{
    int fd;
    xo_status_t st = xo__sock_connect(a, SOCK_STREAM, timeout_ms, &fd);
    if (st != XO_OK) return st;
    return xo__stream_channel_new(t, fd, opts, nodelay, ch_p);
}
