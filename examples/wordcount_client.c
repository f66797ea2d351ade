/* A client of a running cluster (see examples/cluster.yaml): places word-count mappers in the sub pools labelled
 * "mapper" through the main pool's placement service, a reducer in the main pool, counts a text across them and
 * prints the result. It only needs the main pool's address and the cluster secret:
 *
 *   xoscar run examples/cluster.yaml -- build/examples/wordcount_client FILE
 *   (or XO_SECRET=... XO_CLUSTER_MAIN=host:port wordcount_client FILE) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xoscar/host.h>
#include <xoscar/xoscar.h>

#include "wordcount_run.h"


int main(int argc, char **argv)
{
    const char *main_address = getenv("XO_CLUSTER_MAIN");
    if (argc < 2 || !main_address) {
        fprintf(stderr, "usage: XO_CLUSTER_MAIN=host:port XO_SECRET=... %s FILE\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';

    xo_placement_t on_mappers = {.strategy = "round_robin", .label = "mapper"};
    xo_placement_t on_main = {.strategy = "main_pool"};
    xo_ref_t *mappers[2], *reducer;
    for (int i = 0; i < 2; i++)
        CHECK(xo_create_actor_placed("Mapper", NULL, main_address, NULL, &on_mappers, &mappers[i]));
    CHECK(xo_create_actor_placed("Reducer", NULL, main_address, NULL, &on_main, &reducer));
    for (int i = 0; i < 2; i++) {
        xo_result_t *r;
        int pid;
        CHECK(xo_call(mappers[i], "pid", NULL, 5000, &r));
        xo_result_unpack(r, "i", &pid);
        xo_result_free(r);
        printf("mapper %d placed in %s (pid %d)\n", i, xo_ref_address(mappers[i]), pid);
    }
    printf("reducer placed in %s\n", xo_ref_address(reducer));

    printf("%s: ", argv[1]);
    wordcount_run(mappers, 2, reducer, text, len, 8);
    for (int i = 0; i < 2; i++) {
        CHECK(xo_destroy_actor(mappers[i]));
        xo_ref_free(mappers[i]);
    }
    CHECK(xo_destroy_actor(reducer));
    xo_ref_free(reducer);
    return 0;
}
