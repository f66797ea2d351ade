/* libFuzzer target for the tune profile parser (cluster/profile.c). Build and run: README.md.
 *
 * Besides "no crash, no leak, no undefined behaviour" (the sanitizers), it checks what must hold for every input:
 *   - a refused input gets XO_ECONFIG (or XO_ENOMEM), a "fuzz.json:LINE:COLUMN: " text in err that is also
 *     xo_last_error(), a line and column inside the input, and nothing in p;
 *   - an accepted one writes a profile that loads back and writes the same text again. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/profile.h"
#include "xoscar/xoscar.h"

#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (!(cond)) {                                                \
            fprintf(stderr, "profile_fuzz: %s failed: ", #cond);      \
            fprintf(stderr, __VA_ARGS__);                             \
            fputc('\n', stderr);                                      \
            abort();                                                  \
        }                                                             \
    } while (0)

static char *written(const xo_profile_t *p)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL, "open_memstream");
    CHECK(xo__profile_write(p, f) == XO_OK, "write");
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    size_t lines = 1;
    for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
    xo_profile_t *p = (xo_profile_t *)(uintptr_t)1;
    xo_cluster_error_t err = {0};
    xo_status_t st = xo__profile_load_string((const char *)data, size, "fuzz.json", &p, &err);
    if (st != XO_OK) {
        CHECK(p == (xo_profile_t *)(uintptr_t)1, "p set on error");
        CHECK(st == XO_ECONFIG || st == XO_ENOMEM, "status %d", st);
        CHECK(err.status == st, "err.status %d, returned %d", err.status, st);
        CHECK(!strncmp(err.text, "fuzz.json:", 10), "text '%s'", err.text);
        CHECK(!strcmp(err.text, xo_last_error()), "err '%s', last '%s'", err.text, xo_last_error());
        CHECK(st != XO_ECONFIG || (err.line > 0 && (size_t)err.line <= lines + 1), "line %d of %zu: '%s'", err.line,
              lines, err.text);
        return 0;
    }
    char *first = written(p);
    xo_profile_t *q = NULL;
    st = xo__profile_load_string(first, strlen(first), "fuzz.json", &q, &err);
    CHECK(st == XO_OK, "the written profile does not load back: %s\n--- written:\n%s", err.text, first);
    char *second = written(q);
    CHECK(!strcmp(first, second), "the profile changed on reload:\n--- first:\n%s--- second:\n%s", first, second);
    free(first);
    free(second);
    xo__profile_free(q);
    xo__profile_free(p);
    return 0;
}
