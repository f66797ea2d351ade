/* Channels: connected, bidirectional, message-oriented pipes between two pools, and the listeners that accept them.
 *
 * One interface, several backends chosen by the URL scheme:
 *   unix://<path> or unix://@<abstract-name>   unix-domain stream socket
 *   tcp://<host>:<port>, tcp://[<ipv6>]:<port>  TCP (port 0 = ephemeral; read the real one with xo__listener_url)
 *   shm://<name>                                shared-memory rings, set up over an abstract unix socket
 *
 * A message is a frame: one header byte string (the runtime's msgpack envelope, usually small) plus zero or more
 * payload segments (large buffers). A frame arrives whole or not at all, and frames sent by one thread arrive in the
 * order that thread sent them.
 *
 * Each backend fills three const ops tables (transport, listener, channel) with designated initializers; the
 * registry (transport/registry.c) lists them, one line each, and checks the mandatory ops once. The functions below
 * validate arguments and dispatch through those tables.
 *
 * Threading, per object:
 *   - xo__channel_send: any number of threads at once; each frame is written atomically (never interleaved).
 *   - xo__channel_recv: one receiving thread at a time per channel.
 *   - xo__channel_shutdown: any thread, any time, any number of times.
 *   - xo__channel_close / xo__listener_close: once, after every other thread has stopped using the object.
 *   - xo__listener_accept: one thread at a time per listener. */
#ifndef XO_TRANSPORT_CHANNEL_H
#define XO_TRANSPORT_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/plugin.h"
#include "xoscar/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default limit on one frame (header plus all segments) that a channel sends or accepts: a 256 MiB payload plus
 * room for the envelope around it (call header, msgpack array and bin headers). */
#define XO_FRAME_MAX_DEFAULT (((size_t)256 << 20) + ((size_t)64 << 10))
/* Most segments one frame may carry (a hard limit: the receiver rejects more with XO_EPROTO). */
#define XO_FRAME_MAX_SEGS 1024u
/* Default busy-poll time of a shm receiver before it sleeps. */
#define XO_SPIN_US_DEFAULT 20
/* Longest URL, including the NUL. */
#define XO_URL_MAX 256

typedef struct xo_seg {
    void *data;
    size_t len;
} xo_seg_t;

/* Sending only: the pieces a segment is made of, one after another (see xo_frame_t.gather). */
typedef struct xo_seg_pieces {
    const xo_seg_t *pieces;
    size_t n; /* 0: the segment is its own data */
} xo_seg_pieces_t;

/* A frame. To send, the caller fills header/header_len and segs/nsegs and leaves the rest zero. A received frame also
 * carries the memory that backs it (mem, map): release it with xo__frame_release. The header and every segment of a
 * received frame are 64-byte aligned and writable. */
typedef struct xo_frame {
    void *header;
    size_t header_len;
    xo_seg_t *segs;
    size_t nsegs;
    /* Filled by xo__channel_recv, NULL/0 in frames the caller builds: one heap block (segment table, inline data)
     * and one shared mapping (payloads that travelled out of band). */
    void *mem;
    void *map;
    size_t map_len;
    /* Memory the backend lends rather than gives (shm: a pooled segment): release(release_arg) hands it back. */
    void (*release)(void *arg);
    void *release_arg;
    /* Sending only, optional: nsegs entries; segment i whose gather[i].n is not 0 is those pieces one after another
     * (its data is NULL, its len their total), which the backend gathers where it copies anyway (into the socket,
     * the shm segment), so the caller need not join them first. Received segments are always contiguous. */
    const xo_seg_pieces_t *gather;
} xo_frame_t;

/* Per-channel options; an all-zero struct (or a NULL pointer) means defaults. A listener passes its options on to
 * every channel it accepts. */
typedef struct xo_chan_opts {
    size_t max_frame; /* 0: XO_FRAME_MAX_DEFAULT. Applies to frames sent and frames received. */
    int spin_us;      /* shm only. 0: XO_SPIN_US_DEFAULT; negative: never busy-poll, sleep at once. */
} xo_chan_opts_t;

typedef struct xo_listener xo_listener_t;
typedef struct xo_channel xo_channel_t;
typedef struct xo_transport_ops xo_transport_ops_t;

/* ---- backend interface: ops tables and the common head of every object ---- */

/* The parsed parts of a URL: "tcp://[::1]:80" gives scheme "tcp" and rest "[::1]:80". */
typedef struct xo_url {
    char scheme[16];
    char rest[XO_URL_MAX];
} xo_url_t;

