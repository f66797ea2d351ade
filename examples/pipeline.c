/* A device pipeline over three pools: a host with three sub pools, each owning a device (the host device: device
 * memory that is host memory, so it runs on any machine), one stage per pool. The producer's buffer is lent to the
 * transform stage and then to the reduce stage in other processes: it is never copied between them. The result is
 * checked against a CPU reference.
 *
 *   pipeline MODULE.so [N] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <xoscar/host.h>
#include <xoscar/xoscar.h>

#include "check.h"


int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODULE.so [N]\n", argv[0]);
        return 2;
    }
    int64_t n = argc > 2 ? atoll(argv[2]) : 1 << 20;
    const double a = 3.0;
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
    xo_result_t *r;
    CHECK(xo_call(refs[0], "run", xo_args("lds", n, a, xo_host_address(host)), 30000, &r));
    double sum;
    xo_str_t p0, p1, p2;
    CHECK(xo_result_unpack(r, "[dsss]", &sum, &p0, &p1, &p2));
    /* CPU reference: sum of a*i + 1 over i < n, in the same float arithmetic */
    double ref = 0;
    for (int64_t i = 0; i < n; i++) ref += (float)(a * (float)i + 1.0f);
    printf("pipeline over %lld floats: produced in %.*s, transformed (y = %.0f*x + 1) in %.*s, reduced in %.*s\n",
           (long long)n, (int)p0.len, p0.ptr, a, (int)p1.len, p1.ptr, (int)p2.len, p2.ptr);
    printf("sum %.6e, CPU reference %.6e: %s\n", sum, ref, fabs(sum - ref) <= 1e-6 * fabs(ref) ? "match" : "MISMATCH");
    int ok = fabs(sum - ref) <= 1e-6 * fabs(ref);
    xo_result_free(r);
    for (int i = 0; i < 3; i++) xo_ref_free(refs[i]);
    xo_host_stop(host);
    return ok ? 0 : 1;
}
