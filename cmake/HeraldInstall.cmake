# Install rules: `cmake --install build --prefix /usr/local` puts the `herald`
# and `herald-sdk` binaries (full build), libherald (static herald_sdk and herald_common), its
# headers under include/herald and a CMake package, so that a service does
#
#   find_package(herald 0.1 CONFIG REQUIRED)
#   target_link_libraries(users_service PRIVATE herald::sdk)
#
# and includes headers by the same paths as in this tree ("sdk/outbox/outbox.h").
include(CMakePackageConfigHelpers)

set(HERALD_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/herald)
set_target_properties(herald_common PROPERTIES EXPORT_NAME common)
set_target_properties(herald_sdk PROPERTIES EXPORT_NAME sdk)
install(TARGETS herald_common herald_sdk EXPORT heraldTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/src/common ${PROJECT_SOURCE_DIR}/src/sdk
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/herald FILES_MATCHING PATTERN "*.h")
install(EXPORT heraldTargets NAMESPACE herald:: DESTINATION ${HERALD_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/heraldConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/heraldConfig.cmake INSTALL_DESTINATION ${HERALD_CMAKE_DIR})
# 0.x: a minor version may change the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/heraldConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/heraldConfig.cmake ${PROJECT_BINARY_DIR}/heraldConfigVersion.cmake
        DESTINATION ${HERALD_CMAKE_DIR})
if(TARGET herald)
  install(TARGETS herald herald-sdk RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})  # herald runs its sibling herald-sdk
endif()