typedef struct xo_channel_ops {
    /* All mandatory. The generic layer has checked the frame against limits before send is called. */
    xo_status_t (*send)(xo_channel_t *ch, const xo_frame_t *frame);
    xo_status_t (*recv)(xo_channel_t *ch, int timeout_ms, xo_frame_t *out);
    void (*shutdown)(xo_channel_t *ch);
    void (*close)(xo_channel_t *ch); /* frees ch */
    int (*fd)(xo_channel_t *ch);
    /* Optional (NULL in backends without a cheap poll; both or neither): see xo__channel_ready and
     * xo__channel_recv_nowait. */
    bool (*ready)(xo_channel_t *ch);
    xo_status_t (*recv_nowait)(xo_channel_t *ch, unsigned flags, xo_frame_t *out);
    /* True when send takes segments made of pieces (xo_frame_t.gather); for the others the generic layer joins each
     * such segment into one buffer first. */
    bool gather;
} xo_channel_ops_t;

typedef struct xo_listener_ops {
    /* All mandatory. */
    xo_status_t (*accept)(xo_listener_t *l, int timeout_ms, xo_channel_t **ch_p);
    void (*close)(xo_listener_t *l); /* frees l */
    int (*fd)(xo_listener_t *l);
} xo_listener_ops_t;

/* How the router (transport/router.h) makes this backend's URL for a pool address "host:port[/N]". */
typedef enum {
    XO_ROUTE_NONE = 0, /* the router never picks it (explicit URLs only) */
    XO_ROUTE_NAME,     /* scheme://<name_fmt applied to the pool's host-wide name>; needs same_host_only */
    XO_ROUTE_PORT,     /* scheme://host:(port + port_offset + N) */
} xo_route_kind_t;

typedef struct xo_route_info {
    xo_route_kind_t kind;
    const char *name_fmt;   /* XO_ROUTE_NAME: a printf format with one %s, the name ("%s", "@%s.u") */
    unsigned port_offset;   /* XO_ROUTE_PORT: added to the pool's port (a main pool's; sub pool N adds N) */
    /* Opt-in backends (NULL: always on): used only when this environment variable is "1" or XO_TRANSPORT names
     * the scheme, and then for pools on other hosts unless XO_TRANSPORT forces it (same-host backends are faster). */
    const char *enable_env;
} xo_route_info_t;

struct xo_transport_ops {
    const char *scheme;      /* mandatory: "unix", "tcp", "shm" */
    bool same_host_only;     /* true when both ends must share a kernel (unix, shm) */
    xo_route_info_t route;   /* optional (zero: the router does not use it) */
    /* Mandatory. url has already been split; opts is never NULL (defaults filled in). On XO_OK *l_p / *ch_p owns
     * a new object; on error nothing was created and the error text is set. */
    xo_status_t (*listen)(const xo_url_t *url, const xo_chan_opts_t *opts, xo_listener_t **l_p);
    xo_status_t (*connect)(const xo_url_t *url, const xo_chan_opts_t *opts, int timeout_ms, xo_channel_t **ch_p);
    const xo_listener_ops_t *listener_ops;
    const xo_channel_ops_t *channel_ops;
};

/* The head of every backend's channel and listener struct (backends embed it as their first member). */
struct xo_channel {
    const xo_channel_ops_t *ops;
    const xo_transport_ops_t *tran;
    xo_chan_opts_t opts; /* defaults filled in */
};

struct xo_listener {
    const xo_listener_ops_t *ops;
    const xo_transport_ops_t *tran;
    xo_chan_opts_t opts; /* defaults filled in */
    char url[XO_URL_MAX]; /* the bound address, e.g. with the ephemeral port resolved */
};

/* The fingerprint a transport plugin's descriptor carries (base/plugin.h): the structures it shares with the core. */
#define XO_TRANSPORT_PLUGIN_LAYOUT                                                                                 \
    XO_PLUGIN_LAYOUT(xo_transport_ops_t, struct {                                                                  \
        struct xo_listener l;                                                                                      \
        struct xo_channel c;                                                                                       \
        xo_frame_t f;                                                                                              \
        xo_channel_ops_t co;                                                                                       \
        xo_listener_ops_t lo;                                                                                      \
    })

/* The backend for a scheme ("tcp"), or NULL when none is registered (or it failed its registration check). */
const xo_transport_ops_t *xo__transport_find(const char *scheme);

