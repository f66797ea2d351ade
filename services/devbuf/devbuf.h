/* Device buffers across hosts, inside the runtime: the owner side (the "xo.devbuf" service actor every pool that
 * owns a device and has a process address runs) and the receiver side (staging: fetch the bytes in chunks into a
 * buffer of the receiver's device). The descriptor itself is device_buf.c's; include/xoscar/device_buf.h has the
 * contract. Private to runtime/. */
#ifndef XO_SERVICES_DEVBUF_DEVBUF_H
#define XO_SERVICES_DEVBUF_DEVBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/core.h"
#include "xoscar/device_buf.h"
#include "xoscar/gpu.h"

/* The service actor (uid XO_DEVBUF_SERVICE_UID, xoscar/device_buf.h) in every pool that serves its device's buffers,
 * and its one method:
 *   read(ptr u64, size u64, token bin, offset u64, length u64) -> bin of length bytes from ptr + offset
 * (ptr, size, token) are the descriptor's: the token proves the owner lent [ptr, ptr + size) (see xo__devbuf_token);
 * [offset, offset + length) must lie inside it, and the device layer checks that the range is a live allocation.
 * A second method serves buffers lent with a ready event:
 *   ready(ptr u64, size u64, token bin, event handle bin) -> nil once the owner's event has completed */
#define XO_DEVBUF_TOKEN_LEN 16
/* The largest range one read returns: a chunk of a fetch, well under the transports' frame limit. */
#define XO_DEVBUF_READ_MAX ((uint64_t)64 << 20)

/* Starts pool's service actor (pool start, for a pool that owns a device and listens). Blocking (waits for the
 * create). Errors of xo_create_actor. The pool's stop destroys it like any actor. */
xo_status_t xo__devbuf_service_start(xo_pool_t *pool);

/* Writes into addr (len bytes, NUL-terminated) the address of the pool of this process whose service serves dev,
 * and returns true; false when none does (dev belongs to no pool, or to one without a process address: its buffers
 * can only be imported on this host or used in this process). */
bool xo__devbuf_owner_address(const xo_device_t *dev, char *addr, size_t len);

/* The token of a lent range: HMAC-SHA256 under a random key of this process (drawn on first use, never sent), of
 * the owner pool's address, ptr and size, truncated to XO_DEVBUF_TOKEN_LEN bytes. Only this process can make one,
 * so a peer reads only ranges some descriptor lent it. false when the key cannot be drawn (getrandom failed; the
 * error text is set). */
bool xo__devbuf_token(const char *address, uint64_t ptr, uint64_t size, unsigned char out[XO_DEVBUF_TOKEN_LEN]);

/* Receiver side: allocates size bytes on dev and fills them from the service at owner (the descriptor's address,
 * ptr, size, token) in chunks, several in flight. On XO_OK *ptr_p is a buffer of dev the caller owns (free it with
 * xo_device_free). On an error nothing is left allocated and the text names the owner and the failure:
 * XO_EPOOLDIED when the owner's pool dies, XO_ETIMEDOUT when a chunk takes longer than XO_DEVICE_STAGE_TIMEOUT_MS
 * (default 60000), the owner's refusal (a bad token, a freed range), XO_ENOMEM on dev. Blocking (inside a method
 * it suspends only the method). */
xo_status_t xo__devbuf_stage(xo_device_t *dev, const char *owner, uint64_t ptr, uint64_t size,
                             const unsigned char token[XO_DEVBUF_TOKEN_LEN], void **ptr_p);

/* Receiver side of a buffer packed with a ready event (xo_pack_device_buf_ready), before staging it: asks the owner's
 * service to wait for that event (its handle, XO_DEVICE_IPC_HANDLE_SIZE bytes) and returns when it has completed.
 * Errors as xo__devbuf_stage's; XO_ETIMEDOUT after xo__devbuf_timeout_ms. Blocking (suspends a method). */
xo_status_t xo__devbuf_wait_ready(const char *owner, uint64_t ptr, uint64_t size,
                                  const unsigned char token[XO_DEVBUF_TOKEN_LEN], const unsigned char *event_handle);

/* Waits until ev has completed: a plain thread blocks in the device (no limit); a method polls it between short
 * sleeps, so that only the method waits, and gives up with XO_ETIMEDOUT after timeout_ms. Errors of the event. */
xo_status_t xo__device_event_wait(xo_device_event_t *ev, int64_t timeout_ms);

/* How long a fetch waits for one answer of the owner: XO_DEVICE_STAGE_TIMEOUT_MS, default 60000. */
int64_t xo__devbuf_timeout_ms(void);

/* NCCL point-to-point for buffers whose owner and receiver both own CUDA devices (services/devbuf/devbuf_nccl.c, builds with
 * NCCL only, where XO_HAVE_NCCL is defined). fetch: the receiver's side, like xo__devbuf_stage (the same result and
 * ownership), asking the owner's service for "nccl_send"; send: the owner's side of that request, which returns
 * when the bytes have left. Both block (suspending a method) up to timeout_ms. */
#ifdef XO_HAVE_NCCL
xo_status_t xo__devbuf_nccl_fetch(xo_device_t *dev, const char *owner, uint64_t ptr, uint64_t size,
                                  const unsigned char token[XO_DEVBUF_TOKEN_LEN], int64_t timeout_ms, void **ptr_p);
xo_status_t xo__devbuf_nccl_send(xo_device_t *dev, uint64_t ptr, uint64_t size, const void *id, size_t id_len,
                                 int64_t timeout_ms);
#endif

/* This host's identity, XO_HOST_ID_LEN bytes (static storage): the kernel's boot id and this process's network
 * namespace. Processes with equal identities can map each other's device memory (the IPC handles of the host and
 * CUDA backends); network namespaces are this project's model of hosts. */
#define XO_HOST_ID_LEN 44
const unsigned char *xo__host_id(void);

/* xo_unpack_device_buf_on that also says which way the buffer came (static strings): "inproc" (the owner's pointer,
 * same process), "ipc" (an import), "staging" (a copy fetched from the owner), "nccl" (a copy pulled by NCCL).
 * path_p may be NULL; it is set on XO_OK only. The tune run's probe reports it, so a profile records the path the
 * runtime really took rather than one predicted from addresses. */
xo_status_t xo__devbuf_unpack(xo_device_t *dev, xo_device_stream_t *stream, const msgpack_object *o, void **ptr_p,
                              size_t *size_p, bool *imported_p, const char **path_p);

/* False when XO_DEVICE_IPC=0 turns same-host device IPC off (read at each call). */
bool xo__device_ipc_allowed(void);

#endif
