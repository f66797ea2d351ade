/* The cluster file, per host: is a host this machine, do its CPUs exist here, and its xo_host_config_t. See
 * cluster/cluster_file.h. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/cluster_file.h"
#include "xoscar/gpu.h"

/* ---- is this host this machine? ------------------------------------------------------------------------------- */

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

static bool same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family) return false;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->sa_family == AF_INET6)
        return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
                       sizeof(struct in6_addr));
    return false;
}

bool xo__cluster_host_is_local(const xo_cluster_t *c, size_t i)
{
    if (!c || i >= c->n_hosts) return false;
    const char *a = c->hosts[i].address;
    if (!strcasecmp(a, "localhost")) return true;
    char me[256];
    if (gethostname(me, sizeof me) == 0) {
        me[sizeof me - 1] = '\0';
        if (!strcasecmp(a, me)) return true;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(a, NULL, &hints, &res) != 0) return false;
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0) ifs = NULL;
    bool local = false;
    for (const struct addrinfo *r = res; r && !local; r = r->ai_next) {
        if (is_loopback(r->ai_addr)) local = true;
        for (const struct ifaddrs *f = ifs; f && !local; f = f->ifa_next)
            if (f->ifa_addr && same_ip(r->ai_addr, f->ifa_addr)) local = true;
    }
    if (ifs) freeifaddrs(ifs);
    freeaddrinfo(res);
    return local;
}

/* ---- CPUs ---------------------------------------------------------------------------------------------------- */

/* Where to point at for pool entry j of host h: its cpus value, else the entry, else the host (an entry that is
 * the default has no place in the file). */
static xo_cluster_mark_t pool_mark(const xo_cluster_host_t *h, size_t j, bool cpus)
{
    const xo_cluster_pool_t *p = &h->pools[j];
    if (cpus && p->cpus_mark.line) return p->cpus_mark;
    return p->mark.line ? p->mark : h->mark;
}

xo_status_t xo__cluster_check_host(const xo_cluster_t *c, size_t i, const xo_topology_t *topo,
                                  xo_cluster_error_t *err)
{
    if (!c || i >= c->n_hosts || !topo)
        return xo__cluster_error(err, XO_EINVAL, c ? c->path : "(null)", 0, 0,
                                 "xo__cluster_check_host: no cluster, no topology or host %zu out of range", i);
    const xo_cluster_host_t *h = &c->hosts[i];
    for (size_t j = 0; j < h->n_pools; j++) {
        if (!h->pools[j].cpus) continue;
        xo_cpuset_t set;
        char why[XO_ERROR_TEXT_MAX];
        xo_cluster_mark_t m = pool_mark(h, j, true);
        if (xo__cpuset_parse(h->pools[j].cpus, &set, why, sizeof why) != XO_OK ||
            xo__topology_check_cpuset(topo, &set, why, sizeof why) != XO_OK)
            return xo__cluster_error(err, XO_ECONFIG, c->path, m.line, m.column, "hosts[%zu].pools[%zu].cpus: %s", i,
                                     j, why);
    }
    return XO_OK;
}

/* ---- devices ------------------------------------------------------------------------------------------------- */

#define MAX_GPUS 64 /* the GPUs of one host whose CPU affinity is known; more are used, just not bound near */

/* How `device: auto` and `count: gpus` are resolved on this host, shared by its entries: the CUDA devices (looked up
 * on first need, with the CPUs near each), and the next one `auto` hands out. */
typedef struct auto_devices {
    bool looked;
    size_t n_cuda;
    size_t next;
    char why[256];
    xo_device_info_t infos[MAX_GPUS];
} auto_devices_t;

/* This machine's CUDA devices into ad (none when this build has no CUDA backend or it finds none: ad->why says). */
static void look_for_gpus(auto_devices_t *ad)
{
    if (ad->looked) return;
    ad->looked = true;
    const xo_device_ops_t *cuda = xo_device_backend_find("cuda");
    if (!cuda) {
        snprintf(ad->why, sizeof ad->why, "this build has no CUDA backend (built without nvcc, or with XO_WITH_CUDA=OFF)");
        return;
    }
    if (xo_device_discover(cuda, ad->infos, MAX_GPUS, &ad->n_cuda) != XO_OK)
        snprintf(ad->why, sizeof ad->why, "%s", xo_last_error());
    else if (ad->n_cuda == 0)
        snprintf(ad->why, sizeof ad->why, "the CUDA backend finds no device");
}

