/* Socket helpers: address parsing and the listen/connect/accept dance with timeouts. Sockets are non-blocking
 * from birth so that every wait goes through poll() with a deadline and nothing can hang on a dead peer. */
#include "transport/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"

xo_status_t xo__sockaddr_unix(const char *rest, xo_sockaddr_t *out)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
    memset(out, 0, sizeof *out);
    sun->sun_family = AF_UNIX;
    size_t n = strlen(rest);
    if (n == 0 || (rest[0] == '@' && n == 1)) return xo__error_set(XO_EINVAL, "unix url: empty path");
    if (n >= sizeof sun->sun_path) return xo__error_set(XO_EINVAL, "unix url: path '%s' too long", rest);
    if (rest[0] == '@') {
        /* Abstract namespace: a leading NUL, no file, and the length says where the name ends. */
        memcpy(sun->sun_path + 1, rest + 1, n - 1);
        out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        memcpy(sun->sun_path, rest, n + 1);
        out->len = (socklen_t)sizeof *sun;
    }
    return XO_OK;
}

xo_status_t xo__sockaddr_tcp(const char *rest, xo_sockaddr_t *out)
{
    char host[256];
    const char *port;
    if (rest[0] == '[') {
        const char *close = strchr(rest, ']');
        if (!close || close[1] != ':') return xo__error_set(XO_EINVAL, "tcp url '%s': expected [addr]:port", rest);
        size_t hl = (size_t)(close - rest - 1);
        if (hl >= sizeof host) return xo__error_set(XO_EINVAL, "tcp url '%s': host too long", rest);
        memcpy(host, rest + 1, hl);
        host[hl] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(rest, ':');
        if (!colon) return xo__error_set(XO_EINVAL, "tcp url '%s': expected host:port", rest);
        size_t hl = (size_t)(colon - rest);
        if (hl >= sizeof host) return xo__error_set(XO_EINVAL, "tcp url '%s': host too long", rest);
        memcpy(host, rest, hl);
        host[hl] = '\0';
        port = colon + 1;
    }
    char *end;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || errno || p < 0 || p > 65535)
        return xo__error_set(XO_EINVAL, "tcp url '%s': bad port", rest);

    bool any = host[0] == '\0' || strcmp(host, "*") == 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | (any ? AI_PASSIVE : 0)};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(any ? NULL : host, port, &hints, &res);
    if (rc != 0 || !res) return xo__error_set(XO_EINVAL, "tcp url '%s': cannot resolve: %s", rest, gai_strerror(rc));
    memset(out, 0, sizeof *out);
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    return XO_OK;
}

void xo__sockaddr_format(const xo_sockaddr_t *a, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    switch (a->ss.ss_family) {
    case AF_INET: {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
        break;
    }
    case AF_UNIX: {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->ss;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        if (a->len > off && sun->sun_path[0] == '\0')
            snprintf(buf, size, "@%.*s", (int)(a->len - off - 1), sun->sun_path + 1);
        else
            snprintf(buf, size, "%s", sun->sun_path);
        break;
    }
    default:
        snprintf(buf, size, "?");
    }
}

int64_t xo__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t xo__deadline(int timeout_ms) { return timeout_ms < 0 ? INT64_MAX : xo__now_ms() + timeout_ms; }

int xo__remaining_ms(int64_t deadline)
{
    if (deadline == INT64_MAX) return -1;
    int64_t left = deadline - xo__now_ms();
    if (left <= 0) return 0;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

int xo__poll1(int fd, short events, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int n = poll(&p, 1, xo__remaining_ms(deadline));
        if (n > 0) return p.revents;
        if (n == 0) return 0;
        if (errno != EINTR) return -1;
    }
}

xo_status_t xo__sock_listen(const xo_sockaddr_t *a, int type, int *fd_p)
{
    char name[XO_ERROR_TEXT_MAX / 2];
    xo__sockaddr_format(a, name, sizeof name);
    int fd = socket(a->ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return xo__error_set(XO_ESYS, "listen %s: socket: %s", name, strerror(errno));
    if (a->ss.ss_family != AF_UNIX) {
        /* Restarting a pool must be able to rebind its port while old connections sit in TIME_WAIT. */
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    }
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, SOMAXCONN) < 0) {
        int e = errno;
        close(fd);
        return xo__error_set(XO_ESYS, "listen %s: %s", name, strerror(e));
    }
    *fd_p = fd;
    return XO_OK;
}

xo_status_t xo__sock_connect(const xo_sockaddr_t *a, int type, int timeout_ms, int *fd_p)
{
    char name[XO_ERROR_TEXT_MAX / 2];
    xo__sockaddr_format(a, name, sizeof name);
    int64_t deadline = xo__deadline(timeout_ms);
    for (;;) {
        int fd = socket(a->ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return xo__error_set(XO_ESYS, "connect %s: socket: %s", name, strerror(errno));
        int e = 0;
        if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
            e = errno;
            if (e == EINPROGRESS || e == EINTR) {
                int rev = xo__poll1(fd, POLLOUT, deadline);
                if (rev == 0) {
                    close(fd);
                    return xo__error_set(XO_ETIMEDOUT, "connect %s: timed out after %d ms", name, timeout_ms);
                }
                socklen_t el = sizeof e;
                if (rev < 0) e = errno;
                else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0) e = errno;
            }
        }
        if (e == 0) {
            *fd_p = fd;
            return XO_OK;
        }
        close(fd);
        /* A unix listener with a full backlog answers EAGAIN to a non-blocking connect and offers nothing to poll
         * on (a TCP connect would sit in SYN_SENT instead): retry briefly until the deadline. */
        if (e == EAGAIN && xo__remaining_ms(deadline) != 0) {
            usleep(1000);
            continue;
        }
        if (e == ECONNREFUSED || e == ENOENT || e == ECONNRESET)
            return xo__error_set(XO_EREFUSED, "connect %s: %s", name, strerror(e));
        if (e == ETIMEDOUT || e == EAGAIN) return xo__error_set(XO_ETIMEDOUT, "connect %s: %s", name, strerror(e));
        return xo__error_set(XO_ESYS, "connect %s: %s", name, strerror(e));
    }
}

xo_status_t xo__sock_accept(int lfd, int timeout_ms, int *fd_p)
{
    int64_t deadline = xo__deadline(timeout_ms);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            *fd_p = fd;
            return XO_OK;
        }
        /* A connection that was reset while queued is the client's problem, not the listener's: keep waiting. */
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return xo__error_set(XO_ESYS, "accept: %s", strerror(errno));
        int rev = xo__poll1(lfd, POLLIN, deadline);
        if (rev == 0) return xo__error_set(XO_ETIMEDOUT, "accept: timed out after %d ms", timeout_ms);
        if (rev < 0) return xo__error_set(XO_ESYS, "accept: poll: %s", strerror(errno));
    }
}

xo_status_t xo__sock_local(int fd, xo_sockaddr_t *out)
{
    memset(out, 0, sizeof *out);
    out->len = sizeof out->ss;
    if (getsockname(fd, (struct sockaddr *)&out->ss, &out->len) < 0)
        return xo__error_set(XO_ESYS, "getsockname: %s", strerror(errno));
    return XO_OK;
}
