/* IDLE_LABEL (Xoscar IdleLabel): the first pool carrying req->label that holds no actor created with the same
 * (label, mark), for "one actor of this kind per slot". The caller records the pair on the chosen pool's view (its
 * allocation table reserves the slot) before the next placement, which is what makes two placements in a row land
 * on two pools. */
#include "policies/policy_impl.h"
#include "base/error.h"

static bool is_idle(const xo_pool_view_t *p, const xo_place_request_t *req)
{
    return !xo__pool_holds_mark(p, req->label, req->mark);
}

static xo_status_t idle_label_choose(const xo_pool_view_t *pools, size_t n, const xo_place_request_t *req,
                                     size_t *chosen_p)
{
    if (!req->label) return xo__error_set(XO_EINVAL, "idle_label: the request names no label");
    size_t n_label = 0, n_idle = 0;
    for (size_t i = 0; i < n; i++) {
        if (!xo__pool_has_label(&pools[i], req->label)) continue;
        n_label++;
        if (!is_idle(&pools[i], req)) continue;
        n_idle++;
        if (xo__pool_passes(&pools[i], req)) {
            *chosen_p = i;
            return XO_OK;
        }
    }
    /* Xoscar raises NoIdleSlot both when no pool has the label and when every one is taken. */
    const char *mark = req->mark ? req->mark : "";
    if (n_label == 0)
        return xo__error_set(XO_ENOIDLESLOT, "idle_label: no pool has label \"%s\" (mark \"%s\")", req->label, mark);
    if (n_idle == 0)
        return xo__error_set(XO_ENOIDLESLOT,
                            "idle_label: no idle slot for label \"%s\" mark \"%s\": all %zu pools with the label "
                            "hold one",
                            req->label, mark, n_label);
    /* Idle slots exist, but none has the memory asked for. */
    return xo__place_explain("idle_label", "idle pool", pools, n, req, is_idle, false);
}

const xo_policy_ops_t xo__policy_idle_label = {
    .name = "idle_label",
    .alias = "IdleLabel",
    .kind = XO_PLACE_IDLE_LABEL,
    .choose = idle_label_choose,
};
