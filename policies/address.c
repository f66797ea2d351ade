/* ADDRESS (Xoscar AddressSpecified): exactly the pool named by req->address. */
#include <string.h>

#include "policies/policy_impl.h"
#include "base/error.h"

static xo_status_t address_choose(const xo_pool_view_t *pools, size_t n, const xo_place_request_t *req,
                                  size_t *chosen_p)
{
    if (!req->address) return xo__error_set(XO_EINVAL, "address: the request names no address");
    for (size_t i = 0; i < n; i++) {
        if (strcmp(pools[i].address, req->address) == 0) {
            *chosen_p = i;
            return XO_OK;
        }
    }
    return xo__error_set(XO_EINVAL, "address: unknown address \"%s\" (not among the %zu pools)", req->address, n);
}

const xo_policy_ops_t xo__policy_address = {
    .name = "address",
    .alias = "AddressSpecified",
    .kind = XO_PLACE_ADDRESS,
    .choose = address_choose,
};
