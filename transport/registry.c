/* The transport registry: adding a backend is adding its file and one line to this table. */
#include <pthread.h>
#include <string.h>

#include "base/log.h"
#include "base/plugin.h"
#include "transport/channel.h"

extern const xo_transport_ops_t xo__unix_transport;
extern const xo_transport_ops_t xo__tcp_transport;
extern const xo_transport_ops_t xo__shm_transport;

/* The router's order of preference (transport/router.c): the fastest first among those that reach a peer. UCX comes
 * before TCP for other hosts, where it is opt-in (its route's enable_env). UCX is the plugin libxoscar-ucx.so
 * (base/plugin.h), looked for when the table is first used; without it the table is a build without UCX's. */
#define N_MAX 4
static const xo_transport_ops_t *transports[N_MAX];
static size_t n_transports;

/* transports, n_transports and valid[i] are written once under pthread_once and only read afterwards: the once
 * gives the happens-before edge. */
static bool valid[N_MAX];
static pthread_once_t check_once = PTHREAD_ONCE_INIT;

static void build(void)
{
    transports[n_transports++] = &xo__shm_transport;
    transports[n_transports++] = &xo__unix_transport;
    const xo_transport_ops_t *ucx =
        xo__plugin_load("ucx", XO_PLUGIN_TRANSPORT, XO_TRANSPORT_PLUGIN_LAYOUT, "TCP instead of UCX");
    if (ucx) transports[n_transports++] = ucx;
    transports[n_transports++] = &xo__tcp_transport;
}

/* A table with a mandatory op missing is a programming error: log it once and keep the backend unreachable,
 * instead of crashing later on a NULL call. */
static bool check_ops(const xo_transport_ops_t *t)
{
    const xo_channel_ops_t *c = t->channel_ops;
    const xo_listener_ops_t *l = t->listener_ops;
    /* A name route names a socket of this kernel: only a same-host backend can have one. */
    bool route_ok = t->route.kind != XO_ROUTE_NAME || (t->route.name_fmt && t->same_host_only);
    return t->scheme && t->scheme[0] && t->listen && t->connect && c && c->send && c->recv && c->shutdown &&
           c->close && c->fd && l && l->accept && l->close && l->fd && route_ok;
}

static void check_all(void)
{
    build();
    for (size_t i = 0; i < n_transports; i++) {
        valid[i] = check_ops(transports[i]);
        for (size_t j = 0; valid[i] && j < i; j++)
            if (valid[j] && strcmp(transports[j]->scheme, transports[i]->scheme) == 0) valid[i] = false;
        if (!valid[i])
            xo_log_error("transport #%zu (%s) has a missing op, a bad route or a duplicate scheme; disabled", i,
                         transports[i]->scheme ? transports[i]->scheme : "?");
    }
}

const xo_transport_ops_t *xo__transport_find(const char *scheme)
{
    pthread_once(&check_once, check_all);
    for (size_t i = 0; i < n_transports; i++)
        if (valid[i] && strcmp(transports[i]->scheme, scheme) == 0) return transports[i];
    return NULL;
}

const xo_transport_ops_t *const *xo__transport_list(size_t *n_p)
{
    pthread_once(&check_once, check_all);
    *n_p = n_transports;
    return transports;
}
