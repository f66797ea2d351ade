/* A pool with its services: the engine's start (runtime/pool.c) and what runs as actors on top of it. The engine
 * knows nothing of the services, so this is where they meet: one layer above both. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core.h"
#include "transport/channel.h"
#include "services/coll/coll.h"
#include "services/devbuf/devbuf.h"
#include "services/probe.h"

/* A sub pool "host:port/N" of a main pool with a fixed port is reached from other hosts over TCP at port + N. The
 * engine treats that listener as best effort (runtime/remote.c), so a port taken by another process left a sub pool
 * that only this host could reach: refuse to start instead, naming the port, as a main pool whose port is taken
 * does. Checked by binding it here once, just before the engine binds it for good. */
static xo_status_t check_sub_pool_port(const char *address)
{
    const char *slash = address ? strrchr(address, '/') : NULL;
    const char *colon = slash ? memrchr(address, ':', (size_t)(slash - address)) : NULL;
    if (!colon || colon == address || strstr(address, "://")) return XO_OK; /* not host:port/N: the engine says */
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10), index = strtoul(slash + 1, NULL, 10);
    if (end != slash || port == 0 || index == 0 || port + index > 65535) return XO_OK;
    const char *any = getenv("XO_LISTEN_ANY"); /* what the engine binds (remote.c, bind_host) */
    char host[256], url[320];
    if (any && strcmp(any, "1") == 0) snprintf(host, sizeof host, "%s", address[0] == '[' ? "[::]" : "0.0.0.0");
    else snprintf(host, sizeof host, "%.*s", (int)(colon - address), address);
    snprintf(url, sizeof url, "tcp://%s:%lu", host, port + index);
    xo_listener_t *l = NULL;
    xo_status_t st = xo__listen(url, NULL, &l);
    if (st != XO_OK)
        return xo__error_prefix(st, "sub pool %s: its TCP port %lu (port %lu + %lu), where other hosts reach it, "
                                    "cannot be bound", address, port + index, port, index);
    xo__listener_close(l);
    return XO_OK;
}

xo_status_t xo_pool_start(const xo_pool_config_t *cfg, xo_pool_t **pool_p)
{
    xo_status_t checked = check_sub_pool_port(cfg ? cfg->address : NULL);
    if (checked != XO_OK) return checked;
    /* Before the pool can answer anyone: other processes may create a collective rendezvous here at once. */
    xo__coll_register_classes();
    xo_register_class(&xo_probe_class); /* `xoscar tune` creates one per pool to measure pairs from there */
    xo_pool_t *p = NULL;
    xo_status_t st = xo__pool_start_engine(cfg, &p);
    if (st != XO_OK) return st;
    /* Other hosts fetch this pool's device buffers from its service (include/xoscar/device_buf.h). */
    if (p->device && p->listening) {
        st = xo__devbuf_service_start(p);
        if (st != XO_OK) {
            char why[XO_ERROR_TEXT_MAX];
            snprintf(why, sizeof why, "%s", xo_last_error());
            xo_pool_stop(p);
            return xo__error_set(st, "%s", why);
        }
    }
    *pool_p = p;
    return XO_OK;
}
