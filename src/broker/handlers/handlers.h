// Every request handler the broker serves: one struct per Kafka API, its
// handle() in handlers/<api>.cc. The table in handlers.cc lists them; the
// ApiVersions response is computed from that table, never kept by hand.
#pragma once

#include "broker/handlers/handler.h"
#include "protocol/messages.h"

namespace herald::broker {

#define HERALD_HANDLER(NAME, MIN, MAX)                                        \
  struct NAME##Handler {                                                      \
    using Request = protocol::NAME##Request;                                  \
    using Response = protocol::NAME##Response;                                \
    static constexpr int16_t kMinVersion = MIN, kMaxVersion = MAX;            \
    static asio::awaitable<Response> handle(RequestContext& ctx, Request req); \
  }

// Version ranges advertised in ApiVersions. Produce v0-2 are advertised (librdkafka compresses
// only when Produce starts at v0, KAFKA-18659) but answered UNSUPPORTED_VERSION per partition.
// CreateTopics v0-1, DeleteTopics v0 and DescribeConfigs v0 (gone in Kafka 4.0, served by 3.x)
// are what older client libraries' admin sends (Sarama 1.22, Debian 12's, for any version).
HERALD_HANDLER(Produce, 0, 11);
HERALD_HANDLER(Fetch, 4, 12);
HERALD_HANDLER(ListOffsets, 0, 9);
HERALD_HANDLER(Metadata, 0, 12);
HERALD_HANDLER(ApiVersions, 0, 4);
HERALD_HANDLER(CreateTopics, 0, 7);
HERALD_HANDLER(DeleteTopics, 0, 6);
HERALD_HANDLER(DeleteRecords, 0, 2);
HERALD_HANDLER(InitProducerId, 0, 5);
HERALD_HANDLER(OffsetForLeaderEpoch, 2, 4);
HERALD_HANDLER(DescribeConfigs, 0, 4);
HERALD_HANDLER(AlterConfigs, 0, 2);
HERALD_HANDLER(CreatePartitions, 0, 3);
HERALD_HANDLER(IncrementalAlterConfigs, 0, 1);
HERALD_HANDLER(DescribeCluster, 0, 1);
// Consumer groups (group/group_coordinator.h).
HERALD_HANDLER(FindCoordinator, 0, 6);
HERALD_HANDLER(JoinGroup, 0, 9);
HERALD_HANDLER(SyncGroup, 0, 5);
HERALD_HANDLER(Heartbeat, 0, 4);
HERALD_HANDLER(LeaveGroup, 0, 5);
HERALD_HANDLER(OffsetCommit, 0, 9);
HERALD_HANDLER(OffsetFetch, 0, 9);
HERALD_HANDLER(ListGroups, 0, 5);
HERALD_HANDLER(DescribeGroups, 0, 5);
HERALD_HANDLER(DeleteGroups, 0, 2);
HERALD_HANDLER(OffsetDelete, 0, 0);

#undef HERALD_HANDLER

// ApiVersions answers versions it does not support itself (UNSUPPORTED_VERSION in a v0
// body listing its own range).
asio::awaitable<HandlerOutcome> run_api_versions(RequestContext& ctx, ByteSpan body);

}  // namespace herald::broker
