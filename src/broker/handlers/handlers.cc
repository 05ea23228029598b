#include "broker/handlers/handlers.h"

#include <algorithm>
#include <array>

namespace herald::broker {
namespace {

template <class H>
constexpr HandlerEntry entry() {
  return HandlerEntry{H::Request::kApiKey, H::kMinVersion, H::kMaxVersion, H::Request::kName, &run_handler<H>};
}

template <class... H>
struct HandlerList {};

template <class... H>
constexpr auto make_table(HandlerList<H...>) {
  std::array<HandlerEntry, sizeof...(H)> t{entry<H>()...};
  std::sort(t.begin(), t.end(), [](const HandlerEntry& a, const HandlerEntry& b) { return a.api_key < b.api_key; });
  for (auto& e : t) {
    if (e.api_key == ApiVersionsHandler::Request::kApiKey) e.run = &run_api_versions;
  }
  return t;
}

using AllHandlers =
    HandlerList<ProduceHandler, FetchHandler, ListOffsetsHandler, MetadataHandler, ApiVersionsHandler,
                CreateTopicsHandler, DeleteTopicsHandler, DeleteRecordsHandler, InitProducerIdHandler,
                OffsetForLeaderEpochHandler, DescribeConfigsHandler, AlterConfigsHandler, CreatePartitionsHandler,
                IncrementalAlterConfigsHandler, DescribeClusterHandler, FindCoordinatorHandler, JoinGroupHandler,
                SyncGroupHandler, HeartbeatHandler, LeaveGroupHandler, OffsetCommitHandler, OffsetFetchHandler,
                ListGroupsHandler, DescribeGroupsHandler, DeleteGroupsHandler, OffsetDeleteHandler>;

const auto kTable = make_table(AllHandlers{});

}  // namespace

std::span<const HandlerEntry> handler_table() { return kTable; }

const HandlerEntry* find_handler(int16_t api_key) {
  for (const auto& e : kTable) {
    if (e.api_key == api_key) return &e;
  }
  return nullptr;
}

}  // namespace herald::broker
