#include "runtime/fiber.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__) && !defined(XO_FIBER_UCONTEXT)
#define XO_FIBER_ASM 1
#else
#include <ucontext.h>
#endif

/* Sanitizers must be told about stack switches, or ASan reports false stack overflows/use-after-return and TSan
 * loses track of happens-before across fibers. */
#if defined(__SANITIZE_ADDRESS__)
#define XO_ASAN_FIBERS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define XO_ASAN_FIBERS 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define XO_TSAN_FIBERS 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define XO_TSAN_FIBERS 1
#endif
#endif

#ifdef XO_ASAN_FIBERS
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
#endif
#ifdef XO_TSAN_FIBERS
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

struct xo_fiber {
#ifdef XO_FIBER_ASM
    void *sp;
#else
    ucontext_t uc;
#endif
    void *map;          /* the mapping (guard page + stack); NULL for a thread's own stack */
    size_t map_size;
    const void *stack_bottom;
    size_t stack_size;
    xo_fiber_fn fn;
    void *arg;
#ifdef XO_ASAN_FIBERS
    void *fake_stack;
#endif
#ifdef XO_TSAN_FIBERS
    void *tsan_fiber;
#endif
};

#ifdef XO_FIBER_ASM
void xo__fiber_switch_asm(void **save_sp, void *load_sp);
void xo__fiber_entry_asm(void);
#endif

const char *xo__fiber_backend(void)
{
#ifdef XO_FIBER_ASM
    return "x86_64-asm";
#else
    return "ucontext";
#endif
}

xo_fiber_t *xo__fiber_for_thread(void)
{
    xo_fiber_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
#ifdef XO_TSAN_FIBERS
    f->tsan_fiber = __tsan_get_current_fiber();
#endif
    /* ASan needs the thread stack's bounds when a fiber switches back to it. */
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *addr = NULL;
        size_t size = 0;
        pthread_attr_getstack(&attr, &addr, &size);
        f->stack_bottom = addr;
        f->stack_size = size;
        pthread_attr_destroy(&attr);
    }
    return f;
}

#ifndef XO_FIBER_ASM
static void ucontext_entry(unsigned hi, unsigned lo)
{
    xo_fiber_t *f = (xo_fiber_t *)(((uintptr_t)hi << 32) | (uintptr_t)lo);
#ifdef XO_ASAN_FIBERS
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    f->fn(f->arg);
    abort(); /* fn must not return */
}
#else
/* First code a new fiber runs (called from xo__fiber_entry_asm): completes the sanitizer switch, then runs fn. */
static void asm_entry(void *arg)
{
    xo_fiber_t *f = arg;
#ifdef XO_ASAN_FIBERS
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    f->fn(f->arg);
    abort(); /* fn must not return */
}
#endif

xo_fiber_t *xo__fiber_create(size_t stack_size, xo_fiber_fn fn, void *arg)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    stack_size = (stack_size + page - 1) & ~(page - 1);
    xo_fiber_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    /* MAP_NORESERVE + lazily touched pages: an idle fiber costs only the pages its deepest call touched. */
    f->map_size = stack_size + page;
    f->map = mmap(NULL, f->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (f->map == MAP_FAILED) {
        free(f);
        return NULL;
    }
    mprotect(f->map, page, PROT_NONE); /* guard page: an overflow faults instead of corrupting a neighbour */
    f->stack_bottom = (char *)f->map + page;
    f->stack_size = stack_size;
    f->fn = fn;
    f->arg = arg;
#ifdef XO_TSAN_FIBERS
    f->tsan_fiber = __tsan_create_fiber(0);
#endif
#ifdef XO_FIBER_ASM
    /* Lay out the frame xo__fiber_switch_asm pops: control words, r15, r14, r13 (arg), r12 (fn), rbx, rbp, and the
     * return address xo__fiber_entry_asm. The ABI wants rsp % 16 == 8 at a function's first instruction (the call
     * pushed 8 bytes); xo__fiber_entry_asm is entered by ret with rsp 16-aligned, and its callq pushes 8. */
    uintptr_t top = ((uintptr_t)f->stack_bottom + stack_size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top;
    *--sp = (uint64_t)(uintptr_t)xo__fiber_entry_asm; /* popped by ret: entry then runs with rsp % 16 == 0 */
    *--sp = 0;                                /* rbp */
    *--sp = 0;                                /* rbx */
    *--sp = (uint64_t)(uintptr_t)asm_entry;   /* r12: function */
    *--sp = (uint64_t)(uintptr_t)f;           /* r13: its argument */
    *--sp = 0;                                /* r14 */
    *--sp = 0;                                /* r15 */
    uint32_t mxcsr = 0x1F80;                  /* default: all exceptions masked, round to nearest */
    uint16_t fpucw = 0x037F;
    uint64_t ctl = (uint64_t)mxcsr | ((uint64_t)fpucw << 32);
    *--sp = ctl;
    f->sp = sp;
#else
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = (void *)f->stack_bottom;
    f->uc.uc_stack.ss_size = stack_size;
    f->uc.uc_link = NULL;
    uintptr_t p = (uintptr_t)f;
    makecontext(&f->uc, (void (*)(void))ucontext_entry, 2, (unsigned)(p >> 32), (unsigned)(p & 0xffffffffu));
#endif
    return f;
}

void xo__fiber_destroy(xo_fiber_t *f)
{
    if (!f) return;
#ifdef XO_TSAN_FIBERS
    if (f->map && f->tsan_fiber) __tsan_destroy_fiber(f->tsan_fiber);
#endif
    if (f->map) munmap(f->map, f->map_size);
    free(f);
}

void xo__fiber_switch(xo_fiber_t *from, xo_fiber_t *to)
{
#ifdef XO_ASAN_FIBERS
    __sanitizer_start_switch_fiber(&from->fake_stack, to->stack_bottom, to->stack_size);
#endif
#ifdef XO_TSAN_FIBERS
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
#ifdef XO_FIBER_ASM
    xo__fiber_switch_asm(&from->sp, to->sp);
#else
    swapcontext(&from->uc, &to->uc);
#endif
#ifdef XO_ASAN_FIBERS
    __sanitizer_finish_switch_fiber(from->fake_stack, NULL, NULL);
#endif
}
