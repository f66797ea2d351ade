/* The shared-memory backend (shm://name): see shm.c. What other files (and tests) need to know of it. */
#ifndef XO_TRANSPORT_SHM_H
#define XO_TRANSPORT_SHM_H

#include "transport/sock.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of one ring (one direction); a power of two. */
#define XO_SHM_RING_CAP ((uint64_t)1 << 20)
/* Parts (header or segment) at least this large travel out of band, in a memfd, instead of through the ring. */
#define XO_SHM_OOB_MIN ((size_t)64 << 10)

/* The setup socket address of shm://name: the abstract unix name "@xoscar-shm/<name>" (SOCK_SEQPACKET).
 * XO_EINVAL for an empty name, one with '/', or one too long. */
xo_status_t xo__shm_sockaddr(const char *name, xo_sockaddr_t *out);

#ifdef __cplusplus
}
#endif
#endif
