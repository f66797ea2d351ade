/* The suite, in the order it runs. The bare queue comes first: later ratios divide by its median.
 * To add a benchmark: write bench_<name>.c with one `int bench_<name>(const bench_opts_t *)`, declare it here and
 * add a row to the table. */
#ifndef XO_BENCHMARK_LIST_H
#define XO_BENCHMARK_LIST_H

#include "bench.h"

int bench_mpsc(const bench_opts_t *opts);
int bench_tell(const bench_opts_t *opts);
int bench_call(const bench_opts_t *opts);
int bench_pingpong(const bench_opts_t *opts);
int bench_batch(const bench_opts_t *opts);
int bench_create(const bench_opts_t *opts);
int bench_async(const bench_opts_t *opts);
int bench_shmraw(const bench_opts_t *opts);
int bench_remote_direct(const bench_opts_t *opts);
int bench_remote_shm(const bench_opts_t *opts);
int bench_remote_unix(const bench_opts_t *opts);
int bench_remote_tcp(const bench_opts_t *opts);
int bench_bulk_memcpy(const bench_opts_t *opts);
int bench_bulk_direct(const bench_opts_t *opts);
int bench_bulk_shm(const bench_opts_t *opts);
int bench_bulk_unix(const bench_opts_t *opts);
int bench_bulk_tcp(const bench_opts_t *opts);
int bench_coll(const bench_opts_t *opts);
int bench_devbuf(const bench_opts_t *opts);
int bench_devlaunch(const bench_opts_t *opts);
int bench_devready(const bench_opts_t *opts);

#define BENCHMARK_LIST(XX)                                                                              \
    XX(mpsc, "bare intrusive Vyukov MPSC queue, 1 producer + 1 consumer thread (the limit)")           \
    XX(tell, "xo_tell throughput into one stateful actor from 1 and 8 plain threads")                   \
    XX(call, "xo_call round trip from a plain thread")                                                  \
    XX(pingpong, "actor A's method xo_calls actor B's method (fiber suspend/resume)")                   \
    XX(batch, "xo_delay x100 + xo_batch vs 100 xo_call")                                                \
    XX(create, "xo_create_actor from a plain thread and from a method; RSS per idle actor")             \
    XX(async, "cost of the suspend/resume path: xo_call vs xo_tell vs a direct C call, inside a method")     \
    XX(shmraw, "raw shm ping-pong between two processes (busy-poll) and memcpy bandwidth (the limits)")     \
    XX(remote_direct, "host main pool: calls/tells to an actor of the same pool (reference)")              \
    XX(remote_shm, "calls/tells from the main pool's process to a sub pool over shm")                      \
    XX(remote_unix, "calls/tells from the main pool's process to a sub pool over a unix socket")           \
    XX(remote_tcp, "calls/tells to a stand-alone xoscar-pool over TCP loopback")                          \
    XX(bulk_memcpy, "memcpy of 64 KiB..256 MiB, warm and into fresh pages (the limits of bulk_*)")           \
    XX(bulk_direct, "64 KiB..256 MiB arguments and results to an actor of the caller's own pool")          \
    XX(bulk_shm, "64 KiB..256 MiB arguments and results to a sub pool over shm")                           \
    XX(bulk_unix, "64 KiB..256 MiB arguments and results to a sub pool over a unix socket")                \
    XX(bulk_tcp, "64 KiB..256 MiB arguments and results to a stand-alone xoscar-pool over TCP loopback")   \
    XX(coll, "collectives among three pool processes (shm vs messages): 8 B latency, 16 MiB bus bandwidth") \
    XX(devbuf, "device buffer lent to an actor (same pool, device IPC, staged) vs a direct D2D copy (--device)") \
    XX(devlaunch, "small kernel launched + synchronized by an actor (same pool, sub pool) vs directly (--device)") \
    XX(devready, "hand a buffer still being written to another process: sync then send vs send with a ready event")

#endif
