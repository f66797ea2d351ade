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

#define CHECK(expr)                                                                                  \
    do {                                                                                             \
        xo_status_t st_ = (expr);                                                                    \
        if (st_ != XO_OK) {                                                                          \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #expr, xo_status_name(st_), \
                    xo_last_error());                                                                \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)

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

    size_t chunk = len / 8 + 1, n = 0;
    xo_future_t *futs[64];
    for (size_t start = 0; start < len && n < 64;) {
        size_t end = start + chunk < len ? start + chunk : len;
        while (end < len && text[end] != ' ' && text[end] != '\n') end++;
        char saved = text[end];
        text[end] = '\0';
        CHECK(xo_send(mappers[n % 2], "count", xo_args("s", text + start), &futs[n]));
        text[end] = saved;
        n++;
        start = end;
    }
    for (size_t i = 0; i < n; i++) {
        xo_result_t *counts;
        CHECK(xo_future_wait(futs[i], 10000, &counts));
        CHECK(xo_call(reducer, "merge", xo_args("o", xo_result_value(counts)), 10000, NULL));
        xo_result_free(counts);
        xo_future_free(futs[i]);
    }
    xo_result_t *r;
    int64_t total;
    CHECK(xo_call(reducer, "total", NULL, 5000, &r));
    xo_result_unpack(r, "l", &total);
    xo_result_free(r);
    CHECK(xo_call(reducer, "top", xo_args("i", 8), 5000, &r));
    const msgpack_object *top = xo_result_value(r);
    printf("%s: %lld words in %zu chunks, counted by 2 mappers in 2 sub pool processes; top words:\n", argv[1],
           (long long)total, n);
    for (uint32_t i = 0; i < top->via.array.size; i++) {
        const msgpack_object *e = top->via.array.ptr[i].via.array.ptr;
        printf("  %-12.*s %lld\n", (int)e[0].via.str.size, e[0].via.str.ptr, (long long)e[1].via.i64);
    }
    xo_result_free(r);
    for (int i = 0; i < 2; i++) {
        CHECK(xo_destroy_actor(mappers[i]));
        xo_ref_free(mappers[i]);
    }
    CHECK(xo_destroy_actor(reducer));
    xo_ref_free(reducer);
    return 0;
}
