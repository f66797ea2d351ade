/* Internal to policies/: the policy tables and the helpers they share. Same contract as policy.h: pure, thread-safe,
 * no allocation; a helper that fails sets the error text and returns the status. */
#ifndef XO_POLICIES_POLICY_IMPL_H
#define XO_POLICIES_POLICY_IMPL_H

#include <stdbool.h>

#include "policies/policy.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One table per policy, defined in policies/<name>.c. */
#define XO_POLICY_DECLARE_(kind, value, name) extern const xo_policy_ops_t xo__policy_##name;
XO_POLICY_MAP(XO_POLICY_DECLARE_)
#undef XO_POLICY_DECLARE_

/* A policy-specific condition on a pool, on top of the request's filters (e.g. "is a sub pool"). */
typedef bool (*xo__pool_pred_fn)(const xo_pool_view_t *p, const xo_place_request_t *req);

/* a and b equal, NULL counting as "". */
bool xo__str_eq(const char *a, const char *b);

/* The pool carries that label. */
bool xo__pool_has_label(const xo_pool_view_t *p, const char *label);

/* The pool has a device with at least `need` bytes free (need may be 0: then "has a device"). */
bool xo__pool_fits(const xo_pool_view_t *p, uint64_t need);

/* The pool passes the request's filters: req->label (when set) and req->mem_bytes (when not 0). */
bool xo__pool_passes(const xo_pool_view_t *p, const xo_place_request_t *req);

/* The pool lists the IdleLabel pair (label, mark). */
bool xo__pool_holds_mark(const xo_pool_view_t *p, const char *label, const char *mark);

/* Actors plus queued requests plus busy threads, saturating. */
uint64_t xo__pool_load(const xo_pool_view_t *p);

/* mem_free, clamped to mem_total when that is known; 0 for a pool without a device. */
uint64_t xo__pool_free(const xo_pool_view_t *p);

/* A uniform index in [0, m) from a seed; m > 0. The same seed and m give the same index. */
size_t xo__place_draw(uint64_t seed, size_t m);

/* Chooses uniformly with req->seed among the pools that satisfy pred (NULL: any) and pass the request's filters;
 * when there is none, explains why as xo__place_explain does. */
xo_status_t xo__place_random(const char *policy, const char *noun, const xo_pool_view_t *pools, size_t n,
                             const xo_place_request_t *req, xo__pool_pred_fn pred, size_t *chosen_p);

/* Called when no pool satisfies pred (NULL: any) and the request's filters (plus, with need_device, having a
 * device): sets a text naming the first condition that left no pool, then returns XO_ENOSLOT. The conditions are
 * checked in the order pred, label, memory; `noun` names what pred selects ("pool", "sub pool"). For memory the
 * text gives the largest free amount among the pools that passed pred and label, and its pool's address. */
xo_status_t xo__place_explain(const char *policy, const char *noun, const xo_pool_view_t *pools, size_t n,
                              const xo_place_request_t *req, xo__pool_pred_fn pred, bool need_device);

#ifdef __cplusplus
}
#endif
#endif
