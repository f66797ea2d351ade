/* RANDOM_SUB_POOL (Xoscar RandomSubPool): as RANDOM, but never a main pool (process index 0). */
#include "policies/policy_impl.h"

static bool is_sub_pool(const xo_pool_view_t *p, const xo_place_request_t *req) { return p->process_index != 0; }

static xo_status_t random_sub_pool_choose(const xo_pool_view_t *pools, size_t n, const xo_place_request_t *req,
                                          size_t *chosen_p)
{
    return xo__place_random("random_sub_pool", "sub pool", pools, n, req, is_sub_pool, chosen_p);
}

const xo_policy_ops_t xo__policy_random_sub_pool = {
    .name = "random_sub_pool",
    .alias = "RandomSubPool",
    .kind = XO_PLACE_RANDOM_SUB_POOL,
    .choose = random_sub_pool_choose,
};
