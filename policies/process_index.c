/* PROCESS_INDEX (Xoscar ProcessIndex): the first pool whose process index is req->process_index (0: the main pool). */
#include "policies/policy_impl.h"
#include "base/error.h"

static xo_status_t process_index_choose(const xo_pool_view_t *pools, size_t n, const xo_place_request_t *req,
                                        size_t *chosen_p)
{
    size_t highest = 0;
    for (size_t i = 0; i < n; i++) {
        if (pools[i].process_index == req->process_index) {
            *chosen_p = i;
            return XO_OK;
        }
        if (pools[i].process_index > highest) highest = pools[i].process_index;
    }
    return xo__error_set(XO_EINVAL, "process_index: no pool has process index %zu (the highest is %zu)",
                        req->process_index, highest);
}

const xo_policy_ops_t xo__policy_process_index = {
    .name = "process_index",
    .alias = "ProcessIndex",
    .kind = XO_PLACE_PROCESS_INDEX,
    .choose = process_index_choose,
};
