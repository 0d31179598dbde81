# What `cmake --install` puts where: the library (shared and static), its
# header, pkg-config and CMake package files.  The tools install themselves
# (tools/*.cmake, bench/).
include(CMakePackageConfigHelpers)

install(TARGETS usmc usmc_static EXPORT usmcTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime
                NAMELINK_COMPONENT dev
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(FILES include/usmc.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)

# find_package(usmc) gives usmc::usmc and usmc::usmc_static.
install(EXPORT usmcTargets NAMESPACE usmc:: FILE usmcTargets.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/usmc COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/usmcConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/usmcConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/usmc)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/usmcConfigVersion.cmake
                                 COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/usmcConfig.cmake ${PROJECT_BINARY_DIR}/usmcConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/usmc COMPONENT dev)

# pkg-config --cflags --libs usmc; relocatable, as the CMake files are.
file(RELATIVE_PATH USMC_PC_TO_PREFIX ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" USMC_PC_TO_PREFIX "${USMC_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/usmc.pc.in ${PROJECT_BINARY_DIR}/usmc.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/usmc.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT dev)

# Manual pages and shell completion, when the tree has them.
if(EXISTS ${PROJECT_SOURCE_DIR}/man)
  foreach(section 1 3 7 8)
    file(GLOB pages ${PROJECT_SOURCE_DIR}/man/*.${section})
    install(FILES ${pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section} COMPONENT tools)
  endforeach()
endif()
if(EXISTS ${PROJECT_SOURCE_DIR}/completion/usmc)
  install(FILES completion/usmc DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
          COMPONENT tools)
  foreach(tool usmc-run usmc-stat usmc-kernel usmc-bench)
    install(CODE "file(CREATE_LINK usmc \$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DATADIR}/bash-completion/completions/${tool} SYMBOLIC)"
            COMPONENT tools)
  endforeach()
endif()
