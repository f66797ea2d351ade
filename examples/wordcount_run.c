#include "wordcount_run.h"

#include <string.h>

size_t wordcount_run(xo_ref_t *const *mappers, size_t n_mappers, const xo_ref_t *reducer, char *text, size_t len,
                     int k)
{
    size_t chunk = len / 8 + 1, n = 0;
    xo_future_t *futs[64];
    for (size_t start = 0; start < len && n < 64;) {
        size_t end = start + chunk < len ? start + chunk : len;
        while (end < len && text[end] != ' ' && text[end] != '\n') end++;
        char saved = text[end];
        text[end] = '\0';
        CHECK(xo_send(mappers[n % n_mappers], "count", xo_args("s", text + start), &futs[n]));
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
    CHECK(xo_call(reducer, "top", xo_args("i", k), 5000, &r));
    const msgpack_object *top = xo_result_value(r);
    printf("%lld words in %zu chunks, counted by %zu mappers; top words:", (long long)total, n, n_mappers);
    for (uint32_t i = 0; i < top->via.array.size; i++) {
        const msgpack_object *e = top->via.array.ptr[i].via.array.ptr;
        printf(" %.*s=%lld", (int)e[0].via.str.size, e[0].via.str.ptr, (long long)e[1].via.i64);
    }
    printf("\n");
    xo_result_free(r);
    return n;
}
