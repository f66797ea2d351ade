/* The unix-domain socket backend: unix:///path/to/socket or unix://@abstract-name, stream framing from stream.c. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "transport/stream.h"

extern const xo_transport_ops_t xo__unix_transport;

/* A socket file left by a process that died without closing its listener would make bind fail for ever. If
 * nobody answers on it, it is stale: remove it. A live listener answers, and then the address really is taken. */
static bool remove_stale(const char *path, const xo_sockaddr_t *a)
{
    struct stat sb;
    if (lstat(path, &sb) != 0 || !S_ISSOCK(sb.st_mode)) return false;
    int fd;
    xo_status_t st = xo__sock_connect(a, SOCK_STREAM, 100, &fd);
    if (st == XO_OK) {
        close(fd);
        return false;
    }
    if (st != XO_EREFUSED) return false;
    xo_log_info("unix listen: removing stale socket file %s", path);
    return unlink(path) == 0;
}

static xo_status_t unix_listen(const xo_url_t *url, const xo_chan_opts_t *opts, xo_listener_t **l_p)
{
    xo_sockaddr_t a;
    xo_status_t st = xo__sockaddr_unix(url->rest, &a);
    if (st != XO_OK) return st;
    bool abstract = url->rest[0] == '@';
    const char *path = abstract ? NULL : url->rest;
    st = xo__stream_listen(&xo__unix_transport, &a, opts, false, path, l_p);
    if (st != XO_OK && path) {
        char why[XO_ERROR_TEXT_MAX];
        snprintf(why, sizeof why, "%s", xo_last_error());
        if (remove_stale(path, &a)) return xo__stream_listen(&xo__unix_transport, &a, opts, false, path, l_p);
        return xo__error_set(st, "%s", why);
    }
    return st;
}

static xo_status_t unix_connect(const xo_url_t *url, const xo_chan_opts_t *opts, int timeout_ms, xo_channel_t **ch_p)
{
    xo_sockaddr_t a;
    xo_status_t st = xo__sockaddr_unix(url->rest, &a);
    if (st != XO_OK) return st;
    return xo__stream_connect(&xo__unix_transport, &a, opts, false, timeout_ms, ch_p);
}

const xo_transport_ops_t xo__unix_transport = {
    .scheme = "unix",
    .same_host_only = true,
    .route = {.kind = XO_ROUTE_NAME, .name_fmt = "@%s.u"},
    .listen = unix_listen,
    .connect = unix_connect,
    .listener_ops = &xo__stream_listener_ops,
    .channel_ops = &xo__stream_channel_ops,
};
