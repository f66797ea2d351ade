/* The router: which channel URLs reach a pool address. See router.h. */
#include "transport/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- addresses ------------------------------------------------------------------------------------------------ */

bool xo__pool_addr_parse(const char *address, xo_pool_addr_t *a)
{
    if (!address || strstr(address, "://")) return false;
    const char *colon = strrchr(address, ':');
    if (address[0] == '[') colon = strstr(address, "]:") ? strstr(address, "]:") + 1 : NULL;
    if (!colon || colon == address) return false;
    size_t hlen = (size_t)(colon - address);
    if (hlen >= sizeof a->host) return false;
    memcpy(a->host, address, hlen);
    a->host[hlen] = '\0';
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || port > 65535) return false;
    a->port = (unsigned)port;
    a->index = 0;
    if (*end == '/') {
        char *end2;
        unsigned long idx = strtoul(end + 1, &end2, 10);
        if (end2 == end + 1 || *end2 || idx > 1000000) return false;
        a->index = (unsigned)idx;
    } else if (*end) {
        return false;
    }
    return true;
}

/* Same host: a loopback address, this machine's name, or the host part of a pool of this process. */
static bool is_local_host(const char *host)
{
    if (strncmp(host, "127.", 4) == 0 || strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
        strcmp(host, "::1") == 0)
        return true;
    char me[256];
    if (gethostname(me, sizeof me) == 0 && strcmp(me, host) == 0) return true;
    return false;
}

/* The name shared by a pool's shm and unix listeners: derived from its address, unique per host. */
void xo__route_local_name(const xo_pool_addr_t *a, char *buf, size_t len)
{
    snprintf(buf, len, "xo-%s-%u-%u", a->host, a->port, a->index);
    for (char *p = buf; *p; p++)
        if (*p == '/' || *p == '[' || *p == ']' || *p == ':') *p = '_';
}

/* The URLs to try for a peer, in order. XO_TRANSPORT=shm|unix|tcp picks one. */

/* UCX is opt-in (XO_UCX=1, or XO_TRANSPORT=ucx): on the machines we measured, our TCP channel was faster than UCX
 * over its tcp transport (bench notes), and UCX needs RDMA hardware to pay off. */
bool xo__route_ucx_enabled(void)
{
    const char *u = getenv("XO_UCX"), *t = getenv("XO_TRANSPORT");
    return (u && strcmp(u, "1") == 0) || (t && strcmp(t, "ucx") == 0);
}

size_t xo__route_peer_urls(const xo_pool_addr_t *a, char urls[4][XO_URL_MAX])
{
    const char *force = getenv("XO_TRANSPORT");
    char name[200];
    xo__route_local_name(a, name, sizeof name);
    size_t n = 0;
    bool local = is_local_host(a->host);
    if (a->port != 0 && xo__transport_find("ucx") && xo__route_ucx_enabled() && (force ? strcmp(force, "ucx") == 0 : !local))
        snprintf(urls[n++], XO_URL_MAX, "ucx://%s:%u", a->host, a->port + XO_UCX_PORT_OFFSET + a->index);
    if (local && (!force || strcmp(force, "shm") == 0)) snprintf(urls[n++], XO_URL_MAX, "shm://%s", name);
    if (local && (!force || strcmp(force, "unix") == 0)) snprintf(urls[n++], XO_URL_MAX, "unix://@%s.u", name);
    /* Sub pool N of a main pool at port P listens on TCP port P + N (when P is not 0). */
    if ((a->index == 0 || a->port != 0) && (!force || strcmp(force, "tcp") == 0 || !local))
        snprintf(urls[n++], XO_URL_MAX, "tcp://%s:%u", a->host, a->port + a->index);
    return n;
}

/* The host part network listeners bind: the pool's own host, or with XO_LISTEN_ANY=1 every interface ("0.0.0.0",
 * "[::]" for an IPv6 address) while the pool keeps its address as the one it advertises (NAT, several interfaces,
 * containers). */
const char *xo__route_bind_host(const xo_pool_addr_t *a)
{
    const char *any = getenv("XO_LISTEN_ANY");
    if (!any || strcmp(any, "1") != 0) return a->host;
    return a->host[0] == '[' ? "[::]" : "0.0.0.0";
}
