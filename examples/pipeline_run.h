/* The device pipeline's client side, shared by examples/pipeline.c (a host started by the program) and
 * examples/pipeline_client.c (a cluster started by `xoscar up`). */
#ifndef XO_EXAMPLES_PIPELINE_RUN_H
#define XO_EXAMPLES_PIPELINE_RUN_H

#include <stdint.h>

#include <xoscar/xoscar.h>

/* Calls producer.run(n, a, main_address, transform_uid, reduce_uid): the producer lends its buffer to those two
 * actors of the host at main_address. Prints where each stage ran and on which device, and the sum against a CPU
 * reference. Returns 0 on a match, 1 on a mismatch or a failed call (its error printed). */
int pipeline_run(xo_ref_t *producer, const char *main_address, const char *transform_uid, const char *reduce_uid,
                 int64_t n, double a);

/* The pipeline again over three Kernels actors (examples/kernels), each on its pool's device: kernels[0] uploads
 * x[i] = i % 1000 and y = 1 (n floats each), kernels[1] computes y = a x + y in place on the buffers lent from
 * kernels[0]'s pool (saxpy_buf), kernels[2] sums y (sum_buf). Returns 0 when the sum matches the CPU's, else 1. */
int pipeline_kernels_saxpy_check(xo_ref_t *const kernels[3], int64_t n, double a);

/* A tiled matrix multiply over three Kernels actors (examples/kernels), each on its pool's device: kernels[0]
 * uploads A (m x k) and B (k x n), kernels[1] multiplies the buffers lent from kernels[0]'s pool into C on its own
 * device (matmul_buf), kernels[2] downloads C. The entries of A and B are multiples of 1/8 below 1, so every
 * product and sum is exact in float and C must equal the CPU's result exactly, whatever the summation order.
 * Returns 0 on a match, 1 otherwise (printed). */
int pipeline_matmul_check(xo_ref_t *const kernels[3], int m, int k, int n);

#endif
