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

# UCX (Debian libucx-dev) for the cross-host channel.
find_package(PkgConfig QUIET)
set(XO_HAVE_UCX OFF)
if(PkgConfig_FOUND)
  pkg_check_modules(UCX QUIET IMPORTED_TARGET ucx)
  if(UCX_FOUND)
    set(XO_HAVE_UCX ON)
    message(STATUS "xoscar: UCX ${UCX_VERSION}")
  endif()
endif()
