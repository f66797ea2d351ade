/* Device buffers as call arguments and results.
 *
 * A pool may own a device (xo_pool_config_t.device: "host", "host:1", "cuda:0"; a host's sub pools get theirs from
 * xo_sub_pool_config_t.device). A method allocates on its pool's device (xo_ctx_device) and passes buffers in
 * arguments or results with xo_pack_device_buf; the receiver gets a pointer on its own device with
 * xo_unpack_device_buf. What travels is a descriptor (a msgpack ext value), never the bytes:
 *   same process      the pointer itself (no copy, no mapping);
 *   same host         an IPC handle of the device backend (host: the device's memfd; cuda: CUDA IPC), imported by
 *                     the receiver into its device and released by the runtime when the receiving method returns.
 *
 * Ownership (the lend rule): the sender owns the buffer and must keep it allocated, and not write to it, until the
 * receiver is done with it: for a call, until the call's reply has arrived; a tell must not carry device buffers
 * whose owner may free them. The receiver may read and write the lent buffer during its method, never frees it,
 * and does not keep the pointer after the method returns (the import is closed then). Across hosts the descriptor
 * cannot be imported (XO_ENOTSUP): staging through host memory or NCCL is not built yet. */
#ifndef XOSCAR_DEVICE_BUF_H
#define XOSCAR_DEVICE_BUF_H

#include "xoscar/gpu.h"
#include "xoscar/xoscar.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The msgpack ext type of a device buffer descriptor. */
#define XO_EXT_DEVICE_BUF 42

/* The running method's pool's device, or NULL when the pool has none. Owned by the pool. */
XO_API xo_device_t *xo_ctx_device(const xo_ctx_t *ctx);

/* The device of a pool of this process, or NULL. */
XO_API xo_device_t *xo_pool_device(const xo_pool_t *pool);

/* Packs a descriptor of size bytes at ptr, an allocation (or part of one) of dev, into pk. XO_EINVAL when ptr is
 * not in a live allocation of dev; XO_ENOMEM. The buffer stays the caller's (see the lend rule above). */
XO_API xo_status_t xo_pack_device_buf(msgpack_packer *pk, xo_device_t *dev, const void *ptr, size_t size);

/* Reads a descriptor packed by xo_pack_device_buf into a pointer usable on dev (the receiver's device; same
 * backend as the sender's). Inside a method the import is released when the method returns; outside methods the
 * caller releases it with xo_device_ipc_close(dev, ptr) when *imported_p is true (a same-process pointer needs
 * nothing). XO_EBADARGS when o is not a descriptor; XO_ENOTSUP from another host; errors of the import. */
XO_API xo_status_t xo_unpack_device_buf(xo_device_t *dev, const msgpack_object *o, void **ptr_p, size_t *size_p,
                                        bool *imported_p);

#ifdef __cplusplus
}
#endif
#endif
