/* The NCCL plugin, libxoscar-nccl.so: the NCCL and CUDA runtime entry points of services/nccl/nccl_api.h, from the
 * libnccl and libcudart it links. Nothing else: the code that drives them is the core's. */
#include "services/nccl/nccl_api.h"

static const xo__nccl_api_t nccl_api = {
    .get_error_string = ncclGetErrorString,
    .get_last_error = ncclGetLastError,
    .get_unique_id = ncclGetUniqueId,
    .comm_init_rank_config = ncclCommInitRankConfig,
    .comm_get_async_error = ncclCommGetAsyncError,
    .comm_finalize = ncclCommFinalize,
    .comm_destroy = ncclCommDestroy,
    .comm_abort = ncclCommAbort,
    .all_reduce = ncclAllReduce,
    .broadcast = ncclBroadcast,
    .all_gather = ncclAllGather,
    .reduce_scatter = ncclReduceScatter,
    .reduce = ncclReduce,
    .send = ncclSend,
    .recv = ncclRecv,
    .group_start = ncclGroupStart,
    .group_end = ncclGroupEnd,
    .cuda_set_device = cudaSetDevice,
    .cuda_memcpy_async = cudaMemcpyAsync,
    .cuda_stream_query = cudaStreamQuery,
    .cuda_get_error_string = cudaGetErrorString,
    .cuda_get_error_name = cudaGetErrorName,
};

XO_PLUGIN_DEFINE(XO_PLUGIN_NCCL, "nccl", XO_NCCL_PLUGIN_LAYOUT, &nccl_api);
