/* Starting one host of a cluster file in this process: shared by `xoscar up` (cluster/cli) and the public
 * xo_cluster_host_start (include/xoscar/cluster.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "cluster/cluster_file.h"
#include "runtime/auth.h"
#include "xoscar/cluster.h"

#define MAX_MAINS 64 /* the other hosts' main pools a host asks in a create with cluster scope */

xo_status_t xo__cluster_start_host(const xo_cluster_t *c, size_t i, const char *log_file, xo_host_t **host_p,
                                   xo_cluster_error_t *err)
{
    const char *name = c->hosts[i].name;
    xo_cluster_host_config_t *hc = NULL;
    xo_status_t st = xo__cluster_host_config(c, i, NULL, &hc, err);
    /* Its lines name the main pool as the sub pools' name theirs (xoscar-pool), so merged logs say who wrote. */
    xo__log_set_name(st == XO_OK ? hc->cfg.address : name);
    if (st != XO_OK) return st;
    /* The sub pools' devices come with the config (gpu/device keys); say what `device: auto` chose here. */
    for (const char *l = hc->device_notes, *e; l && (e = strchr(l, '\n')); l = e + 1)
        xo_log(hc->device_fallback ? XO_LOG_WARN : XO_LOG_INFO, "%.*s", (int)(e - l), l);
    hc->cfg.default_policy = c->placement.policy; /* the file's placement section */
    hc->cfg.weights[0] = c->placement.weights.mem;
    hc->cfg.weights[1] = c->placement.weights.load;
    hc->cfg.weights[2] = c->placement.weights.link;
    hc->cfg.log_file = log_file;
    xo_host_t *host = NULL;
    st = xo_host_start(&hc->cfg, &host); /* copies what it keeps of hc */
    if (st != XO_OK) {
        snprintf(err->text, sizeof err->text, "host %s: %s", name, xo_last_error());
        err->status = st;
        xo__cluster_host_config_free(hc);
        return xo__error_set(st, "%s", err->text);
    }
    if (strcmp(xo_host_address(host), hc->cfg.address) != 0) xo__log_set_name(xo_host_address(host)); /* port 0 */
    xo__cluster_host_config_free(hc);
    /* Every host's main pool, for creates with cluster scope (the host skips its own). */
    const char *mains[MAX_MAINS];
    char main_buf[MAX_MAINS][300];
    size_t n_mains = 0;
    for (size_t k = 0; k < c->n_hosts && n_mains < MAX_MAINS; k++) {
        bool v6 = strchr(c->hosts[k].address, ':') != NULL;
        snprintf(main_buf[n_mains], sizeof main_buf[0], v6 ? "[%s]:%u" : "%s:%u", c->hosts[k].address,
                 c->hosts[k].port);
        mains[n_mains] = main_buf[n_mains];
        n_mains++;
    }
    if (xo_host_set_cluster(host, mains, n_mains) != XO_OK)
        xo_log_warn("host %s: cluster-wide placement off: %s", name, xo_last_error());
    /* The file's tune profile: a profile that does not load is reported and placement goes on without it. */
    if (c->placement.profile && xo_host_load_profile(host, c->placement.profile) != XO_OK)
        xo_log_warn("host %s: placement.profile not used: %s", name, xo_last_error());
    *host_p = host;
    return XO_OK;
}

void xo__cluster_apply_environment(const xo_cluster_t *c)
{
    xo_set_secret(c->secret); /* every connection of this process authenticates with it */
    long ucx = -1, tcp = -1;
    for (size_t i = 0; i < c->transport.n_prefer; i++) {
        if (c->transport.prefer[i] == XO_CLUSTER_TRANSPORT_UCX) ucx = (long)i;
        if (c->transport.prefer[i] == XO_CLUSTER_TRANSPORT_TCP) tcp = (long)i;
    }
    /* Through the environment: the runtime reads it, and the sub pools this process starts inherit it. */
    if (ucx >= 0 && (tcp < 0 || ucx < tcp)) setenv("XO_UCX", "1", 0);
    if (c->transport.ucx_tls && c->transport.ucx_tls[0]) setenv("UCX_TLS", c->transport.ucx_tls, 0);
}

xo_status_t xo_cluster_host_start(const char *path, const char *host_name, xo_host_t **host_p)
{
    if (!path || !host_p) return xo__error_set(XO_EINVAL, "xo_cluster_host_start: path and host_p are required");
    xo_cluster_t *c = NULL;
    xo_cluster_error_t err = {0};
    xo_status_t st = xo__cluster_load(path, &c, &err);
    if (st != XO_OK) return xo__error_set(st, "%s", err.text);
    long i = -1;
    if (host_name) {
        i = xo__cluster_find_host(c, host_name);
        if (i < 0) st = xo__error_set(XO_ECONFIG, "%s has no host named '%s'", path, host_name);
    } else {
        for (size_t k = 0; k < c->n_hosts && i < 0; k++)
            if (xo__cluster_host_is_local(c, k)) i = (long)k;
        if (i < 0) st = xo__error_set(XO_ECONFIG, "%s: none of its hosts is this machine (name one)", path);
    }
    if (st == XO_OK) {
        xo__cluster_apply_environment(c);
        const char *env_level = getenv("XO_LOG_LEVEL");
        xo_log_level_t level;
        if (!(env_level && env_level[0] && xo__log_parse_level(env_level, &level))) xo__log_set_threshold(c->log_level);
        st = xo__cluster_start_host(c, (size_t)i, NULL, host_p, &err);
    }
    xo__cluster_free(c);
    return st;
}
