#include "record/compression.h"

#include <fmt/format.h>
#include <lz4frame.h>
#include <snappy.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>
#include <memory>

namespace herald::record {
namespace {

constexpr size_t kChunk = 64 * 1024;
constexpr int kZstdDefaultWindowLogMax = 27;  // ZSTD_WINDOWLOG_LIMIT_DEFAULT (not in the stable API)
constexpr uint8_t kXerialMagic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0x00};
constexpr size_t kXerialHeaderSize = 16;  // magic + i32 version + i32 compatible version

Error corrupt(Compression codec, std::string what) {
  return Error{Errc::kCorruption, fmt::format("{}: {}", compression_name(codec), what)};
}
Error over_cap(Compression codec, size_t cap) {
  return corrupt(codec, fmt::format("decompressed size exceeds cap of {} bytes", cap));
}

// Output may grow to cap + 1 bytes so that "more than cap" is observable.
size_t limit_for(size_t cap) { return cap == SIZE_MAX ? cap : cap + 1; }

// Grows `out` by up to kChunk bytes (never past cap); returns the new writable
// region's size, 0 when the cap is reached.
size_t grow(Bytes& out, size_t used, size_t cap) {
  size_t want = std::min(kChunk, cap - used);
  out.resize(used + want);
  return want;
}

// ---------------------------------------------------------------- gzip ----

Result<Bytes> gzip_compress(ByteSpan in) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return Error{Errc::kInvalidArgument, "gzip: deflateInit2 failed"};
  }
  Bytes out(deflateBound(&zs, static_cast<uLong>(in.size())) + 32);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  size_t produced = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return Error{Errc::kInvalidArgument, fmt::format("gzip: deflate returned {}", rc)};
  out.resize(produced);
  return out;
}

Result<void> gzip_decompress(ByteSpan in, Bytes& out, size_t cap) {
  if (in.size() > UINT_MAX) return corrupt(Compression::kGzip, "input too large");
  z_stream zs{};
  // 15 + 32: accept a gzip or zlib header.
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return Error{Errc::kInvalidArgument, "gzip: inflateInit2 failed"};
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  size_t used = 0;
  for (;;) {
    if (used == out.size() && grow(out, used, limit_for(cap)) == 0) return over_cap(Compression::kGzip, cap);
    zs.next_out = out.data() + used;
    zs.avail_out = static_cast<uInt>(out.size() - used);
    int rc = inflate(&zs, Z_NO_FLUSH);
    used = out.size() - zs.avail_out;
    if (used > cap) return over_cap(Compression::kGzip, cap);
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      // Another gzip member follows (Java's GZIPInputStream reads them too).
      if (inflateReset(&zs) != Z_OK) return corrupt(Compression::kGzip, "inflateReset failed");
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && zs.avail_out == 0) continue;  // needs more output space
    if (rc == Z_BUF_ERROR) return corrupt(Compression::kGzip, "truncated stream");
    return corrupt(Compression::kGzip, zs.msg != nullptr ? zs.msg : fmt::format("inflate returned {}", rc));
  }
  out.resize(used);
  return ok();
}

// -------------------------------------------------------------- snappy ----

Result<void> snappy_block(ByteSpan in, Bytes& out, size_t cap) {
  size_t n = 0;
  const char* src = reinterpret_cast<const char*>(in.data());
  if (!snappy::GetUncompressedLength(src, in.size(), &n)) {
    return corrupt(Compression::kSnappy, "bad block length");
  }
  if (n > cap - out.size()) return over_cap(Compression::kSnappy, cap);
  size_t at = out.size();
  out.resize(at + n);
  if (!snappy::RawUncompress(src, in.size(), reinterpret_cast<char*>(out.data() + at))) {
    return corrupt(Compression::kSnappy, "malformed block");
  }
  return ok();
}

Result<void> snappy_decompress(ByteSpan in, Bytes& out, size_t cap) {
  bool xerial = in.size() >= kXerialHeaderSize && std::memcmp(in.data(), kXerialMagic, 8) == 0;
  if (!xerial) return snappy_block(in, out, cap);
  Reader r(in.subspan(kXerialHeaderSize));
  while (!r.empty()) {
    int32_t len = 0;
    ByteSpan block;
    if (!r.get_i32(len)) return corrupt(Compression::kSnappy, "xerial: truncated chunk length");
    if (len < 0 || !r.get_span(static_cast<size_t>(len), block)) {
      return corrupt(Compression::kSnappy, fmt::format("xerial: chunk length {} past end", len));
    }
    HERALD_TRY(snappy_block(block, out, cap));
  }
  return ok();
}

Result<Bytes> snappy_compress(ByteSpan in) {
  Bytes out(snappy::MaxCompressedLength(in.size()));
  size_t n = 0;
  snappy::RawCompress(reinterpret_cast<const char*>(in.data()), in.size(),
                      reinterpret_cast<char*>(out.data()), &n);
  out.resize(n);
  return out;
}

// ----------------------------------------------------------------- lz4 ----

Result<Bytes> lz4_compress(ByteSpan in) {
  LZ4F_preferences_t prefs;
  std::memset(&prefs, 0, sizeof prefs);
  // Java's KafkaLZ4BlockInputStream decodes each block on its own: blocks must be independent.
  prefs.frameInfo.blockMode = LZ4F_blockIndependent;
  prefs.frameInfo.blockSizeID = LZ4F_max64KB;
  Bytes out(LZ4F_compressFrameBound(in.size(), &prefs));
  size_t n = LZ4F_compressFrame(out.data(), out.size(), in.data(), in.size(), &prefs);
  if (LZ4F_isError(n)) return Error{Errc::kInvalidArgument, fmt::format("lz4: {}", LZ4F_getErrorName(n))};
  out.resize(n);
  return out;
}

