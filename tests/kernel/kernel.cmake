# Programs for the kernel SMC tests.  Those run in a VM with Debian's 6.12
# kernel, started by tests/kernel/run-vm-tests.sh, which CTest runs as one
# entry labelled vm (ctest -L vm): it needs root and qemu, builds its own
# image and tree, and takes minutes.  Beside it CTest checks usmc-stat
# --kernel on this host.

# smc_peer is static so that it runs in the VM whatever its libc, and so
# that it is "an unmodified static binary" to the BPF tests.
include(CheckCSourceCompiles)
set(CMAKE_REQUIRED_LINK_OPTIONS -static)
check_c_source_compiles("int main(void) { return 0; }" USMC_HAVE_STATIC_LIBC)
unset(CMAKE_REQUIRED_LINK_OPTIONS)
if(USMC_HAVE_STATIC_LIBC AND NOT USMC_SANITIZE)
  add_executable(smc_peer ${CMAKE_CURRENT_LIST_DIR}/smc_peer.c)
  target_link_options(smc_peer PRIVATE -static)
endif()

add_executable(smc_ctl ${CMAKE_CURRENT_LIST_DIR}/smc_ctl.c
               ${PROJECT_SOURCE_DIR}/tools/stat_kernel_genl.c
               ${PROJECT_SOURCE_DIR}/tools/stat_kernel_codes.c
               ${PROJECT_SOURCE_DIR}/tools/json_out.c
               ${PROJECT_SOURCE_DIR}/tools/smc_netlink.c)
target_include_directories(smc_ctl PRIVATE ${PROJECT_SOURCE_DIR}/tools ${USMC_INCLUDE_DIRS})
target_link_libraries(smc_ctl PRIVATE usmc_static)

add_test(NAME kernel_stat_host
         COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/stat_host.sh $<TARGET_FILE:usmc-stat>)

if(NOT USMC_SANITIZE)
  add_test(NAME kernel_vm COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run-vm-tests.sh)
  set_tests_properties(kernel_vm PROPERTIES LABELS "vm;needs-root;slow" TIMEOUT 1800 RUN_SERIAL TRUE
                       SKIP_RETURN_CODE 77)
endif()
