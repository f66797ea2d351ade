/* The set-up of the cross-process benchmarks (bench_remote.c), shared with bench_bulk.c: a host, a BenchEcho target
 * in the pool a transport reaches, and a driver actor in the host's main pool. */
#ifndef XO_BENCH_REMOTE_H
#define XO_BENCH_REMOTE_H

#include <sys/types.h>

#include <xoscar/host.h>

#include "bench.h"

typedef enum { T_DIRECT, T_SHM, T_UNIX, T_TCP } transport_t;

typedef struct setup {
    xo_host_t *host;
    pid_t server;            /* the stand-alone xoscar-pool of the TCP case, else 0 */
    char target[256];        /* the target pool's address */
    xo_ref_t *echo, *driver;
} setup_t;

/* Starts a host (and for T_TCP a stand-alone xoscar-pool) with XO_TRANSPORT forced for t, creates BenchEcho where
 * t reaches it and checks which process it lives in. 0, or -1 with the reason on stderr (nothing left running). */
int bench_remote_setup(const bench_opts_t *opts, transport_t t, setup_t *s);
/* Stops what bench_remote_setup started. */
void bench_remote_teardown(setup_t *s);

#endif