/* The device of sub pool n of entry p ("cuda:N", "host:N", or NULL for none) into buf, and its CUDA index (or -1)
 * in *gpu_p. */
static const char *pool_device(const xo_cluster_pool_t *p, size_t n, auto_devices_t *ad, char *buf, size_t size,
                               int *gpu_p)
{
    *gpu_p = -1;
    if (p->count == XO_CLUSTER_COUNT_GPUS) { /* sub pool n owns GPU n; the host device where there is none */
        look_for_gpus(ad);
        if (!ad->n_cuda) return "host:0";
        *gpu_p = (int)n;
        snprintf(buf, size, "cuda:%zu", n);
        return buf;
    }
    if (p->gpu >= 0) {
        *gpu_p = p->gpu;
        snprintf(buf, size, "cuda:%d", p->gpu);
        return buf;
    }
    if (!strcmp(p->device, "none")) return NULL;
    if (!strcmp(p->device, "host")) return "host:0";
    if (!strncmp(p->device, "cuda:", 5)) *gpu_p = atoi(p->device + 5);
    if (strcmp(p->device, "auto") != 0) return p->device;
    look_for_gpus(ad);
    if (!ad->n_cuda) return "host:0";
    *gpu_p = (int)(ad->next++ % ad->n_cuda);
    snprintf(buf, size, "cuda:%d", *gpu_p);
    return buf;
}

/* Appends line to *notes (malloc'd; unchanged when out of memory: notes are informative). */
static void add_note(char **notes, const char *line)
{
    size_t have = *notes ? strlen(*notes) : 0;
    char *grown = realloc(*notes, have + strlen(line) + 1);
    if (!grown) return;
    memcpy(grown + have, line, strlen(line) + 1);
    *notes = grown;
}

/* Appends "file:line:col: hosts[i].pools[j].device: auto: ..." and a newline to *notes. */
static void note_auto(char **notes, const xo_cluster_t *c, const xo_cluster_host_t *h, size_t i, size_t j,
                      const auto_devices_t *ad, const char *first, const char *last)
{
    char line[768];
    const xo_cluster_pool_t *p = &h->pools[j];
    xo_cluster_mark_t m = p->device_mark.line ? p->device_mark : pool_mark(h, j, false);
    int w;
    if (ad->n_cuda)
        w = snprintf(line, sizeof line, "%s:%d:%d: hosts[%zu].pools[%zu].device: auto: %s%s%s (%zu CUDA device%s "
                                        "on this machine)\n",
                     c->path, m.line, m.column, i, j, first, strcmp(first, last) ? " to " : "", strcmp(first, last) ? last : "",
                     ad->n_cuda, ad->n_cuda == 1 ? "" : "s");
    else
        w = snprintf(line, sizeof line, "%s:%d:%d: hosts[%zu].pools[%zu].device: auto: no CUDA device here (%s): "
                                        "the host device host:0 instead (device memory on host memory; kernels run "
                                        "as host C code)\n",
                     c->path, m.line, m.column, i, j, ad->why);
    if (w >= 0) add_note(notes, line);
}

/* ---- the host config -------------------------------------------------------------------------------------------- */

/* The cores of t having a PU in within (NULL: all). */
static size_t cores_within(const xo_topology_t *t, const xo_cpuset_t *within)
{
    size_t n = 0;
    for (size_t k = 0; k < t->n_cores; k++)
        if (!within || xo__cpuset_intersects(&t->cores[k].pus, within)) n++;
    return n;
}

/* A copy of n strings in the arena (the config outlives nothing of c), or NULL for none or out of memory. */
static const char *const *copy_strings(void **arena, char *const *v, size_t n)
{
    if (!n) return NULL;
    char **out = xo__cluster_alloc(arena, n * sizeof *out);
    for (size_t i = 0; out && i < n; i++) {
        size_t l = strlen(v[i]) + 1;
        if (!(out[i] = xo__cluster_alloc(arena, l))) return NULL;
        memcpy(out[i], v[i], l);
    }
    return (const char *const *)out;
}

/* "a,b,c" in the arena, or NULL for no labels. */
static char *join_labels(void **arena, char *const *labels, size_t n)
{
    if (!n) return NULL;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += strlen(labels[i]) + 1;
    char *s = xo__cluster_alloc(arena, len);
    if (!s) return NULL;
    for (size_t i = 0, k = 0; i < n; i++) {
        size_t l = strlen(labels[i]);
        memcpy(s + k, labels[i], l);
        k += l;
        s[k++] = i + 1 < n ? ',' : '\0';
    }
    return s;
}

