/* The TCP backend: tcp://host:port or tcp://[v6addr]:port (port 0: ephemeral, see xo__listener_url), stream framing
 * from stream.c with TCP_NODELAY. */
#include "base/error.h"
#include "transport/stream.h"

static xo_status_t tcp_listen(const xo_url_t *url, const xo_chan_opts_t *opts, xo_listener_t **l_p);
static xo_status_t tcp_connect(const xo_url_t *url, const xo_chan_opts_t *opts, int timeout_ms, xo_channel_t **ch_p);

const xo_transport_ops_t xo__tcp_transport = {
    .scheme = "tcp",
    .same_host_only = false,
    .route = {.kind = XO_ROUTE_PORT},
    .listen = tcp_listen,
    .connect = tcp_connect,
    .listener_ops = &xo__stream_listener_ops,
    .channel_ops = &xo__stream_channel_ops,
};

static xo_status_t tcp_listen(const xo_url_t *url, const xo_chan_opts_t *opts, xo_listener_t **l_p)
{
    xo_sockaddr_t a;
    xo_status_t st = xo__sockaddr_tcp(url->rest, &a);
    if (st != XO_OK) return st;
    return xo__stream_listen(&xo__tcp_transport, &a, opts, true, NULL, l_p);
}

static xo_status_t tcp_connect(const xo_url_t *url, const xo_chan_opts_t *opts, int timeout_ms, xo_channel_t **ch_p)
{
    xo_sockaddr_t a;
    xo_status_t st = xo__sockaddr_tcp(url->rest, &a);
    if (st != XO_OK) return st;
    return xo__stream_connect(&xo__tcp_transport, &a, opts, true, timeout_ms, ch_p);
}
