/* RANDOM (Xoscar Random): a uniformly random pool, the main pool included, among those passing the filters. */
#include "policies/policy_impl.h"

static xo_status_t random_choose(const xo_pool_view_t *pools, size_t n, const xo_place_request_t *req,
                                 size_t *chosen_p)
{
    return xo__place_random("random", "pool", pools, n, req, NULL, chosen_p);
}

const xo_policy_ops_t xo__policy_random = {
    .name = "random",
    .alias = "Random",
    .kind = XO_PLACE_RANDOM,
    .choose = random_choose,
};