/* Binds the n sub pools of entry j (given no cpus) to the CPUs near their GPUs (gpus[n], -1: none), splitting the
 * CPUs near one GPU (or one NUMA node's GPUs) between the pools that share them, into sets. False, writing nothing
 * that matters, when some pool owns no GPU or a GPU's nearby CPUs are unknown (sysfs says nothing, as on a
 * machine without a GPU) or unusable here: the caller then splits the whole host as for any pool, and a note
 * says why when GPUs were involved. A note also says where each pool went. */
static bool bind_near_gpus(const xo_cluster_t *c, const xo_cluster_host_t *h, size_t i, size_t j,
                           auto_devices_t *ad, const xo_topology_t *topo, const int *gpus, size_t n,
                           xo_cpuset_t *sets, char **notes)
{
    bool any = false;
    for (size_t q = 0; q < n; q++) any = any || gpus[q] >= 0;
    if (!any) return false; /* no GPU: nothing to be near */
    look_for_gpus(ad);
    xo_cluster_mark_t m = pool_mark(h, j, false);
    char line[768], missing[384];
    const char *why = NULL;
    xo_cpuset_t *near = malloc(n * sizeof *near);
    if (!near) return false;
    for (size_t q = 0; q < n && !why; q++) {
        int g = gpus[q];
        if (g < 0) why = "not every sub pool of the entry owns a GPU";
        else if ((size_t)g >= ad->n_cuda || g >= MAX_GPUS) {
            if (ad->n_cuda) snprintf(missing, sizeof missing, "cuda:%d is not among this machine's %zu GPUs", g, ad->n_cuda);
            else snprintf(missing, sizeof missing, "cuda:%d: no CUDA device here: %s", g, ad->why);
            why = missing;
        }
        else if (!ad->infos[g].local_cpulist[0] ||
                 xo__cpuset_parse(ad->infos[g].local_cpulist, &near[q], NULL, 0) != XO_OK)
            why = "the system does not say which CPUs are near the GPU";
    }
    if (!why && xo__topology_partition_near(topo, n, near, sets) != XO_OK) why = xo_last_error();
    free(near);
    if (why) {
        snprintf(line, sizeof line, "%s:%d:%d: hosts[%zu].pools[%zu]: not bound near its GPUs (%s): the host's CPUs "
                                    "are split as for any pool\n", c->path, m.line, m.column, i, j, why);
        add_note(notes, line);
        return false;
    }
    int w = snprintf(line, sizeof line, "%s:%d:%d: hosts[%zu].pools[%zu]: bound near their GPUs:", c->path, m.line,
                     m.column, i, j);
    for (size_t q = 0; q < n && w > 0 && (size_t)w < sizeof line - 40; q++) {
        char cpus[64];
        xo__cpuset_format(&sets[q], cpus, sizeof cpus);
        w += snprintf(line + w, sizeof line - (size_t)w, "%s cuda:%d on CPUs %s", q ? "," : "", gpus[q], cpus);
    }
    if (w > 0 && (size_t)w < sizeof line - 1) {
        line[w] = '\n', line[w + 1] = '\0';
        add_note(notes, line);
    }
    return true;
}

