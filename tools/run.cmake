# usmc-run and the library it preloads.
include(GNUInstallDirs)

# The library's objects plus the wrappers; it exports only the wrapped names.
set(USMC_PRELOAD_MAP ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload.map)
add_library(usmc-preload SHARED $<TARGET_OBJECTS:usmc_obj>
            ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload.c
            ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload_wait.c
            ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload_msgs.c
            ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload_exec.c
            ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload_stdio.c
            ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload_target.c)
target_include_directories(usmc-preload PRIVATE ${PROJECT_SOURCE_DIR}/include
                           ${PROJECT_SOURCE_DIR}/src)
set_target_properties(usmc-preload PROPERTIES C_VISIBILITY_PRESET hidden
                      LINK_DEPENDS ${USMC_PRELOAD_MAP})
target_link_options(usmc-preload PRIVATE -Wl,--version-script=${USMC_PRELOAD_MAP})
target_link_libraries(usmc-preload PRIVATE Threads::Threads ${CMAKE_DL_LIBS})

# Where an installed usmc-run finds the library: relative first, so a moved
# installation still works, then the configured directory.
file(RELATIVE_PATH USMC_PRELOAD_RELDIR ${CMAKE_INSTALL_FULL_BINDIR}
     ${CMAKE_INSTALL_FULL_LIBDIR})
add_executable(usmc-run ${CMAKE_CURRENT_SOURCE_DIR}/usmc-run.c)
target_compile_definitions(usmc-run PRIVATE
  USMC_PRELOAD_NAME="$<TARGET_FILE_NAME:usmc-preload>"
  USMC_PRELOAD_RELDIR="${USMC_PRELOAD_RELDIR}"
  USMC_PRELOAD_LIBDIR="${CMAKE_INSTALL_FULL_LIBDIR}")
add_dependencies(usmc-run usmc-preload)

install(TARGETS usmc-run RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS usmc-preload LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})

# Kernel SMC through eBPF (kernel/), when it is built.
if(TARGET usmc_kernel)
  target_compile_definitions(usmc-run PRIVATE USMC_HAVE_KERNEL)
  target_link_libraries(usmc-run PRIVATE usmc_kernel)
  add_executable(usmc-kernel ${CMAKE_CURRENT_SOURCE_DIR}/usmc-kernel.c)
  target_link_libraries(usmc-kernel PRIVATE usmc_kernel)
  install(TARGETS usmc-kernel RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
