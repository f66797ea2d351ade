# `cmake --install BUILD [--prefix P]`: headers, libxoscar.so.MAJOR and libxoscar.a, the plugins (LIBDIR/xoscar:
# libxoscar-cuda.so, libxoscar-nccl.so, libxoscar-ucx.so, those that were built), the xoscar CLI and xoscar-pool,
# a CMake package (find_package(xoscar) gives xoscar::xoscar) and xoscar.pc, the docs and the example cluster files,
# each in its GNUInstallDirs place. scripts/check-install.sh builds and runs a program against the result.
include(CMakePackageConfigHelpers)

install(DIRECTORY include/xoscar DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS xoscar EXPORT xoscarTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT Development)
# The static library: for programs that link the runtime into themselves (as xoscar-pool does). Its dependencies
# come from xoscar.pc (pkg-config --static); the CMake package exports the shared library only.
install(TARGETS xoscar_static ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS xoscar-cli xoscar-pool RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(EXPORT xoscarTargets NAMESPACE xoscar:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/xoscar)
configure_package_config_file(cmake/xoscarConfig.cmake.in ${PROJECT_BINARY_DIR}/xoscarConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/xoscar)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/xoscarConfigVersion.cmake COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/xoscarConfig.cmake ${PROJECT_BINARY_DIR}/xoscarConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/xoscar)

# pkg-config: Requires.private and Libs.private are what `pkg-config --static` adds for libxoscar.a.
set(XO_PC_REQUIRES_PRIVATE "hwloc yaml-0.1 libcrypto")
set(XO_PC_LIBS_PRIVATE "")
if(CMAKE_DL_LIBS)
  set(XO_PC_LIBS_PRIVATE "-l${CMAKE_DL_LIBS}")
endif()
# No CUDA, NCCL or UCX here: those are the plugins' (installed in LIBDIR/xoscar by xo_add_plugin,
# cmake/plugins.cmake), which libxoscar.a loads at run time like libxoscar.so does.
configure_file(cmake/xoscar.pc.in ${PROJECT_BINARY_DIR}/xoscar.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/xoscar.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(FILES README.md docs/ARCHITECTURE.md docs/cluster-file.md DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/xoscar)
install(FILES examples/cluster.yaml examples/pipeline.yaml DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/xoscar/examples)
install(FILES docs/modules.md docs/plugins.md DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/xoscar)
