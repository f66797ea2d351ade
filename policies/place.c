/* xo__place: checks the arguments once, so that each policy can trust them, then dispatches on the kind. Also the
 * helpers the policies share: filters, the random draw, and the text explaining an empty candidate list. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "policies/policy_impl.h"
#include "base/error.h"

bool xo__str_eq(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : "") == 0; }

bool xo__pool_has_label(const xo_pool_view_t *p, const char *label)
{
    for (size_t i = 0; i < p->n_labels; i++)
        if (p->labels[i] && strcmp(p->labels[i], label) == 0) return true;
    return false;
}

uint64_t xo__pool_free(const xo_pool_view_t *p)
{
    if (p->device_kind == XO_POOL_DEVICE_NONE) return 0;
    /* A free figure above the total is a stale report racing a newer one; trust the total. */
    if (p->mem_total && p->mem_free > p->mem_total) return p->mem_total;
    return p->mem_free;
}

bool xo__pool_fits(const xo_pool_view_t *p, uint64_t need)
{
    return p->device_kind != XO_POOL_DEVICE_NONE && xo__pool_free(p) >= need;
}

bool xo__pool_passes(const xo_pool_view_t *p, const xo_place_request_t *req)
{
    if (req->label && !xo__pool_has_label(p, req->label)) return false;
    if (req->mem_bytes && !xo__pool_fits(p, req->mem_bytes)) return false;
    return true;
}

bool xo__pool_holds_mark(const xo_pool_view_t *p, const char *label, const char *mark)
{
    for (size_t i = 0; i < p->n_idle_marks; i++)
        if (xo__str_eq(p->idle_marks[i].label, label) && xo__str_eq(p->idle_marks[i].mark, mark)) return true;
    return false;
}

uint64_t xo__pool_load(const xo_pool_view_t *p)
{
    uint64_t sum = p->n_actors + p->n_queued;
    if (sum < p->n_actors) return UINT64_MAX;
    uint64_t all = sum + p->n_busy;
    return all < sum ? UINT64_MAX : all;
}

/* splitmix64's output function: a fixed bijection that spreads consecutive seeds over the whole range. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t xo__place_seed_next(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ULL;
    return mix64(*state);
}

size_t xo__place_draw(uint64_t seed, size_t m)
{
    /* Multiply-shift maps the 64-bit hash onto [0, m); the bias is below m / 2^64, far under anything a pool
     * count can show. */
    return (size_t)(((unsigned __int128)mix64(seed) * (uint64_t)m) >> 64);
}

static bool candidate(const xo_pool_view_t *p, const xo_place_request_t *req, xo__pool_pred_fn pred)
{
    return (!pred || pred(p, req)) && xo__pool_passes(p, req);
}

xo_status_t xo__place_random(const char *policy, const char *noun, const xo_pool_view_t *pools, size_t n,
                             const xo_place_request_t *req, xo__pool_pred_fn pred, size_t *chosen_p)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) m += candidate(&pools[i], req, pred);
    if (m == 0) return xo__place_explain(policy, noun, pools, n, req, pred, false);
    /* Two passes instead of an index array: no allocation, and pool lists are short. */
    size_t k = xo__place_draw(req->seed, m);
    for (size_t i = 0; i < n; i++) {
        if (!candidate(&pools[i], req, pred)) continue;
        if (k-- == 0) {
            *chosen_p = i;
            return XO_OK;
        }
    }
    return xo__error_set(XO_EINVAL, "%s: candidate list changed during the call", policy);
}

