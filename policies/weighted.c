/* WEIGHTED: the candidate with the highest score, the formula documented at xo_place_weights_t in policy.h. Each
 * term is normalised over the candidates so that it lies in [0, 1] and the weights compare like with like.
 *
 * The link term is the measured cost of reaching the new actor's near peers from each candidate:
 *   c_ik    = latency_us_ik + bytes_k / bandwidth_ik * 1e6     (microseconds per call to peer k)
 *   cost_i  = sum over k of c_ik   (an unknown pair: the mean c_k of the candidates that know peer k)
 *   link_i  = cost_i / max over candidates of cost_i
 *   score_i = mem * mem_i - load * load_i - link * link_i
 *
 * Worked example (tests/policies/policy_test.cc, WeightedPolicy.WorkedExampleFromTheComment). The new actor calls
 * peer A with 16 MiB per call. Pool 1 is on A's host (shm: 10 us, 2 GB/s) and holds 3 actors; pool 2 is on another
 * host behind a slowed link (2000 us, 25 MB/s, i.e. 200 Mbit/s) and holds 1. Neither has a device (mem_i = 0).
 *   c_1 = 10 + 16777216 / 2e9 * 1e6  =   8398.6 us        link_1 = 8398.6 / 673088.6 = 0.0125
 *   c_2 = 2000 + 16777216 / 25e6 * 1e6 = 673088.6 us      link_2 = 1
 *   load_1 = 3 / 3 = 1                                    load_2 = 1 / 3 = 0.333
 *   weights (1, 1, 1): score_1 = -1 - 0.0125 = -1.0125    score_2 = -0.333 - 1 = -1.333   -> pool 1
 *   weights (1, 3, 1): score_1 = -3 - 0.0125 = -3.0125    score_2 = -1 - 1 = -2           -> pool 2
 * Nearness wins until idleness is weighed three times as much: the weights say how much a unit of each is worth.
 *
 * Direction. c_ik is read from the pair (i, k): the new actor calls peer k. An inbound hint (xo_place_near_t.inbound,
 * `:in`) reads the pair (k, i) instead: the peer calls the new actor, as the previous stage of a pipeline does.
 *
 * Device buffers. A near hint may say that its bytes are device buffers lent to the peer (xo_near_t.device_buf,
 * `--near UID:BYTES:dev`, a third element `true` in the service's near list). Its bandwidth_ik is then the pair's
 * device-buffer bandwidth from the profile (version 2: the hand-over by the way the runtime took, device IPC
 * between processes of a host, staging otherwise), not the host-payload one; a pair measured without device
 * figures counts as unknown (the mean, as above), never as its host figure. The formula is unchanged: the caller
 * (xo__profile_fill_costs) picks which bandwidth goes in. Worked example (tests/cluster/profile_test.cc,
 * Profile.DeviceBufferHintMovesTheWeightedChoice): 16 MiB to peer P; pool A reaches P at 4 GB/s for host payloads
 * but stages device buffers at 0.7 GB/s; pool B reaches P at 1 GB/s, and maps P's device memory (ipc, 50 GB/s).
 *   host bytes:    c_A = 10 + 16777216 / 4e9 * 1e6 = 4204 us      c_B = 10 + 16777216 / 1e9 * 1e6 = 16787 us -> A
 *   device bytes:  c_A = 10 + 16777216 / 7e8 * 1e6 = 23978 us     c_B = 10 + 16777216 / 5e10 * 1e6 = 346 us  -> B */
#include <math.h>

#include "policies/policy_impl.h"
#include "base/error.h"

static bool weight_ok(double w) { return isfinite(w) && w >= 0; }

/* The cost of one call from pool p to near peer k, microseconds; false when the profile does not know the pair. */
static bool pair_cost(const xo_pool_view_t *p, const xo_place_request_t *req, size_t k, double *cost)
{
    if (!p->near_cost) return false;
    const xo_pair_cost_t *c = &p->near_cost[k];
    uint64_t bytes = req->near[k].bytes;
    if (c->latency_us == 0 && c->bandwidth == 0) return false;
    if (bytes && c->bandwidth == 0) return false; /* latency alone would undercount a pair that moves data */
    *cost = c->latency_us + (bytes ? (double)bytes / c->bandwidth * 1e6 : 0);
    return true;
}

/* cost_i of the formula above, with mean[k] standing in for the pairs p's view does not know. */
static double near_total(const xo_pool_view_t *p, const xo_place_request_t *req, const double *mean)
{
    double sum = 0, c;
    for (size_t k = 0; k < req->n_near; k++) sum += pair_cost(p, req, k, &c) ? c : mean[k];
    return sum;
}

/* Peers are few (a new actor names the handful it talks to); a bound keeps the means on the stack. */
#define MAX_NEAR 64

static xo_status_t weighted_choose(const xo_pool_view_t *pools, size_t n, const xo_place_request_t *req,
                                   size_t *chosen_p)
{
    xo_place_weights_t w = req->weights;
    if (!weight_ok(w.mem) || !weight_ok(w.load) || !weight_ok(w.link))
        return xo__error_set(XO_EINVAL, "weighted: weights must be finite and >= 0 (mem %g, load %g, link %g)", w.mem,
                            w.load, w.link);
    if (w.mem == 0 && w.load == 0 && w.link == 0) w = XO_PLACE_WEIGHTS_DEFAULT;
    if (req->n_near > MAX_NEAR)
        return xo__error_set(XO_EINVAL, "weighted: %zu near peers, at most %d", req->n_near, MAX_NEAR);

    /* The mean known cost of each peer over the candidates: an unknown pair is neither favoured nor penalised. */
    double mean[MAX_NEAR] = {0};
    for (size_t k = 0; k < req->n_near; k++) {
        double sum = 0, c;
        size_t known = 0;
        for (size_t i = 0; i < n; i++)
            if (xo__pool_passes(&pools[i], req) && pair_cost(&pools[i], req, k, &c)) {
                sum += c;
                known++;
            }
        mean[k] = known ? sum / (double)known : 0;
    }

    /* The normalisers, over candidates only, so that an excluded pool cannot shift the scale. */
    uint64_t max_load = 0;
    double max_cost = 0;
    size_t n_cand = 0;
    for (size_t i = 0; i < n; i++) {
        const xo_pool_view_t *p = &pools[i];
        if (!xo__pool_passes(p, req)) continue;
        n_cand++;
        if (xo__pool_load(p) > max_load) max_load = xo__pool_load(p);
        double cost = near_total(p, req, mean);
        if (cost > max_cost) max_cost = cost;
    }
    if (n_cand == 0) return xo__place_explain("weighted", "pool", pools, n, req, NULL, false);

    size_t best = n;
    double best_score = 0;
    for (size_t i = 0; i < n; i++) {
        const xo_pool_view_t *p = &pools[i];
        if (!xo__pool_passes(p, req)) continue;
        double mem = 0;
        if (p->device_kind != XO_POOL_DEVICE_NONE && p->mem_total)
            mem = (double)xo__pool_free(p) / (double)p->mem_total;
        double load = max_load ? (double)xo__pool_load(p) / (double)max_load : 0;
        double link = max_cost > 0 ? near_total(p, req, mean) / max_cost : 0;
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
