/* A map from 64-bit ids (call ids) to pointers: open addressing with linear probing and backward-shift deletion.
 * Not thread-safe: its owner locks around it. */
#ifndef XO_RUNTIME_IDMAP_H
#define XO_RUNTIME_IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct xo_idmap {
    uint64_t *keys; /* 0 = empty slot: id 0 is never stored */
    void **vals;
    size_t cap, n;
} xo_idmap_t;

void xo__idmap_init(xo_idmap_t *m);
void xo__idmap_free(xo_idmap_t *m);
/* false when out of memory or id == 0. Replaces an existing value. */
bool xo__idmap_put(xo_idmap_t *m, uint64_t id, void *val);
void *xo__idmap_get(const xo_idmap_t *m, uint64_t id);
/* Removes and returns the value, or NULL. */
void *xo__idmap_take(xo_idmap_t *m, uint64_t id);
/* Calls fn on every value and empties the map. */
void xo__idmap_drain(xo_idmap_t *m, void (*fn)(void *val, void *arg), void *arg);

#endif
