#include "runtime/idmap.h"

#include <stdlib.h>

static size_t slot(uint64_t id, size_t cap)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdull;
    id ^= id >> 33;
    return (size_t)id & (cap - 1);
}

void xo__idmap_init(xo_idmap_t *m)
{
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->n = 0;
}

void xo__idmap_free(xo_idmap_t *m)
{
    free(m->keys);
    free(m->vals);
    xo__idmap_init(m);
}

static bool grow(xo_idmap_t *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    uint64_t *nk = calloc(ncap, sizeof *nk);
    void **nv = calloc(ncap, sizeof *nv);
    if (!nk || !nv) {
        free(nk);
        free(nv);
        return false;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = slot(m->keys[i], ncap);
        while (nk[j]) j = (j + 1) & (ncap - 1);
        nk[j] = m->keys[i];
        nv[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = nk;
    m->vals = nv;
    m->cap = ncap;
    return true;
}

bool xo__idmap_put(xo_idmap_t *m, uint64_t id, void *val)
{
    if (id == 0) return false;
    if ((m->n + 1) * 2 > m->cap && !grow(m)) return false;
    size_t i = slot(id, m->cap);
    while (m->keys[i] && m->keys[i] != id) i = (i + 1) & (m->cap - 1);
    if (!m->keys[i]) m->n++;
    m->keys[i] = id;
    m->vals[i] = val;
    return true;
}

static size_t find(const xo_idmap_t *m, uint64_t id)
{
    if (!m->cap || id == 0) return SIZE_MAX;
    size_t i = slot(id, m->cap);
    while (m->keys[i]) {
        if (m->keys[i] == id) return i;
        i = (i + 1) & (m->cap - 1);
    }
    return SIZE_MAX;
}

void *xo__idmap_get(const xo_idmap_t *m, uint64_t id)
{
    size_t i = find(m, id);
    return i == SIZE_MAX ? NULL : m->vals[i];
}

void *xo__idmap_take(xo_idmap_t *m, uint64_t id)
{
    size_t i = find(m, id);
    if (i == SIZE_MAX) return NULL;
    void *val = m->vals[i];
    /* backward-shift deletion keeps probe chains intact without tombstones */
    size_t j = i;
    for (;;) {
        j = (j + 1) & (m->cap - 1);
        if (!m->keys[j]) break;
        size_t home = slot(m->keys[j], m->cap);
        bool between = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (between) continue;
        m->keys[i] = m->keys[j];
        m->vals[i] = m->vals[j];
        i = j;
    }
    m->keys[i] = 0;
    m->vals[i] = NULL;
    m->n--;
    return val;
}

void xo__idmap_drain(xo_idmap_t *m, void (*fn)(void *val, void *arg), void *arg)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        void *v = m->vals[i];
        m->keys[i] = 0;
        m->vals[i] = NULL;
        fn(v, arg);
    }
    m->n = 0;
}
