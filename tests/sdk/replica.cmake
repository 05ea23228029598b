# ---------------------------------------------------------------------------
# Consuming side of the SDK: replica / projection / dead letters (issue 5).
# Included by tests/sdk/CMakeLists.txt (its *.cmake glob). Owned separately
# from the rest of tests/sdk: replica_*, dlq_*, projection_*.
#
#   ctest -R 'sdk_(replica|dlq|projection)'
#
# Runtimes on the 2-core dev machine are noted per test. The SIGKILL and
# rebalance tests drive sdk_replica_helper, a projecting process, through
# HERALD_SDK_REPLICA_HELPER.
# ---------------------------------------------------------------------------

add_library(herald_sdk_replica_harness STATIC replica_harness.cc)
target_compile_options(herald_sdk_replica_harness PRIVATE ${HERALD_WARNINGS})
target_include_directories(herald_sdk_replica_harness PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(herald_sdk_replica_harness PUBLIC herald_sdk_test_util)

add_library(herald_sdk_replica_broker STATIC replica_broker.cc)
target_compile_options(herald_sdk_replica_broker PRIVATE ${HERALD_WARNINGS})
target_link_libraries(herald_sdk_replica_broker PUBLIC herald_sdk_replica_harness herald::broker)

add_executable(sdk_replica_helper replica_helper.cc)
target_compile_options(sdk_replica_helper PRIVATE ${HERALD_WARNINGS})
target_link_libraries(sdk_replica_helper PRIVATE herald_sdk_replica_harness)

# herald_replica_exe(<name> <sources...>): a gtest executable with the harness.
function(herald_replica_exe name)
  add_executable(${name} ${ARGN})
  target_compile_options(${name} PRIVATE ${HERALD_WARNINGS})
  target_link_libraries(${name} PRIVATE herald_sdk_replica_broker GTest::gtest GTest::gtest_main)
  add_dependencies(${name} sdk_replica_helper)
endfunction()

# herald_replica_test(NAME <ctest name> EXE <target> [FILTER <gtest filter>] [PG] [SERIAL] [TIMEOUT s])
function(herald_replica_test)
  cmake_parse_arguments(A "PG;SERIAL" "NAME;EXE;FILTER;TIMEOUT" "" ${ARGN})
  set(args)
  if(A_FILTER)
    set(args --gtest_filter=${A_FILTER})
  endif()
  set(flags)
  if(A_PG)
    list(APPEND flags PG)
  endif()
  if(A_SERIAL)
    list(APPEND flags SERIAL)
  endif()
  herald_sdk_test_run(NAME ${A_NAME} EXE $<TARGET_FILE:${A_EXE}> ARGS ${args} ${flags} TIMEOUT ${A_TIMEOUT})
  set_property(TEST ${A_NAME} APPEND PROPERTY ENVIRONMENT
               "HERALD_SDK_REPLICA_HELPER=$<TARGET_FILE:sdk_replica_helper>")
endfunction()

# Exactly-once under >= 25 SIGKILLs of the projecting process (~40-60 s each).
herald_replica_exe(sdk_replica_kill_test replica_kill_test.cc)
herald_replica_test(NAME sdk_replica_kill_sqlite EXE sdk_replica_kill_test FILTER Store/ReplicaKill.*/sqlite
                    SERIAL TIMEOUT 300)
herald_replica_test(NAME sdk_replica_kill_postgres EXE sdk_replica_kill_test FILTER Store/ReplicaKill.*/postgres
                    PG SERIAL TIMEOUT 300)

# Rebalance: two helper processes, one SIGKILLed (~15 s each).
herald_replica_exe(sdk_replica_rebalance_test replica_rebalance_test.cc)
herald_replica_test(NAME sdk_replica_rebalance_sqlite EXE sdk_replica_rebalance_test
                    FILTER Store/ReplicaRebalance.*/sqlite SERIAL TIMEOUT 240)
herald_replica_test(NAME sdk_replica_rebalance_postgres EXE sdk_replica_rebalance_test
                    FILTER Store/ReplicaRebalance.*/postgres PG SERIAL TIMEOUT 240)

# Bootstrap from a compacted topic with 100,000 keys, readiness, catch-up.
herald_replica_exe(sdk_replica_bootstrap_test replica_bootstrap_test.cc)
herald_replica_test(NAME sdk_replica_bootstrap_sqlite EXE sdk_replica_bootstrap_test
                    FILTER Store/Bootstrap.*/sqlite SERIAL TIMEOUT 300)
herald_replica_test(NAME sdk_replica_bootstrap_postgres EXE sdk_replica_bootstrap_test
                    FILTER Store/Bootstrap.*/postgres PG SERIAL TIMEOUT 300)
# A compacted topic of an lz4 producer: emptied batches must not stop librdkafka (~5 s).
herald_replica_test(NAME sdk_replica_compacted_compressed EXE sdk_replica_bootstrap_test
                    FILTER CompactedCompressed.* TIMEOUT 120)

# Projection behaviour in one process (tombstones, dedup, catch-up, lag, ...).
herald_replica_exe(sdk_projection_test projection_test.cc)
herald_replica_test(NAME sdk_projection_sqlite EXE sdk_projection_test FILTER Store/Projection.*/sqlite TIMEOUT 240)
herald_replica_test(NAME sdk_projection_postgres EXE sdk_projection_test FILTER Store/Projection.*/postgres PG
                    TIMEOUT 240)

# Dead letters and ordered dead letters.
herald_replica_exe(sdk_dlq_test dlq_test.cc)
# Drives the real `herald dlq` (herald -> herald-sdk), not the function behind it.
target_compile_definitions(sdk_dlq_test PRIVATE HERALD_CLI="$<TARGET_FILE:herald>")
add_dependencies(sdk_dlq_test herald)
herald_replica_test(NAME sdk_dlq_sqlite EXE sdk_dlq_test FILTER Store/DeadLetters.*/sqlite TIMEOUT 240)
herald_replica_test(NAME sdk_dlq_postgres EXE sdk_dlq_test FILTER Store/DeadLetters.*/postgres PG TIMEOUT 240)
herald_replica_exe(sdk_dlq_ordered_test dlq_ordered_test.cc)
herald_replica_test(NAME sdk_dlq_ordered_sqlite EXE sdk_dlq_ordered_test FILTER Store/OrderedDeadLetters.*/sqlite
                    TIMEOUT 240)
herald_replica_test(NAME sdk_dlq_ordered_postgres EXE sdk_dlq_ordered_test
                    FILTER Store/OrderedDeadLetters.*/postgres PG TIMEOUT 240)
