/* The router: from a pool's address to the channel URLs that reach it and the ones it listens on.
 *
 * A process pool's address is "host:port" (a main pool) or "host:port/N" (its sub pool N). */
#ifndef XO_TRANSPORT_ROUTER_H
#define XO_TRANSPORT_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "transport/channel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most routes for one pool (a bound on the backends the registry lists). */
#define XO_ROUTE_MAX 8

typedef struct {
    char host[128];
    unsigned port;
    unsigned index;
} xo_pool_addr_t;

/* Parses "host:port" or "host:port/N" (host may be "[v6]", N at most 1000000). False when address has another
 * form (a URL included). */
bool xo__pool_addr_parse(const char *address, xo_pool_addr_t *a);

/* The URLs to try, best first, to reach the pool at a; writes at most max and returns how many. In the registry's
 * order (transport/registry.c), each backend by its route (xo_route_info_t): name routes (shm, unix) for a pool of
 * this host (a loopback address or this machine's name), port routes (tcp, ucx) for any; opt-in backends (ucx) only
 * when enabled and for other hosts. XO_TRANSPORT=<scheme> keeps only that backend for this host, and puts it before
 * the always-on port routes for other hosts. */
size_t xo__route_connect(const xo_pool_addr_t *a, char urls[][XO_URL_MAX], size_t max);

/* A main pool's first listener, the port route other hosts reach it by (tcp://host:port), which also fixes a port
 * 0: the caller learns the bound port and names the pool by it before it asks for the others. False for a sub
 * pool (none). */
bool xo__route_listen_primary(const xo_pool_addr_t *a, char url[XO_URL_MAX]);

typedef struct {
    char url[XO_URL_MAX];
    const char *scheme;       /* static storage */
    bool required;            /* the pool cannot start without it (its same-host listeners) */
    bool other_hosts_need_it; /* without it only this host reaches the pool (a sub pool's TCP port) */
} xo_route_listen_t;

/* The pool's other listeners (after the primary), in the registry's order: writes at most max, returns how many.
 * Network listeners bind every interface with XO_LISTEN_ANY=1 (the pool still advertises its own address). */
size_t xo__route_listen(const xo_pool_addr_t *a, xo_route_listen_t *out, size_t max);

#ifdef __cplusplus
}
#endif
#endif