static xo_status_t build(const xo_cluster_t *c, size_t i, const xo_topology_t *topo, void **arena,
                         xo_cluster_host_config_t **hc_p, xo_cluster_error_t *err)
{
    const xo_cluster_host_t *h = &c->hosts[i];
    xo_status_t st = xo__cluster_check_host(c, i, topo, err);
    if (st != XO_OK) return st;

    /* How many sub pools each entry makes. */
    auto_devices_t ad = {0};
    size_t total = 0;
    size_t *counts = xo__cluster_alloc(arena, (h->n_pools ? h->n_pools : 1) * sizeof *counts);
    xo_cpuset_t *within = xo__cluster_alloc(arena, (h->n_pools ? h->n_pools : 1) * sizeof *within);
    if (!counts || !within) return xo__cluster_error(err, XO_ENOMEM, c->path, 0, 0, "out of memory");
    for (size_t j = 0; j < h->n_pools; j++) {
        const xo_cluster_pool_t *p = &h->pools[j];
        if (p->cpus) xo__cpuset_parse(p->cpus, &within[j], NULL, 0); /* checked above */
        if (p->count == XO_CLUSTER_COUNT_GPUS) {
            look_for_gpus(&ad);
            if (!ad.n_cuda && strcmp(p->device, "auto") != 0) {
                xo_cluster_mark_t m = pool_mark(h, j, false);
                return xo__cluster_error(err, XO_ECONFIG, c->path, m.line, m.column,
                                         "hosts[%zu].pools[%zu]: count: gpus, and this host has no CUDA GPU (%s); "
                                         "'device: auto' would fall back to one sub pool on the host device",
                                         i, j, ad.why);
            }
            counts[j] = ad.n_cuda ? ad.n_cuda : 1;
        } else {
            counts[j] = p->count >= 0 ? (size_t)p->count : cores_within(topo, p->cpus ? &within[j] : NULL);
        }
        total += counts[j];
        if (total > XO_CLUSTER_MAX_SUB_POOLS) {
            xo_cluster_mark_t m = pool_mark(h, j, false);
            return xo__cluster_error(err, XO_ECONFIG, c->path, m.line, m.column,
                                     "hosts[%zu].pools: %zu or more sub pools on this host (counts resolved with "
                                     "its %zu cores); a host has at most %d",
                                     i, total, topo->n_cores, XO_CLUSTER_MAX_SUB_POOLS);
        }
    }

    xo_cluster_host_config_t *hc = xo__cluster_alloc(arena, sizeof *hc);
    xo_sub_pool_config_t *subs = xo__cluster_alloc(arena, (total ? total : 1) * sizeof *subs);
    int *gpus = xo__cluster_alloc(arena, (total ? total : 1) * sizeof *gpus);
    const char **modules = xo__cluster_alloc(arena, (c->n_modules ? c->n_modules : 1) * sizeof *modules);
    size_t alen = strlen(h->address) + 16;
    char *address = xo__cluster_alloc(arena, alen);
    if (!hc || !subs || !gpus || !modules || !address)
        return xo__cluster_error(err, XO_ENOMEM, c->path, 0, 0, "out of memory");
    snprintf(address, alen, strchr(h->address, ':') ? "[%s]:%u" : "%s:%u", h->address, h->port);

    size_t k = 0;
    char *notes = NULL; /* malloc'd; copied into the arena at the end */
    for (size_t j = 0; j < h->n_pools; j++) {
        const xo_cluster_pool_t *p = &h->pools[j];
        if (!counts[j]) continue;
        char *labels = join_labels(arena, p->labels, p->n_labels);
        if (p->n_labels && !labels) return xo__cluster_error(err, XO_ENOMEM, c->path, 0, 0, "out of memory");
        const char *const *env = copy_strings(arena, p->env, p->n_env);
        if (p->n_env && !env) return xo__cluster_error(err, XO_ENOMEM, c->path, 0, 0, "out of memory");
        /* Devices first: where they are GPUs, the CPUs near them decide the binding. */
        const char **devs = malloc(counts[j] * sizeof *devs);
        char (*dbufs)[24] = malloc(counts[j] * sizeof *dbufs);
        xo_cpuset_t *sets = malloc(counts[j] * sizeof *sets);
        if (!devs || !dbufs || !sets) {
            free(devs), free(dbufs), free(sets), free(notes);
            return xo__cluster_error(err, XO_ENOMEM, c->path, 0, 0, "out of memory");
        }
        for (size_t n = 0; n < counts[j]; n++) devs[n] = pool_device(p, n, &ad, dbufs[n], sizeof dbufs[n], &gpus[k + n]);
        bool near = !p->cpus && bind_near_gpus(c, h, i, j, &ad, topo, gpus + k, counts[j], sets, &notes);
        if (!near && !(p->cpus && counts[j] == 1) &&
            xo__topology_partition(topo, p->cpus ? &within[j] : NULL, counts[j], sets) != XO_OK) {
            free(devs), free(dbufs), free(sets), free(notes);
            xo_cluster_mark_t m = pool_mark(h, j, true);
            return xo__cluster_error(err, XO_ECONFIG, c->path, m.line, m.column, "hosts[%zu].pools[%zu]: %s", i, j,
                                     xo_last_error());
        }
        bool split = near || !(p->cpus && counts[j] == 1);
        for (size_t n = 0; n < counts[j]; n++, k++) {
            char *cpus;
            if (split) {
                size_t need = xo__cpuset_format(&sets[n], NULL, 0) + 1;
                cpus = xo__cluster_alloc(arena, need);
                if (cpus) xo__cpuset_format(&sets[n], cpus, need);
            } else {
                cpus = xo__cluster_strndup(arena, p->cpus, strlen(p->cpus));
            }
            const char *dev = devs[n];
            char *device = dev ? xo__cluster_strndup(arena, dev, strlen(dev)) : NULL;
            if (!cpus || (dev && !device)) {
                free(devs), free(dbufs), free(sets), free(notes);
                return xo__cluster_error(err, XO_ENOMEM, c->path, 0, 0, "out of memory");
            }
            subs[k] = (xo_sub_pool_config_t){.cpus = cpus, .labels = labels, .n_threads = p->threads, .device = device,
                                             .env = env, .n_env = p->n_env};
        }
        free(devs), free(dbufs), free(sets);
        if (p->gpu < 0 && !strcmp(p->device, "auto"))
            note_auto(&notes, c, h, i, j, &ad, subs[k - counts[j]].device, subs[k - 1].device);
        if (ad.looked && !ad.n_cuda && p->gpu < 0 && !strcmp(p->device, "auto")) hc->device_fallback = true;
        if (p->count == XO_CLUSTER_COUNT_GPUS && ad.n_cuda && strcmp(p->device, "auto") != 0) {
            char line[256];
            xo_cluster_mark_t m = pool_mark(h, j, false);
            snprintf(line, sizeof line, "%s:%d:%d: hosts[%zu].pools[%zu].count: gpus: %zu sub pools, cuda:0 to cuda:%zu\n",
                     c->path, m.line, m.column, i, j, ad.n_cuda, ad.n_cuda - 1);
            add_note(&notes, line);
        }
    }
    if (notes) {
        hc->device_notes = xo__cluster_strndup(arena, notes, strlen(notes));
        free(notes);
        if (!hc->device_notes) return xo__cluster_error(err, XO_ENOMEM, c->path, 0, 0, "out of memory");
    }
    for (size_t m = 0; m < c->n_modules; m++)
        if (!(modules[m] = xo__cluster_strndup(arena, c->modules[m], strlen(c->modules[m]))))
            return xo__cluster_error(err, XO_ENOMEM, c->path, 0, 0, "out of memory");
    hc->main_labels = join_labels(arena, h->main.labels, h->main.n_labels);
    if (h->main.n_labels && !hc->main_labels) return xo__cluster_error(err, XO_ENOMEM, c->path, 0, 0, "out of memory");
    hc->sub_pools = subs;
    hc->sub_pool_gpu = gpus;
    hc->cfg = (xo_host_config_t){
        .address = address,
        .n_sub_pools = (unsigned)total,
        .sub_pools = subs,
        .modules = modules,
        .n_modules = c->n_modules,
        .restart = c->restart,
        .max_restarts = c->restart_intensity.max_restarts,
        .restart_period_ms = c->restart_intensity.period_ms,
        .restart_backoff_ms = c->restart_intensity.backoff_ms,
        .restart_backoff_max_ms = c->restart_intensity.backoff_max_ms,
        .main_threads = h->main.threads,
    };
    *hc_p = hc;
    return XO_OK;
}

