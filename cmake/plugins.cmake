# Plugins (base/plugin.h, docs/plugins.md): the optional hardware backends, each a shared object of its own that
# the core loads at run time, so that libxoscar.so, xoscar and xoscar-pool have no DT_NEEDED on libcudart, libnccl
# or UCX. In the build tree they sit in XO_PLUGIN_DIR, where a binary running from the tree looks for them; installed
# in LIBDIR/xoscar.
set(XO_PLUGIN_DIR ${PROJECT_BINARY_DIR}/lib/xoscar)
set_property(GLOBAL PROPERTY XO_PLUGINS "")

# xo_add_plugin(NAME SOURCES src... LIBS lib...): the target xo_plugin_NAME, libxoscar-NAME.so, from the sources
# and base/plugin_side.c, linked against LIBS (the vendor's libraries) and no object of the core: --no-undefined
# makes a call into the core a link error, and the version script keeps every symbol but the descriptor local.
function(xo_add_plugin name)
  cmake_parse_arguments(P "" "" "SOURCES;LIBS" ${ARGN})
  set(t xo_plugin_${name})
  add_library(${t} MODULE ${P_SOURCES} ${PROJECT_SOURCE_DIR}/base/plugin_side.c)
  target_include_directories(${t} PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR})
  target_link_libraries(${t} PRIVATE ${P_LIBS} Threads::Threads)
  set_target_properties(${t} PROPERTIES PREFIX "lib" OUTPUT_NAME xoscar-${name}
    LIBRARY_OUTPUT_DIRECTORY ${XO_PLUGIN_DIR} LINK_DEPENDS ${PROJECT_SOURCE_DIR}/cmake/plugin.map)
  target_link_options(${t} PRIVATE -Wl,--no-undefined -Wl,--version-script=${PROJECT_SOURCE_DIR}/cmake/plugin.map)
  install(TARGETS ${t} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/xoscar)
  set_property(GLOBAL APPEND PROPERTY XO_PLUGINS ${name})
endfunction()
