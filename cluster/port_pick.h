/* A port base for a host asked to pick its own port (address "host:0"): its sub pools listen on port + N, so the
 * kernel's free port alone is not enough. */
#ifndef XO_CLUSTER_PORT_PICK_H
#define XO_CLUSTER_PORT_PICK_H

#include <stdbool.h>

/* A port P such that P, P + 1, ..., P + n_after can be bound on host now (a name or an IP address, without
 * brackets), drawn outside the kernel's ephemeral range (ip_local_port_range), where outgoing connections take
 * their local ports from and would sooner or later sit on P + N. Nothing is held: another process may take a port
 * before the pools bind it, which they then report. False when no such base was found in a few hundred tries. */
bool xo__pick_port_base(const char *host, unsigned n_after, unsigned *port_p);

#endif
