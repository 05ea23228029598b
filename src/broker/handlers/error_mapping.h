// The one place where storage and broker errors become Kafka error codes.
#pragma once

#include "common/result.h"
#include "protocol/error_code.h"

namespace herald::broker {

// Errc -> ErrorCode for produce/fetch paths (see error_mapping_test for the table).
protocol::ErrorCode to_error_code(Errc code);
inline int16_t code(protocol::ErrorCode c) { return static_cast<int16_t>(c); }

}  // namespace herald::broker
