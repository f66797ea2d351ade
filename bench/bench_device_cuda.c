/* The raw CUDA copy the device benchmark compares xo_device_memcpy against (bench_device.c, dev.cuda.raw.*):
 * cudaMemcpy device-to-device, which returns before the copy is done, then a wait for the legacy default stream it
 * ran on. Built only with the CUDA device backend (XO_GPU_CUDA); plain C against the CUDA runtime API. */
#include <stdio.h>

#include <cuda_runtime_api.h>

int bench_cuda_d2d(int index, void *dst, const void *src, size_t n, char *why, size_t why_len);

int bench_cuda_d2d(int index, void *dst, const void *src, size_t n, char *why, size_t why_len)
{
    const char *what = "cudaSetDevice";
    cudaError_t e = cudaSetDevice(index);
    if (e == cudaSuccess) what = "cudaMemcpy", e = cudaMemcpy(dst, src, n, cudaMemcpyDeviceToDevice);
    if (e == cudaSuccess) what = "cudaStreamSynchronize", e = cudaStreamSynchronize(NULL);
    if (e == cudaSuccess) return 0;
    snprintf(why, why_len, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
    return -1;
}
