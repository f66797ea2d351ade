/* The envelope of messages between pools in different processes: one msgpack array per frame header.
 *
 *   [version, type, call_id, ...type-specific fields]
 *
 * Byte strings (arguments, results) travel inline as msgpack bin when small, or as a frame segment when large
 * (>= XO_WIRE_SEG_MIN), in which case the field holds the segment's index as an integer. Segments go out of band
 * on the shm channel, so a large payload is never copied through the ring. */
#ifndef XO_RUNTIME_WIRE_H
#define XO_RUNTIME_WIRE_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/codec.h"
#include "transport/channel.h"

#define XO_WIRE_VERSION 1
#define XO_WIRE_SEG_MIN (64u * 1024u)
#define XO_WIRE_MAX_SEGS 64u

typedef enum {
    XO_WIRE_CALL = 1,     /* uid, method, args; chain; want_reply */
    XO_WIRE_BATCH = 2,    /* uid, method, [args...]; chain; want_reply */
    XO_WIRE_CREATE = 3,   /* uid (may be empty: generate), class, args, chain */
    XO_WIRE_DESTROY = 4,  /* uid, chain */
    XO_WIRE_HAS = 5,      /* uid → reply: bool */
    XO_WIRE_CANCEL = 6,   /* cancels call_id; no reply */
    XO_WIRE_LOOKUP = 7,   /* uid → reply: the address of the pool that holds it */
    XO_WIRE_INFO = 8,     /* → reply: [pid, actors, device free, device total, user actors, requests in flight,
                           *           busy threads, threads] (device 0, 0 without one); readers skip what follows
                           *           the fields they know, so fields are only ever appended */
    XO_WIRE_RECOVERING = 9, /* chain, [uids] or nil: a host to its restarted sub pool, the actors it re-creates
                             * now (callers of those get XO_ERECOVERING); nil: done → reply: nil */
    XO_WIRE_REPLY = 10,   /* status, error text, result */
    XO_WIRE_REPLY_BATCH = 11,
    XO_WIRE_LIST = 12,    /* → reply: [[uid, class, state, pending, busy], ...] for every actor of the pool (state
                           * "creating", "alive" or "dead"; pending: messages waiting; busy: activations running or
                           * suspended), as xo__pool_pack_actors packs them */
} xo_wire_type_t;

/* A decoded envelope. Strings and byte strings point into the frame (and its zone): valid while both live. */
typedef struct xo_wire_msg {
    int type;
    uint64_t call_id;
    uint64_t chain;
    bool want_reply;
    xo_str_t uid, method, class_name, error;
    xo_bytes_t payload;   /* args (CALL, CREATE) or result (REPLY) */
    bool has_payload;
    int32_t status;
    size_t n_items;       /* BATCH: args per item; REPLY_BATCH: per-item replies */
    xo_bytes_t *items;
    int32_t *item_status;
    xo_str_t *item_error;
    bool *item_has;       /* REPLY_BATCH: whether the item carries a result */
} xo_wire_msg_t;

/* An envelope being built: the header buffer and the segments that large byte strings went to (borrowed: they
 * must stay valid until the frame is sent). */
typedef struct xo_wire_out {
    xo_buf_t header;
    msgpack_packer pk;
    xo_seg_t segs[XO_WIRE_MAX_SEGS];
    xo_seg_pieces_t gather[XO_WIRE_MAX_SEGS]; /* the pieces of segments packed by xo__wire_pack_pieces */
    bool gathered;                            /* some segment has pieces: the frame carries gather */
    size_t nsegs;
} xo_wire_out_t;

void xo__wire_out_init(xo_wire_out_t *w);
void xo__wire_out_free(xo_wire_out_t *w);
/* A frame pointing into w (valid while w is). */
xo_frame_t xo__wire_frame(xo_wire_out_t *w);

/* Packs a byte string: inline bin, or a segment reference when large. nil when data is NULL. */
void xo__wire_pack_bytes(xo_wire_out_t *w, const void *data, size_t len);
/* The same for a byte string of total bytes made of n pieces in order (borrowed, as are the pieces' bytes: valid
 * until the frame is sent); a large one becomes one segment made of those pieces, which the channel gathers. */
void xo__wire_pack_pieces(xo_wire_out_t *w, const xo_seg_t *pieces, size_t n, size_t total);

xo_status_t xo__wire_call(xo_wire_out_t *w, uint64_t call_id, uint64_t chain, bool want_reply, const char *uid,
                         const char *method, const void *args, size_t args_len);
/* xo__wire_call with the arguments in pieces (xo__args_pieces). */
xo_status_t xo__wire_call_pieces(xo_wire_out_t *w, uint64_t call_id, uint64_t chain, bool want_reply, const char *uid,
                                const char *method, const xo_seg_t *pieces, size_t n, size_t total);
xo_status_t xo__wire_batch(xo_wire_out_t *w, uint64_t call_id, uint64_t chain, const char *uid, const char *method,
                          size_t n, const void *const *args, const size_t *args_len);
xo_status_t xo__wire_create(xo_wire_out_t *w, uint64_t call_id, uint64_t chain, const char *uid,
                           const char *class_name, const void *args, size_t args_len);
/* uids: the packed args (an array of one array of strings), or NULL for the end of the recovery. */
xo_status_t xo__wire_recovering(xo_wire_out_t *w, uint64_t call_id, uint64_t chain, const void *uids, size_t len);
xo_status_t xo__wire_simple(xo_wire_out_t *w, int type, uint64_t call_id, uint64_t chain, const char *uid);
xo_status_t xo__wire_reply(xo_wire_out_t *w, uint64_t call_id, xo_status_t st, const char *error,
                          const void *result, size_t result_len);
/* xo__wire_reply with the result in pieces (xo__result_pieces; borrowed until the frame is sent). */
xo_status_t xo__wire_reply_pieces(xo_wire_out_t *w, uint64_t call_id, xo_status_t st, const char *error,
                                 const xo_seg_t *pieces, size_t n, size_t total);
xo_status_t xo__wire_reply_batch(xo_wire_out_t *w, uint64_t call_id, xo_status_t st, const char *error, size_t n,
                                const xo_status_t *item_st, char *const *item_err,
                                xo_result_t *const *item_results);

/* Decodes frame's header into msg, using zone for arrays. XO_EPROTO (with text) on anything malformed: unknown
 * version or type, wrong field types, a segment index out of range. */
xo_status_t xo__wire_decode(const xo_frame_t *frame, msgpack_zone *zone, xo_wire_msg_t *msg);

#endif
