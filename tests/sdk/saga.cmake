# Sagas (src/sdk/saga): orchestrator and participants in one process against
# an embedded broker, on SQLite and PostgreSQL (~60 s each). Uses the replica
# harness (tests/sdk/replica.cmake, included before this file).
herald_replica_exe(sdk_saga_test saga_test.cc)
herald_replica_test(NAME sdk_saga_sqlite EXE sdk_saga_test FILTER Store/Sagas.*/sqlite TIMEOUT 240)
herald_replica_test(NAME sdk_saga_postgres EXE sdk_saga_test FILTER Store/Sagas.*/postgres PG TIMEOUT 240)
