#include "broker/handlers/error_mapping.h"

namespace herald::broker {

using protocol::ErrorCode;

ErrorCode to_error_code(Errc code) {
  switch (code) {
    case Errc::kCorruption: return ErrorCode::kCorruptMessage;
    case Errc::kTruncated: return ErrorCode::kCorruptMessage;
    case Errc::kIoError: return ErrorCode::kKafkaStorageError;
    case Errc::kNoSpace: return ErrorCode::kKafkaStorageError;
    case Errc::kExhausted: return ErrorCode::kKafkaStorageError;
    case Errc::kNotFound: return ErrorCode::kUnknownTopicOrPartition;
    case Errc::kInvalidArgument: return ErrorCode::kInvalidRequest;
    case Errc::kUnsupported: return ErrorCode::kUnsupportedVersion;
    case Errc::kOutOfRange: return ErrorCode::kOffsetOutOfRange;
    case Errc::kAlreadyExists: return ErrorCode::kTopicAlreadyExists;
    case Errc::kClosed: return ErrorCode::kNotLeaderOrFollower;
  }
  return ErrorCode::kUnknownServerError;
}

}  // namespace herald::broker
