/* WEIGHTED: the candidate with the highest score, the formula documented at xo_place_weights_t in policy.h. Each
 * term is normalised over the candidates so that it lies in [0, 1] and the weights compare like with like. */
#include <math.h>

#include "policies/policy_impl.h"
#include "base/error.h"

static bool weight_ok(double w) { return isfinite(w) && w >= 0; }

static xo_status_t weighted_choose(const xo_pool_view_t *pools, size_t n, const xo_place_request_t *req,
                                   size_t *chosen_p)
{
    xo_place_weights_t w = req->weights;
    if (!weight_ok(w.mem) || !weight_ok(w.load) || !weight_ok(w.link))
        return xo__error_set(XO_EINVAL, "weighted: weights must be finite and >= 0 (mem %g, load %g, link %g)", w.mem,
                            w.load, w.link);
    if (w.mem == 0 && w.load == 0 && w.link == 0) w = XO_PLACE_WEIGHTS_DEFAULT;

    /* First pass: the normalisers, over candidates only, so that an excluded pool cannot shift the scale. */
    uint64_t max_load = 0;
    double cost_sum = 0, max_cost = 0;
    size_t n_cand = 0, n_known = 0;
    for (size_t i = 0; i < n; i++) {
        const xo_pool_view_t *p = &pools[i];
        if (!xo__pool_passes(p, req)) continue;
        n_cand++;
        if (xo__pool_load(p) > max_load) max_load = xo__pool_load(p);
        if (p->link_cost > 0) {
            n_known++;
            cost_sum += p->link_cost;
            if (p->link_cost > max_cost) max_cost = p->link_cost;
        }
    }
    if (n_cand == 0) return xo__place_explain("weighted", "pool", pools, n, req, NULL, false);
    /* An unknown cost counts as the mean of the known ones: neither favoured nor penalised until bench --tune has
     * measured it. The mean never exceeds the largest, so max_cost stays the normaliser. */
    double unknown_cost = n_known ? cost_sum / (double)n_known : 0;

    size_t best = n;
    double best_score = 0;
    for (size_t i = 0; i < n; i++) {
        const xo_pool_view_t *p = &pools[i];
        if (!xo__pool_passes(p, req)) continue;
        double mem = 0;
        if (p->device_kind != XO_POOL_DEVICE_NONE && p->mem_total)
            mem = (double)xo__pool_free(p) / (double)p->mem_total;
        double load = max_load ? (double)xo__pool_load(p) / (double)max_load : 0;
        double cost = p->link_cost > 0 ? p->link_cost : unknown_cost;
        double link = max_cost > 0 ? cost / max_cost : 0;
        double score = w.mem * mem - w.load * load - w.link * link;
        if (best == n || score > best_score) {
            best = i;
            best_score = score;
        }
    }
    *chosen_p = best;
    return XO_OK;
}

const xo_policy_ops_t xo__policy_weighted = {
    .name = "weighted",
    .alias = NULL,
    .kind = XO_PLACE_WEIGHTED,
    .choose = weighted_choose,
};
