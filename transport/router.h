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

/* UCX listeners sit XO_UCX_PORT_OFFSET above the TCP ones: main pool at port + 500, sub pool N at port + 500 + N. */
#define XO_UCX_PORT_OFFSET 500

typedef struct {
    char host[128];
    unsigned port;
    unsigned index;
} xo_pool_addr_t;

/* Parses "host:port" or "host:port/N" (host may be "[v6]"). False when address has another form. */
bool xo__pool_addr_parse(const char *address, xo_pool_addr_t *a);

/* The name shared by a pool's shm and unix listeners: derived from its address, unique per host. */
void xo__route_local_name(const xo_pool_addr_t *a, char *buf, size_t len);

/* True when UCX is wanted (XO_UCX=1, or XO_TRANSPORT=ucx). */
bool xo__route_ucx_enabled(void);

/* The URLs to try for a peer, in order; returns their number. */
size_t xo__route_peer_urls(const xo_pool_addr_t *a, char urls[4][XO_URL_MAX]);

/* The host part network listeners bind. Static storage or a's. */
const char *xo__route_bind_host(const xo_pool_addr_t *a);

#ifdef __cplusplus
}
#endif
#endif
