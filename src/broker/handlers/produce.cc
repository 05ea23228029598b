// Produce: validate each partition's single record batch, check the
// idempotent producer's sequence, append, then (acks=-1) answer only once the
// group-committed fdatasync covers the batch. acks=1 is answered once the
// write reached the OS, acks=0 is not answered at all.
#include "broker/broker_impl.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"
#include "broker/handlers/wait.h"
#include "common/clock.h"
#include "common/log.h"
#include "record/batch.h"
#include "record/records.h"

namespace herald::broker {
namespace {

constexpr int64_t kAppendFailureLogMs = 10000;  // a partition's failing appends: one log line per 10 s

using protocol::ErrorCode;
using PartitionResponse = protocol::ProduceResponse::PartitionProduceResponse;

struct Outcome {
  ErrorCode error = ErrorCode::kNone;
  std::string message;
  int64_t base_offset = -1;
  int64_t last_offset = -1;
  int64_t log_append_time = -1;
  bool appended = false;
};

Outcome fail(ErrorCode e, std::string msg = {}) { return Outcome{e, std::move(msg)}; }

// Everything up to and including the append; runs without suspending, so
// requests pipelined on one connection append in the order they arrived.
Outcome produce_one(RequestContext& ctx, const protocol::ProduceRequest& req, Topic* topic,
                    const std::shared_ptr<Partition>& partition, const protocol::Records& records) {
  if (ctx.version() < 3) return fail(ErrorCode::kUnsupportedVersion, "Produce v0-2 (message format v0/v1) is not supported");
  if (!topic || !partition) return fail(ErrorCode::kUnknownTopicOrPartition);
  if (topic->internal()) return fail(ErrorCode::kInvalidTopicException, "cannot produce to an internal topic");
  if (auto w = ctx.broker.topics().writable(); !w) return fail(ErrorCode::kKafkaStorageError, w.error().message);
  if (req.transactional_id) {
    return fail(ErrorCode::kTransactionalIdAuthorizationFailed, "transactions are not supported");
  }
  ByteSpan bytes = records.bytes();
  if (records.is_null || bytes.empty()) return fail(ErrorCode::kInvalidRecord, "empty records");
  TopicConfig cfg = topic->config();
  if (bytes.size() > static_cast<size_t>(cfg.max_message_bytes)) {
    return fail(ErrorCode::kMessageTooLarge,
                fmt::format("batch of {} bytes exceeds max.message.bytes {}", bytes.size(), cfg.max_message_bytes));
  }
  // A message set of the old formats (magic 0 and 1 share batch v2's magic position): refused for what it
  // is, as Kafka's validator does (INVALID_RECORD, not a retriable CORRUPT_MESSAGE).
  if (bytes.size() > record::kMagicOffset && static_cast<int8_t>(bytes[record::kMagicOffset]) != record::kMagicV2) {
    return fail(ErrorCode::kInvalidRecord, fmt::format("magic {}: Produce v3+ carries record batches v2 only",
                                                       static_cast<int8_t>(bytes[record::kMagicOffset])));
  }
  auto batches = record::split_batches(bytes);
  if (!batches) return fail(ErrorCode::kCorruptMessage, batches.error().message);
  if (batches->size() != 1) return fail(ErrorCode::kInvalidRecord, "exactly one record batch per partition is allowed");
  auto v = record::validate_produce_batch(bytes);
  switch (v.error) {
    case record::BatchError::kNone: break;
    case record::BatchError::kCorruptMessage: return fail(ErrorCode::kCorruptMessage, v.message);
    case record::BatchError::kInvalidRecord: return fail(ErrorCode::kInvalidRecord, v.message);
    case record::BatchError::kUnsupportedCompression: return fail(ErrorCode::kUnsupportedCompressionType, v.message);
  }
  const record::BatchHeader& h = v.header;
  if (h.compression() == record::Compression::kZstd && ctx.version() < 7) {
    return fail(ErrorCode::kUnsupportedCompressionType, "zstd needs Produce v7+");
  }
  if (h.is_transactional()) return fail(ErrorCode::kTransactionalIdAuthorizationFailed, "transactions are not supported");
  if (h.timestamp_type() == record::TimestampType::kLogAppendTime) {
    return fail(ErrorCode::kInvalidTimestamp, "producers must not set LogAppendTime");
  }
  // Every record must decode (as Kafka's LogValidator checks): a batch with a good CRC
  // over bad records would leave the partition unreadable for clients.
  Bytes scratch;
  auto ts = record::check_produce_records(bytes, scratch, cfg.log.compact);
  if (!ts) {
    // The CRC held: the records are as the producer made them, and a retry cannot help. INVALID_RECORD,
    // as Kafka's validator answers, not the retriable CORRUPT_MESSAGE (bytes damaged on the way), which
    // a Java producer retries until its delivery timeout.
    const bool too_large = ts.error().message.find("exceeds cap") != std::string::npos;
    return fail(too_large ? ErrorCode::kMessageTooLarge : ErrorCode::kInvalidRecord, ts.error().message);
  }
  // The request frame is a buffer this connection owns; the batch is rewritten in place
  // (base offset, leader epoch, max timestamp, LogAppendTime) and appended as it came.
  MutableByteSpan mut(const_cast<uint8_t*>(bytes.data()), bytes.size());
  int64_t now = now_ms();
  if (!cfg.log_append_time) {
    // Every record's timestamp is checked, and the header's max_timestamp (which the time index,
    // ListOffsets and retention go by) is the records' own, as Kafka's LogValidator makes it.
    bool too_old = cfg.timestamp_before_max_ms != INT64_MAX && ts->min != -1 && ts->min < now - cfg.timestamp_before_max_ms;
    bool too_new = ts->max > now && ts->max - now > cfg.timestamp_after_max_ms;  // no overflow
    if (too_old || too_new) {
      return fail(ErrorCode::kInvalidTimestamp,
                  fmt::format("timestamp {} outside message.timestamp.before/after.max.ms", too_new ? ts->max : ts->min));
    }
    if (ts->max != h.max_timestamp) record::set_max_timestamp(mut, ts->max);
  }
  std::lock_guard lock(partition->append_mu);
  if (h.producer_id >= 0) {
    auto check = partition->producers.check(h.producer_id, h.producer_epoch, h.base_sequence, h.last_sequence());
    switch (check.verdict) {
      case SeqVerdict::kAppend: break;
      case SeqVerdict::kDuplicate: {
        Outcome o;
        o.base_offset = check.duplicate_base_offset;
        o.last_offset = check.duplicate_base_offset + h.last_offset_delta;
        return o;
      }
      case SeqVerdict::kOutOfOrder:
        return fail(ErrorCode::kOutOfOrderSequenceNumber,
                    fmt::format("producer {} sequence {} is not the next one", h.producer_id, h.base_sequence));
      case SeqVerdict::kInvalidEpoch:
        return fail(ErrorCode::kInvalidProducerEpoch, fmt::format("producer {} epoch {} is fenced", h.producer_id, h.producer_epoch));
    }
  }
  Outcome o;
  if (cfg.log_append_time) {
    record::set_log_append_time(mut, now);
    o.log_append_time = now;
  }
  // validate_produce_batch checked the CRC (and set_log_append_time rewrote it): not again.
  auto info = partition->log->append(mut, record::Crc::kSkip);
  if (!info) {
    ++partition->append_failures;
    ++partition->append_failures_unlogged;
    if (partition->append_failures == 1 || now - partition->append_failure_logged_ms >= kAppendFailureLogMs) {
      HLOG_ERROR("append to {}/{}: {} (failed appends since the last that worked: {})", topic->name(),
                 partition->index, info.error().to_string(), partition->append_failures);
      partition->append_failure_logged_ms = now;
      partition->append_failures_unlogged = 0;
    }
    return fail(to_error_code(info.error().code), info.error().message);
  }
  if (partition->append_failures > 0) {
    HLOG_INFO("append to {}/{} works again after {} failed appends ({} not logged)", topic->name(),
              partition->index, partition->append_failures, partition->append_failures_unlogged);
    partition->append_failures = 0;
    partition->append_failures_unlogged = 0;
  }
  if (h.producer_id >= 0) {
    partition->producers.record(h.producer_id, h.producer_epoch, h.base_sequence, h.last_sequence(),
                                info->base_offset, info->last_offset, now);
  }
  o.base_offset = info->base_offset;
  o.last_offset = info->last_offset;
  o.appended = true;
  return o;
}

}  // namespace

asio::awaitable<protocol::ProduceResponse> ProduceHandler::handle(RequestContext& ctx, protocol::ProduceRequest req) {
  protocol::ProduceResponse resp;
  if (req.acks == 0) ctx.suppress_response = true;
  const bool bad_acks = req.acks != 0 && req.acks != 1 && req.acks != -1;

  struct Pending {
    size_t topic, part;
    std::shared_ptr<Partition> partition;
    int64_t last_offset;
  };
  std::vector<Pending> pending;
  resp.responses.resize(req.topic_data.size());
  for (size_t ti = 0; ti < req.topic_data.size(); ++ti) {
    const auto& td = req.topic_data[ti];
    auto& tr = resp.responses[ti];
    tr.name = td.name;
    auto topic = ctx.broker.topics().find(td.name);
    tr.partition_responses.resize(td.partition_data.size());
    for (size_t pi = 0; pi < td.partition_data.size(); ++pi) {
      const auto& pd = td.partition_data[pi];
      auto& pr = tr.partition_responses[pi];
      pr.index = pd.index;
      pr.base_offset = -1;
      std::shared_ptr<Partition> partition = topic ? topic->partition(pd.index) : nullptr;
      Outcome o = bad_acks ? fail(ErrorCode::kInvalidRequiredAcks, "acks must be -1, 0 or 1")
                           : produce_one(ctx, req, topic.get(), partition, pd.records);
      pr.error_code = code(o.error);
      if (!o.message.empty()) {
        pr.error_message = o.message;
        HLOG_DEBUG("produce {}/{} from {}: {}", td.name, pd.index, ctx.peer_host, o.message);
      }
      if (req.acks == 0 && o.error != ErrorCode::kNone && ctx.close_reason.empty()) {
        // No response to carry the error: as Kafka does, close the connection, so that the
        // client notices (and refreshes its metadata).
        ctx.close_reason = fmt::format("acks=0 produce to {}/{} failed: {} ({})", td.name, pd.index,
                                       protocol::error_name(o.error), o.message);
      }
      pr.base_offset = o.base_offset;
      pr.log_append_time_ms = o.log_append_time;
      if (partition) pr.log_start_offset = partition->log->log_start_offset();
      if (o.error == ErrorCode::kNone) {
        // Wake long-polling fetches once the batch is readable (durable under flush.policy=always).
        partition->log->wait_durable(o.last_offset, [p = std::weak_ptr<Partition>(partition)](Result<void>) {
          if (auto sp = p.lock()) sp->notifier.notify_all();
        });
        if (req.acks == -1) pending.push_back({ti, pi, partition, o.last_offset});
      }
    }
  }
  for (auto& p : pending) {
    auto r = co_await wait_durable(*p.partition->log, p.last_offset, ctx.executor);
    if (!r) {
      auto& pr = resp.responses[p.topic].partition_responses[p.part];
      pr.error_code = code(to_error_code(r.error().code));
      pr.error_message = r.error().message;
      pr.base_offset = -1;
    }
  }
  co_return resp;
}

}  // namespace herald::broker
