// Kafka error codes (Kafka protocol guide, "Error Codes"), as they travel in `error_code`
// fields. Separate from herald::Errc: the broker maps storage/protocol Errc
// values to these in one function.
//
//   part.error_code = static_cast<int16_t>(ErrorCode::kUnknownTopicOrPartition);
//   HLOG_DEBUG("produce failed: {}", error_name(code));
#pragma once

#include <cstdint>

namespace herald::protocol {

enum class ErrorCode : int16_t {
  kUnknownServerError = -1,                 // unexpected broker-side failure
  kNone = 0,                                // success
  kOffsetOutOfRange = 1,                    // fetch offset before log start or after log end
  kCorruptMessage = 2,                      // batch fails CRC or is truncated (retriable)
  kUnknownTopicOrPartition = 3,             // topic or partition does not exist (retriable)
  kInvalidFetchSize = 4,                    // fetch size is invalid
  kLeaderNotAvailable = 5,                  // no leader yet, e.g. during creation (retriable)
  kNotLeaderOrFollower = 6,                 // this broker does not host the partition (retriable)
  kRequestTimedOut = 7,                     // durability not reached within timeout_ms (retriable)
  kBrokerNotAvailable = 8,                  // the broker is not available
  kReplicaNotAvailable = 9,                 // replica not available for the partition
  kMessageTooLarge = 10,                    // batch larger than max.message.bytes
  kStaleControllerEpoch = 11,               // controller moved (inter-broker)
  kOffsetMetadataTooLarge = 12,             // commit metadata longer than 4096 bytes
  kNetworkException = 13,                   // server disconnected before a response
  kCoordinatorLoadInProgress = 14,          // group state still loading (retriable)
  kCoordinatorNotAvailable = 15,            // coordinator not ready / group dead (retriable)
  kNotCoordinator = 16,                     // this broker is not the coordinator (retriable)
  kInvalidTopicException = 17,              // bad topic name or write to an internal topic
  kRecordListTooLarge = 18,                 // produce request larger than the segment size
  kNotEnoughReplicas = 19,                  // fewer in-sync replicas than required
  kNotEnoughReplicasAfterAppend = 20,       // written to fewer in-sync replicas than required
  kInvalidRequiredAcks = 21,                // acks not in {-1, 0, 1}
  kIllegalGeneration = 22,                  // stale group generation (retriable: rejoin)
  kInconsistentGroupProtocol = 23,          // protocol type/name does not match the group
  kInvalidGroupId = 24,                     // empty or invalid group id
  kUnknownMemberId = 25,                    // member id not in the group (retriable: rejoin)
  kInvalidSessionTimeout = 26,              // session timeout outside the broker's bounds
  kRebalanceInProgress = 27,                // group is rebalancing (retriable: rejoin)
  kInvalidCommitOffsetSize = 28,            // committed offset metadata is invalid
  kTopicAuthorizationFailed = 29,           // not authorized for the topic
  kGroupAuthorizationFailed = 30,           // not authorized for the group
  kClusterAuthorizationFailed = 31,         // not authorized for a cluster operation
  kInvalidTimestamp = 32,                   // record timestamp out of range / LogAppendTime set
  kUnsupportedSaslMechanism = 33,           // SASL mechanism not enabled
  kIllegalSaslState = 34,                   // SASL request out of sequence
  kUnsupportedVersion = 35,                 // API version not supported
  kTopicAlreadyExists = 36,                 // CreateTopics of an existing topic
  kInvalidPartitions = 37,                  // bad partition count
  kInvalidReplicationFactor = 38,           // replication factor other than 1 (or -1)
  kInvalidReplicaAssignment = 39,           // bad manual replica assignment
  kInvalidConfig = 40,                      // unknown config key or bad value
  kNotController = 41,                      // this broker is not the controller
  kInvalidRequest = 42,                     // malformed or inconsistent request
  kUnsupportedForMessageFormat = 43,        // needs a newer message format
  kPolicyViolation = 44,                    // rejected by a broker policy
  kOutOfOrderSequenceNumber = 45,           // producer sequence gap
  kDuplicateSequenceNumber = 46,            // obsolete: duplicates are answered with success
  kInvalidProducerEpoch = 47,               // producer fenced by a newer epoch
  kInvalidTxnState = 48,                    // transactional operation in a bad state
  kInvalidProducerIdMapping = 49,           // producer id does not match the transactional id
  kInvalidTransactionTimeout = 50,          // transaction timeout out of range
  kConcurrentTransactions = 51,             // another transaction is still completing
  kTransactionCoordinatorFenced = 52,       // transaction coordinator epoch is stale
  kTransactionalIdAuthorizationFailed = 53, // not authorized / transactions unsupported
  kSecurityDisabled = 54,                   // security features are disabled
  kOperationNotAttempted = 55,              // skipped because another part of the batch failed
  kKafkaStorageError = 56,                  // disk full or I/O error (retriable)
  kLogDirNotFound = 57,                     // log directory not found
  kSaslAuthenticationFailed = 58,           // bad credentials
  kUnknownProducerId = 59,                  // no state for this producer id
  kReassignmentInProgress = 60,             // partition reassignment running
  kDelegationTokenAuthDisabled = 61,        // delegation tokens disabled
  kDelegationTokenNotFound = 62,            // delegation token not found
  kDelegationTokenOwnerMismatch = 63,       // delegation token owner mismatch
  kDelegationTokenRequestNotAllowed = 64,   // token request on a token-authenticated channel
  kDelegationTokenAuthorizationFailed = 65, // not authorized for the delegation token
  kDelegationTokenExpired = 66,             // delegation token expired
  kInvalidPrincipalType = 67,               // unsupported principal type
  kNonEmptyGroup = 68,                      // DeleteGroups of a group with members
  kGroupIdNotFound = 69,                    // group does not exist
  kFetchSessionIdNotFound = 70,             // unknown fetch session (retriable)
  kInvalidFetchSessionEpoch = 71,           // fetch session epoch mismatch (retriable)
  kListenerNotFound = 72,                   // no matching listener on the leader
  kTopicDeletionDisabled = 73,              // topic deletion is disabled
  kFencedLeaderEpoch = 74,                  // request's leader epoch older than the log's (retriable)
  kUnknownLeaderEpoch = 75,                 // request's leader epoch newer than the log's (retriable)
  kUnsupportedCompressionType = 76,         // e.g. zstd in Produce below v7
  kStaleBrokerEpoch = 77,                   // broker epoch is stale
  kOffsetNotAvailable = 78,                 // leader's high watermark not yet known
  kMemberIdRequired = 79,                   // KIP-394: rejoin with the returned member id (retriable)
  kPreferredLeaderNotAvailable = 80,        // preferred leader not available
  kGroupMaxSizeReached = 81,                // group.max.size reached
  kFencedInstanceId = 82,                   // static member replaced by a newer instance
  kEligibleLeadersNotAvailable = 83,        // no eligible leaders for election
  kElectionNotNeeded = 84,                  // leader election not needed
  kNoReassignmentInProgress = 85,           // no reassignment to cancel
  kGroupSubscribedToTopic = 86,             // OffsetDelete on a topic the group consumes
  kInvalidRecord = 87,                      // batch violates a record-level rule
  kUnstableOffsetCommit = 88,               // pending transactional offsets (retriable)
  kUnknownTopicId = 100,                    // topic id not found (retriable)
  kMismatchedEndpointType = 114,            // DescribeCluster asked for an endpoint type we lack
};

// Kafka's name for the code ("UNKNOWN_TOPIC_OR_PARTITION"); "UNKNOWN" for codes
// not listed above.
const char* error_name(ErrorCode code);

// True for the codes clients retry (the "Retriable" column of that table).
bool is_retriable(ErrorCode code);

inline constexpr int16_t to_wire(ErrorCode code) { return static_cast<int16_t>(code); }

}  // namespace herald::protocol
