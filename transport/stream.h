/* Length-prefixed frames over a connected stream socket: the channel and listener of the unix and tcp backends.
 *
 * Wire format of one frame (little-endian):
 *   u32 magic "XOF1" | u32 header_len | u32 nsegs | u32 flags (0) | u64 seg_len[nsegs] | header | segments
 * The receiver checks the magic, nsegs <= XO_FRAME_MAX_SEGS and the total against its max_frame before it
 * allocates anything. */
#ifndef XO_TRANSPORT_STREAM_H
#define XO_TRANSPORT_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "transport/channel.h"
#include "transport/sock.h"

#ifdef __cplusplus
extern "C" {
#endif

#define XO_STREAM_MAGIC 0x31464f58u /* "XOF1" read as a little-endian u32 */
#define XO_STREAM_PREFIX_LEN 16u

/* The channel and listener tables of every stream channel; a stream backend's transport table points at them. */
extern const xo_channel_ops_t xo__stream_channel_ops;
extern const xo_listener_ops_t xo__stream_listener_ops;

/* Wraps a connected, non-blocking socket into a channel of transport t. On XO_OK *ch_p owns the channel and the
 * channel owns fd; on error fd has been closed. nodelay sets TCP_NODELAY. */
xo_status_t xo__stream_channel_new(const xo_transport_ops_t *t, int fd, const xo_chan_opts_t *opts, bool nodelay,
                                   xo_channel_t **ch_p);

/* Listens on a stream socket at a and returns a listener of transport t whose accepted channels are stream
 * channels. url_prefix ("tcp://") and the bound address make xo__listener_url. unlink_path, when not NULL, is a
 * socket file the listener removes on close. On XO_OK *l_p owns the listener. */
xo_status_t xo__stream_listen(const xo_transport_ops_t *t, const xo_sockaddr_t *a, const xo_chan_opts_t *opts,
                              bool nodelay, const char *unlink_path, xo_listener_t **l_p);

/* Connects to a stream socket at a and wraps it (see xo__sock_connect for errors). */
xo_status_t xo__stream_connect(const xo_transport_ops_t *t, const xo_sockaddr_t *a, const xo_chan_opts_t *opts,
                               bool nodelay, int timeout_ms, xo_channel_t **ch_p);

#ifdef __cplusplus
}
#endif
#endif
