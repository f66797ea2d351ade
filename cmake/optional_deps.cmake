# Optional hardware dependencies. None is needed to build; each found one adds a backend.
include(CheckLanguage)
set(XO_EXTRA_LIBS "")

# CUDA: the gpu/cuda backend is built only where nvcc is found.
if(NOT DEFINED CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
check_language(CUDA)
if(CMAKE_CUDA_COMPILER)
  set(XO_HAVE_CUDA ON)
  message(STATUS "xoscar: CUDA compiler ${CMAKE_CUDA_COMPILER}")
else()
  set(XO_HAVE_CUDA OFF)
  message(STATUS "xoscar: no CUDA compiler, GPU backend not built")
endif()

# UCX (Debian libucx-dev) for the cross-host channel: the plugin libxoscar-ucx.so.
find_package(PkgConfig QUIET)
set(XO_HAVE_UCX OFF)
if(PkgConfig_FOUND)
  pkg_check_modules(UCX QUIET IMPORTED_TARGET ucx)
  if(UCX_FOUND)
    set(XO_HAVE_UCX ON)
    message(STATUS "xoscar: UCX ${UCX_VERSION}")
  endif()
endif()

# The CUDA toolkit's libraries (the gpu/ CUDA backend) and NCCL (the services' NCCL paths), only with nvcc. Both are
# plugins (cmake/plugins.cmake): found here, they are built as libxoscar-cuda.so and libxoscar-nccl.so.
option(XO_WITH_CUDA "Build the CUDA device backend when the CUDA toolkit is found" ON)
option(XO_WITH_NCCL "Build the NCCL paths of collectives and device buffers when NCCL is found" ON)
set(XO_GPU_CUDA OFF)
set(XO_HAVE_NCCL OFF)
if(XO_WITH_CUDA AND XO_HAVE_CUDA)
  find_package(CUDAToolkit QUIET GLOBAL)
  if(CUDAToolkit_FOUND)
    set(XO_GPU_CUDA ON)
    message(STATUS "xoscar: CUDA device backend on CUDA ${CUDAToolkit_VERSION} (${CUDAToolkit_LIBRARY_DIR})")
    # NCCL where the toolkit has it, or where NCCL_ROOT points.
    find_path(XO_NCCL_INCLUDE_DIR nccl.h HINTS ${NCCL_ROOT}/include ${CUDAToolkit_INCLUDE_DIRS})
    find_library(XO_NCCL_LIBRARY nccl HINTS ${NCCL_ROOT}/lib ${NCCL_ROOT}/lib64 ${CUDAToolkit_LIBRARY_DIR})
    if(XO_WITH_NCCL AND XO_NCCL_INCLUDE_DIR AND XO_NCCL_LIBRARY)
      set(XO_HAVE_NCCL ON)
      # The core compiles against NCCL's and CUDA's headers and links neither; the nccl plugin links both
      # (services/nccl/CMakeLists.txt).
      add_library(xo_nccl_headers INTERFACE)
      target_include_directories(xo_nccl_headers INTERFACE ${XO_NCCL_INCLUDE_DIR} ${CUDAToolkit_INCLUDE_DIRS})
      message(STATUS "xoscar: NCCL (${XO_NCCL_LIBRARY})")
    else()
      message(STATUS "xoscar: NCCL not found (or XO_WITH_NCCL=OFF): collectives use the host backend only")
    endif()
  else()
    message(STATUS "xoscar: nvcc found but not the CUDA toolkit's libraries; CUDA device backend not built")
  endif()
else()
  message(STATUS "xoscar: CUDA device backend not built (XO_WITH_CUDA=${XO_WITH_CUDA}, nvcc found: ${XO_HAVE_CUDA})")
endif()
# Read by tests/gpu and examples/kernels.
set(XO_GPU_CUDA ${XO_GPU_CUDA} CACHE INTERNAL "The CUDA device backend is built")
