/* The shm setup socket: one SOCK_SEQPACKET message per call, with at most a few descriptors (SCM_RIGHTS). */
#include "transport/shm_ctl.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/error.h"
#include "transport/sock.h"

#define MAX_FDS 4
#define SLICE_MS 100

xo_status_t xo__ctl_send(int sock, const void *buf, size_t len, int fd, int64_t deadline, atomic_bool *shut)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } cm;
    struct iovec iov = {(void *)buf, len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(&cm, 0, sizeof cm);
        m.msg_control = cm.b;
        m.msg_controllen = sizeof cm.b;
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    for (;;) {
        if (shut && atomic_load_explicit(shut, memory_order_relaxed))
            return xo__error_set(XO_ECLOSED, "shm: channel shut down");
        ssize_t w = sendmsg(sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w == (ssize_t)len) return XO_OK;
        if (w >= 0) return xo__error_set(XO_ESYS, "shm: short control message (%zd of %zu)", w, len);
        if (errno == EINTR) continue;
        if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
            return xo__error_set(XO_ECLOSED, "shm: peer closed the channel");
        if (errno != EAGAIN && errno != EWOULDBLOCK) return xo__error_set(XO_ESYS, "shm: sendmsg: %s", strerror(errno));
        /* Poll in slices so that a shutdown flag set by another thread is seen even without a kernel wakeup. */
        int left = xo__remaining_ms(deadline);
        if (left == 0) return xo__error_set(XO_ETIMEDOUT, "shm: control socket full");
        int slice = left < 0 || left > SLICE_MS ? SLICE_MS : left;
        int rev = xo__poll1(sock, POLLOUT, xo__deadline(slice));
        if (rev < 0) return xo__error_set(XO_ESYS, "shm: poll: %s", strerror(errno));
        if (rev & (POLLHUP | POLLERR)) return xo__error_set(XO_ECLOSED, "shm: peer closed the channel");
    }
}

long xo__ctl_recv(int sock, void *buf, size_t cap, int *fds, int max_fds, int *nfds)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    } cm;
    struct iovec iov = {buf, cap};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof cm.b};
    *nfds = 0;
    ssize_t r;
    do {
        r = recvmsg(sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    /* Take every descriptor that came, even with a message we will reject: a leaked fd would pin memory. */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (*nfds < max_fds) fds[(*nfds)++] = fd;
            else close(fd);
        }
    }
    if (r == 0 && *nfds > 0) {
        /* A zero-byte message with descriptors is not EOF but nothing we send either. */
        for (int i = 0; i < *nfds; i++) close(fds[i]);
        *nfds = 0;
        errno = EPROTO;
        return -1;
    }
    return (long)r;
}
