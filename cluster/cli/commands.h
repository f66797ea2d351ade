/* The xoscar CLI's commands, split by what they work on. */
#ifndef XO_CLUSTER_CLI_COMMANDS_H
#define XO_CLUSTER_CLI_COMMANDS_H

#include <stdint.h>

#include "xoscar/status.h"

/* Prints "xoscar: XO_NAME: text" for st and returns the exit code for it (1 or 3). */
int xo_cli_fail(xo_status_t st);

/* The pool's pid and actor count (an INFO request). */
xo_status_t xo_cli_pool_info(const char *address, int64_t timeout_ms, int *pid, uint64_t *actors);

/* Cluster-file commands (up, down, status, config): the exit code, or -1 when cmd is not one of them. */
int xo_cli_cluster_command(const char *cmd, int argc, char **argv);

/* Their lines for the usage text. */
const char *xo_cli_cluster_usage(void);

#endif
