/* The generic half of the channel interface: URL splitting, option defaults, argument checks, dispatch through the
 * backend's ops tables, and frame release. Nothing here knows a backend. */
#include "transport/channel.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/error.h"
#include "transport/warm_blocks.h"
#include "base/plugin.h"

xo_status_t xo__url_parse(const char *url, xo_url_t *out)
{
    if (!url) return xo__error_set(XO_EINVAL, "NULL url");
    const char *sep = strstr(url, "://");
    if (!sep || sep == url) return xo__error_set(XO_EINVAL, "url '%s' is not scheme://address", url);
    size_t slen = (size_t)(sep - url);
    if (slen >= sizeof out->scheme) return xo__error_set(XO_EINVAL, "url '%s': scheme too long", url);
    const char *rest = sep + 3;
    size_t rlen = strlen(rest);
    if (rlen == 0) return xo__error_set(XO_EINVAL, "url '%s' has no address", url);
    if (rlen >= sizeof out->rest) return xo__error_set(XO_EINVAL, "url '%.32s...' longer than %d", url, XO_URL_MAX - 1);
    memcpy(out->scheme, url, slen);
    out->scheme[slen] = '\0';
    memcpy(out->rest, rest, rlen + 1);
    return XO_OK;
}

xo_chan_opts_t xo__chan_opts_resolve(const xo_chan_opts_t *opts)
{
    xo_chan_opts_t o = {0};
    if (opts) o = *opts;
    if (o.max_frame == 0) o.max_frame = XO_FRAME_MAX_DEFAULT;
    /* Far above any real frame, and low enough that size arithmetic on frames (alignment padding, sums) cannot
     * overflow. */
    if (o.max_frame > ((size_t)1 << 48)) o.max_frame = (size_t)1 << 48;
    if (o.spin_us == 0) o.spin_us = XO_SPIN_US_DEFAULT;
    return o;
}

/* Splits url and finds its backend; the error text names the URL. */
static xo_status_t resolve(const char *url, xo_url_t *u, const xo_transport_ops_t **t_p)
{
    xo_status_t st = xo__url_parse(url, u);
    if (st != XO_OK) return st;
    const xo_transport_ops_t *t = xo__transport_find(u->scheme);
    if (!t) {
        /* A scheme that is a plugin's: say why it is missing (not installed, refused) rather than "unknown". */
        const char *why = xo__plugin_why(u->scheme);
        if (why) return xo__error_set(XO_EINVAL, "url '%s': no transport for scheme '%s': plugin %s: %s", url,
                                     u->scheme, u->scheme, why);
        return xo__error_set(XO_EINVAL, "url '%s': no transport for scheme '%s'", url, u->scheme);
    }
    *t_p = t;
    return XO_OK;
}

xo_status_t xo__listen(const char *url, const xo_chan_opts_t *opts, xo_listener_t **l_p)
{
    xo_url_t u;
    const xo_transport_ops_t *t = NULL;
    xo_status_t st = resolve(url, &u, &t);
    if (st != XO_OK) return st;
    xo_chan_opts_t o = xo__chan_opts_resolve(opts);
    return t->listen(&u, &o, l_p);
}

xo_status_t xo__listener_accept(xo_listener_t *l, int timeout_ms, xo_channel_t **ch_p)
{
    return l->ops->accept(l, timeout_ms, ch_p);
}

const char *xo__listener_url(const xo_listener_t *l) { return l->url; }

int xo__listener_fd(const xo_listener_t *l) { return l->ops->fd((xo_listener_t *)l); }

void xo__listener_close(xo_listener_t *l)
{
    if (l) l->ops->close(l);
}

xo_status_t xo__connect(const char *url, const xo_chan_opts_t *opts, int timeout_ms, xo_channel_t **ch_p)
{
    xo_url_t u;
    const xo_transport_ops_t *t = NULL;
    xo_status_t st = resolve(url, &u, &t);
    if (st != XO_OK) return st;
    xo_chan_opts_t o = xo__chan_opts_resolve(opts);
    return t->connect(&u, &o, timeout_ms, ch_p);
}

size_t xo__frame_size(const xo_frame_t *frame)
{
    size_t n = frame->header_len;
    for (size_t i = 0; i < frame->nsegs; i++) n += frame->segs[i].len;
    return n;
}

/* The pieces of segment i of f (NULL and 0 when it is its own data). */
static inline size_t seg_pieces(const xo_frame_t *f, size_t i, const xo_seg_t **p)
{
    *p = f->gather ? f->gather[i].pieces : NULL;
    return f->gather ? f->gather[i].n : 0;
}

/* For a backend without gather: a copy of frame whose segments made of pieces are joined into buffers of their
 * own, sent and freed. */
