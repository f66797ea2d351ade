/* Data-parallel training over the GPU pools of a running cluster (examples/pipeline.yaml): one Trainer
 * (examples/train_module.c) on each pool labelled produce, transform and reduce, each with its own shard of a
 * linear-regression problem; every step they average their gradients with an allreduce on their pools' devices.
 * Prints each trainer's loss before and after and its distance to the true weights; exits 1 unless every trainer
 * converged to the same place.
 *
 *   xoscar run examples/pipeline.yaml -- build/examples/train_client [STEPS]
 *   (or XO_SECRET=... XO_CLUSTER_MAIN=host:port train_client [STEPS]) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <xoscar/host.h>
#include <xoscar/xoscar.h>

#include "check.h"

int main(int argc, char **argv)
{
    const char *main_address = getenv("XO_CLUSTER_MAIN");
    if (!main_address) {
        fprintf(stderr, "usage: XO_CLUSTER_MAIN=host:port XO_SECRET=... %s [STEPS]   (or: xoscar run FILE -- %s)\n",
                argv[0], argv[0]);
        return 2;
    }
    int steps = argc > 1 ? atoi(argv[1]) : 40;
    const char *labels[3] = {"produce", "transform", "reduce"};
    xo_ref_t *t[3];
    xo_future_t *f[3];
    char group[64];
    snprintf(group, sizeof group, "train.%d", (int)getpid()); /* two clients at once get two groups */
    for (int r = 0; r < 3; r++) {
        xo_placement_t p = {.strategy = "round_robin", .label = labels[r]};
        CHECK(xo_create_actor_placed("Trainer", NULL, main_address, NULL, &p, &t[r]));
    }
    for (int r = 0; r < 3; r++) /* all at once: each waits for the others at the rendezvous and every step */
        CHECK(xo_send(t[r], "train", xo_args("iissidl", r, 3, main_address, group, steps, 1.0, (int64_t)7), &f[r]));
    int rc = 0;
    double errs[3] = {0};
    printf("data-parallel linear regression, 3 trainers x 4096 rows x 16 features, %d steps, gradients averaged by "
           "allreduce\n", steps);
    for (int r = 0; r < 3; r++) {
        xo_result_t *res = NULL;
        xo_status_t st = xo_future_wait(f[r], 60000, &res);
        if (st != XO_OK) {
            fprintf(stderr, "trainer %d: %s: %s\n", r, xo_strerror(st), xo_last_error());
            rc = 1;
            xo_future_free(f[r]);
            continue;
        }
        double first, last, ms;
        xo_str_t backend;
        CHECK(xo_result_unpack(res, "[dddsd]", &first, &last, &errs[r], &backend, &ms));
        printf("  trainer %d in %s: mse %.4f -> %.6f, |w - w*| = %.5f, allreduce backend %.*s, %.1f ms\n", r,
               xo_ref_address(t[r]), first, last, errs[r], (int)backend.len, backend.ptr, ms);
        if (!(last < 1e-3 && errs[r] < 1e-2)) rc = 1;
        xo_result_free(res);
        xo_future_free(f[r]);
    }
    if (rc == 0 && (fabs(errs[0] - errs[1]) > 1e-12 || fabs(errs[0] - errs[2]) > 1e-12)) rc = 1; /* one model */
    printf("%s\n", rc == 0 ? "converged: every trainer holds the same weights" : "DID NOT CONVERGE");
    for (int r = 0; r < 3; r++) {
        xo_destroy_actor(t[r]);
        xo_ref_free(t[r]);
    }
    return rc;
}
