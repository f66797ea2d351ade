/* The registry: XO_POLICY_MAP expanded into a table indexed by kind. Adding a policy touches only its own file and
 * its line in the map; nothing here changes. */
#include <string.h>

#include "policies/policy_impl.h"

static const xo_policy_ops_t *const policies[] = {
#define XO_POLICY_ENTRY_(kind, value, name) [XO_PLACE_##kind] = &xo__policy_##name,
    XO_POLICY_MAP(XO_POLICY_ENTRY_)
#undef XO_POLICY_ENTRY_
};

/* The table's size is the largest value + 1. A hole or a duplicate value would make it differ from the count. */
_Static_assert(sizeof policies / sizeof policies[0] == XO_PLACE_KIND_COUNT,
               "XO_POLICY_MAP values must be dense from 0");

const xo_policy_ops_t *xo__policy_get(xo_place_kind_t kind)
{
    if ((int)kind < 0 || (int)kind >= XO_PLACE_KIND_COUNT) return NULL;
    return policies[kind];
}

const xo_policy_ops_t *xo__policy_find(const char *name)
{
    if (!name) return NULL;
    for (size_t k = 0; k < XO_PLACE_KIND_COUNT; k++) {
        const xo_policy_ops_t *ops = policies[k];
        if (strcmp(ops->name, name) == 0 || (ops->alias && strcmp(ops->alias, name) == 0)) return ops;
    }
    return NULL;
}
