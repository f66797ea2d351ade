/* Device buffers as call arguments and results.
 *
 * A pool may own a device (xo_pool_config_t.device: "host", "host:1", "cuda:0"; a host's sub pools get theirs from
 * xo_sub_pool_config_t.device). A method allocates on its pool's device (xo_ctx_device) and passes buffers in
 * arguments or results with xo_pack_device_buf; the receiver gets a pointer on its own device with
 * xo_unpack_device_buf. What travels is a descriptor (a msgpack ext value), never the bytes:
 *   same process      the pointer itself (no copy, no mapping);
 *   same host         an IPC handle of the device backend (host: the device's memfd; cuda: CUDA IPC), imported by
 *                     the receiver into its device: the receiver works on the owner's memory;
 *   another host      staging, the cross-host path today: the receiver allocates a buffer of the same size on its
 *                     own device and fetches the bytes from the owner pool (device -> host there, over the pools'
 *                     transport, host -> device here), in chunks with several in flight (XO_DEVICE_STAGE_CHUNK
 *                     bytes, default 128 KiB; XO_DEVICE_STAGE_WINDOW of them, default 32). The receiver works on a
 *                     COPY: its writes do not reach the owner (unlike an import). Its device may be of another
 *                     backend than the owner's (a cuda buffer can land on a host device). When both devices are
 *                     CUDA and the runtime has NCCL, the copy is pulled GPU to GPU with NCCL point-to-point first
 *                     (a communicator made for that transfer; XO_DEVICE_NCCL=0 skips it), and staged as above if
 *                     that fails (a warning says why).
 * "Same host" is the same kernel boot (boot_id) and the same network namespace: processes in two namespaces are
 * two hosts, even on one machine (containers may not share /proc). XO_DEVICE_IPC=0 in the receiver's environment
 * makes it stage from other processes of its own host too (where /proc/<pid>/fd or CUDA IPC is unavailable); the
 * same process always gets the pointer.
 *
 * Who can be fetched from: every pool that owns a device and has a process address ("host:port[/N]") runs a
 * stateless service actor, uid "xo.devbuf", that copies out ranges of its device's live allocations; the
 * descriptor names that pool. A buffer of a device that belongs to no such pool (an in-process pool, a device the
 * program opened itself) can be imported on its host but not fetched from another: XO_EUNREACHABLE says so.
 *
 * Trust: the cluster secret is the trust boundary (only authenticated pools can call the service at all). Within
 * it, a descriptor carries a token (an HMAC under a random key of the owner process) binding the owner's address
 * and the lent range, so a peer reads only ranges it was lent, and only from ptr to ptr + size; a forged or altered
 * descriptor fails with XO_EAUTH, a range the owner freed with XO_EINVAL. Nothing encrypts the bytes beyond what
 * the transport does.
 *
 * Ownership (the lend rule): the sender owns the buffer and must keep it allocated, and not write to it, until the
 * receiver is done with it: for a call, until the call's reply has arrived; a tell must not carry device buffers
 * whose owner may free them. The rule is also what makes staging safe: the receiver reads the owner's memory while
 * the call is pending. The receiver may read and write what it got during its method, never frees it, and does
 * not keep the pointer after the method returns (the runtime releases imports and staged copies then). */
#ifndef XOSCAR_DEVICE_BUF_H
#define XOSCAR_DEVICE_BUF_H

#include "xoscar/gpu.h"
#include "xoscar/xoscar.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The msgpack ext type of a device buffer descriptor. */
#define XO_EXT_DEVICE_BUF 42
/* The uid of the service actor that serves a pool's device buffers to other hosts (every such pool has its own). */
#define XO_DEVBUF_SERVICE_UID "xo.devbuf"

/* The running method's pool's device, or NULL when the pool has none. Owned by the pool. */
XO_API xo_device_t *xo_ctx_device(const xo_ctx_t *ctx);

/* The device of a pool of this process, or NULL. */
XO_API xo_device_t *xo_pool_device(const xo_pool_t *pool);

