/* Little-endian fixed-width fields in wire headers, and the 64-byte alignment of frame parts: shared by the
 * stream (unix, tcp) and ucx backends. Internal to transport/. */
#ifndef XO_TRANSPORT_LE_H
#define XO_TRANSPORT_LE_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static inline uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return le32toh(v);
}

static inline uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v);
}

static inline void put32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}

static inline void put64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, 8);
}

#endif
