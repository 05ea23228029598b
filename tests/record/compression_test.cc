#include "record/compression.h"

#include <gtest/gtest.h>
#include <snappy.h>
#include <zstd.h>

#include <random>

#include "test_util.h"

namespace herald::record {
namespace {

// Half random, half repetitive: compresses, and crosses 64 KiB chunk edges.
Bytes sample(size_t n, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  Bytes out(n);
  for (size_t i = 0; i < n; ++i) out[i] = (i / 512) % 2 == 0 ? static_cast<uint8_t>(rng()) : static_cast<uint8_t>(i % 7);
  return out;
}

const Compression kCodecs[] = {Compression::kGzip, Compression::kSnappy, Compression::kLz4, Compression::kZstd};

class CodecTest : public ::testing::TestWithParam<Compression> {};

TEST_P(CodecTest, RoundTripsInputsOfManySizes) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{100}, size_t{65536}, size_t{65537}, size_t{300000}, size_t{1} << 21}) {
    Bytes in = sample(n, static_cast<uint32_t>(n));
    auto packed = compress(GetParam(), in);
    ASSERT_TRUE(packed.has_value()) << packed.error().to_string();
    auto out = decompress(GetParam(), *packed);
    ASSERT_TRUE(out.has_value()) << "n=" << n << ": " << out.error().to_string();
    EXPECT_EQ(*out, in) << "n=" << n;
  }
}

TEST_P(CodecTest, CompressesRepetitiveInput) {
  Bytes in(100000, 'a');
  auto packed = compress(GetParam(), in);
  ASSERT_TRUE(packed.has_value());
  EXPECT_LT(packed->size(), in.size() / 10);
}

TEST_P(CodecTest, OutputOverTheCapIsCorruption) {
  Bytes in(10 << 20, 0);  // 10 MiB of zeros: a small zip bomb
  auto packed = compress(GetParam(), in);
  ASSERT_TRUE(packed.has_value());
  auto out = decompress(GetParam(), *packed, 1 << 20);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code, Errc::kCorruption);
  EXPECT_NE(out.error().message.find("exceeds cap"), std::string::npos) << out.error().message;
}

TEST_P(CodecTest, OutputExactlyAtTheCapIsAccepted) {
  Bytes in = sample(200000);
  auto packed = compress(GetParam(), in);
  ASSERT_TRUE(packed.has_value());
  auto at = decompress(GetParam(), *packed, in.size());
  ASSERT_TRUE(at.has_value()) << at.error().to_string();
  EXPECT_EQ(*at, in);
  EXPECT_FALSE(decompress(GetParam(), *packed, in.size() - 1).has_value());
}

TEST_P(CodecTest, TruncatedInputIsCorruption) {
  Bytes in = sample(100000);
  auto packed = compress(GetParam(), in);
  ASSERT_TRUE(packed.has_value());
  for (size_t cut : {size_t{1}, size_t{7}, packed->size() / 2}) {
    ByteSpan shorter = ByteSpan(*packed).first(packed->size() - cut);
    auto out = decompress(GetParam(), shorter);
    ASSERT_FALSE(out.has_value()) << "cut " << cut;
    EXPECT_EQ(out.error().code, Errc::kCorruption);
  }
}

TEST_P(CodecTest, GarbageIsCorruption) {
  Bytes junk = {0x13, 0x37, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};
  auto out = decompress(GetParam(), junk);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code, Errc::kCorruption);
}

TEST_P(CodecTest, EmptyInputIsCorruption) {
  auto out = decompress(GetParam(), {});
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code, Errc::kCorruption);
}

TEST_P(CodecTest, DecompressIntoReusesTheBuffer) {
  Bytes in = sample(5000);
  auto packed = compress(GetParam(), in);
  ASSERT_TRUE(packed.has_value());
  Bytes out = {9, 9, 9};
  ASSERT_TRUE(decompress_into(GetParam(), *packed, out).has_value());
  EXPECT_EQ(out, in);
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, CodecTest, ::testing::ValuesIn(kCodecs),
                         testing::codec_test_name);

TEST(Compression, NoneCopiesBothWays) {
  Bytes in = sample(1000);
  EXPECT_EQ(*compress(Compression::kNone, in), in);
  EXPECT_EQ(*decompress(Compression::kNone, in), in);
}

