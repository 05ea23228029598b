#include "storage/checkpoint.h"

#include <fmt/format.h>

#include <cstring>

#include "common/crc32c.h"
#include "common/log.h"

namespace herald::storage {
namespace {
constexpr uint8_t kCheckpointMagic[4] = {'H', 'C', 'K', 'P'};
constexpr uint8_t kSwapMagic[4] = {'H', 'S', 'W', 'P'};
constexpr uint8_t kSwapVersion = 2;  // 1: no absorbed segments
constexpr uint8_t kZeros[3] = {};
}  // namespace

Bytes encode_checkpoint(const Checkpoint& c) {
  Bytes b(kCheckpointSize, 0);
  uint8_t* p = b.data();
  std::memcpy(p, kCheckpointMagic, 4);
  p[4] = kCheckpointVersion;
  p[5] = c.clean ? 1 : 0;
  store_be64(p + 8, static_cast<uint64_t>(c.log_start_offset));
  store_be64(p + 16, static_cast<uint64_t>(c.log_end_offset));
  store_be64(p + 24, static_cast<uint64_t>(c.recovery_point));
  store_be64(p + 32, static_cast<uint64_t>(c.active_base));
  store_be64(p + 40, c.active_size);
  store_be64(p + 48, static_cast<uint64_t>(c.cleaner_offset));
  store_be64(p + 56, c.recovery_position);
  store_be32(p + 64, crc32c::value(ByteSpan(p, 64)));
  return b;
}

Result<Checkpoint> decode_checkpoint(ByteSpan b) {
  if (b.size() < kCheckpointSize) {
    return Error{Errc::kTruncated, fmt::format("checkpoint: {} bytes, need {}", b.size(), kCheckpointSize)};
  }
  if (b.size() != kCheckpointSize) return Error{Errc::kCorruption, "checkpoint: wrong size"};
  const uint8_t* p = b.data();
  if (std::memcmp(p, kCheckpointMagic, 4) != 0) return Error{Errc::kCorruption, "checkpoint: bad magic"};
  if (p[4] != kCheckpointVersion) {
    return Error{Errc::kCorruption, fmt::format("checkpoint: unknown version {}", p[4])};
  }
  if (crc32c::value(ByteSpan(p, 64)) != load_be32(p + 64)) {
    return Error{Errc::kCorruption, "checkpoint: crc mismatch"};
  }
  if ((p[5] & ~1u) != 0 || p[6] != 0 || p[7] != 0) return Error{Errc::kCorruption, "checkpoint: bad flags"};
  Checkpoint c;
  c.clean = (p[5] & 1) != 0;
  c.log_start_offset = static_cast<int64_t>(load_be64(p + 8));
  c.log_end_offset = static_cast<int64_t>(load_be64(p + 16));
  c.recovery_point = static_cast<int64_t>(load_be64(p + 24));
  c.active_base = static_cast<int64_t>(load_be64(p + 32));
  c.active_size = load_be64(p + 40);
  c.cleaner_offset = static_cast<int64_t>(load_be64(p + 48));
  c.recovery_position = load_be64(p + 56);
  return c;
}

Result<void> write_checkpoint(FileSystem& fs, const std::filesystem::path& dir, const Checkpoint& c) {
  return fs.atomic_write(dir / kCheckpointName, encode_checkpoint(c));
}

Result<std::optional<Checkpoint>> read_checkpoint(FileSystem& fs, const std::filesystem::path& dir) {
  auto bytes = fs.read_all(dir / kCheckpointName);
  if (!bytes) {
    if (bytes.error().code == Errc::kNotFound) return std::optional<Checkpoint>();
    return std::move(bytes).error();
  }
  auto c = decode_checkpoint(*bytes);
  if (!c) {
    HLOG_WARN("{}: ignoring checkpoint ({}), recovering from the first segment", dir.string(),
              c.error().to_string());
    return std::optional<Checkpoint>();
  }
  return std::optional<Checkpoint>(*c);
}

Bytes encode_swap_marker(const std::vector<SwapEntry>& entries) {
  Writer w;
  w.put_bytes(ByteSpan(kSwapMagic, 4));
  w.put_u8(kSwapVersion);
  w.put_bytes(ByteSpan(kZeros, 3));
  w.put_u32(static_cast<uint32_t>(entries.size()));
  for (const auto& e : entries) {
    w.put_i64(e.base);
    w.put_u64(e.log_size);
    w.put_u32(static_cast<uint32_t>(e.absorbed.size()));
    for (int64_t a : e.absorbed) w.put_i64(a);
  }
  w.put_u32(crc32c::value(w.buffer()));
  return w.take();
}

Result<std::vector<SwapEntry>> decode_swap_marker(ByteSpan b) {
  if (b.size() < 16) return Error{Errc::kTruncated, "swap marker: too short"};
  if (std::memcmp(b.data(), kSwapMagic, 4) != 0) return Error{Errc::kCorruption, "swap marker: bad magic"};
  const uint8_t version = b[4];
  if (version != 1 && version != kSwapVersion) return Error{Errc::kCorruption, "swap marker: unknown version"};
  const size_t crc_pos = b.size() - 4;
  if (crc32c::value(b.first(crc_pos)) != load_be32(b.data() + crc_pos)) {
    return Error{Errc::kCorruption, "swap marker: crc mismatch"};
  }
  Reader r(b.subspan(8, crc_pos - 8));
  uint32_t n = 0;
  r.get_u32(n);
  std::vector<SwapEntry> entries;
  for (uint32_t i = 0; i < n; ++i) {
    SwapEntry e;
    uint32_t absorbed = 0;
    if (!r.get_i64(e.base) || (version > 1 && (!r.get_u64(e.log_size) || !r.get_u32(absorbed))) ||
        absorbed > r.remaining() / 8) {
      return Error{Errc::kCorruption, "swap marker: wrong size"};
    }
    e.absorbed.resize(absorbed);
    for (auto& a : e.absorbed) r.get_i64(a);
    entries.push_back(std::move(e));
  }
  if (!r.empty()) return Error{Errc::kCorruption, "swap marker: wrong size"};
  return entries;
}

}  // namespace herald::storage
