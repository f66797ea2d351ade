/* libFuzzer target for the cluster file parser (cluster/cluster_file.c, cluster_host.c). Build and run: README.md.
 *
 * Besides "no crash, no leak, no undefined behaviour" (the sanitizers), it checks what must hold for every input:
 *   - a refused input gets its status and a "fuzz.yaml:..." text in err, the same text as xo_last_error(), and
 *     nothing in c;
 *   - an accepted one dumps to a file that loads back and dumps to the same text (with an inline secret put back
 *     in place of the "***" the dump writes), every host is found by its name, and every host either gets an
 *     xo_host_config_t on an 8-core topology or an error with a text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster_file.h"
#include "xoscar/xoscar.h"

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "cluster_file_fuzz: %s failed: ", #cond);     \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
            abort();                                                      \
        }                                                                 \
    } while (0)

static xo_topology_t *eight_cores(void)
{
    static xo_topology_t *t;
    if (!t) {
        xo_cpuset_t cores[8];
        for (int i = 0; i < 8; i++) {
            xo_cpuset_zero(&cores[i]);
            xo_cpuset_add(&cores[i], i);
        }
        CHECK(xo__topology_build(8, cores, NULL, &t) == XO_OK, "%s", xo_last_error());
    }
    return t;
}

static char *dump(const xo_cluster_t *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL, "open_memstream");
    CHECK(xo__cluster_dump(c, f) == 0, "dump");
    fclose(f);
    return buf;
}

/* The dump with its hidden inline secret replaced by one of the same length, so that it loads and dumps the same. */
static char *unhide_secret(const char *text, size_t secret_len)
{
    static const char hidden[] = "\nsecret: \"***\"";
    const char *at = strstr(text, hidden);
    char *out = malloc(strlen(text) + secret_len + 16);
    CHECK(out != NULL, "malloc");
    if (!at) return strcpy(out, text);
    size_t head = (size_t)(at - text);
    memcpy(out, text, head);
    char *p = out + head;
    p += sprintf(p, "\nsecret: \"");
    memset(p, 'k', secret_len);
    p += secret_len;
    strcpy(p, "\"");
    strcat(out, at + sizeof hidden - 1);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    xo_cluster_t *c = (xo_cluster_t *)(uintptr_t)1;
    xo_cluster_error_t err = {0};
    xo_status_t st = xo__cluster_load_string(text, "fuzz.yaml", &c, &err);
    if (st != XO_OK) {
        CHECK(c == (xo_cluster_t *)(uintptr_t)1, "c set on error");
        CHECK(st == XO_ECONFIG || st == XO_ENOMEM, "status %d", st);
        CHECK(err.status == st, "err.status %d, returned %d", err.status, st);
        CHECK(!strncmp(err.text, "fuzz.yaml:", 10), "text '%s'", err.text);
        CHECK(!strcmp(err.text, xo_last_error()), "err '%s', last '%s'", err.text, xo_last_error());
        CHECK(st != XO_ECONFIG || (err.line > 0 && err.column > 0), "no place: '%s'", err.text);
        free(text);
        return 0;
    }

    char *first = dump(c);
    char *input2 = unhide_secret(first, c->secret_len);
    xo_cluster_t *c2 = NULL;
    st = xo__cluster_load_string(input2, "fuzz.yaml", &c2, &err);
    CHECK(st == XO_OK, "the dump does not load back: %s\n--- dump:\n%s", err.text, input2);
    char *second = dump(c2);
    CHECK(!strcmp(first, second), "the dump changed on reload:\n--- first:\n%s--- second:\n%s", first, second);

    for (size_t i = 0; i < c->n_hosts; i++) {
        CHECK(xo__cluster_find_host(c, c->hosts[i].name) == (long)i, "host %zu", i);
        xo_cluster_host_config_t *hc = NULL;
        st = xo__cluster_host_config(c, i, eight_cores(), &hc, &err);
        if (st == XO_OK) {
            CHECK(hc->cfg.n_sub_pools <= XO_CLUSTER_MAX_SUB_POOLS, "%u sub pools", hc->cfg.n_sub_pools);
            for (unsigned k = 0; k < hc->cfg.n_sub_pools; k++)
                CHECK(hc->cfg.sub_pools[k].cpus && hc->cfg.sub_pools[k].cpus[0], "sub pool %u has no cpus", k);
            xo__cluster_host_config_free(hc);
        } else {
            CHECK(st == XO_ECONFIG && hc == NULL && err.text[0], "host config %d '%s'", st, err.text);
        }
    }
    free(second);
    free(input2);
    free(first);
    xo__cluster_free(c2);
    xo__cluster_free(c);
    free(text);
    return 0;
}
