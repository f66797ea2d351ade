/* Fibers: the stacks that actor methods run on, so that a method can wait on another actor without blocking its
 * pool's thread. A fiber is created suspended and runs fn(arg) the first time it is switched to; fn must never
 * return (it switches away for good instead). Fibers are bound to the thread that created them: a fiber is only
 * ever switched to on its own thread (the scheduler guarantees it), which keeps thread-local storage honest. */
#ifndef XO_RUNTIME_FIBER_H
#define XO_RUNTIME_FIBER_H

#include <stddef.h>

typedef struct xo_fiber xo_fiber_t;
typedef void (*xo_fiber_fn)(void *arg);

/* A fiber standing for the calling thread's own stack, to switch away from and back to. Freed with
 * xo__fiber_destroy (which does not touch the thread's stack). NULL when out of memory. */
xo_fiber_t *xo__fiber_for_thread(void);

/* A new fiber with a stack of stack_size bytes (rounded up to pages, plus a guard page that faults on overflow).
 * The caller owns it and frees it with xo__fiber_destroy, only while it is not running. NULL on failure. */
xo_fiber_t *xo__fiber_create(size_t stack_size, xo_fiber_fn fn, void *arg);

void xo__fiber_destroy(xo_fiber_t *fiber);

/* Saves the running context into from (which must be the running fiber) and resumes to. Returns when some other
 * fiber switches back to from. */
void xo__fiber_switch(xo_fiber_t *from, xo_fiber_t *to);

/* Which switch implementation this build uses: "x86_64-asm" or "ucontext". */
const char *xo__fiber_backend(void);

#endif
