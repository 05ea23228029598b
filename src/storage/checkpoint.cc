#include "storage/checkpoint.h"

#include <fmt/format.h>

#include <cstring>

#include "common/crc32c.h"
#include "common/log.h"

namespace herald::storage {
namespace {
constexpr uint8_t kCheckpointMagic[4] = {'H', 'C', 'K', 'P'};
constexpr uint8_t kSwapMagic[4] = {'H', 'S', 'W', 'P'};
constexpr uint8_t kSwapVersion = 1;
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

Bytes encode_swap_marker(const std::vector<int64_t>& bases) {
  Bytes b(12 + bases.size() * 8 + 4, 0);
  uint8_t* p = b.data();
  std::memcpy(p, kSwapMagic, 4);
  p[4] = kSwapVersion;
  store_be32(p + 8, static_cast<uint32_t>(bases.size()));
  for (size_t i = 0; i < bases.size(); ++i) store_be64(p + 12 + 8 * i, static_cast<uint64_t>(bases[i]));
  const size_t crc_pos = b.size() - 4;
  store_be32(p + crc_pos, crc32c::value(ByteSpan(p, crc_pos)));
  return b;
}

Result<std::vector<int64_t>> decode_swap_marker(ByteSpan b) {
  if (b.size() < 16) return Error{Errc::kTruncated, "swap marker: too short"};
  const uint8_t* p = b.data();
  if (std::memcmp(p, kSwapMagic, 4) != 0) return Error{Errc::kCorruption, "swap marker: bad magic"};
  if (p[4] != kSwapVersion) return Error{Errc::kCorruption, "swap marker: unknown version"};
  const uint32_t n = load_be32(p + 8);
  if (b.size() != 16 + uint64_t{n} * 8) return Error{Errc::kCorruption, "swap marker: wrong size"};
  const size_t crc_pos = b.size() - 4;
  if (crc32c::value(ByteSpan(p, crc_pos)) != load_be32(p + crc_pos)) {
    return Error{Errc::kCorruption, "swap marker: crc mismatch"};
  }
  std::vector<int64_t> bases(n);
  for (uint32_t i = 0; i < n; ++i) bases[i] = static_cast<int64_t>(load_be64(p + 12 + 8 * size_t{i}));
  return bases;
}

}  // namespace herald::storage
