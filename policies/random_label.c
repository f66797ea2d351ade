/* RANDOM_LABEL (Xoscar RandomLabel): a uniformly random pool among those carrying req->label (and fitting
 * req->mem_bytes when set). */
#include "policies/policy_impl.h"
#include "base/error.h"

static xo_status_t random_label_choose(const xo_pool_view_t *pools, size_t n, const xo_place_request_t *req,
                                       size_t *chosen_p)
{
    if (!req->label) return xo__error_set(XO_EINVAL, "random_label: the request names no label");
    return xo__place_random("random_label", "pool", pools, n, req, NULL, chosen_p);
}

const xo_policy_ops_t xo__policy_random_label = {
    .name = "random_label",
    .alias = "RandomLabel",
    .kind = XO_PLACE_RANDOM_LABEL,
    .choose = random_label_choose,
};
