/* C helpers for suites whose module headers use C11 atomics (not includable from C++17). */
#ifndef XO_TESTS_RUNTIME_SHIMS_H
#define XO_TESTS_RUNTIME_SHIMS_H
#ifdef __cplusplus
extern "C" {
#endif
int shim_mpsc_empty_behaviour(void);
int shim_mpsc_stress(int producers, int per, long *received, long *disorder);
int shim_timer_order(int *order_out, int n, int *fired_out);
int shim_timer_drop_on_stop(void);
#ifdef __cplusplus
}
#endif
#endif