xo_status_t xo__cluster_host_config(const xo_cluster_t *c, size_t i, const xo_topology_t *topo,
                                   xo_cluster_host_config_t **hc_p, xo_cluster_error_t *err)
{
    if (!c || i >= c->n_hosts || !hc_p)
        return xo__cluster_error(err, XO_EINVAL, c ? c->path : "(null)", 0, 0,
                                 "xo__cluster_host_config: no cluster, no hc_p or host %zu out of range", i);
    xo_topology_t *own = NULL;
    if (!topo) {
        if (xo__topology_load(&own) != XO_OK)
            return xo__cluster_error(err, XO_ESYS, c->path, 0, 0, "cannot load this host's topology: %s",
                                     xo_last_error());
        topo = own;
    }
    void *arena = NULL;
    xo_cluster_host_config_t *hc = NULL;
    xo_status_t st = build(c, i, topo, &arena, &hc, err);
    if (own) xo__topology_free(own);
    if (st != XO_OK) {
        xo__cluster_arena_free(arena);
        return st;
    }
    hc->storage = arena; /* hc lives in its arena */
    *hc_p = hc;
    return XO_OK;
}

void xo__cluster_host_config_free(xo_cluster_host_config_t *hc)
{
    if (hc) xo__cluster_arena_free(hc->storage);
}
