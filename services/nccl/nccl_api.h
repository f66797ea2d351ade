/* The NCCL entry points the services use, as a table the NCCL plugin (libxoscar-nccl.so, nccl_plugin.c) fills and
 * the core reaches through xo__nccl_api(). Why a table and not the NCCL code itself in the plugin: the code that
 * drives NCCL (collectives' nccl backend, device buffers' point-to-point, the waits) is built on the engine's actors
 * and calls, which a plugin could only reach through a host table as large as the runtime; what ties a process to
 * libnccl and libcudart is only these calls. So the core compiles against nccl.h and cuda_runtime_api.h for their
 * types, and links neither (a build with NCCL found loads on a machine without it).
 *
 * Each member has the type of the function it stands for (__typeof__ of the header's declaration), so a signature
 * that changes in a new NCCL breaks the build, not a call. */
#ifndef XO_SERVICES_NCCL_NCCL_API_H
#define XO_SERVICES_NCCL_NCCL_API_H

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "base/plugin.h"
#include "xoscar/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct xo__nccl_api {
    __typeof__(&ncclGetErrorString) get_error_string;
    __typeof__(&ncclGetLastError) get_last_error;
    __typeof__(&ncclGetUniqueId) get_unique_id;
    __typeof__(&ncclCommInitRankConfig) comm_init_rank_config;
    __typeof__(&ncclCommGetAsyncError) comm_get_async_error;
    __typeof__(&ncclCommFinalize) comm_finalize;
    __typeof__(&ncclCommDestroy) comm_destroy;
    __typeof__(&ncclCommAbort) comm_abort;
    __typeof__(&ncclAllReduce) all_reduce;
    __typeof__(&ncclBroadcast) broadcast;
    __typeof__(&ncclAllGather) all_gather;
    __typeof__(&ncclReduceScatter) reduce_scatter;
    __typeof__(&ncclReduce) reduce;
    __typeof__(&ncclSend) send;
    __typeof__(&ncclRecv) recv;
    __typeof__(&ncclGroupStart) group_start;
    __typeof__(&ncclGroupEnd) group_end;
    /* The CUDA runtime calls of the NCCL paths, from the plugin's libcudart (the cuda device plugin's too). */
    __typeof__(&cudaSetDevice) cuda_set_device;
    __typeof__(&cudaMemcpyAsync) cuda_memcpy_async;
    __typeof__(&cudaStreamQuery) cuda_stream_query;
    __typeof__(&cudaGetErrorString) cuda_get_error_string;
    __typeof__(&cudaGetErrorName) cuda_get_error_name;
} xo__nccl_api_t;

/* The NCCL plugin's fingerprint: the table, and the NCCL configuration structure whose initializer the core takes
 * from its own nccl.h. */
#define XO_NCCL_PLUGIN_LAYOUT XO_PLUGIN_LAYOUT(xo__nccl_api_t, ncclConfig_t)

/* The table, with the plugin loaded on the first call (base/plugin.h: one log line either way); NULL when it is not
 * there, and then the NCCL paths are off: collectives choose the host backend, device buffers stage. Thread-safe. */
const xo__nccl_api_t *xo__nccl_api(void);

/* Sets the error text for a user who asked for NCCL explicitly (`backend nccl`) where it is not loaded, naming the
 * reason, and returns XO_ENOTSUP. what: who asks ("collective group g"). */
xo_status_t xo__nccl_missing(const char *what);

#ifdef __cplusplus
}
#endif
#endif
