/* MOST_FREE_MEMORY: among the pools with a device, carrying req->label when set, and with at least req->mem_bytes
 * free, the one with the most free device memory; ties go to the lowest index. */
#include "policies/policy_impl.h"

static xo_status_t most_free_memory_choose(const xo_pool_view_t *pools, size_t n, const xo_place_request_t *req,
                                           size_t *chosen_p)
{
    size_t best = n;
    for (size_t i = 0; i < n; i++) {
        const xo_pool_view_t *p = &pools[i];
        /* Unlike the generic memory filter, a device is required even for a request of 0 bytes: "most free device
         * memory" means nothing for a pool without one. */
        if (!xo__pool_fits(p, req->mem_bytes) || !xo__pool_passes(p, req)) continue;
        if (best == n || xo__pool_free(p) > xo__pool_free(&pools[best])) best = i;
    }
    if (best == n) return xo__place_explain("most_free_memory", "pool", pools, n, req, NULL, true);
    *chosen_p = best;
    return XO_OK;
}

const xo_policy_ops_t xo__policy_most_free_memory = {
    .name = "most_free_memory",
    .alias = NULL,
    .kind = XO_PLACE_MOST_FREE_MEMORY,
    .choose = most_free_memory_choose,
};
