/* The wire encoding of arguments and results: msgpack buffers, built by format strings or the msgpack-c API. */
#ifndef XO_RUNTIME_CODEC_H
#define XO_RUNTIME_CODEC_H

#include <msgpack.h>
#include <stdarg.h>

#include "transport/channel.h"
#include "xoscar/xoscar.h"

/* Small argument lists live inside the xo_args_t itself: one allocation per call for the common case. */
#define XO_ARGS_INLINE 96
/* Most lent binaries ('B') one argument list sends as they are; more are copied in when the list is consumed. */
#define XO_ARGS_MAX_LENT 16

/* A binary lent to an argument list ('B'): its bytes belong at offset at of data, between the bytes before and
 * after; data holds everything else (its msgpack header included). */
typedef struct xo_args_lent {
    size_t at;
    const void *ptr;
    size_t len;
} xo_args_lent_t;

struct xo_args {
    msgpack_packer pk;
    char *data;   /* inline_buf, a heap buffer, or a warm block (data_warm) */
    size_t size;
    size_t cap;
    char inline_buf[XO_ARGS_INLINE];
    char *error;  /* non-NULL: xo_args() could not build them (its reason); every consuming call refuses them */
    /* Non-NULL: data is lent (a received frame's memory, see xo__args_borrow); xo_args_free calls it instead of
     * freeing data, and nothing may be packed into these arguments. */
    void (*release)(void *arg);
    void *release_arg;
    /* Binaries lent by the caller ('B'), in order: the encoded arguments are data with these spliced in. Only until
     * the consuming call returns: it sends them as they are (another process) or copies them in (xo__args_settle). */
    xo_args_lent_t *lent;
    size_t n_lent;
    bool data_warm; /* data is a block of transport/warm_blocks.h (a large list): given back, not freed */
    bool well_formed; /* built by xo_args() alone (our encoder): decoding may skip the structural check, which
                       * costs ~3% of an in-process tell; bytes from a peer or a user's packer never are */
};

/* XO_OK when args (NULL: no arguments) may be sent. Otherwise xo_args() failed on them: frees them (the call
 * consumes its arguments whatever happens) and returns XO_EINVAL (a bad format) or XO_ENOMEM, with the reason as
 * the error text. Every public function that consumes an xo_args_t asks this first. On XO_OK the lent binaries
 * have been copied in (xo__args_settle), since the arguments may outlive the call that consumes them. */
xo_status_t xo__args_refuse(xo_args_t *args);
/* xo__args_refuse without the copy: for a consumer that sends lent binaries before it returns, or settles. */
xo_status_t xo__args_refuse_keep_lent(xo_args_t *args);
/* Copies the lent binaries of args into its own buffer. XO_OK, or XO_ENOMEM (text set) with args freed. */
xo_status_t xo__args_settle(xo_args_t *args);
/* The encoded arguments as pieces in order (data's own bytes and the lent binaries), borrowed: valid while args
 * is and the lenders' buffers are. 0 when nothing is lent (use xo__args_data) or more than max pieces. */
size_t xo__args_pieces(const xo_args_t *args, xo_seg_t *out, size_t max);

/* An argument list holding a copy of data[0..len) (already encoded, e.g. received from another pool). The caller
 * owns it. NULL when out of memory. */
xo_args_t *xo__args_from_bytes(const void *data, size_t len);

/* An argument list over data[0..len) without copying it: data is lent until the list is freed, which calls
 * release(arg) (also when this returns NULL: out of memory). For large arguments received from another pool, so
 * that a method reads them where the transport put them. */
xo_args_t *xo__args_borrow(const void *data, size_t len, void (*release)(void *), void *arg);

/* The encoded bytes of args (a msgpack array). An empty array when args is NULL. */
const char *xo__args_data(const xo_args_t *args, size_t *len_p);

/* The binaries a method lent to its result ('B'), recorded instead of copied: only for a result that goes to another
 * process, which the reply sends before the activation ends (activation.c), so the lender's bytes are still valid
 * when they are copied, once, into the frame. */
typedef struct xo_buf_lend {
    xo_args_lent_t at[XO_ARGS_MAX_LENT];
    size_t n;
} xo_buf_lend_t;

/* A growable buffer for packing results, reused across calls by one thread. */
typedef struct xo_buf {
    char *data;
    size_t size;
    size_t cap;
    xo_buf_lend_t *lend; /* non-NULL: 'B' packed through xo__buf_write records its bytes here (borrowed) */
} xo_buf_t;

int xo__buf_write(void *buf, const char *data, size_t len); /* msgpack_packer_write callback */
void xo__buf_reset(xo_buf_t *buf);
void xo__buf_free(xo_buf_t *buf);

/* Decodes one msgpack value from data[0..len) into *obj. Containers need zone (initialised by the caller);
 * scalars do not touch it. Strings and binaries point into data. XO_EPROTO when the bytes are not one whole value. */
xo_status_t xo__decode(const char *data, size_t len, msgpack_zone *zone, msgpack_object *obj);
/* xo__decode of an argument list, without the structural walk when xo_args() built it (well_formed). */
xo_status_t xo__args_decode(const xo_args_t *args, msgpack_zone *zone, msgpack_object *obj);

/* True when the first byte of an encoded value starts an array or a map (decoding it needs a zone). */
bool xo__encoded_is_container(const char *data, size_t len);

/* A result holding a copy of data[0..len). The caller owns it (xo_result_free). NULL when out of memory. */
xo_result_t *xo__result_from_bytes(const char *data, size_t len);

/* A result over data[0..len) without copying it (len > 0): data is lent until xo_result_free, which calls
 * release(arg) (also when this returns NULL: out of memory); release may be NULL (the lender knows when the result
 * is gone). */
xo_result_t *xo__result_borrow(const char *data, size_t len, void (*release)(void *), void *arg);

/* A result for another process made of data[0..len) with lend's binaries spliced in (both borrowed, as for
 * xo__result_borrow with no release): only for a reply hook that sends it before the activation ends. NULL when out
 * of memory. */
xo_result_t *xo__result_borrow_lent(const char *data, size_t len, const xo_buf_lend_t *lend);

/* The encoded result as pieces in order, borrowed (valid while r and its lenders' bytes are), and their total in
 * *total_p. 0 when nothing is lent (use xo__result_bytes) or more than max pieces would be needed. */
size_t xo__result_pieces(const xo_result_t *r, xo_seg_t *out, size_t max, size_t *total_p);

/* The encoded bytes of a result (without lent binaries: see xo__result_pieces). */
const char *xo__result_bytes(const xo_result_t *r, size_t *len_p);

xo_status_t xo__vpack(msgpack_packer *pk, const char *fmt, va_list *ap);
xo_status_t xo__vunpack(const msgpack_object *args, const char *fmt, va_list *ap);

#endif
