/* A pool with its services: the engine's start (runtime/pool.c) and what runs as actors on top of it. The engine
 * knows nothing of the services, so this is where they meet: one layer above both. */
#include <stdio.h>

#include "runtime/core.h"
#include "services/coll/coll.h"
#include "services/devbuf/devbuf.h"
#include "services/probe.h"

xo_status_t xo_pool_start(const xo_pool_config_t *cfg, xo_pool_t **pool_p)
{
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
