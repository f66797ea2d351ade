/* The device pipeline on a running cluster (examples/pipeline.yaml): three sub pools labelled produce, transform
 * and reduce, each owning a device (`device: auto`: a GPU where `xoscar up` found one, else the host device). The
 * stages are placed by label through the main pool's placement service; the producer's buffer is lent to the
 * transform stage and then to the reduce stage (imported, not copied, in their processes), and the sum is checked
 * against a CPU reference. Then the same SAXPY and sum, and a tiled matrix multiply, over Kernels actors on the same
 * pools with device buffers between them (upload, saxpy_buf, sum_buf, matmul_buf, download), checked against the
 * CPU. Exits 1 on a mismatch or a failure.
 *
 *   xoscar run examples/pipeline.yaml -- build/examples/pipeline_client [N]
 *   (or XO_SECRET=... XO_CLUSTER_MAIN=host:port pipeline_client [N]) */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <xoscar/host.h>
#include <xoscar/xoscar.h>

#include "check.h"
#include "pipeline_run.h"

int main(int argc, char **argv)
{
    const char *main_address = getenv("XO_CLUSTER_MAIN");
    if (!main_address) {
        fprintf(stderr, "usage: XO_CLUSTER_MAIN=host:port XO_SECRET=... %s [N]   (or: xoscar run FILE -- %s)\n",
                argv[0], argv[0]);
        return 2;
    }
    int64_t n = argc > 1 ? atoll(argv[1]) : 1 << 20;
    /* One stage per labelled pool. The producer finds the others by uid through the main pool; the uids carry this
     * process's id, so that two clients (or one that died before cleaning up) do not collide. */
    const char *stages[3][2] = {{"Producer", "produce"}, {"Transform", "transform"}, {"Reduce", "reduce"}};
    char uids[3][64];
    xo_ref_t *refs[3], *kernels[3];
    for (int i = 0; i < 3; i++) {
        snprintf(uids[i], sizeof uids[i], "pipeline.%s.%d", stages[i][1], (int)getpid());
        xo_placement_t p = {.strategy = "round_robin", .label = stages[i][1]};
        CHECK(xo_create_actor_placed(stages[i][0], NULL, main_address, uids[i], &p, &refs[i]));
    }
    int rc = pipeline_run(refs[0], main_address, uids[1], uids[2], n, 3.0);
    /* Kernels actors with no create arguments use their pool's device. */
    for (int i = 0; i < 3; i++) {
        xo_placement_t p = {.strategy = "round_robin", .label = stages[i][1]};
        CHECK(xo_create_actor_placed("Kernels", NULL, main_address, NULL, &p, &kernels[i]));
    }
    rc |= pipeline_kernels_saxpy_check(kernels, n, 3.0);
    rc |= pipeline_matmul_check(kernels, 100, 70, 90);
    for (int i = 0; i < 3; i++) {
        CHECK(xo_destroy_actor(refs[i]));
        CHECK(xo_destroy_actor(kernels[i]));
        xo_ref_free(refs[i]);
        xo_ref_free(kernels[i]);
    }
    return rc;
}
