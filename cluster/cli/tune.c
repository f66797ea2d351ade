/* xoscar tune FILE [--quick] [--out PATH] [--apply]: measures every ordered pair of pools of the cluster that
 * `xoscar up FILE` started and writes the tune profile (docs/tune-profile.md).
 *
 * A pair (A, B) is measured by the probe actor in A (services/probe.c) calling the probe in B, so the figures are
 * those of the path the router takes from A to B. Pairs run one at a time: two measurements never share a link.
 * Pools that do not answer are reported and left out of the profile (placement then treats their pairs as
 * unknown); the run fails only when fewer than one pool answers.
 *
 * Pools that own a device get device figures too (profile version 2): each pool's device-to-device copy bandwidth
 * and launch cost, and, for every ordered pair of such pools, buffers of A's device lent to B's probe, so the
 * profile records the way the runtime took for them (device IPC, staging, NCCL) and the bandwidth of the hand-over.
 * A device figure that fails is reported and left out (the pair keeps its host figures): it is never invented. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cli/commands.h"
#include "cluster/cluster_file.h"
#include "cluster/profile.h"
#include "runtime/core.h"
#include "services/probe.h"
#include "xoscar/host.h"
#include "xoscar/module.h"

#define MEASURE_TIMEOUT_MS 120000

/* The commit of the source tree, "-dirty" when it has changes; "unknown" outside git. Into buf. */
static void source_commit(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
#ifdef XO_SOURCE_DIR
    FILE *p = popen("git -C '" XO_SOURCE_DIR "' rev-parse --short HEAD 2>/dev/null", "r");
    char line[64] = "";
    if (p && fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0]) snprintf(buf, len, "%s", line);
    }
    if (p) pclose(p);
    p = popen("git -C '" XO_SOURCE_DIR "' status --porcelain --untracked-files=no 2>/dev/null | head -1", "r");
    if (p && fgets(line, sizeof line, p) && line[0] && strcmp(buf, "unknown") != 0)
        snprintf(buf + strlen(buf), len - strlen(buf), "-dirty");
    if (p) pclose(p);
#endif
}

static const char *human_bw(double bps, char *buf, size_t len)
{
    if (bps >= 1e9) snprintf(buf, len, "%.2f GB/s", bps / 1e9);
    else snprintf(buf, len, "%.1f MB/s", bps / 1e6);
    return buf;
}

static bool is_num(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32;
}

/* [[bytes, median, min, max], ...] as the probe answers them, into pts. */
static xo_status_t unpack_points(const msgpack_object *bw, xo_profile_bw_t *pts, size_t *n_p)
{
    *n_p = 0;
    if (bw->type != MSGPACK_OBJECT_ARRAY || bw->via.array.size > XO_PROFILE_MAX_SIZES)
        return xo__error_set(XO_EPROTO, "the probe's figures are not a list of at most 16 points");
    for (size_t s = 0; s < bw->via.array.size; s++) {
        const msgpack_object *e = &bw->via.array.ptr[s];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 4 ||
            e->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || !is_num(&e->via.array.ptr[1]) ||
            !is_num(&e->via.array.ptr[2]) || !is_num(&e->via.array.ptr[3]))
            return xo__error_set(XO_EPROTO, "the probe's figure %zu is not [bytes, median, min, max]", s);
        pts[s] = (xo_profile_bw_t){e->via.array.ptr[0].via.u64, e->via.array.ptr[1].via.f64,
                                   e->via.array.ptr[2].via.f64, e->via.array.ptr[3].via.f64};
        *n_p = s + 1;
    }
    return XO_OK;
}

/* Device buffers of pool `from` lent to the probe of `to`, into pr's device figures; a failure is reported and
 * leaves the pair without them. */
