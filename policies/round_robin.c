/* ROUND_ROBIN: the first pool passing the filters at or after req->cursor, wrapping around. The caller keeps the
 * cursor and stores chosen + 1 after each placement, so successive placements cycle through the candidates. */
#include "policies/policy_impl.h"

static xo_status_t round_robin_choose(const xo_pool_view_t *pools, size_t n, const xo_place_request_t *req,
                                      size_t *chosen_p)
{
    size_t start = req->cursor % n;
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        if (xo__pool_passes(&pools[i], req)) {
            *chosen_p = i;
            return XO_OK;
        }
    }
    return xo__place_explain("round_robin", "pool", pools, n, req, NULL, false);
}

const xo_policy_ops_t xo__policy_round_robin = {
    .name = "round_robin",
    .alias = NULL,
    .kind = XO_PLACE_ROUND_ROBIN,
    .choose = round_robin_choose,
};
