include(GNUInstallDirs)

# add_balancekv_library(name srcs...
#   [DEPENDS tablegen targets...]
#   [MLIR_LIBS upstream MLIR libraries...]    linked as libMLIR.so in dylib mode
#   [LINK_LIBS our own libraries...])
# Keeps one process from ever mixing libMLIR.so with the static MLIR archives.
function(add_balancekv_library name)
  cmake_parse_arguments(ARG "" "" "DEPENDS;MLIR_LIBS;LINK_LIBS" ${ARGN})
  # Installed into our own export set (balancekv_install), not MLIR's.
  add_mlir_library(${name} ${ARG_UNPARSED_ARGUMENTS}
    EXCLUDE_FROM_LIBMLIR DISABLE_INSTALL
    DEPENDS ${ARG_DEPENDS}
    LINK_LIBS PUBLIC ${ARG_LINK_LIBS})
  mlir_target_link_libraries(${name} PUBLIC ${ARG_MLIR_LIBS})
  balancekv_install(${name})
endfunction()

# Installs a target of ours and exports it as BalanceKV::<name>
# (lib/cmake/BalanceKV/BalanceKVTargets.cmake); installed users include
# <prefix>/include.
function(balancekv_install name)
  target_include_directories(${name} INTERFACE
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  install(TARGETS ${name} EXPORT BalanceKVTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endfunction()

# add_balancekv_tool(name srcs... [MLIR_LIBS ...] [LINK_LIBS ...])
function(add_balancekv_tool name)
  cmake_parse_arguments(ARG "" "" "MLIR_LIBS;LINK_LIBS" ${ARGN})
  add_llvm_executable(${name} ${ARG_UNPARSED_ARGUMENTS})
  llvm_update_compile_flags(${name})
  target_link_libraries(${name} PRIVATE ${ARG_LINK_LIBS})
  mlir_target_link_libraries(${name} PRIVATE ${ARG_MLIR_LIBS})
endfunction()
