add_executable(usmc-stat ${CMAKE_CURRENT_SOURCE_DIR}/usmc-stat.c
               ${CMAKE_CURRENT_SOURCE_DIR}/stat_counters.c
               ${CMAKE_CURRENT_SOURCE_DIR}/stat_inet.c
               ${CMAKE_CURRENT_SOURCE_DIR}/stat_kernel.c
               ${CMAKE_CURRENT_SOURCE_DIR}/stat_kernel_codes.c
               ${CMAKE_CURRENT_SOURCE_DIR}/stat_kernel_genl.c
               ${CMAKE_CURRENT_SOURCE_DIR}/smc_netlink.c
               ${CMAKE_CURRENT_SOURCE_DIR}/json_out.c)
target_link_libraries(usmc-stat PRIVATE usmc_static)
target_include_directories(usmc-stat PRIVATE ${USMC_INCLUDE_DIRS})
install(TARGETS usmc-stat RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tools)
