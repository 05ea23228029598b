// Record-batch compression codecs: the records area of a v2 batch is one blob
// compressed with the codec in attribute bits 0-2.
//
//   gzip    RFC 1952 (zlib); concatenated members are accepted
//   snappy  raw snappy block (librdkafka) or xerial framing (Java clients:
//           0x82 "SNAPPY" 0x00, i32 version, i32 compat, then i32-length chunks);
//           decompress accepts both, compress writes raw
//   lz4     LZ4 frame format (lz4frame.h), independent 64 KiB blocks on compress
//   zstd    standard zstd frame, streamed so an unknown content size works
//
// Decompression runs on untrusted bytes: output is capped (zip bombs) and any
// malformed input is an Error, never a crash.
//
//   HERALD_ASSIGN_OR_RETURN(Bytes packed, record::compress(Compression::kZstd, plain));
//   HERALD_ASSIGN_OR_RETURN(Bytes plain2, record::decompress(Compression::kZstd, packed));
#pragma once

#include <cstddef>

#include "common/bytes.h"
#include "common/result.h"
#include "record/batch.h"

namespace herald::record {

// Default cap on decompressed output.
inline constexpr size_t kDefaultMaxDecompressedBytes = size_t{64} << 20;

// Compresses `input` with `codec`. kNone returns a copy. Errors: kUnsupported
// for an unknown codec id, kInvalidArgument if the codec library refuses.
Result<Bytes> compress(Compression codec, ByteSpan input);

// Decompresses `input`. kNone returns a copy (still subject to the cap).
// Errors: kUnsupported for an unknown codec id; kCorruption for malformed or
// truncated input, or when the output would exceed `max_output` bytes (the
// message then says "exceeds cap").
Result<Bytes> decompress(Compression codec, ByteSpan input,
                         size_t max_output = kDefaultMaxDecompressedBytes);

// Same as decompress(), writing into `out` (cleared first, capacity reused).
// On error `out` holds unspecified partial output.
Result<void> decompress_into(Compression codec, ByteSpan input, Bytes& out,
                             size_t max_output = kDefaultMaxDecompressedBytes);

}  // namespace herald::record
