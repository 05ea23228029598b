#include "storage/partition_log.h"

namespace herald::storage {

Result<CompactionStats> PartitionLog::compact(int64_t /*now_ms*/) {
  return CompactionStats{};
}

}  // namespace herald::storage
