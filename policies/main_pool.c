/* MAIN_POOL (Xoscar MainPool): the first pool with process index 0. With several hosts in the view, the caller lists
 * its own main pool before the others' (Xoscar means the main pool that evaluates the strategy). */
#include "policies/policy_impl.h"
#include "base/error.h"

static xo_status_t main_pool_choose(const xo_pool_view_t *pools, size_t n, const xo_place_request_t *req,
                                    size_t *chosen_p)
{
    for (size_t i = 0; i < n; i++) {
        if (pools[i].process_index == 0) {
            *chosen_p = i;
            return XO_OK;
        }
    }
    return xo__error_set(XO_ENOSLOT, "main_pool: no main pool (process index 0) among the %zu pools", n);
}

const xo_policy_ops_t xo__policy_main_pool = {
    .name = "main_pool",
    .alias = "MainPool",
    .kind = XO_PLACE_MAIN_POOL,
    .choose = main_pool_choose,
};