static xo_status_t send_joined(xo_channel_t *ch, const xo_frame_t *frame)
{
    xo_seg_t *segs = calloc(frame->nsegs, sizeof *segs);
    if (!segs) return xo__error_set(XO_ENOMEM, "send: no memory to join pieces");
    xo_status_t st = XO_OK;
    for (size_t i = 0; i < frame->nsegs; i++) {
        const xo_seg_t *p;
        size_t n = seg_pieces(frame, i, &p);
        segs[i] = frame->segs[i];
        if (!n || st != XO_OK) continue;
        size_t cap;
        /* Large joins take warm pages (transport/warm_blocks.h): this is UCX's copy of a lent 'B' argument. */
        uint8_t *d = segs[i].len >= XO_WARM_MIN ? xo__warm_take(segs[i].len, &cap) : malloc(segs[i].len ? segs[i].len : 1);
        if (!d) {
            st = xo__error_set(XO_ENOMEM, "send: no memory to join %zu bytes of pieces", segs[i].len);
            segs[i].data = NULL;
            continue;
        }
        for (size_t k = 0, off = 0; k < n; off += p[k++].len)
            if (p[k].len) memcpy(d + off, p[k].data, p[k].len);
        segs[i].data = d;
    }
    if (st == XO_OK) {
        xo_frame_t f = *frame;
        f.segs = segs;
        f.gather = NULL;
        st = ch->ops->send(ch, &f);
    }
    for (size_t i = 0; i < frame->nsegs; i++) {
        const xo_seg_t *p;
        if (!seg_pieces(frame, i, &p)) continue;
        if (segs[i].len >= XO_WARM_MIN) xo__warm_give(segs[i].data);
        else free(segs[i].data);
    }
    free(segs);
    return st;
}

xo_status_t xo__channel_send(xo_channel_t *ch, const xo_frame_t *frame)
{
    if (!frame || (frame->header_len && !frame->header) || (frame->nsegs && !frame->segs))
        return xo__error_set(XO_EINVAL, "send: NULL frame or buffer");
    if (frame->nsegs > XO_FRAME_MAX_SEGS)
        return xo__error_set(XO_EINVAL, "send: %zu segments, at most %u", frame->nsegs, XO_FRAME_MAX_SEGS);
    /* Sum with an overflow check: a caller's bogus length must not wrap around below the limit. */
    size_t total = frame->header_len;
    bool pieces = false;
    for (size_t i = 0; i < frame->nsegs; i++) {
        const xo_seg_t *s = &frame->segs[i], *p;
        size_t n = seg_pieces(frame, i, &p);
        if (n) {
            size_t sum = 0;
            for (size_t k = 0; k < n; k++) {
                if ((p[k].len && !p[k].data) || sum + p[k].len < sum)
                    return xo__error_set(XO_EINVAL, "send: segment %zu: bad piece %zu", i, k);
                sum += p[k].len;
            }
            if (!p || sum != s->len)
                return xo__error_set(XO_EINVAL, "send: segment %zu: pieces of %zu bytes, not %zu", i, sum, s->len);
            pieces = true;
        } else if (s->len && !s->data) {
            return xo__error_set(XO_EINVAL, "send: segment %zu has NULL data", i);
        }
        if (s->len > ch->opts.max_frame || total + s->len < total) total = SIZE_MAX;
        else total += s->len;
    }
    if (total > ch->opts.max_frame)
        return xo__error_set(XO_EMSGSIZE, "send: frame larger than max_frame %zu", ch->opts.max_frame);
    if (pieces && !ch->ops->gather) return send_joined(ch, frame);
    return ch->ops->send(ch, frame);
}

xo_status_t xo__channel_recv(xo_channel_t *ch, int timeout_ms, xo_frame_t *out)
{
    return ch->ops->recv(ch, timeout_ms, out);
}

bool xo__channel_has_poll(const xo_channel_t *ch) { return ch->ops->ready && ch->ops->recv_nowait; }

bool xo__channel_ready(xo_channel_t *ch) { return ch->ops->ready && ch->ops->ready(ch); }

xo_status_t xo__channel_recv_nowait(xo_channel_t *ch, unsigned flags, xo_frame_t *out)
{
    if (!ch->ops->recv_nowait) return xo__error_set(XO_ENOTSUP, "%s channels cannot be polled", ch->tran->scheme);
    return ch->ops->recv_nowait(ch, flags, out);
}

int xo__channel_fd(xo_channel_t *ch) { return ch->ops->fd(ch); }

void xo__channel_shutdown(xo_channel_t *ch) { ch->ops->shutdown(ch); }

void xo__channel_close(xo_channel_t *ch)
{
    if (ch) ch->ops->close(ch);
}

const char *xo__channel_scheme(const xo_channel_t *ch) { return ch->tran->scheme; }

void xo__channel_set_max_frame(xo_channel_t *ch, size_t max_frame)
{
    xo_chan_opts_t o = ch->opts;
    o.max_frame = max_frame;
    ch->opts.max_frame = xo__chan_opts_resolve(&o).max_frame;
}

void xo__frame_release(xo_frame_t *frame)
{
    if (!frame || (!frame->mem && !frame->map && !frame->release)) return;
    free(frame->mem);
    if (frame->map) munmap(frame->map, frame->map_len);
    if (frame->release) frame->release(frame->release_arg);
    memset(frame, 0, sizeof *frame);
}
