/* The shm backend's setup socket (SOCK_SEQPACKET, one message per call): messages with optional file descriptors.
 * It carries the handshake, the reader's doorbell, the out-of-band memfds, and the peer's death (EOF/POLLHUP). */
#ifndef XO_TRANSPORT_SHM_CTL_H
#define XO_TRANSPORT_SHM_CTL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xoscar/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define XO_CTL_DOORBELL 'D' /* one byte, no fd: "the ring has data" */
#define XO_CTL_FD 'F'       /* one byte and one fd: the next out-of-band record's memfd */
#define XO_CTL_SEG 'S'      /* five bytes ('S', u32 slot) and one fd: a pooled segment for that slot (shm_segpool.h) */

/* Sends one message of len bytes with fd attached (fd < 0: none), waiting for room until deadline (INT64_MAX:
 * none) or until *shut becomes true (may be NULL). The caller keeps fd. XO_ECLOSED when the peer is gone or shut
 * was set, XO_ETIMEDOUT, XO_ESYS. */
xo_status_t xo__ctl_send(int sock, const void *buf, size_t len, int fd, int64_t deadline, atomic_bool *shut);

/* Receives one message without waiting. Returns its length (>0); 0 at EOF (peer gone); -1 with errno (EAGAIN:
 * nothing pending). Up to max_fds received descriptors (close-on-exec) go to fds, their number to *nfds; the
 * caller owns them. Any beyond max_fds are closed here. */
long xo__ctl_recv(int sock, void *buf, size_t cap, int *fds, int max_fds, int *nfds);

#ifdef __cplusplus
}
#endif
#endif
