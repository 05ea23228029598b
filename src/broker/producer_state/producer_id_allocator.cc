#include "broker/producer_state/producer_id_allocator.h"

#include "common/crc32c.h"
#include "common/fs.h"
#include "common/log.h"

namespace herald::broker {

Result<std::unique_ptr<ProducerIdAllocator>> ProducerIdAllocator::open(std::filesystem::path path,
                                                                         int64_t max_in_logs) {
  std::unique_ptr<ProducerIdAllocator> a(new ProducerIdAllocator(std::move(path)));
  // The next block boundary above every id in the logs.
  const int64_t floor = (max_in_logs / kBlockSize + 1) * kBlockSize;
  auto raw = read_whole_file(a->path_);
  if (raw) {
    if (raw->size() != 13 || (*raw)[0] != 1 || crc32c::value(ByteSpan(*raw).first(9)) != load_be32(raw->data() + 9)) {
      HLOG_ERROR("{}: damaged; producer ids continue from {}, above the highest in the logs ({})", a->path_.string(),
                 floor, max_in_logs);
      a->next_ = a->block_end_ = floor;
    } else {
      a->next_ = a->block_end_ = std::max(static_cast<int64_t>(load_be64(raw->data() + 1)), floor);
    }
  } else if (raw.error().code == Errc::kNotFound) {
    if (max_in_logs >= 0) {
      HLOG_ERROR("{}: missing; producer ids continue from {}, above the highest in the logs ({})", a->path_.string(),
                 floor, max_in_logs);
      a->next_ = a->block_end_ = floor;
    }
  } else {
    return std::move(raw).error();
  }
  return a;
}

Result<void> ProducerIdAllocator::persist(int64_t block_end) {
  Writer w;
  w.put_u8(1);
  w.put_i64(block_end);
  w.put_u32(crc32c::value(w.buffer()));
  return atomic_write_file(path_, w.buffer());
}

Result<int64_t> ProducerIdAllocator::next() {
  std::lock_guard lock(mu_);
  if (next_ >= block_end_) {
    HERALD_TRY(persist(block_end_ + kBlockSize));
    block_end_ += kBlockSize;
  }
  return next_++;
}

}  // namespace herald::broker
