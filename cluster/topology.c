/* CPU topology (hwloc), cpu lists, core partitioning and binding. See topology.h for the contracts.
 *
 * The hwloc walk only gathers a description (PUs per core, NUMA node per core) and hands it to
 * xo__topology_build, so everything above the walk is pure code over plain data that tests can feed with made-up
 * machines. */
#include "cluster/topology.h"

#include <ctype.h>
#include <errno.h>
#include <hwloc.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* Formats the error once, copies it to the caller's buffer (if any) and makes it the last error. */
static xo_status_t fail(char *err, size_t err_len, xo_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static xo_status_t fail(char *err, size_t err_len, xo_status_t st, const char *fmt, ...)
{
    char text[XO_ERROR_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (err && err_len) snprintf(err, err_len, "%s", text);
    return xo__error_set(st, "%s", text);
}

/* ---- CPU sets ------------------------------------------------------------------------------------------------- */

#define WORDS (XO_CPUSET_MAX / 64)

size_t xo__cpuset_count(const xo_cpuset_t *s)
{
    size_t n = 0;
    for (size_t i = 0; i < WORDS; i++) n += (size_t)__builtin_popcountll(s->bits[i]);
    return n;
}

int xo__cpuset_next(const xo_cpuset_t *s, int prev)
{
    int c = prev + 1;
    if (c < 0) c = 0;
    while (c < XO_CPUSET_MAX) {
        uint64_t w = s->bits[c / 64] >> (c % 64);
        if (w) return c + __builtin_ctzll(w);
        c = (c / 64 + 1) * 64;
    }
    return -1;
}

bool xo__cpuset_equal(const xo_cpuset_t *a, const xo_cpuset_t *b)
{
    return memcmp(a->bits, b->bits, sizeof a->bits) == 0;
}

bool xo__cpuset_is_subset(const xo_cpuset_t *a, const xo_cpuset_t *b)
{
    for (size_t i = 0; i < WORDS; i++)
        if (a->bits[i] & ~b->bits[i]) return false;
    return true;
}

bool xo__cpuset_intersects(const xo_cpuset_t *a, const xo_cpuset_t *b)
{
    for (size_t i = 0; i < WORDS; i++)
        if (a->bits[i] & b->bits[i]) return true;
    return false;
}

void xo__cpuset_or(xo_cpuset_t *dst, const xo_cpuset_t *src)
{
    for (size_t i = 0; i < WORDS; i++) dst->bits[i] |= src->bits[i];
}

void xo__cpuset_and(xo_cpuset_t *dst, const xo_cpuset_t *src)
{
    for (size_t i = 0; i < WORDS; i++) dst->bits[i] &= src->bits[i];
}

/* Reads a decimal CPU number at text[*pos]; false (pos unchanged) when there is no digit. Values past the limit
 * saturate at XO_CPUSET_MAX so that the caller reports them as out of range instead of wrapping. */
static bool read_cpu(const char *text, size_t *pos, long *v)
{
    size_t p = *pos;
    if (!isdigit((unsigned char)text[p])) return false;
    long n = 0;
    while (isdigit((unsigned char)text[p])) {
        if (n < XO_CPUSET_MAX) n = n * 10 + (text[p] - '0');
        p++;
    }
    *v = n > XO_CPUSET_MAX ? XO_CPUSET_MAX : n;
    *pos = p;
    return true;
}

static void skip_spaces(const char *text, size_t *pos)
{
    while (text[*pos] == ' ' || text[*pos] == '\t') (*pos)++;
}

/* The token starting at pos, for error texts: up to the next comma (at most 32 characters). */
static int token_len(const char *text, size_t pos)
{
    size_t n = strcspn(text + pos, ",");
    return (int)(n > 32 ? 32 : n);
}

xo_status_t xo__cpuset_parse(const char *text, xo_cpuset_t *set_p, char *err, size_t err_len)
{
    if (!text || !set_p) return fail(err, err_len, XO_EINVAL, "cpu list: NULL argument");
    xo_cpuset_t set;
    xo_cpuset_zero(&set);
    size_t pos = 0;
    skip_spaces(text, &pos);
    if (!text[pos]) return fail(err, err_len, XO_EINVAL, "cpu list \"%s\" is empty", text);
    for (;;) {
        skip_spaces(text, &pos);
        size_t start = pos;
        long lo, hi;
        if (text[pos] == ',' || !text[pos])
            return fail(err, err_len, XO_EINVAL, "cpu list \"%s\": empty item at column %zu", text, start + 1);
        if (!read_cpu(text, &pos, &lo))
            return fail(err, err_len, XO_EINVAL,
                        "cpu list \"%s\": bad token \"%.*s\" at column %zu (expected a CPU number or a range N-M)",
                        text, token_len(text, start), text + start, start + 1);
        hi = lo;
        skip_spaces(text, &pos);
        if (text[pos] == '-') {
            pos++;
            skip_spaces(text, &pos);
            if (!read_cpu(text, &pos, &hi))
                return fail(err, err_len, XO_EINVAL,
                            "cpu list \"%s\": bad range \"%.*s\" at column %zu (expected N-M with M a CPU number)",
                            text, token_len(text, start), text + start, start + 1);
            skip_spaces(text, &pos);
        }
        if (text[pos] && text[pos] != ',')
            return fail(err, err_len, XO_EINVAL,
                        "cpu list \"%s\": bad token \"%.*s\" at column %zu (expected a CPU number or a range N-M)",
                        text, token_len(text, start), text + start, start + 1);
        if (hi >= XO_CPUSET_MAX)
            return fail(err, err_len, XO_EINVAL,
                        "cpu list \"%s\": CPU in \"%.*s\" at column %zu is out of range (at most %d)", text,
                        token_len(text, start), text + start, start + 1, XO_CPUSET_MAX - 1);
        if (hi < lo)
            return fail(err, err_len, XO_EINVAL, "cpu list \"%s\": reversed range \"%.*s\" at column %zu", text,
                        token_len(text, start), text + start, start + 1);
        for (long c = lo; c <= hi; c++) xo_cpuset_add(&set, (int)c);
        if (!text[pos]) break;
        pos++; /* the comma; a trailing comma leaves an empty item, reported above */
    }
    *set_p = set;
    return XO_OK;
}

size_t xo__cpuset_format(const xo_cpuset_t *s, char *buf, size_t len)
{
    size_t need = 0;
    if (buf && len) buf[0] = '\0';
    for (int c = xo__cpuset_next(s, -1); c >= 0;) {
        int end = c;
        while (end + 1 < XO_CPUSET_MAX && xo_cpuset_has(s, end + 1)) end++;
        char item[32];
        int n = end == c ? snprintf(item, sizeof item, "%s%d", need ? "," : "", c)
                         : snprintf(item, sizeof item, "%s%d-%d", need ? "," : "", c, end);
        /* Copy what fits, keeping room for the NUL; need keeps counting past the end, as snprintf's return does. */
        for (int i = 0; i < n; i++, need++)
            if (buf && need + 1 < len) {
                buf[need] = item[i];
                buf[need + 1] = '\0';
            }
        c = xo__cpuset_next(s, end);
    }
    return need;
}

/* ---- topology ------------------------------------------------------------------------------------------------- */

xo_status_t xo__topology_build(size_t n_cores, const xo_cpuset_t *core_pus, const int *core_numa, xo_topology_t **t_p)
{
    if (!t_p || (n_cores && !core_pus)) return xo__error_set(XO_EINVAL, "topology: NULL argument");
    xo_topology_t *t = calloc(1, sizeof *t);
    if (!t) return xo__error_set(XO_ENOMEM, "out of memory");
    t->cores = calloc(n_cores ? n_cores : 1, sizeof *t->cores);
    if (!t->cores) {
        xo__topology_free(t);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    t->max_pu = -1;
    for (size_t i = 0; i < n_cores; i++) {
        if (xo__cpuset_count(&core_pus[i]) == 0) {
            xo__topology_free(t);
            return xo__error_set(XO_EINVAL, "topology: core %zu has no PU", i);
        }
        if (xo__cpuset_intersects(&t->pus, &core_pus[i])) {
            xo__topology_free(t);
            return xo__error_set(XO_EINVAL, "topology: core %zu shares a PU with an earlier core", i);
        }
        t->cores[i].pus = core_pus[i];
        t->cores[i].numa = core_numa ? core_numa[i] : 0;
        xo__cpuset_or(&t->pus, &core_pus[i]);
    }
    t->n_cores = n_cores;
    t->n_pus = xo__cpuset_count(&t->pus);
    for (int c = xo__cpuset_next(&t->pus, -1); c >= 0; c = xo__cpuset_next(&t->pus, c)) t->max_pu = c;
    t->pu_numa = malloc(sizeof *t->pu_numa * (size_t)(t->max_pu + 2));
    if (!t->pu_numa) {
        xo__topology_free(t);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    for (int c = 0; c <= t->max_pu; c++) t->pu_numa[c] = -1;
    /* Distinct known nodes; node numbers are small OS indices, so a bitmask of XO_CPUSET_MAX is plenty. */
    xo_cpuset_t nodes;
    xo_cpuset_zero(&nodes);
    for (size_t i = 0; i < n_cores; i++) {
        const xo_cpuset_t *s = &t->cores[i].pus;
        for (int c = xo__cpuset_next(s, -1); c >= 0; c = xo__cpuset_next(s, c)) t->pu_numa[c] = t->cores[i].numa;
        xo_cpuset_add(&nodes, t->cores[i].numa);
    }
    t->n_numa = xo__cpuset_count(&nodes);
    *t_p = t;
    return XO_OK;
}

void xo__topology_free(xo_topology_t *t)
{
    if (!t) return;
    if (t->hw) hwloc_topology_destroy((hwloc_topology_t)t->hw);
    free(t->pu_numa);
    free(t->cores);
    free(t);
}

static void from_hwloc(hwloc_const_bitmap_t b, xo_cpuset_t *s)
{
    xo_cpuset_zero(s);
    unsigned id;
    hwloc_bitmap_foreach_begin(id, b)
    {
        xo_cpuset_add(s, (int)id);
    }
    hwloc_bitmap_foreach_end();
}

/* The OS index of the NUMA node holding PU pu, or -1. NUMA nodes are memory children in hwloc 2, so the PU's
 * nodeset is not enough on its own: the node whose cpuset covers the PU is the one it is local to. */
static int numa_of_pu(hwloc_topology_t topo, int pu)
{
    int n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    for (int i = 0; i < n; i++) {
        hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)i);
        if (node && node->cpuset && hwloc_bitmap_isset(node->cpuset, (unsigned)pu)) return (int)node->os_index;
    }
    return -1;
}

xo_status_t xo__topology_load(xo_topology_t **t_p)
{
    if (!t_p) return xo__error_set(XO_EINVAL, "topology: NULL argument");
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0) return xo__error_set(XO_ESYS, "hwloc_topology_init failed: %s", strerror(errno));
    /* PCI devices (and their bridges) are kept so that a GPU's pool can be bound near its GPU; the rest of the I/O
     * tree (OS devices, misc) is not needed. */
    hwloc_topology_set_type_filter(topo, HWLOC_OBJ_PCI_DEVICE, HWLOC_TYPE_FILTER_KEEP_ALL);
    hwloc_topology_set_type_filter(topo, HWLOC_OBJ_BRIDGE, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    /* The linux component reads PCI devices from sysfs, which is all we use. The plugins are kept out: "pci" goes
     * through libpciaccess (which leaks on every load), and the GPU ones would initialise CUDA, OpenCL, ROCm or
     * Level Zero (or open an X display) in the main pool before it forks its sub pools, which a CUDA context does
     * not survive. Blacklisting a plugin that is not installed fails harmlessly, so the results are ignored. */
    static const char *const unwanted[] = {"pci", "opencl", "cuda", "nvml", "rsmi", "levelzero", "gl"};
    for (size_t i = 0; i < sizeof unwanted / sizeof unwanted[0]; i++)
        (void)hwloc_topology_set_components(topo, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, unwanted[i]);
    if (hwloc_topology_load(topo) != 0) {
        int e = errno;
        hwloc_topology_destroy(topo);
        return xo__error_set(XO_ESYS, "hwloc_topology_load failed: %s", strerror(e));
    }

    /* Cores first; then any PU that no core holds (hwloc may find no Core objects on odd virtual machines) becomes
     * a core of its own, so that every usable PU is in exactly one core. */
    int n_core_objs = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    int n_pu_objs = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    if (n_core_objs < 0) n_core_objs = 0;
    if (n_pu_objs < 0) n_pu_objs = 0;
    size_t cap = (size_t)n_core_objs + (size_t)n_pu_objs;
    xo_cpuset_t *pus = calloc(cap ? cap : 1, sizeof *pus);
    int *numa = calloc(cap ? cap : 1, sizeof *numa);
    if (!pus || !numa) {
        free(pus);
        free(numa);
        hwloc_topology_destroy(topo);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    size_t n = 0;
    xo_cpuset_t seen;
    xo_cpuset_zero(&seen);
    for (int i = 0; i < n_core_objs; i++) {
        hwloc_obj_t core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, (unsigned)i);
        if (!core || !core->cpuset) continue;
        from_hwloc(core->cpuset, &pus[n]);
        if (xo__cpuset_count(&pus[n]) == 0) continue; /* all its PUs are disallowed */
        numa[n] = numa_of_pu(topo, xo__cpuset_next(&pus[n], -1));
        xo__cpuset_or(&seen, &pus[n]);
        n++;
    }
    for (int i = 0; i < n_pu_objs; i++) {
        hwloc_obj_t pu = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PU, (unsigned)i);
        if (!pu || xo_cpuset_has(&seen, (int)pu->os_index)) continue;
        xo_cpuset_zero(&pus[n]);
        xo_cpuset_add(&pus[n], (int)pu->os_index);
        numa[n] = numa_of_pu(topo, (int)pu->os_index);
        xo__cpuset_or(&seen, &pus[n]);
        n++;
    }
    xo_topology_t *t = NULL;
    xo_status_t st = xo__topology_build(n, pus, numa, &t);
    free(pus);
    free(numa);
    if (st != XO_OK) {
        hwloc_topology_destroy(topo);
        return st;
    }
    if (t->n_pus == 0) {
        xo__topology_free(t);
        hwloc_topology_destroy(topo);
        return xo__error_set(XO_ESYS, "hwloc found no usable PU on this host");
    }
    t->hw = topo;
    *t_p = t;
    return XO_OK;
}

int xo__topology_pu_numa(const xo_topology_t *t, int pu)
{
    if (pu < 0 || pu > t->max_pu) return -1;
    return t->pu_numa[pu];
}

xo_status_t xo__topology_check_cpuset(const xo_topology_t *t, const xo_cpuset_t *set, char *err, size_t err_len)
{
    char have[256];
    if (xo__cpuset_count(set) == 0) return fail(err, err_len, XO_EINVAL, "the CPU set is empty");
    for (int c = xo__cpuset_next(set, -1); c >= 0; c = xo__cpuset_next(set, c)) {
        if (!xo_cpuset_has(&t->pus, c)) {
            size_t need = xo__cpuset_format(&t->pus, have, sizeof have);
            return fail(err, err_len, XO_EINVAL, "CPU %d does not exist on this host (its CPUs are %s%s)", c, have,
                        need >= sizeof have ? "..." : "");
        }
    }
    return XO_OK;
}

xo_status_t xo__topology_nearby_cpus_of_pci(const xo_topology_t *t, const char *bus_id, xo_cpuset_t *set_p)
{
    if (!t || !bus_id || !set_p) return xo__error_set(XO_EINVAL, "topology: NULL argument");
    if (!t->hw) return xo__error_set(XO_ENOTSUP, "this topology was built by hand and knows no PCI devices");
    unsigned dom, bus, dev, fn;
    char tail;
    /* Checked here rather than by hwloc, so that a malformed id and a missing device read differently. */
    if (sscanf(bus_id, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) != 4)
        return xo__error_set(XO_EINVAL, "PCI bus id \"%s\" is malformed (expected domain:bus:device.function, e.g. "
                            "0000:3b:00.0)", bus_id);
    hwloc_topology_t topo = (hwloc_topology_t)t->hw;
    hwloc_obj_t obj = hwloc_get_pcidev_by_busid(topo, dom, bus, dev, fn);
    if (!obj) return xo__error_set(XO_EINVAL, "no PCI device %s on this host", bus_id);
    hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(topo, obj);
    if (!anc || !anc->cpuset) return xo__error_set(XO_EINVAL, "PCI device %s has no CPU ancestor", bus_id);
    xo_cpuset_t s;
    from_hwloc(anc->cpuset, &s);
    xo__cpuset_and(&s, &t->pus); /* the ancestor's cpuset may include disallowed PUs */
    *set_p = s;
    return XO_OK;
}

xo_status_t xo__topology_partition(const xo_topology_t *t, const xo_cpuset_t *within, size_t n_pools,
                                  xo_cpuset_t *sets)
{
    if (!t || (n_pools && !sets)) return xo__error_set(XO_EINVAL, "partition: NULL argument");
    if (n_pools == 0) return xo__error_set(XO_EINVAL, "partition: no pools to place");
    /* The usable cores: those with a PU in within, each reduced to those PUs. */
    xo_cpuset_t *cores = malloc(sizeof *cores * (t->n_cores ? t->n_cores : 1));
    if (!cores) return xo__error_set(XO_ENOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < t->n_cores; i++) {
        cores[n] = t->cores[i].pus;
        if (within) xo__cpuset_and(&cores[n], within);
        if (xo__cpuset_count(&cores[n])) n++;
    }
    if (n == 0) {
        free(cores);
        return xo__error_set(XO_EINVAL, "partition: no core of this host is in the given CPU set");
    }
    for (size_t p = 0; p < n_pools; p++) xo_cpuset_zero(&sets[p]);
    if (n_pools >= n) {
        for (size_t p = 0; p < n_pools; p++) sets[p] = cores[p % n];
    } else {
        /* Contiguous runs rather than dealing cores out: hwloc's logical order keeps the cores of one NUMA node
         * together, and a pool whose threads share memory should stay on one node when it can. */
        size_t base = n / n_pools, extra = n % n_pools, c = 0;
        for (size_t p = 0; p < n_pools; p++) {
            size_t take = base + (p < extra ? 1 : 0);
            for (size_t k = 0; k < take; k++) xo__cpuset_or(&sets[p], &cores[c++]);
        }
    }
    free(cores);
    return XO_OK;
}

xo_status_t xo__topology_partition_near(const xo_topology_t *t, size_t n_pools, const xo_cpuset_t *near,
                                       xo_cpuset_t *sets)
{
    if (!t || !near || !sets || n_pools == 0) return xo__error_set(XO_EINVAL, "partition near: no pools to place");
    for (size_t k = 0; k < n_pools; k++) {
        if (!xo__cpuset_intersects(&near[k], &t->pus)) {
            char text[64];
            xo__cpuset_format(&near[k], text, sizeof text);
            return xo__error_set(XO_EINVAL, "partition near: pool %zu's device is near CPUs \"%s\", none of which this "
                                           "process may use", k, text);
        }
    }
    xo_cpuset_t *out = malloc(sizeof *out * n_pools), *part = malloc(sizeof *part * n_pools);
    size_t *members = malloc(sizeof *members * n_pools);
    bool *done = calloc(n_pools, sizeof *done);
    xo_status_t st = out && part && members && done ? XO_OK : xo__error_set(XO_ENOMEM, "out of memory");
    /* One group per distinct near set, in the order pools first name it; its pools get its cores in turn. */
    for (size_t k = 0; st == XO_OK && k < n_pools; k++) {
        if (done[k]) continue;
        size_t m = 0;
        for (size_t q = k; q < n_pools; q++)
            if (!done[q] && xo__cpuset_equal(&near[q], &near[k])) members[m++] = q, done[q] = true;
        st = xo__topology_partition(t, &near[k], m, part);
        for (size_t i = 0; st == XO_OK && i < m; i++) out[members[i]] = part[i];
    }
    if (st == XO_OK)
        for (size_t k = 0; k < n_pools; k++) sets[k] = out[k];
    free(out);
    free(part);
    free(members);
    free(done);
    return st;
}

/* ---- binding -------------------------------------------------------------------------------------------------- */

xo_status_t xo__bind_self_to(const xo_cpuset_t *set)
{
    if (!set || xo__cpuset_count(set) == 0) return xo__error_set(XO_EINVAL, "bind: the CPU set is empty");
    cpu_set_t *cs = CPU_ALLOC(XO_CPUSET_MAX);
    if (!cs) return xo__error_set(XO_ENOMEM, "out of memory");
    size_t size = CPU_ALLOC_SIZE(XO_CPUSET_MAX);
    CPU_ZERO_S(size, cs);
    for (int c = xo__cpuset_next(set, -1); c >= 0; c = xo__cpuset_next(set, c)) CPU_SET_S((size_t)c, size, cs);
    /* pid 0 is the calling thread: Linux affinity is per thread, and new threads inherit their creator's. */
    int rc = sched_setaffinity(0, size, cs);
    int e = errno;
    CPU_FREE(cs);
    if (rc != 0) {
        char text[128];
        xo__cpuset_format(set, text, sizeof text);
        return xo__error_set(XO_ESYS, "sched_setaffinity to CPUs %s failed: %s", text, strerror(e));
    }
    return XO_OK;
}

xo_status_t xo__bound_cpus(xo_cpuset_t *set_p)
{
    if (!set_p) return xo__error_set(XO_EINVAL, "bound_cpus: NULL argument");
    cpu_set_t *cs = CPU_ALLOC(XO_CPUSET_MAX);
    if (!cs) return xo__error_set(XO_ENOMEM, "out of memory");
    size_t size = CPU_ALLOC_SIZE(XO_CPUSET_MAX);
    CPU_ZERO_S(size, cs);
    if (sched_getaffinity(0, size, cs) != 0) {
        int e = errno;
        CPU_FREE(cs);
        return xo__error_set(XO_ESYS, "sched_getaffinity failed: %s", strerror(e));
    }
    xo_cpuset_t s;
    xo_cpuset_zero(&s);
    for (int c = 0; c < XO_CPUSET_MAX; c++)
        if (CPU_ISSET_S((size_t)c, size, cs)) xo_cpuset_add(&s, c);
    CPU_FREE(cs);
    *set_p = s;
    return XO_OK;
}
