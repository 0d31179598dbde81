# usmc-run, the library it preloads, and usmc-run-kernel.
include(GNUInstallDirs)

# usmc's private files: the preload library and usmc-run-kernel.  They are
# no public library or command, so they live in a directory of their own.
set(USMC_PRIVATE_DIR ${CMAKE_INSTALL_LIBDIR}/usmc)
file(RELATIVE_PATH USMC_PRIVATE_RELDIR ${CMAKE_INSTALL_FULL_BINDIR}
     ${CMAKE_INSTALL_PREFIX}/${USMC_PRIVATE_DIR})

# The library's objects plus the wrappers; it exports only the wrapped
# names, by a version script made from the one list of them
# (src/preload/usmc_preload_names.h with the table of real calls).
# (A cache entry: the tests read it too.)
set(USMC_PRELOAD_MAP ${CMAKE_CURRENT_BINARY_DIR}/usmc_preload.map CACHE INTERNAL "")
add_custom_command(OUTPUT ${USMC_PRELOAD_MAP}
  COMMAND ${CMAKE_C_COMPILER} -E -P -x c -D_GNU_SOURCE -I${PROJECT_SOURCE_DIR}/src/lib
          -I${PROJECT_SOURCE_DIR}/src/preload ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload_map.in
          -o ${CMAKE_CURRENT_BINARY_DIR}/usmc_preload_names.i
  COMMAND ${CMAKE_COMMAND} -DIN=${CMAKE_CURRENT_BINARY_DIR}/usmc_preload_names.i
          -DOUT=${USMC_PRELOAD_MAP} -P ${CMAKE_CURRENT_SOURCE_DIR}/preload_map.cmake
  DEPENDS ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload_map.in
          ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload_names.h
          ${PROJECT_SOURCE_DIR}/src/lib/usmc_sys.h ${CMAKE_CURRENT_SOURCE_DIR}/preload_map.cmake
  COMMENT "Making the preload's version script"
  VERBATIM)
add_custom_target(usmc-preload-map DEPENDS ${USMC_PRELOAD_MAP})
add_library(usmc-preload SHARED $<TARGET_OBJECTS:usmc_obj>
            ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload.c
            ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload_wait.c
            ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload_aio.c
            ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload_msgs.c
            ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload_exec.c
            ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload_syscall.c
            ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload_stdio.c
            ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload_files.c
            ${PROJECT_SOURCE_DIR}/src/preload/usmc_preload_target.c)
target_include_directories(usmc-preload PRIVATE ${PROJECT_SOURCE_DIR}/include
                           ${USMC_INCLUDE_DIRS})
set_target_properties(usmc-preload PROPERTIES C_VISIBILITY_PRESET hidden
                      LINK_DEPENDS ${USMC_PRELOAD_MAP}
                      VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
target_link_options(usmc-preload PRIVATE -Wl,--version-script=${USMC_PRELOAD_MAP})
target_link_libraries(usmc-preload PRIVATE Threads::Threads ${CMAKE_DL_LIBS})
add_dependencies(usmc-preload usmc-preload-map)

# usmc-run preloads the library by its SONAME, found beside it in the build
# tree, then relative to it, so that a moved installation still works, then
# in the configured directory.
add_executable(usmc-run ${CMAKE_CURRENT_SOURCE_DIR}/usmc-run.c)
target_compile_definitions(usmc-run PRIVATE
  USMC_PRELOAD_NAME="$<TARGET_SONAME_FILE_NAME:usmc-preload>"
  USMC_PRIVATE_RELDIR="${USMC_PRIVATE_RELDIR}"
  USMC_PRIVATE_DIR="${CMAKE_INSTALL_PREFIX}/${USMC_PRIVATE_DIR}")
add_dependencies(usmc-run usmc-preload)
# For --check-policy: the policy file's reader, as the library has it.
target_include_directories(usmc-run PRIVATE ${USMC_INCLUDE_DIRS})
target_link_libraries(usmc-run PRIVATE usmc_static)

install(TARGETS usmc-run RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tools)
install(TARGETS usmc-preload LIBRARY DESTINATION ${USMC_PRIVATE_DIR} NAMELINK_SKIP
        COMPONENT tools)

# Kernel SMC through eBPF (kernel/), when it is built: only these link libbpf.
if(TARGET usmc_kernel)
  add_executable(usmc-run-kernel ${CMAKE_CURRENT_SOURCE_DIR}/usmc-run-kernel.c)
  target_link_libraries(usmc-run-kernel PRIVATE usmc_kernel)
  add_dependencies(usmc-run usmc-run-kernel)
  install(TARGETS usmc-run-kernel RUNTIME DESTINATION ${USMC_PRIVATE_DIR} COMPONENT tools)
  add_executable(usmc-kernel ${CMAKE_CURRENT_SOURCE_DIR}/usmc-kernel.c
                 ${CMAKE_CURRENT_SOURCE_DIR}/kernel_names.c
                 ${CMAKE_CURRENT_SOURCE_DIR}/kernel_policy.c
                 ${CMAKE_CURRENT_SOURCE_DIR}/json_out.c)
  target_link_libraries(usmc-kernel PRIVATE usmc_kernel)
  install(TARGETS usmc-kernel RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR} COMPONENT tools)
endif()
