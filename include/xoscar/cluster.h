/* Xoscar-C clusters from C: start a host of a cluster file in this process, as `xoscar up FILE --host NAME
 * --foreground` does, for programs that embed the runtime (a service that is its own main pool).
 * The file's format is docs/cluster-file.md. */
#ifndef XOSCAR_CLUSTER_H
#define XOSCAR_CLUSTER_H

#include "xoscar/host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Loads the cluster file at path and starts its host host_name here (NULL: the first host of the file that is this
 * machine): the process takes the file's secret (xo_set_secret), transport preferences and log level (unless
 * XO_LOG_LEVEL is set), the host its pools, modules, restart policy, placement policy and weights, the other
 * hosts' main pools (creates with cluster scope) and the tune profile (a profile that does not load is logged and
 * placement goes on without it). On XO_OK the caller owns *host_p and stops it with xo_host_stop. Errors:
 * XO_ECONFIG for a bad file, with "file:line:column: ..." in xo_last_error(), or an unknown host or none of this
 * machine; what xo_host_start returns otherwise. */
XO_API xo_status_t xo_cluster_host_start(const char *path, const char *host_name, xo_host_t **host_p);

#ifdef __cplusplus
}
#endif
#endif