/* The registered backends, in the registry's order; *n_p gets their number. Static storage. */
const xo_transport_ops_t *const *xo__transport_list(size_t *n_p);

/* Splits "scheme://rest". XO_EINVAL (with text) when there is no "://", the scheme is empty or too long, or the
 * rest does not fit. Does not check that the scheme is registered. */
xo_status_t xo__url_parse(const char *url, xo_url_t *out);

/* Fills defaults into a copy of opts (NULL allowed). */
xo_chan_opts_t xo__chan_opts_resolve(const xo_chan_opts_t *opts);

/* ---- listeners ---- */

/* Listens on url. Does not block (beyond binding). On XO_OK *l_p owns a new listener, to be freed with
 * xo__listener_close. Errors: XO_EINVAL (bad or unknown URL), XO_ESYS (address in use by a live listener, or not
 * available here); *l_p is untouched. */
xo_status_t xo__listen(const char *url, const xo_chan_opts_t *opts, xo_listener_t **l_p);

/* Waits up to timeout_ms (negative: forever, 0: poll) for one incoming channel. On XO_OK *ch_p owns the new
 * channel (free with xo__channel_close). XO_ETIMEDOUT when none came in time. A connection that fails its setup
 * (for shm: a bad handshake) returns XO_EPROTO or XO_ECLOSED; the listener stays usable either way. XO_ESYS: no
 * connection could be taken (out of file descriptors, say); it stays queued, so the fd keeps polling readable. One thread
 * at a time. shm only: a connection is complete once its handshake message has come (a client sends it right after
 * connecting); accept never waits for it beyond timeout_ms: clients accepted without it wait inside the listener
 * (at most 64; the listener's fd signals when one completes) and one that stays silent for 2 s is dropped, which an
 * accept reports as XO_EPROTO. */
xo_status_t xo__listener_accept(xo_listener_t *l, int timeout_ms, xo_channel_t **ch_p);

/* The address actually bound ("tcp://127.0.0.1:39211" for "tcp://127.0.0.1:0"). Owned by the listener. */
const char *xo__listener_url(const xo_listener_t *l);

/* A file descriptor that polls readable when an accept may succeed without blocking. Owned by the listener. */
int xo__listener_fd(const xo_listener_t *l);

/* Stops listening and frees l (unlinks a unix socket file it created). Channels already accepted live on. */
void xo__listener_close(xo_listener_t *l);

/* ---- channels ---- */

/* Connects to url, waiting up to timeout_ms (negative: forever) for the connection and any handshake.
 * XO_EREFUSED at once when nothing listens there, XO_ETIMEDOUT, XO_EINVAL (bad URL), XO_EPROTO (handshake),
 * XO_ESYS. On XO_OK *ch_p owns a new channel (free with xo__channel_close); on error *ch_p is untouched. */
xo_status_t xo__connect(const char *url, const xo_chan_opts_t *opts, int timeout_ms, xo_channel_t **ch_p);

/* Sends one frame (a segment may be made of pieces: xo_frame_t.gather). Thread-safe: many threads may send on one
 * channel at once; frames are never interleaved.
 * Blocks while the peer is not reading (back pressure), until the whole frame is handed to the transport; returns
 * XO_ECLOSED as soon as the channel is shut down or the peer is gone, so it never hangs on a dead peer.
 * The caller keeps ownership of the frame and all its buffers whatever the result: nothing is retained after the
 * call returns. Errors: XO_EMSGSIZE (larger than max_frame: nothing was sent, the channel stays usable),
 * XO_EINVAL (more than XO_FRAME_MAX_SEGS segments, NULL data with a nonzero length), XO_ECLOSED, XO_ESYS. */
xo_status_t xo__channel_send(xo_channel_t *ch, const xo_frame_t *frame);

/* Receives one frame, waiting up to timeout_ms (negative: forever, 0: poll). One receiving thread per channel.
 * On XO_OK *out owns the frame's memory: release it with xo__frame_release. On error *out is untouched.
 * XO_ETIMEDOUT: nothing complete arrived in time (a partly received frame is kept for the next call).
 * XO_ECLOSED: the peer closed or died, or the channel was shut down; every later call returns it too.
 * XO_EPROTO / XO_EMSGSIZE: the peer sent a malformed or oversize frame; the error is logged, the channel is
 * shut down (the peer sees it closed) and later calls return XO_ECLOSED (the log is rate-limited: a peer can repeat
 * it at will). Never allocates more than max_frame. */
xo_status_t xo__channel_recv(xo_channel_t *ch, int timeout_ms, xo_frame_t *out);