xo_status_t xo__place_explain(const char *policy, const char *noun, const xo_pool_view_t *pools, size_t n,
                              const xo_place_request_t *req, xo__pool_pred_fn pred, bool need_device)
{
    size_t n_pred = 0, n_label = 0;
    for (size_t i = 0; i < n; i++) {
        if (pred && !pred(&pools[i], req)) continue;
        n_pred++;
        if (!req->label || xo__pool_has_label(&pools[i], req->label)) n_label++;
    }
    if (n_pred == 0) return xo__error_set(XO_ENOSLOT, "%s: no %s among the %zu pools", policy, noun, n);
    if (n_label == 0) return xo__error_set(XO_ENOSLOT, "%s: no %s has label \"%s\"", policy, noun, req->label);

    /* Only memory is left to blame. Report the best there is so the operator sees how far off the request is. */
    const xo_pool_view_t *best = NULL;
    for (size_t i = 0; i < n; i++) {
        const xo_pool_view_t *p = &pools[i];
        if ((pred && !pred(p, req)) || (req->label && !xo__pool_has_label(p, req->label))) continue;
        if (p->device_kind == XO_POOL_DEVICE_NONE) continue;
        if (!best || xo__pool_free(p) > xo__pool_free(best)) best = p;
    }
    char with_label[XO_ERROR_TEXT_MAX / 2] = "";
    if (req->label) snprintf(with_label, sizeof with_label, " with label \"%s\"", req->label);
    if (!best) {
        if (req->mem_bytes)
            return xo__error_set(XO_ENOSLOT, "%s: no %s%s has %" PRIu64 " bytes free (none has a device)", policy,
                                noun, with_label, req->mem_bytes);
        return xo__error_set(XO_ENOSLOT, "%s: no %s%s has a device", policy, noun, with_label);
    }
    if (req->mem_bytes || need_device)
        return xo__error_set(XO_ENOSLOT, "%s: no %s%s has %" PRIu64 " bytes free (largest free: %" PRIu64 " on %s)",
                            policy, noun, with_label, req->mem_bytes, xo__pool_free(best), best->address);
    /* Unreachable when the caller is right: some pool passed every condition. Say so rather than invent a reason. */
    return xo__error_set(XO_ENOSLOT, "%s: no eligible %s", policy, noun);
}

static xo_status_t check_view(const xo_pool_view_t *p, size_t i, size_t n_near)
{
    if (!p->address) return xo__error_set(XO_EINVAL, "placement: pool %zu has no address", i);
    if (p->n_labels && !p->labels)
        return xo__error_set(XO_EINVAL, "placement: pool %s has %zu labels but no label array", p->address,
                            p->n_labels);
    if (p->n_idle_marks && !p->idle_marks)
        return xo__error_set(XO_EINVAL, "placement: pool %s has %zu idle marks but no mark array", p->address,
                            p->n_idle_marks);
    switch (p->device_kind) {
    case XO_POOL_DEVICE_NONE:
    case XO_POOL_DEVICE_HOST:
    case XO_POOL_DEVICE_CUDA:
        break;
    default:
        return xo__error_set(XO_EINVAL, "placement: pool %s has unknown device kind %d", p->address,
                            (int)p->device_kind);
    }
    for (size_t k = 0; p->near_cost && k < n_near; k++) {
        const xo_pair_cost_t *c = &p->near_cost[k];
        if (!isfinite(c->latency_us) || c->latency_us < 0 || !isfinite(c->bandwidth) || c->bandwidth < 0)
            return xo__error_set(XO_EINVAL,
                                "placement: pool %s has pair cost %g us, %g B/s to near peer %zu (want finite "
                                "values >= 0)", p->address, c->latency_us, c->bandwidth, k);
    }
    return XO_OK;
}

xo_status_t xo__place(const xo_pool_view_t *pools, size_t n, const xo_place_request_t *req, size_t *chosen_p)
{
    if (!req) return xo__error_set(XO_EINVAL, "placement: no request");
    if (!chosen_p) return xo__error_set(XO_EINVAL, "placement: no place for the result");
    const xo_policy_ops_t *ops = xo__policy_get(req->kind);
    if (!ops) return xo__error_set(XO_EINVAL, "placement: unknown placement kind %d", (int)req->kind);
    if (n == 0) return xo__error_set(XO_ENOSLOT, "%s: no pools to choose from", ops->name);
    if (!pools) return xo__error_set(XO_EINVAL, "%s: %zu pools but no pool array", ops->name, n);
    if (req->n_near && !req->near)
        return xo__error_set(XO_EINVAL, "%s: %zu near peers but no near array", ops->name, req->n_near);
    for (size_t i = 0; i < n; i++) {
        xo_status_t st = check_view(&pools[i], i, req->n_near);
        if (st != XO_OK) return st;
    }
    size_t chosen = n;
    xo_status_t st = ops->choose(pools, n, req, &chosen);
    if (st != XO_OK) return st;
    if (chosen >= n) /* a policy bug; refuse it here rather than index out of bounds in the caller */
        return xo__error_set(XO_EINVAL, "%s: chose pool %zu of %zu", ops->name, chosen, n);
    *chosen_p = chosen;
    return XO_OK;
}
