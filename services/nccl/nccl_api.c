/* The core's side of the NCCL plugin (services/nccl/nccl_api.h): loads it once, on the first NCCL path taken. */
#include <pthread.h>

#include "services/nccl/nccl_api.h"
#include "base/error.h"

/* Written once under the once and read after it: the once orders the write before every read. */
static const xo__nccl_api_t *api;
static pthread_once_t loaded = PTHREAD_ONCE_INIT;

static void load(void)
{
    api = xo__plugin_load("nccl", XO_PLUGIN_NCCL, XO_NCCL_PLUGIN_LAYOUT,
                          "collectives use their host backends and device buffers are staged");
}

const xo__nccl_api_t *xo__nccl_api(void)
{
    pthread_once(&loaded, load);
    return api;
}

xo_status_t xo__nccl_missing(const char *what)
{
    xo__nccl_api();
    const char *why = xo__plugin_why("nccl");
    return xo__error_set(XO_ENOTSUP, "%s: NCCL is not available here: plugin nccl: %s", what,
                        why ? why : "not loaded");
}
