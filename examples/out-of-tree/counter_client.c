/* A client of a running cluster: creates a Counter in a sub pool through the main pool's placement, adds to it,
 * and checks the sum. Run it with the cluster's address and secret in its environment:
 *   xoscar run cluster.yaml -- ./counter_client */
#include <stdio.h>
#include <stdlib.h>

#include <xoscar/host.h>
#include <xoscar/xoscar.h>

static int fail(const char *what, xo_status_t st)
{
    fprintf(stderr, "counter_client: %s: %s (%s)\n", what, xo_status_name(st), xo_last_error());
    return 1;
}

int main(void)
{
    const char *main_address = getenv("XO_CLUSTER_MAIN");
    if (!main_address) {
        fprintf(stderr, "counter_client: XO_CLUSTER_MAIN is not set (run it with `xoscar run FILE -- ...`)\n");
        return 2;
    }
    xo_placement_t in_a_sub_pool = {.strategy = "round_robin"};
    xo_ref_t *counter = NULL;
    xo_status_t st = xo_create_actor_placed("Counter", xo_args("l", (int64_t)40), main_address, NULL,
                                            &in_a_sub_pool, &counter);
    if (st != XO_OK) return fail("create", st);
    xo_result_t *res = NULL;
    st = xo_call(counter, "add", xo_args("l", (int64_t)2), 5000, &res);
    if (st != XO_OK) return fail("add", st);
    int64_t value = 0;
    st = xo_result_unpack(res, "l", &value);
    xo_result_free(res);
    if (st != XO_OK) return fail("the result of add", st);
    printf("Counter in %s: %lld\n", xo_ref_address(counter), (long long)value);
    st = xo_destroy_actor(counter);
    xo_ref_free(counter);
    if (st != XO_OK) return fail("destroy", st);
    return value == 42 ? 0 : 1;
}