TEST(Compression, NoneOverTheCapIsCorruption) {
  Bytes in(100);
  auto out = decompress(Compression::kNone, in, 99);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code, Errc::kCorruption);
}

TEST(Compression, UnknownCodecIsUnsupported) {
  Bytes in(10);
  for (int id = 5; id < 8; ++id) {
    auto c = compress(static_cast<Compression>(id), in);
    ASSERT_FALSE(c.has_value());
    EXPECT_EQ(c.error().code, Errc::kUnsupported);
    auto d = decompress(static_cast<Compression>(id), in);
    ASSERT_FALSE(d.has_value());
    EXPECT_EQ(d.error().code, Errc::kUnsupported);
  }
}

// ---------------------------------------------------------------- gzip

TEST(Gzip, WritesAnRfc1952Stream) {
  auto packed = compress(Compression::kGzip, sample(100));
  ASSERT_TRUE(packed.has_value());
  ASSERT_GE(packed->size(), 18u);
  EXPECT_EQ((*packed)[0], 0x1f);
  EXPECT_EQ((*packed)[1], 0x8b);
  EXPECT_EQ((*packed)[2], 8);  // deflate
}

TEST(Gzip, ReadsConcatenatedMembers) {
  Bytes a = sample(1000, 1), b = sample(2000, 2);
  Bytes packed = *compress(Compression::kGzip, a);
  Bytes packed_b = *compress(Compression::kGzip, b);
  packed.insert(packed.end(), packed_b.begin(), packed_b.end());
  auto out = decompress(Compression::kGzip, packed);
  ASSERT_TRUE(out.has_value()) << out.error().to_string();
  Bytes want = a;
  want.insert(want.end(), b.begin(), b.end());
  EXPECT_EQ(*out, want);
}

TEST(Gzip, TrailingGarbageAfterAMemberIsCorruption) {
  Bytes packed = *compress(Compression::kGzip, sample(1000));
  packed.push_back(0x42);
  packed.push_back(0x43);
  EXPECT_FALSE(decompress(Compression::kGzip, packed).has_value());
}

TEST(Gzip, FlippedPayloadByteIsCorruption) {
  Bytes packed = *compress(Compression::kGzip, sample(1000));
  packed[packed.size() - 6] ^= 0xff;  // inside the CRC32/ISIZE trailer or data
  EXPECT_FALSE(decompress(Compression::kGzip, packed).has_value());
}

// ---------------------------------------------------------------- snappy

Bytes xerial(ByteSpan in, size_t block) {
  Writer w;
  const uint8_t magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0x00};
  w.put_bytes(ByteSpan(magic, 8));
  w.put_i32(1);
  w.put_i32(1);
  for (size_t at = 0; at < in.size(); at += block) {
    ByteSpan part = in.subspan(at, std::min(block, in.size() - at));
    std::string packed;
    snappy::Compress(reinterpret_cast<const char*>(part.data()), part.size(), &packed);
    w.put_i32(static_cast<int32_t>(packed.size()));
    w.put_bytes(std::string_view(packed));
  }
  return w.take();
}

TEST(Snappy, CompressWritesARawBlock) {
  Bytes in = sample(5000);
  Bytes packed = *compress(Compression::kSnappy, in);
  EXPECT_TRUE(snappy::IsValidCompressedBuffer(reinterpret_cast<const char*>(packed.data()), packed.size()));
  EXPECT_NE(packed[0], 0x82);
}

TEST(Snappy, ReadsXerialFramingWithManyChunks) {
  Bytes in = sample(100000);
  auto out = decompress(Compression::kSnappy, xerial(in, 32 * 1024));
  ASSERT_TRUE(out.has_value()) << out.error().to_string();
  EXPECT_EQ(*out, in);
}

TEST(Snappy, ReadsXerialFramingWithNoChunks) {
  auto out = decompress(Compression::kSnappy, xerial({}, 1024));
  ASSERT_TRUE(out.has_value()) << out.error().to_string();
  EXPECT_TRUE(out->empty());
}

TEST(Snappy, XerialChunkPastTheEndIsCorruption) {
  Bytes framed = xerial(sample(5000), 1024);
  framed.pop_back();
  EXPECT_FALSE(decompress(Compression::kSnappy, framed).has_value());
}

TEST(Snappy, XerialNegativeChunkLengthIsCorruption) {
  Bytes framed = xerial(sample(5000), 8192);
  store_be32(framed.data() + 16, 0xfffffff0u);
  EXPECT_FALSE(decompress(Compression::kSnappy, framed).has_value());
}

