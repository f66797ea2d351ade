/* The shared-memory backend (shm://name): see shm.c. What other files (and tests) need to know of it. */
#ifndef XO_TRANSPORT_SHM_H
#define XO_TRANSPORT_SHM_H

#include "transport/sock.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of one ring (one direction); a power of two. The memfd is sparse: pages cost memory once touched. */
#define XO_SHM_RING_CAP ((uint64_t)4 << 20)
/* When the channel's segment pool has nothing free (shm_segpool.h; parts from XO_SEGPOOL_PART_MIN on normally go
 * there), parts (header or segment) at least this large travel out of band in a fresh memfd instead of through the
 * ring. Not lower: a fresh memfd pays page allocation on the sender and page freeing on the receiver, which
 * measured ~0.5 ms per MiB on a 2-vCPU VM against ~20 us per MiB for a copy through the ring's reused pages. */
#define XO_SHM_OOB_MIN ((size_t)256 << 10)

/* The setup socket address of shm://name: the abstract unix name "@xoscar-shm/<name>" (SOCK_SEQPACKET).
 * XO_EINVAL for an empty name, one with '/', or one too long. */
xo_status_t xo__shm_sockaddr(const char *name, xo_sockaddr_t *out);

#ifdef __cplusplus
}
#endif
#endif
