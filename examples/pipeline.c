/* A device pipeline over three pools, from a program: a host with three sub pools, each owning a device (the host
 * device: device memory that is host memory, so it runs on any machine), one stage per pool. The producer's buffer
 * is lent to the transform stage and then to the reduce stage in other processes: it is never copied between them.
 * The result is checked against a CPU reference. examples/pipeline_client.c is the same on a cluster from a file
 * (`xoscar up examples/pipeline.yaml`), where the pools own a GPU when there is one.
 *
 *   pipeline_demo PIPELINE_MODULE.so [N] */
#include <stdio.h>
#include <stdlib.h>

#include <xoscar/host.h>
#include <xoscar/xoscar.h>

#include "check.h"
#include "pipeline_run.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODULE.so [N]\n", argv[0]);
        return 2;
    }
    int64_t n = argc > 2 ? atoll(argv[2]) : 1 << 20;
    const char *modules[] = {argv[1]};
    xo_sub_pool_config_t subs[3];
    for (int i = 0; i < 3; i++) subs[i] = (xo_sub_pool_config_t){.device = "host:0", .device_capacity = 64u << 20};
    xo_host_config_t cfg = {.n_sub_pools = 3, .sub_pools = subs, .modules = modules, .n_modules = 1};
    xo_host_t *host;
    CHECK(xo_host_start(&cfg, &host));
    const char *stages[3][2] = {{"Producer", "producer"}, {"Transform", "transform"}, {"Reduce", "reduce"}};
    xo_ref_t *refs[3];
    for (int i = 0; i < 3; i++) {
        xo_placement_t p = {.strategy = "process_index", .process_index = (size_t)i + 1};
        CHECK(xo_host_create_actor(host, stages[i][0], NULL, stages[i][1], &p, &refs[i]));
    }
    int rc = pipeline_run(refs[0], xo_host_address(host), "transform", "reduce", n, 3.0);
    for (int i = 0; i < 3; i++) xo_ref_free(refs[i]);
    xo_host_stop(host);
    return rc;
}