TEST(Snappy, XerialPartialChunkLengthIsCorruption) {
  Bytes framed = xerial(sample(500), 8192);
  framed.push_back(0);
  framed.push_back(0);
  EXPECT_FALSE(decompress(Compression::kSnappy, framed).has_value());
}

TEST(Snappy, XerialChunksOverTheCapAreCorruption) {
  Bytes in(300000, 0);
  auto out = decompress(Compression::kSnappy, xerial(in, 32 * 1024), 100000);
  ASSERT_FALSE(out.has_value());
  EXPECT_NE(out.error().message.find("exceeds cap"), std::string::npos);
}

TEST(Snappy, ClaimedLengthOverTheCapIsRefusedBeforeAllocating) {
  Bytes claim = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x00};  // says 4 GiB
  auto out = decompress(Compression::kSnappy, claim);
  ASSERT_FALSE(out.has_value());
  EXPECT_NE(out.error().message.find("exceeds cap"), std::string::npos);
}

// ---------------------------------------------------------------- lz4

TEST(Lz4, WritesTheFrameFormat) {
  Bytes packed = *compress(Compression::kLz4, sample(100));
  ASSERT_GE(packed.size(), 7u);
  EXPECT_EQ(load_be32(packed.data()), 0x04224d18u);  // LZ4 frame magic, little-endian 0x184D2204
  EXPECT_EQ(packed[4] & 0x20, 0x20);                 // FLG: block independence
}

TEST(Lz4, ReadsConcatenatedFrames) {
  Bytes a = sample(1000, 1), b = sample(70000, 2);
  Bytes packed = *compress(Compression::kLz4, a);
  Bytes packed_b = *compress(Compression::kLz4, b);
  packed.insert(packed.end(), packed_b.begin(), packed_b.end());
  auto out = decompress(Compression::kLz4, packed);
  ASSERT_TRUE(out.has_value()) << out.error().to_string();
  Bytes want = a;
  want.insert(want.end(), b.begin(), b.end());
  EXPECT_EQ(*out, want);
}

// ---------------------------------------------------------------- zstd

TEST(Zstd, StreamsAFrameWithUnknownContentSize) {
  Bytes in = sample(500000);
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
  Bytes packed(ZSTD_compressBound(in.size()));
  ZSTD_inBuffer src{in.data(), in.size(), 0};
  ZSTD_outBuffer dst{packed.data(), packed.size(), 0};
  size_t rc = 0;
  do {
    rc = ZSTD_compressStream2(cctx, &dst, &src, ZSTD_e_end);
    ASSERT_FALSE(ZSTD_isError(rc));
  } while (rc != 0);
  ZSTD_freeCCtx(cctx);
  packed.resize(dst.pos);
  ASSERT_EQ(ZSTD_getFrameContentSize(packed.data(), packed.size()), ZSTD_CONTENTSIZE_UNKNOWN);
  auto out = decompress(Compression::kZstd, packed);
  ASSERT_TRUE(out.has_value()) << out.error().to_string();
  EXPECT_EQ(*out, in);
}

TEST(Zstd, ReadsConcatenatedFrames) {
  Bytes a = sample(1000, 1), b = sample(3000, 2);
  Bytes packed = *compress(Compression::kZstd, a);
  Bytes packed_b = *compress(Compression::kZstd, b);
  packed.insert(packed.end(), packed_b.begin(), packed_b.end());
  auto out = decompress(Compression::kZstd, packed);
  ASSERT_TRUE(out.has_value()) << out.error().to_string();
  EXPECT_EQ(out->size(), 4000u);
}

TEST(Zstd, WindowLargerThanTheCapIsRefused) {
  Bytes in = sample(1 << 20);
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, 24);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
  Bytes packed(ZSTD_compressBound(in.size()));
  size_t n = ZSTD_compress2(cctx, packed.data(), packed.size(), in.data(), in.size());
  ZSTD_freeCCtx(cctx);
  ASSERT_FALSE(ZSTD_isError(n));
  packed.resize(n);
  EXPECT_TRUE(decompress(Compression::kZstd, packed).has_value());
  auto out = decompress(Compression::kZstd, packed, 4096);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code, Errc::kCorruption);
}

}  // namespace
}  // namespace herald::record
