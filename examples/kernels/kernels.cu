/* The kernels for the cuda device backend, compiled by nvcc into the example module: SAXPY, a two-pass sum
 * reduction, and a tiled matrix multiply. The launchers queue them through xo_device_launch_kernel, which calls
 * cudaLaunchKernel in the runtime; the module links the shared libcudart, as the runtime does, so both see the kernels
 * this file registers. */
#include "kernels.h"

namespace {

constexpr unsigned kBlock = 256;
constexpr int kTile = 16;

__global__ void saxpy_kernel(size_t n, float a, const float *x, float *y)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = a * x[i] + y[i];
}

/* Each block reduces a grid-stride slice of x into out[blockIdx.x]: a per-thread sum, then a tree in shared memory.
 * Run with one block it reduces x into out[0]. blockDim.x is a power of two. */
__global__ void sum_kernel(size_t n, const float *x, float *out)
{
    extern __shared__ float sh[];
    float s = 0.0f;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) s += x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (unsigned w = blockDim.x / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = sh[0];
}

/* C = A B with kTile x kTile tiles of A and B staged in shared memory; edges are padded with zeros. */
__global__ void matmul_kernel(int m, int k, int n, const float *a, const float *b, float *c)
{
    __shared__ float ta[kTile][kTile];
    __shared__ float tb[kTile][kTile];
    int row = blockIdx.y * kTile + threadIdx.y, col = blockIdx.x * kTile + threadIdx.x;
    float acc = 0.0f;
    for (int t = 0; t < k; t += kTile) {
        int ac = t + threadIdx.x, br = t + threadIdx.y;
        ta[threadIdx.y][threadIdx.x] = (row < m && ac < k) ? a[(size_t)row * k + ac] : 0.0f;
        tb[threadIdx.y][threadIdx.x] = (br < k && col < n) ? b[(size_t)br * n + col] : 0.0f;
        __syncthreads();
        for (int i = 0; i < kTile; i++) acc += ta[threadIdx.y][i] * tb[i][threadIdx.x];
        __syncthreads();
    }
    if (row < m && col < n) c[(size_t)row * n + col] = acc;
}

unsigned blocks_for(size_t n, unsigned per_block, unsigned cap)
{
    size_t b = (n + per_block - 1) / per_block;
    if (b == 0) b = 1;
    return b > cap ? cap : (unsigned)b;
}

}  // namespace

extern "C" xo_status_t xo_k_saxpy_cuda(xo_device_stream_t *stream, size_t n, float a, const float *x, float *y)
{
    unsigned grid[3] = {blocks_for(n, kBlock, 65535), 1, 1}, block[3] = {kBlock, 1, 1};
    void *args[] = {&n, &a, &x, &y};
    return xo_device_launch_kernel(stream, (const void *)saxpy_kernel, grid, block, 0, args);
}

extern "C" xo_status_t xo_k_sum_cuda(xo_device_stream_t *stream, size_t n, const float *x, float *scratch, float *out)
{
    /* Pass 1: up to XO_K_SUM_SCRATCH blocks write partial sums; pass 2: one block adds them into out. */
    unsigned blocks = blocks_for(n, kBlock, XO_K_SUM_SCRATCH);
    unsigned grid[3] = {blocks, 1, 1}, block[3] = {kBlock, 1, 1};
    void *args1[] = {&n, &x, &scratch};
    xo_status_t st = xo_device_launch_kernel(stream, (const void *)sum_kernel, grid, block, kBlock * sizeof(float), args1);
    if (st != XO_OK) return st;
    size_t nb = blocks;
    const float *partials = scratch;
    unsigned grid2[3] = {1, 1, 1}, block2[3] = {1024, 1, 1};
    void *args2[] = {&nb, &partials, &out};
    return xo_device_launch_kernel(stream, (const void *)sum_kernel, grid2, block2, 1024 * sizeof(float), args2);
}

extern "C" xo_status_t xo_k_matmul_cuda(xo_device_stream_t *stream, int m, int k, int n, const float *a, const float *b,
                                        float *c)
{
    unsigned grid[3] = {(unsigned)((n + kTile - 1) / kTile), (unsigned)((m + kTile - 1) / kTile), 1};
    unsigned block[3] = {kTile, kTile, 1};
    void *args[] = {&m, &k, &n, &a, &b, &c};
    return xo_device_launch_kernel(stream, (const void *)matmul_kernel, grid, block, 0, args);
}
