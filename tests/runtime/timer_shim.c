/* C side of the timer suite (core.h uses C11 atomics). */
#include <stdlib.h>
#include <unistd.h>

#include "runtime/core.h"
#include "tests/runtime/shims.h"

typedef struct {
    xo_timer_t timer;
    int id;
    int *order;
    int *n_fired;
} tick_t;

static void tick_fire(xo_timer_t *t)
{
    tick_t *k = (tick_t *)t;
    k->order[(*k->n_fired)++] = k->id; /* under the timers' lock: one writer */
}

static int n_dropped;
static void tick_drop(xo_timer_t *t) { n_dropped++; }

int shim_timer_order(int *order_out, int n, int *fired_out)
{
    xo_timers_t *timers;
    if (xo__timers_start(&timers, "xo-test-timer") != XO_OK) return -1;
    tick_t *ticks = calloc((size_t)n, sizeof *ticks);
    int fired = 0;
    uint64_t now = xo__now_ns();
    for (int i = 0; i < n; i++) {
        ticks[i] = (tick_t){{0, SIZE_MAX, tick_fire, NULL}, i, order_out, &fired};
        xo__timers_add(timers, &ticks[i].timer, now + (uint64_t)(n - i) * 1000000ull); /* reverse order */
    }
    int removed = xo__timers_remove(timers, &ticks[5].timer) + xo__timers_remove(timers, &ticks[n - 1].timer);
    usleep((useconds_t)(n + 30) * 1000);
    int refire = xo__timers_remove(timers, &ticks[0].timer); /* already fired: false */
    xo__timers_stop(timers);
    *fired_out = fired;
    free(ticks);
    return removed == 2 && !refire ? 0 : 1;
}

int shim_timer_drop_on_stop(void)
{
    xo_timers_t *timers;
    if (xo__timers_start(&timers, "xo-test-timer") != XO_OK) return -1;
    int order[1], fired = 0;
    tick_t far = {{0, SIZE_MAX, tick_fire, tick_drop}, 1, order, &fired};
    n_dropped = 0;
    xo__timers_add(timers, &far.timer, xo__now_ns() + 60ull * 1000000000ull);
    xo__timers_stop(timers);
    return (n_dropped == 1 && fired == 0) ? 0 : 1;
}
