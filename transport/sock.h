/* Socket helpers shared by the socket-based backends (unix, tcp, and shm's setup socket): address parsing,
 * listen/connect/accept with timeouts, and deadlines. All return an xo_status_t with the error text set; none logs. */
#ifndef XO_TRANSPORT_SOCK_H
#define XO_TRANSPORT_SOCK_H

#include <stdint.h>
#include <sys/socket.h>

#include "xoscar/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct xo_sockaddr {
    struct sockaddr_storage ss;
    socklen_t len;
} xo_sockaddr_t;

/* "/run/x.sock" or "@abstract-name" into an AF_UNIX address. XO_EINVAL when empty or too long. */
xo_status_t xo__sockaddr_unix(const char *rest, xo_sockaddr_t *out);

/* "host:port", "[v6addr]:port" (host may be a name; empty or "*" means any address) into an AF_INET/AF_INET6
 * address. May block on name resolution. XO_EINVAL when malformed or unresolvable. */
xo_status_t xo__sockaddr_tcp(const char *rest, xo_sockaddr_t *out);

/* Writes "host:port" / "[v6]:port" for an inet address, or the path / "@name" for a unix address, into buf. */
void xo__sockaddr_format(const xo_sockaddr_t *a, char *buf, size_t size);

/* A non-blocking, close-on-exec socket bound to a and listening. On XO_OK *fd_p owns the socket. */
xo_status_t xo__sock_listen(const xo_sockaddr_t *a, int type, int *fd_p);

/* Connects a non-blocking, close-on-exec socket to a, waiting up to timeout_ms (negative: forever).
 * XO_EREFUSED when nothing listens (including a missing unix socket file), XO_ETIMEDOUT, XO_ESYS.
 * On XO_OK *fd_p owns the connected socket. */
xo_status_t xo__sock_connect(const xo_sockaddr_t *a, int type, int timeout_ms, int *fd_p);

/* Accepts one connection on a listening socket, waiting up to timeout_ms. On XO_OK *fd_p owns a non-blocking,
 * close-on-exec socket. XO_ETIMEDOUT when none came. */
xo_status_t xo__sock_accept(int lfd, int timeout_ms, int *fd_p);

/* The locally bound address of fd. */
xo_status_t xo__sock_local(int fd, xo_sockaddr_t *out);

/* Monotonic milliseconds, and a deadline from a timeout (negative timeout: INT64_MAX, no deadline). */
int64_t xo__now_ms(void);
int64_t xo__deadline(int timeout_ms);
/* Milliseconds left until deadline, for poll(): -1 with no deadline, 0 once it passed. */
int xo__remaining_ms(int64_t deadline);

/* poll() on one fd until one of events (or an error/hangup) is set or the deadline passes; retries on EINTR.
 * Returns revents, 0 on timeout, -1 on error (errno set). */
int xo__poll1(int fd, short events, int64_t deadline);

#ifdef __cplusplus
}
#endif
#endif