static void measure_devbuf(xo_ref_t *probe, const char *from, const char *to, const uint64_t *sizes, size_t n_sizes,
                           int64_t reps, xo_profile_pair_t *pr)
{
    xo_args_t *a = xo_args_new(3);
    msgpack_packer *pk = xo_args_packer(a);
    xo_pack(pk, "s", to);
    msgpack_pack_array(pk, n_sizes);
    for (size_t s = 0; s < n_sizes; s++) msgpack_pack_uint64(pk, sizes[s]);
    xo_pack(pk, "l", reps);
    xo_result_t *r = NULL;
    xo_str_t path = {0};
    const msgpack_object *bw = NULL;
    xo_status_t st = xo_call(probe, "measure_devbuf", a, MEASURE_TIMEOUT_MS, &r);
    if (st == XO_OK) st = xo_result_unpack(r, "[so]", &path, &bw);
    if (st == XO_OK) st = unpack_points(bw, pr->dev_bw, &pr->n_dev_bw);
    if (st == XO_OK && pr->n_dev_bw == 0) st = xo__error_set(XO_EPROTO, "the probe measured no size");
    if (st == XO_OK) pr->dev_path = strndup(path.ptr, path.len);
    else {
        fprintf(stderr, "pair %s -> %s: device buffers not measured: %s\n", from, to, xo_last_error());
        pr->n_dev_bw = 0;
    }
    xo_result_free(r);
}

static int tune_usage(void) { return xo__cli_usage_error("tune"); }