Result<void> lz4_decompress(ByteSpan in, Bytes& out, size_t cap) {
  LZ4F_dctx* raw = nullptr;
  if (LZ4F_isError(LZ4F_createDecompressionContext(&raw, LZ4F_VERSION))) {
    return Error{Errc::kInvalidArgument, "lz4: cannot create context"};
  }
  std::unique_ptr<LZ4F_dctx, LZ4F_errorCode_t (*)(LZ4F_dctx*)> dctx(raw, LZ4F_freeDecompressionContext);
  size_t pos = 0;
  size_t used = 0;
  for (;;) {
    if (used == out.size() && grow(out, used, limit_for(cap)) == 0) return over_cap(Compression::kLz4, cap);
    size_t space = out.size() - used;
    size_t dst = space;
    size_t src = in.size() - pos;
    size_t hint = LZ4F_decompress(dctx.get(), out.data() + used, &dst, in.data() + pos, &src, nullptr);
    if (LZ4F_isError(hint)) return corrupt(Compression::kLz4, LZ4F_getErrorName(hint));
    pos += src;
    used += dst;
    if (used > cap) return over_cap(Compression::kLz4, cap);
    if (pos == in.size()) {
      if (hint == 0) break;                                            // frame complete
      if (dst < space) return corrupt(Compression::kLz4, "truncated frame");  // wants more input
    } else if (src == 0 && dst == 0) {
      return corrupt(Compression::kLz4, "no progress");
    }
  }
  out.resize(used);
  return ok();
}

// ---------------------------------------------------------------- zstd ----

Result<Bytes> zstd_compress(ByteSpan in) {
  Bytes out(ZSTD_compressBound(in.size()));
  size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), ZSTD_CLEVEL_DEFAULT);
  if (ZSTD_isError(n)) return Error{Errc::kInvalidArgument, fmt::format("zstd: {}", ZSTD_getErrorName(n))};
  out.resize(n);
  return out;
}

Result<void> zstd_decompress(ByteSpan in, Bytes& out, size_t cap) {
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!dctx) return Error{Errc::kInvalidArgument, "zstd: cannot create context"};
  // A window larger than the whole allowed output is never needed; refusing it
  // keeps a hostile frame header from making us allocate up to 128 MiB.
  int window_log = std::clamp(static_cast<int>(std::bit_width(cap)), 10, kZstdDefaultWindowLogMax);
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, window_log);
  ZSTD_inBuffer src{in.data(), in.size(), 0};
  size_t used = 0;
  for (;;) {
    if (used == out.size() && grow(out, used, limit_for(cap)) == 0) return over_cap(Compression::kZstd, cap);
    size_t space = out.size() - used;
    ZSTD_outBuffer dst{out.data() + used, space, 0};
    size_t before = src.pos;
    size_t hint = ZSTD_decompressStream(dctx.get(), &dst, &src);
    if (ZSTD_getErrorCode(hint) == ZSTD_error_frameParameter_windowTooLarge) {
      return corrupt(Compression::kZstd, fmt::format("frame window exceeds cap of {} bytes", cap));
    }
    if (ZSTD_isError(hint)) return corrupt(Compression::kZstd, ZSTD_getErrorName(hint));
    used += dst.pos;
    if (used > cap) return over_cap(Compression::kZstd, cap);
    if (src.pos == src.size) {
      if (hint == 0) break;                                                    // last frame complete
      if (dst.pos < space) return corrupt(Compression::kZstd, "truncated frame");  // wants more input
    } else if (dst.pos == 0 && src.pos == before) {
      return corrupt(Compression::kZstd, "no progress");
    }
  }
  out.resize(used);
  return ok();
}

}  // namespace

Result<Bytes> compress(Compression codec, ByteSpan input) {
  switch (codec) {
    case Compression::kNone: return Bytes(input.begin(), input.end());
    case Compression::kGzip: return gzip_compress(input);
    case Compression::kSnappy: return snappy_compress(input);
    case Compression::kLz4: return lz4_compress(input);
    case Compression::kZstd: return zstd_compress(input);
  }
  return Error{Errc::kUnsupported, fmt::format("compression {}", compression_name(codec))};
}

Result<void> decompress_into(Compression codec, ByteSpan input, Bytes& out, size_t max_output) {
  out.clear();
  switch (codec) {
    case Compression::kNone:
      if (input.size() > max_output) return over_cap(codec, max_output);
      out.assign(input.begin(), input.end());
      return ok();
    case Compression::kGzip: return gzip_decompress(input, out, max_output);
    case Compression::kSnappy: return snappy_decompress(input, out, max_output);
    case Compression::kLz4: return lz4_decompress(input, out, max_output);
    case Compression::kZstd: return zstd_decompress(input, out, max_output);
  }
  return Error{Errc::kUnsupported, fmt::format("compression {}", compression_name(codec))};
}

Result<Bytes> decompress(Compression codec, ByteSpan input, size_t max_output) {
  Bytes out;
  HERALD_TRY(decompress_into(codec, input, out, max_output));
  return out;
}

}  // namespace herald::record
