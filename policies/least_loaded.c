/* LEAST_LOADED: the pool passing the filters with the least load (actors + queued requests + busy threads, what the
 * pool reports now); ties go to the lowest index, so equal pools fill in config order. */
#include "policies/policy_impl.h"

static xo_status_t least_loaded_choose(const xo_pool_view_t *pools, size_t n, const xo_place_request_t *req,
                                       size_t *chosen_p)
{
    size_t best = n;
    for (size_t i = 0; i < n; i++) {
        if (!xo__pool_passes(&pools[i], req)) continue;
        if (best == n || xo__pool_load(&pools[i]) < xo__pool_load(&pools[best])) best = i;
    }
    if (best == n) return xo__place_explain("least_loaded", "pool", pools, n, req, NULL, false);
    *chosen_p = best;
    return XO_OK;
}

const xo_policy_ops_t xo__policy_least_loaded = {
    .name = "least_loaded",
    .alias = NULL,
    .kind = XO_PLACE_LEAST_LOADED,
    .choose = least_loaded_choose,
};
