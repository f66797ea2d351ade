/* libFuzzer target for the wire envelope decoder (runtime/wire.c): any header bytes, with up to two segments cut
 * from the input, must decode to a valid message or be refused with XO_EPROTO (or XO_ENOMEM) and a text; a decoded
 * message's strings and byte strings must lie inside the frame. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/wire.h"

static int inside(const void *p, size_t len, const uint8_t *base, size_t size, const xo_frame_t *f)
{
    if (!p || len == 0) return 1;
    const uint8_t *q = p;
    if (q >= base && q + len <= base + size) return 1;
    for (size_t i = 0; i < f->nsegs; i++) {
        const uint8_t *s = f->segs[i].data;
        if (q >= s && q + len <= s + f->segs[i].len) return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte says how much of the input is segments: [split byte][header][seg0][seg1]. */
    if (size < 1) return 0;
    size_t rest = size - 1, seg_len = (size_t)data[0] % 64;
    size_t nsegs = rest >= 2 * seg_len && seg_len ? 2 : 0;
    size_t header_len = rest - nsegs * seg_len;
    uint8_t *header = malloc(header_len ? header_len : 1);
    memcpy(header, data + 1, header_len);
    xo_seg_t segs[2];
    for (size_t i = 0; i < nsegs; i++) {
        segs[i].data = (void *)(data + 1 + header_len + i * seg_len);
        segs[i].len = seg_len;
    }
    xo_frame_t f = {.header = header, .header_len = header_len, .segs = nsegs ? segs : NULL, .nsegs = nsegs};
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    xo_wire_msg_t m;
    xo_status_t st = xo__wire_decode(&f, &zone, &m);
    if (st == XO_OK) {
        if (!inside(m.uid.ptr, m.uid.len, header, header_len, &f) ||
            !inside(m.method.ptr, m.method.len, header, header_len, &f) ||
            !inside(m.payload.ptr, m.payload.len, header, header_len, &f))
            abort();
        for (size_t i = 0; i < m.n_items; i++)
            if (!inside(m.items[i].ptr, m.items[i].len, header, header_len, &f)) abort();
    } else if (st != XO_EPROTO && st != XO_ENOMEM) {
        abort();
    }
    msgpack_zone_destroy(&zone);
    free(header);
    return 0;
}
