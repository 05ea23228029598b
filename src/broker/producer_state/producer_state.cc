#include "broker/producer_state/producer_state.h"

#include <algorithm>

#include "common/crc32c.h"

namespace herald::broker {
namespace {

int32_t next_seq(int32_t seq) { return seq == INT32_MAX ? 0 : seq + 1; }

}  // namespace

SeqCheck ProducerStateTable::check(int64_t producer_id, int16_t epoch, int32_t first_seq,
                                   int32_t last_seq) const {
  auto it = producers_.find(producer_id);
  if (it == producers_.end() || it->second.batches.empty()) return {SeqVerdict::kAppend};
  const ProducerEntry& e = it->second;
  if (epoch < e.epoch) return {SeqVerdict::kInvalidEpoch};
  if (epoch > e.epoch) {
    return first_seq == 0 ? SeqCheck{SeqVerdict::kAppend} : SeqCheck{SeqVerdict::kOutOfOrder};
  }
  for (const auto& b : e.batches) {
    if (b.first_seq == first_seq && b.last_seq == last_seq) {
      return {SeqVerdict::kDuplicate, b.base_offset};
    }
  }
  if (first_seq == next_seq(e.batches.back().last_seq)) return {SeqVerdict::kAppend};
  return {SeqVerdict::kOutOfOrder};
}

void ProducerStateTable::record(int64_t producer_id, int16_t epoch, int32_t first_seq, int32_t last_seq,
                                int64_t base_offset, int64_t last_offset, int64_t now_ms) {
  ProducerEntry& e = producers_[producer_id];
  if (epoch != e.epoch) {
    e.epoch = epoch;
    e.batches.clear();
  }
  e.batches.push_back({first_seq, last_seq, base_offset, last_offset});
  while (e.batches.size() > kProducerWindow) e.batches.pop_front();
  e.last_append_ms = std::max(e.last_append_ms, now_ms);
}

int64_t ProducerStateTable::max_producer_id() const {
  int64_t max = -1;
  for (const auto& [pid, _] : producers_) max = std::max(max, pid);
  return max;
}

void ProducerStateTable::expire(int64_t now_ms, int64_t expiration_ms) {
  for (auto it = producers_.begin(); it != producers_.end();) {
    // By idle time only, as Kafka since 2.4 (KIP-360): a producer whose batches DeleteRecords or
    // retention removed still has its retries answered as duplicates, not appended again.
    if (now_ms - it->second.last_append_ms > expiration_ms) {
      it = producers_.erase(it);
    } else {
      ++it;
    }
  }
}

Bytes ProducerStateTable::encode_snapshot(int64_t upto) const {
  Writer w;
  w.put_u8(1);
  w.put_i64(upto);
  w.put_u32(static_cast<uint32_t>(producers_.size()));
  for (const auto& [pid, e] : producers_) {
    w.put_i64(pid);
    w.put_i16(e.epoch);
    w.put_i64(e.last_append_ms);
    w.put_u8(static_cast<uint8_t>(e.batches.size()));
    for (const auto& b : e.batches) {
      w.put_i32(b.first_seq);
      w.put_i32(b.last_seq);
      w.put_i64(b.base_offset);
      w.put_i64(b.last_offset);
    }
  }
  w.put_u32(crc32c::value(w.buffer()));
  return w.take();
}

Result<int64_t> ProducerStateTable::decode_snapshot(ByteSpan bytes) {
  if (bytes.size() < 4 + 13) return Error{Errc::kCorruption, "producer snapshot too short"};
  ByteSpan body = bytes.first(bytes.size() - 4);
  if (crc32c::value(body) != load_be32(bytes.data() + body.size())) {
    return Error{Errc::kCorruption, "producer snapshot crc mismatch"};
  }
  Reader r(body);
  uint8_t version;
  int64_t upto;
  uint32_t count;
  if (!r.get_u8(version) || version != 1 || !r.get_i64(upto) || !r.get_u32(count)) {
    return Error{Errc::kCorruption, "producer snapshot header"};
  }
  std::unordered_map<int64_t, ProducerEntry> out;
  for (uint32_t i = 0; i < count; ++i) {
    int64_t pid;
    ProducerEntry e;
    uint8_t n;
    if (!r.get_i64(pid) || !r.get_i16(e.epoch) || !r.get_i64(e.last_append_ms) || !r.get_u8(n)) {
      return Error{Errc::kCorruption, "producer snapshot entry"};
    }
    for (uint8_t k = 0; k < n; ++k) {
      ProducerBatch b;
      if (!r.get_i32(b.first_seq) || !r.get_i32(b.last_seq) || !r.get_i64(b.base_offset) ||
          !r.get_i64(b.last_offset)) {
        return Error{Errc::kCorruption, "producer snapshot batch"};
      }
      e.batches.push_back(b);
    }
    out.emplace(pid, std::move(e));
  }
  producers_ = std::move(out);
  return upto;
}

std::vector<int64_t> ProducerStateTable::last_batch_offsets() const {
  std::vector<int64_t> out;
  out.reserve(producers_.size());
  for (const auto& [pid, e] : producers_) {
    if (!e.batches.empty()) out.push_back(e.batches.back().base_offset);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace herald::broker
