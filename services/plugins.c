/* Every plugin at once (services/plugins.h). Here, above the layers that own the plugins (gpu: cuda, transport:
 * ucx, services/nccl: nccl), because it asks each of them to load its own. */
#include "services/plugins.h"

#include "gpu/device.h"
#include "transport/channel.h"
#ifdef XO_HAVE_NCCL
#include "services/nccl/nccl_api.h"
#endif

static const char *const names[] = {"cuda", "nccl", "ucx"};

const char *const *xo__plugin_names(size_t *n_p)
{
    *n_p = sizeof names / sizeof names[0];
    return names;
}

void xo__plugins_load_all(void)
{
    xo_device_backend_at(0);
    size_t n;
    xo__transport_list(&n);
#ifdef XO_HAVE_NCCL
    xo__nccl_api();
#else
    /* This build has no NCCL code: the loader still says so, in the same words as for the others. */
    xo__plugin_load("nccl", XO_PLUGIN_NCCL, 0, "collectives use their host backends and device buffers are staged");
#endif
}