int xo_cli_tune(int argc, char **argv)
{
    if (argc < 2) return tune_usage();
    bool quick = false, apply = false;
    const char *out_path = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = true;
        else if (strcmp(argv[i], "--apply") == 0) apply = true;
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out_path = argv[++i];
        else return tune_usage();
    }
    xo_cluster_t *c = xo_cli_cluster_load(argv[1]);
    if (!c) return 2;
    if (!out_path) out_path = c->placement.profile;
    if (!out_path) {
        fprintf(stderr, "xoscar: %s names no placement.profile: give --out PATH\n", argv[1]);
        xo__cluster_free(c);
        return 2;
    }
    /* What is measured: 8-byte calls for latency, payloads from 1 MiB to 64 MiB for bandwidth. */
    static const uint64_t full_sizes[] = {1u << 20, 2u << 20, 4u << 20, 8u << 20, 16u << 20, 32u << 20, 64u << 20};
    static const uint64_t quick_sizes[] = {1u << 20, 16u << 20};
    const uint64_t *sizes = quick ? quick_sizes : full_sizes;
    size_t n_sizes = quick ? 2 : 7;
    int64_t n_lat = quick ? 200 : 2000, reps = quick ? 3 : 5;

    char **pools, **hosts;
    size_t n = xo_cli_cluster_pools(c, &pools, &hosts);
    bool *up = calloc(n ? n : 1, sizeof *up);        /* ours */
    xo_ref_t **probe = calloc(n ? n : 1, sizeof *probe); /* ours, each ref too */
    size_t n_up = 0;
    for (size_t i = 0; up && probe && i < n; i++) {
        xo_status_t st = xo_create_actor_by_name(XO_PROBE_CLASS, NULL, pools[i], XO_PROBE_UID, &probe[i]);
        if (st == XO_EEXIST) st = xo_actor_ref(pools[i], XO_PROBE_UID, &probe[i]);
        if (st != XO_OK) {
            fprintf(stderr, "xoscar tune: pool %s (host %s) left out: %s\n", pools[i], hosts[i], xo_last_error());
            continue;
        }
        up[i] = true;
        n_up++;
    }
    int rc = 0;
    if (n_up == 0) {
        fprintf(stderr, "xoscar tune: no pool of %s answers (is it up? `xoscar up %s`)\n", argv[1], argv[1]);
        rc = 3;
    }

    xo_profile_t prof = {.version = XO_PROFILE_VERSION, .cluster = c->name};
    char commit[96], when[32], tool[1200];
    source_commit(commit, sizeof commit);
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    snprintf(tool, sizeof tool, "xoscar tune %s%s", argv[1], quick ? " --quick" : "");
    prof.measured_at = when;
    prof.commit = commit;
    prof.tool = tool;
    prof.hosts = calloc(c->n_hosts ? c->n_hosts : 1, sizeof *prof.hosts);
    prof.pools = calloc(n ? n : 1, sizeof *prof.pools);
    prof.pairs = calloc(n_up ? n_up * n_up : 1, sizeof *prof.pairs);
    if (!prof.hosts || !prof.pools || !prof.pairs) rc = 1;
    for (size_t i = 0; rc == 0 && i < c->n_hosts; i++)
        prof.hosts[prof.n_hosts++] = (xo_profile_host_t){c->hosts[i].name, c->hosts[i].address, c->hosts[i].port};
    /* Devices as the cluster file gives them, per host (its sub pools in order after the main pool). */
    for (size_t h = 0; rc == 0 && h < c->n_hosts; h++) {
        xo_cluster_host_config_t *hc = NULL;
        xo_cluster_error_t err = {0};
        if (xo__cluster_host_config(c, h, NULL, &hc, &err) != XO_OK) continue;
        for (size_t i = 0; i < n; i++) {
            if (!up[i] || strcmp(hosts[i], c->hosts[h].name) != 0) continue;
            const char *slash = strrchr(pools[i], '/');
            unsigned k = slash ? (unsigned)atoi(slash + 1) : 0;
            const char *dev = k == 0 ? hc->cfg.main_device : k <= hc->cfg.n_sub_pools ? hc->cfg.sub_pools[k - 1].device
                                                                                       : NULL;
            prof.pools[prof.n_pools++] =
                (xo_profile_pool_t){.address = pools[i], .host = hosts[i], .device = strdup(dev ? dev : "")};
        }
        xo__cluster_host_config_free(hc);
    }

    /* Each pool the file gives a device is asked for its figures; only those whose probe answers (its pool really
     * owns a device) take part in the device-buffer pairs. */
    bool *has_dev = calloc(n ? n : 1, sizeof *has_dev); /* ours */
    if (!has_dev) rc = 1;
    static const uint64_t dev_full[] = {1u << 20, 4u << 20, 16u << 20, 64u << 20};
    static const uint64_t dev_quick[] = {1u << 20, 16u << 20};
    const uint64_t *dev_sizes = quick ? dev_quick : dev_full;
    size_t n_dev_sizes = quick ? 2 : 4;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        xo_profile_pool_t *pl = NULL;
        for (size_t q = 0; q < prof.n_pools; q++)
            if (prof.pools[q].address == pools[i]) pl = &prof.pools[q];
        if (!up[i] || !pl || !pl->device[0]) continue;
        xo_args_t *a = xo_args_new(2);
        msgpack_packer *pk = xo_args_packer(a);
        msgpack_pack_array(pk, n_dev_sizes);
        for (size_t s = 0; s < n_dev_sizes; s++) msgpack_pack_uint64(pk, dev_sizes[s]);
        xo_pack(pk, "l", reps);
        xo_result_t *r = NULL;
        const msgpack_object *bw = NULL, *launch = NULL;
        xo_status_t st = xo_call(probe[i], "device_figures", a, MEASURE_TIMEOUT_MS, &r);
        if (st == XO_OK) st = xo_result_unpack(r, "[oo]", &bw, &launch);
        if (st == XO_OK) st = unpack_points(bw, pl->copy_bw, &pl->n_copy_bw);
        if (st == XO_OK && (launch->type != MSGPACK_OBJECT_ARRAY || launch->via.array.size < 2))
            st = xo__error_set(XO_EPROTO, "the probe's launch figure is not [via, p50, p99] or [nil, why]");
        if (st == XO_OK) {
            const msgpack_object *l = launch->via.array.ptr;
            if (l[0].type == MSGPACK_OBJECT_STR && launch->via.array.size == 3 && is_num(&l[1]) && is_num(&l[2])) {
                pl->launch_via = strndup(l[0].via.str.ptr, l[0].via.str.size);
                pl->launch_p50_us = l[1].via.f64;
                pl->launch_p99_us = l[2].via.f64;
            } else if (l[1].type == MSGPACK_OBJECT_STR) {
                pl->launch_none = strndup(l[1].via.str.ptr, l[1].via.str.size);
            } else {
                st = xo__error_set(XO_EPROTO, "the probe's launch figure is not [via, p50, p99] or [nil, why]");
            }
        }
        if (st != XO_OK) {
            fprintf(stderr, "pool %s: device figures not measured: %s\n", pools[i], xo_last_error());
            pl->n_copy_bw = 0;
        } else {
            has_dev[i] = true;
            char b1[32];
            fprintf(stderr, "pool %s: device %s, copy %s at %llu MiB, launch %s", pools[i], pl->device,
                    human_bw(pl->copy_bw[pl->n_copy_bw - 1].median, b1, sizeof b1),
                    (unsigned long long)(pl->copy_bw[pl->n_copy_bw - 1].bytes >> 20),
                    pl->launch_via ? pl->launch_via : "none");
            if (pl->launch_via) fprintf(stderr, " p50 %.1f us p99 %.1f us\n", pl->launch_p50_us, pl->launch_p99_us);
            else fprintf(stderr, " (%s)\n", pl->launch_none);
        }
        xo_result_free(r);
    }

    size_t total = n_up * n_up, k = 0;
    uint64_t t0 = xo__now_ns();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        for (size_t j = 0; up[i] && j < n; j++) {
            if (!up[j]) continue;
            k++;
            xo_args_t *a = xo_args_new(4);
            msgpack_packer *pk = xo_args_packer(a);
            xo_pack(pk, "sl", pools[j], n_lat);
            msgpack_pack_array(pk, n_sizes);
            for (size_t s = 0; s < n_sizes; s++) msgpack_pack_uint64(pk, sizes[s]);
            xo_pack(pk, "l", reps);
            xo_result_t *r = NULL;
            xo_status_t st = xo_call(probe[i], "measure", a, MEASURE_TIMEOUT_MS, &r);
            xo_profile_pair_t *pr = &prof.pairs[prof.n_pairs];
            xo_str_t path = {0};
            const msgpack_object *bw = NULL;
            if (st == XO_OK) st = xo_result_unpack(r, "[sddo]", &path, &pr->p50_us, &pr->p99_us, &bw);
            if (st == XO_OK && (bw->type != MSGPACK_OBJECT_ARRAY || bw->via.array.size > XO_PROFILE_MAX_SIZES))
                st = XO_EPROTO;
            for (size_t s = 0; st == XO_OK && s < bw->via.array.size; s++) {
                const msgpack_object *e = &bw->via.array.ptr[s];
                xo_profile_bw_t *b = &pr->bw[s];
                if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 4 ||
                    e->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
                    st = XO_EPROTO;
                    break;
                }
                b->bytes = e->via.array.ptr[0].via.u64;
                b->median = e->via.array.ptr[1].via.f64;
                b->min = e->via.array.ptr[2].via.f64;
                b->max = e->via.array.ptr[3].via.f64;
                pr->n_bw = s + 1;
            }
            double elapsed = (double)(xo__now_ns() - t0) / 1e9;
            double left = elapsed / (double)k * (double)(total - k);
            if (st != XO_OK) {
                fprintf(stderr, "pair %zu of %zu: %s -> %s: not measured: %s (%.0f s left)\n", k, total, pools[i],
                        pools[j], xo_last_error(), left);
                xo_result_free(r);
                continue;
            }
            pr->from = pools[i];
            pr->to = pools[j];
            pr->path = strndup(path.ptr, path.len);
            prof.n_pairs++;
            xo_result_free(r);
            r = NULL;
            if (has_dev[i] && has_dev[j])
                measure_devbuf(probe[i], pools[i], pools[j], dev_sizes, n_dev_sizes, reps, pr);
            char b1[32], b2[32];
            fprintf(stderr, "pair %zu of %zu: %s -> %s: %s, 8 B call p50 %.1f us p99 %.1f us, %s at 1 MiB, %s at "
                    "%llu MiB", k, total, pools[i], pools[j], pr->path, pr->p50_us, pr->p99_us,
                    human_bw(pr->bw[0].median, b1, sizeof b1), human_bw(pr->bw[pr->n_bw - 1].median, b2, sizeof b2),
                    (unsigned long long)(pr->bw[pr->n_bw - 1].bytes >> 20));
            if (pr->dev_path)
                fprintf(stderr, "; device buffers by %s, %s at %llu MiB", pr->dev_path,
                        human_bw(pr->dev_bw[pr->n_dev_bw - 1].median, b1, sizeof b1),
                        (unsigned long long)(pr->dev_bw[pr->n_dev_bw - 1].bytes >> 20));
            left = (double)(xo__now_ns() - t0) / 1e9 / (double)k * (double)(total - k);
            fprintf(stderr, " (%.0f s left)\n", left);
        }
    }
    for (size_t i = 0; probe && i < n; i++)
        if (probe[i]) {
            xo_destroy_actor(probe[i]);
            xo_ref_free(probe[i]);
        }

    if (rc == 0) {
        /* Written beside the target and renamed over it: a reader never sees half a profile. */
        char tmp[1100];
        snprintf(tmp, sizeof tmp, "%s.tmp.%d", out_path, (int)getpid());
        FILE *f = fopen(tmp, "w");
        xo_status_t st = f ? xo__profile_write(&prof, f) : XO_ESYS;
        if (f && fclose(f) != 0) st = XO_ESYS;
        if (st == XO_OK && rename(tmp, out_path) != 0) st = XO_ESYS;
        if (st != XO_OK) {
            fprintf(stderr, "xoscar tune: cannot write %s: %s\n", out_path, strerror(errno));
            unlink(tmp);
            rc = 1;
        } else {
            printf("profile %s: %zu of %zu pairs measured in %.1f s (%s)\n", out_path, prof.n_pairs, total,
                   (double)(xo__now_ns() - t0) / 1e9, quick ? "quick" : "full");
        }
    }
    /* --apply: each host's placement loads the new profile now, without restarting anything. */
    for (size_t h = 0; rc == 0 && apply && h < c->n_hosts; h++) {
        char main_addr[300];
        snprintf(main_addr, sizeof main_addr, "%s:%u", c->hosts[h].address, c->hosts[h].port);
        xo_ref_t *svc = NULL;
        xo_result_t *r = NULL;
        char *abs = realpath(out_path, NULL);
        xo_status_t st = xo_actor_ref(main_addr, XO_HOST_SERVICE_UID, &svc);
        if (st == XO_OK) st = xo_call(svc, "load_profile", xo_args("s", abs ? abs : out_path), 10000, &r);
        if (st == XO_OK) printf("host %s: profile applied\n", c->hosts[h].name);
        else fprintf(stderr, "xoscar tune: host %s: profile not applied: %s\n", c->hosts[h].name, xo_last_error());
        if (st != XO_OK) rc = 1;
        free(abs);
        xo_result_free(r);
        xo_ref_free(svc);
    }
    for (size_t i = 0; i < prof.n_pairs; i++) {
        free(prof.pairs[i].path);
        free(prof.pairs[i].dev_path);
    }
    for (size_t i = 0; i < prof.n_pools; i++) {
        free(prof.pools[i].device);
        free(prof.pools[i].launch_via);
        free(prof.pools[i].launch_none);
    }
    free(has_dev);
    free(prof.hosts);
    free(prof.pools);
    free(prof.pairs);
    free(up);
    free(probe);
    xo_cli_free_list(pools, n);
    xo_cli_free_list(hosts, n);
    xo__cluster_free(c);
    return rc;
}
