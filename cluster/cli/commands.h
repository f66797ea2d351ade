/* The xoscar CLI's commands, split by what they work on. */
#ifndef XO_CLUSTER_CLI_COMMANDS_H
#define XO_CLUSTER_CLI_COMMANDS_H

#include <stddef.h>
#include <stdint.h>

#include "xoscar/xoscar.h"

/* Prints "xoscar: XO_NAME: text" for st and returns the exit code for it (1 or 3). */
int xo_cli_fail(xo_status_t st);

/* A request the pool answers itself (XO_WIRE_INFO, XO_WIRE_LIST: runtime/wire.h), waited for up to timeout_ms (then
 * cancelled). On XO_OK the caller frees *r_p. */
xo_status_t xo_cli_pool_request(const char *address, int type, int64_t timeout_ms, xo_result_t **r_p);

/* The pool's pid and actor count (an INFO request). */
xo_status_t xo_cli_pool_info(const char *address, int64_t timeout_ms, int *pid, uint64_t *actors);

/* Cluster-file commands (up, down, status, config): the exit code, or -1 when cmd is not one of them. */
int xo_cli_cluster_command(const char *cmd, int argc, char **argv);

/* Prints cmd's usage (its lines of the usage text) to stderr and returns 2, the exit code of a usage error. */
int xo__cli_usage_error(const char *cmd);

/* --cluster FILE: loads FILE, makes its secret this process's, and writes into buf the address that name means:
 * a host's name in the file is its main pool, NAME/N its sub pool N; anything else is taken as an address as it
 * is. 0, or the exit code after printing why (2: a bad file or an unknown host). */
int xo__cli_use_cluster(const char *path, const char *name, char *buf, size_t len);

struct xo_cluster;

/* Every pool address of cluster c (each host's main pool, then its sub pools) and its host's name, into *pools_p and
 * *hosts_p; returns how many. The caller frees both with xo_cli_free_list(v, n). */
size_t xo_cli_cluster_pools(const struct xo_cluster *c, char ***pools_p, char ***hosts_p);
void xo_cli_free_list(char **v, size_t n);

/* Loads a cluster file (errors printed), sets this process's secret and transports from it; NULL on error. */
struct xo_cluster *xo_cli_cluster_load(const char *path);

/* xoscar tune FILE [--quick] [--out PATH] [--apply] (tune.c): the exit code. */
int xo_cli_tune(int argc, char **argv);

/* The cluster's run directory on this machine, $XO_RUN_DIR (default /tmp/xoscar-<uid>)/<name>: the state file
 * (<host>.pid) and the pools' log files (<host>.log, <host>@N.log) of each host running here. */
void xo__cli_run_dir(const struct xo_cluster *c, char *buf, size_t len);

/* The main pool address a running host's state file records (what port 0 became); "" when it has none. */
void xo__cli_host_state_address(const struct xo_cluster *c, const char *host, char *buf, size_t len);

/* xoscar logs FILE [--pool P] [-f] (logs.c): the exit code. */
int xo__cli_logs(int argc, char **argv);

/* xoscar actors (actors.c): the exit code. cluster_file: the --cluster option, or NULL. */
int xo__cli_actors(int argc, char **argv, const char *cluster_file, int64_t timeout_ms);

/* Their lines for the usage text. */
const char *xo_cli_cluster_usage(void);

#endif