/* Packs a descriptor of size bytes at ptr, an allocation (or part of one) of dev, into pk. XO_EINVAL when ptr is
 * not in a live allocation of dev; XO_ENOMEM. The buffer stays the caller's (see the lend rule above). */
XO_API xo_status_t xo_pack_device_buf(msgpack_packer *pk, xo_device_t *dev, const void *ptr, size_t size);

/* Reads a descriptor packed by xo_pack_device_buf into a pointer usable on dev (the receiver's device): the
 * owner's pointer (same process), an import (same host; same backend as the sender's) or a staged copy (another
 * host, or XO_DEVICE_IPC=0). *imported_p (may be NULL) says whether the result must be released: true for an
 * import or a staged copy. Inside a method the runtime releases it when the method returns; outside methods the
 * caller releases it with xo_release_device_buf(dev, ptr). A staged copy takes size bytes of dev's memory and the
 * time of the transfer (blocking; inside a method it suspends only the method). An empty buffer from another host
 * gives *ptr_p NULL, nothing to release.
 * Errors: XO_EBADARGS when o is not a descriptor of this version (malformed, truncated, another version: strict);
 * XO_EINVAL when a copy or import is needed and dev is NULL (the pool owns no device); XO_EUNREACHABLE when the
 * owner cannot be fetched from (see above); from staging: XO_EAUTH (a forged descriptor), XO_EINVAL (the owner
 * freed the range), XO_EPOOLDIED (the owner's pool died; never a hang), XO_ETIMEDOUT (one chunk took longer than
 * XO_DEVICE_STAGE_TIMEOUT_MS, default 60000), XO_ENOMEM (no room on dev); errors of the import. The text names the
 * owner and the failure. */
XO_API xo_status_t xo_unpack_device_buf(xo_device_t *dev, const msgpack_object *o, void **ptr_p, size_t *size_p,
                                        bool *imported_p);

/* As xo_pack_device_buf, for a buffer that work queued on a stream of dev is still writing: ready is an event of dev
 * made by xo_device_event_create_ipc and recorded after that work. Receivers order themselves after it instead of
 * the sender synchronizing its stream before it sends: a receiver that unpacks onto a stream of its device
 * (xo_unpack_device_buf_on) has that stream wait for the event on the device (same process, or same host through
 * the event's IPC handle); any other receiver waits on the host (suspending only its method); from another host,
 * the owner's device buffer service waits for the event before it hands out any byte. The sender keeps the event,
 * and does not record it again, for as long as it keeps the buffer (the lend rule). XO_EINVAL when ready is NULL,
 * of another device, or not shareable (made by xo_device_event_create), with the text saying which; otherwise as
 * xo_pack_device_buf. */
XO_API xo_status_t xo_pack_device_buf_ready(msgpack_packer *pk, xo_device_t *dev, const void *ptr, size_t size,
                                            xo_device_event_t *ready);

/* As xo_unpack_device_buf; when the sender packed a ready event, work queued on stream (a stream of dev) after this
 * call waits for it on the device, and this call returns without waiting (same process or same host; a staged copy
 * is complete when this returns). stream NULL is xo_unpack_device_buf: this call waits until the buffer is ready.
 * Extra errors: XO_EINVAL when stream is not dev's; XO_ETIMEDOUT when a host-side wait for the sender's event
 * exceeds XO_DEVICE_STAGE_TIMEOUT_MS; XO_EDEVICE when the sender's process died with its work pending (host). */
XO_API xo_status_t xo_unpack_device_buf_on(xo_device_t *dev, xo_device_stream_t *stream, const msgpack_object *o,
                                           void **ptr_p, size_t *size_p, bool *imported_p);

/* Releases what xo_unpack_device_buf returned with *imported_p true, outside methods: closes an import, or frees
 * a staged copy. XO_EINVAL for any other pointer (a same-process buffer is the owner's, and is left alone). Inside
 * a method, do not call it for buffers of that method's arguments: the runtime releases them when it returns. */
XO_API xo_status_t xo_release_device_buf(xo_device_t *dev, void *ptr);

#ifdef __cplusplus
}
#endif
#endif
