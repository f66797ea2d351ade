/* The router: which channel URLs reach a pool address, and which ones a pool listens on (see router.h). What each
 * backend contributes is its route (xo_route_info_t in channel.h); the order of preference is the registry's. */
#include "transport/router.h"

#include <stdatomic.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/plugin.h"

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

/* The name shared by a pool's name-routed listeners (shm, unix): derived from its address, unique per host. */
static void local_name(const xo_pool_addr_t *a, char *buf, size_t len)
{
    snprintf(buf, len, "xo-%s-%u-%u", a->host, a->port, a->index);
    for (char *p = buf; *p; p++)
        if (*p == '/' || *p == '[' || *p == ']' || *p == ':') *p = '_';
}

/* An opt-in backend (UCX: on the machines we measured our TCP channel was faster than UCX over its tcp transport,
 * and UCX needs RDMA hardware to pay off) is on when its variable is "1" or XO_TRANSPORT names it. */
static bool enabled(const xo_transport_ops_t *t, const char *force)
{
    if (!t->route.enable_env) return true;
    const char *e = getenv(t->route.enable_env);
    return (e && strcmp(e, "1") == 0) || (force && strcmp(force, t->scheme) == 0);
}

/* The backends the router may use, in the registry's order. */
static size_t routed(const xo_transport_ops_t **out, size_t max)
{
    size_t n_all, n = 0;
    const xo_transport_ops_t *const *all = xo__transport_list(&n_all);
    for (size_t i = 0; i < n_all && n < max; i++)
        if (all[i]->route.kind != XO_ROUTE_NONE && xo__transport_find(all[i]->scheme) == all[i]) out[n++] = all[i];
    return n;
}

/* t's URL for the pool at a, with host as the host part of a port route. False when t has none for it: port 0
 * names no port (an offset from it means nothing; a main pool's own "host:0" is kept as it is). */
static bool route_url(const xo_transport_ops_t *t, const xo_pool_addr_t *a, const char *host, char *url)
{
    if (t->route.kind == XO_ROUTE_NAME) {
        char name[200], rest[XO_URL_MAX - 16];
        local_name(a, name, sizeof name);
        snprintf(rest, sizeof rest, t->route.name_fmt, name);
        snprintf(url, XO_URL_MAX, "%s://%s", t->scheme, rest);
        return true;
    }
    if (a->port == 0 && (a->index != 0 || t->route.port_offset != 0)) return false;
    unsigned long port = (unsigned long)a->port + t->route.port_offset + a->index;
    if (port > 65535) return false;
    snprintf(url, XO_URL_MAX, "%s://%s:%lu", t->scheme, host, port);
    return true;
}

/* XO_TRANSPORT naming a scheme this runtime lacks (its plugin not installed, say) gets one warning with the reason:
 * the pools of this host are then unreachable, which the connect's error alone would not explain. */
static void warn_unknown_force(const char *force)
{
    static atomic_bool warned;
    if (xo__transport_find(force) || atomic_exchange(&warned, true)) return;
    const char *why = xo__plugin_why(force);
    if (why) xo_log_warn("XO_TRANSPORT=%s names no transport of this runtime: plugin %s: %s", force, force, why);
    else xo_log_warn("XO_TRANSPORT=%s names no transport of this runtime", force);
}

size_t xo__route_connect(const xo_pool_addr_t *a, char urls[][XO_URL_MAX], size_t max)
{
    const char *force = getenv("XO_TRANSPORT");
    if (force && !force[0]) force = NULL;
    if (force) warn_unknown_force(force);
    bool local = is_local_host(a->host);
    const xo_transport_ops_t *ts[XO_ROUTE_MAX];
    size_t nt = routed(ts, XO_ROUTE_MAX), n = 0;
    for (size_t i = 0; i < nt && n < max; i++) {
        const xo_transport_ops_t *t = ts[i];
        bool forced = force && strcmp(force, t->scheme) == 0;
        if (t->same_host_only && !local) continue;
        if (!enabled(t, force)) continue;
        if (local ? (force ? !forced : t->route.enable_env != NULL)
                  : (force && !forced && t->route.enable_env != NULL))
            continue;
        if (route_url(t, a, a->host, urls[n])) n++;
    }
    return n;
}

/* The host part network listeners bind: the pool's own host, or with XO_LISTEN_ANY=1 every interface ("0.0.0.0",
 * "[::]" for an IPv6 address) while the pool keeps its address as the one it advertises (NAT, several interfaces,
 * containers). */
static const char *bind_host(const xo_pool_addr_t *a)
{
    const char *any = getenv("XO_LISTEN_ANY");
    if (!any || strcmp(any, "1") != 0) return a->host;
    return a->host[0] == '[' ? "[::]" : "0.0.0.0";
}

/* The port route every pool of another host is reached by (the last always-on one in the order: TCP). */
static const xo_transport_ops_t *primary(const xo_transport_ops_t *const *ts, size_t nt)
{
    const xo_transport_ops_t *p = NULL;
    for (size_t i = 0; i < nt; i++)
        if (ts[i]->route.kind == XO_ROUTE_PORT && !ts[i]->route.enable_env && ts[i]->route.port_offset == 0)
            p = ts[i];
    return p;
}

bool xo__route_listen_primary(const xo_pool_addr_t *a, char url[XO_URL_MAX])
{
    const xo_transport_ops_t *ts[XO_ROUTE_MAX];
    const xo_transport_ops_t *p = primary(ts, routed(ts, XO_ROUTE_MAX));
    return a->index == 0 && p && route_url(p, a, bind_host(a), url);
}

size_t xo__route_listen(const xo_pool_addr_t *a, xo_route_listen_t *out, size_t max)
{
    const xo_transport_ops_t *ts[XO_ROUTE_MAX];
    size_t nt = routed(ts, XO_ROUTE_MAX), n = 0;
    const xo_transport_ops_t *p = primary(ts, nt);
    for (size_t i = 0; i < nt && n < max; i++) {
        const xo_transport_ops_t *t = ts[i];
        if (t == p && a->index == 0) continue; /* xo__route_listen_primary's */
        if (!enabled(t, getenv("XO_TRANSPORT"))) continue;
        if (!route_url(t, a, bind_host(a), out[n].url)) continue;
        out[n].scheme = t->scheme;
        /* Same-host listeners are the pool's own way in; a sub pool's port listeners are a bonus for other hosts. */
        out[n].required = t->route.kind == XO_ROUTE_NAME;
        out[n].other_hosts_need_it = t == p;
        n++;
    }
    return n;
}
