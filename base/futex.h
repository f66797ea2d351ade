/* Linux futex wait/wake on a 32-bit atomic: private to the process, or (the _shared variants) in memory that other
 * processes map too (a MAP_SHARED page), where FUTEX_PRIVATE would not reach them. */
#ifndef XO_BASE_FUTEX_H
#define XO_BASE_FUTEX_H

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static inline void xo__futex_wait_op(_Atomic int *addr, int op, int expected, int64_t timeout_ns)
{
    struct timespec ts, *tp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tp = &ts;
    }
    syscall(SYS_futex, (int *)addr, op, expected, tp, NULL, 0);
}

/* Sleeps while *addr == expected, at most timeout_ns (negative: no limit). Spurious wake-ups happen: re-check. */
static inline void xo_futex_wait(_Atomic int *addr, int expected, int64_t timeout_ns)
{
    xo__futex_wait_op(addr, FUTEX_WAIT_PRIVATE, expected, timeout_ns);
}

static inline void xo_futex_wake(_Atomic int *addr, int n)
{
    syscall(SYS_futex, (int *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static inline void xo_futex_wait_shared(_Atomic int *addr, int expected, int64_t timeout_ns)
{
    xo__futex_wait_op(addr, FUTEX_WAIT, expected, timeout_ns);
}

static inline void xo_futex_wake_shared(_Atomic int *addr, int n)
{
    syscall(SYS_futex, (int *)addr, FUTEX_WAKE, n, NULL, NULL, 0);
}

static inline void xo_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