/* ---- polling from several threads (backends with ready/recv_nowait: shm) ----
 *
 * xo__channel_recv(ch, 0, ...) leaves a wake-up armed when it finds nothing, so that the fd signals the next frame:
 * for shm that costs the sender a doorbell syscall and the fd's waiter a wake-up per frame. Threads that spin
 * anyway (an idle scheduler, a caller waiting for its reply) can instead watch xo__channel_ready and take frames with
 * xo__channel_recv_nowait without arming, so that a frame crosses with no syscall and no wake-up. The receive
 * contract still holds: one receiving thread at a time (the caller serialises recv and recv_nowait). */

/* True when ch's backend supports the two calls below. */
bool xo__channel_has_poll(const xo_channel_t *ch);

/* True when a frame may be waiting (a hint: recv_nowait may still say XO_ETIMEDOUT). Any thread, any time, no side
 * effect, no syscall. False for backends without the ops. */
bool xo__channel_ready(xo_channel_t *ch);

/* Flags of xo__channel_recv_nowait. */
#define XO_RECV_ARM 1u /* when nothing is there, leave a wake-up armed: the fd will signal the next frame */
#define XO_RECV_FD 2u  /* the caller polls the fd: when nothing is there, empty it (doorbells, peer hang-up) so it
                        * stops polling readable */
#define XO_RECV_NOFRAME 4u /* take no frame: XO_EAGAIN (no error text) when frames are waiting, else as without it
                            * (XO_ETIMEDOUT, armed with XO_RECV_ARM). With XO_RECV_FD the fd is emptied either way */

/* Receives one frame without waiting, as xo__channel_recv(ch, 0, out) does when flags = XO_RECV_ARM | XO_RECV_FD.
 * Without XO_RECV_ARM it also disarms a wake-up left by an earlier call: until a later call arms again, the fd
 * does not signal new frames, so whoever called it must keep watching xo__channel_ready. Without XO_RECV_FD it makes
 * no syscall on the fast path. Results and ownership as xo__channel_recv; XO_ETIMEDOUT when nothing is there (no
 * error text is set for it: it is the polling loop's common case). XO_ENOTSUP for a backend without the op. */
xo_status_t xo__channel_recv_nowait(xo_channel_t *ch, unsigned flags, xo_frame_t *out);

/* A file descriptor for an epoll loop, owned by the channel. Contract: once xo__channel_recv has returned
 * XO_ETIMEDOUT, the fd polls readable when a frame may be waiting or the channel closed; so drain the channel
 * with xo__channel_recv(ch, 0, ...) until XO_ETIMEDOUT before waiting on the fd again. Spurious wakeups happen. */
int xo__channel_fd(xo_channel_t *ch);

/* Wakes every thread blocked in send or recv on ch (they return XO_ECLOSED, as do all later calls) and tells the
 * peer the channel is closed. Thread-safe, idempotent; does not free ch. */
void xo__channel_shutdown(xo_channel_t *ch);

/* Frees ch and closes this process's reference to it. Call once, when no other thread uses ch any more (shut it
 * down first to wake them). The peer sees the channel closed once no process holds it: a child forked without
 * exec may share it (all fds are close-on-exec); xo__channel_shutdown ends it for every holder. Frames already
 * received stay valid: they own their memory. NULL is a no-op. */
void xo__channel_close(xo_channel_t *ch);

/* Changes ch's max_frame (0: XO_FRAME_MAX_DEFAULT) for the frames received and sent from now on; a backend sizes
 * its receive buffer by it, so a channel that takes small frames only (an acceptor before its peer has proved the
 * secret) allocates only a few hundred bytes, whatever the peer announces. Call it from the receiving thread, or
 * before the channel is shared; senders must see it through their own synchronisation with that thread. */
void xo__channel_set_max_frame(xo_channel_t *ch, size_t max_frame);

/* The scheme of the backend under ch ("shm"). Static storage. */
const char *xo__channel_scheme(const xo_channel_t *ch);

/* ---- frames ---- */

/* Total bytes of a frame: header plus all segments. */
size_t xo__frame_size(const xo_frame_t *frame);

/* Frees the memory of a frame filled by xo__channel_recv (or gives it back to its channel's pool: any thread, even
 * after the channel was closed) and zeroes *frame. A zeroed or caller-built frame (mem, map and release NULL) is
 * left as it is, so calling it twice is harmless. */
void xo__frame_release(xo_frame_t *frame);

#ifdef __cplusplus
}
#endif
#endif
