/* The limits the cross-process numbers are judged against, measured in the same run:
 *
 * shmraw.rtt_*: a raw shared-memory ping-pong between two processes. Two 64-byte-apart counters in a memfd mapping
 * shared across fork(); the parent writes ping = i and busy-polls until pong == i, the child busy-polls ping and
 * answers pong = i. No syscalls, no queue, no payload: the floor for any same-host round trip (one cache line each
 * way, twice).
 *
 * memcpy.<size>: single-thread memcpy bandwidth (GB/s = 1e9 bytes/s) for the payload sizes of the remote suite,
 * buffers allocated and faulted in beforehand, repeated until at least 256 MiB (--quick: 64 MiB) were copied.
 * memcpy.64MiB_fresh: the same copy into freshly allocated memory (malloc, copy, free, 3 times): what a transfer
 * into a new buffer pays for page faults and zeroing on top of the copy (glibc mmaps and unmaps blocks this large). */
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

static const bench_metric_spec_t m_p50 = {.name = "shmraw.rtt_p50", .unit = "us"};
static const bench_metric_spec_t m_p99 = {.name = "shmraw.rtt_p99", .unit = "us"};
static const bench_metric_spec_t m_memcpy[BENCH_N_SIZES] = {
    {.name = "memcpy.8B", .unit = "GB/s"},   {.name = "memcpy.1KiB", .unit = "GB/s"},
    {.name = "memcpy.64KiB", .unit = "GB/s"}, {.name = "memcpy.1MiB", .unit = "GB/s"},
    {.name = "memcpy.64MiB", .unit = "GB/s"},
};

static const bench_metric_spec_t m_fresh = {.name = "memcpy.64MiB_fresh", .unit = "GB/s", .ref = "memcpy.64MiB"};

typedef struct shared {
    _Alignas(64) _Atomic uint64_t ping;
    _Alignas(64) _Atomic uint64_t pong;
} shared_t;

static int pingpong(const bench_opts_t *opts)
{
    size_t n = opts->quick ? 20000 : 200000, warm = n / 10;
    int fd = memfd_create("xo-bench-shmraw", 0);
    if (fd < 0 || ftruncate(fd, sizeof(shared_t)) != 0) {
        perror("memfd");
        return -1;
    }
    shared_t *s = mmap(NULL, sizeof(shared_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (s == MAP_FAILED) return -1;
    atomic_store(&s->ping, 0);
    atomic_store(&s->pong, 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        for (uint64_t i = 1; i <= warm + n; i++) {
            while (atomic_load_explicit(&s->ping, memory_order_acquire) != i) {
            }
            atomic_store_explicit(&s->pong, i, memory_order_release);
        }
        _exit(0);
    }
    uint64_t *lat = malloc(n * sizeof *lat);
    for (uint64_t i = 1; i <= warm + n; i++) {
        uint64_t t0 = bench_now_ns();
        atomic_store_explicit(&s->ping, i, memory_order_release);
        while (atomic_load_explicit(&s->pong, memory_order_acquire) != i) {
        }
        uint64_t t1 = bench_now_ns();
        if (i > warm) lat[i - warm - 1] = t1 - t0;
    }
    int status;
    waitpid(pid, &status, 0);
    bench_report(&m_p50, bench_percentile(lat, n, 50) / 1e3);
    bench_report(&m_p99, bench_percentile(lat, n, 99) / 1e3);
    free(lat);
    munmap(s, sizeof *s);
    return 0;
}

static int memcpy_bw(const bench_opts_t *opts)
{
    size_t total = opts->quick ? (64u << 20) : (256u << 20);
    for (int k = 0; k < BENCH_N_SIZES; k++) {
        size_t size = bench_sizes[k];
        if (size > (64u << 20)) continue;
        char *src = malloc(size), *dst = malloc(size);
        if (!src || !dst) return -1;
        memset(src, 1, size);
        memset(dst, 2, size);
        size_t reps = total / size;
        if (reps < 3) reps = 3;
        memcpy(dst, src, size); /* warm */
        uint64_t t0 = bench_now_ns();
        for (size_t r = 0; r < reps; r++) {
            memcpy(dst, src, size);
            __asm__ volatile("" ::"r"(dst) : "memory"); /* keep every copy */
        }
        uint64_t t1 = bench_now_ns();
        bench_report(&m_memcpy[k], (double)size * (double)reps / (double)(t1 - t0));
        free(dst);
        if (size == (64u << 20)) {
            t0 = bench_now_ns();
            for (int r = 0; r < 3; r++) {
                dst = malloc(size);
                if (!dst) return -1;
                memcpy(dst, src, size);
                __asm__ volatile("" ::"r"(dst) : "memory");
                free(dst);
            }
            t1 = bench_now_ns();
            bench_report(&m_fresh, (double)size * 3 / (double)(t1 - t0));
        }
        free(src);
    }
    return 0;
}

int bench_shmraw(const bench_opts_t *opts)
{
    if (pingpong(opts) != 0) return -1;
    return memcpy_bw(opts);
}
