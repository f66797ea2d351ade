/* Cluster-file commands: not built yet (they need the cluster file parser). */
#include <stddef.h>

#include "runtime/cli/commands.h"

int xo_cli_cluster_command(const char *cmd, int argc, char **argv)
{
    (void)cmd;
    (void)argc;
    (void)argv;
    return -1;
}

const char *xo_cli_cluster_usage(void) { return ""; }
