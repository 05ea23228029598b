// Codec cross-check against an independent implementation (STYLE.md §7):
// testdata/*.bin are message bodies encoded by kafka-python 2.0.2
// (testdata/make_golden.py). Each decodes with our generated codec, consumes
// every byte, and re-encodes to the identical bytes; some fields are checked.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "protocol/api_keys.h"
#include "protocol/error_code.h"
#include "protocol/messages.h"

namespace herald::protocol {
namespace {

std::string testdata(const std::string& name) { return std::string(HERALD_PROTOCOL_TESTDATA) + "/" + name; }

Bytes read_file(const std::string& name) {
  std::ifstream in(testdata(name), std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing " << testdata(name);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct GoldenCase {
  std::string file;
  int16_t api_key = 0;
  int16_t version = 0;
  bool response = false;
};

std::vector<GoldenCase> load_manifest() {
  std::vector<GoldenCase> cases;
  std::ifstream in(testdata("golden.txt"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    GoldenCase c;
    std::string kind;
    ls >> c.file >> c.api_key >> c.version >> kind;
    c.response = kind == "response";
    cases.push_back(c);
  }
  return cases;
}

// Decodes, checks that every byte was used and that re-encoding is identical.
template <class T>
void expect_identical_reencode(const Bytes& bytes, int16_t version) {
  Reader r(bytes);
  auto m = T::decode(r, version);
  ASSERT_TRUE(m) << m.error().to_string();
  EXPECT_EQ(r.remaining(), 0u);
  Writer w;
  m->encode(w, version);
  EXPECT_EQ(w.buffer(), bytes);
}

class Golden : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(Golden, DecodesAndReencodesByteForByte) {
  const GoldenCase& c = GetParam();
  const Bytes bytes = read_file(c.file);
  const bool known = with_request_type(c.api_key, [&](auto req, auto resp) {
    if (c.response) {
      expect_identical_reencode<typename decltype(resp)::type>(bytes, c.version);
    } else {
      expect_identical_reencode<typename decltype(req)::type>(bytes, c.version);
    }
  });
  EXPECT_TRUE(known);
}

INSTANTIATE_TEST_SUITE_P(KafkaPython, Golden, ::testing::ValuesIn(load_manifest()),
                         [](const ::testing::TestParamInfo<GoldenCase>& p) {
                           return p.param.file.substr(0, p.param.file.size() - 4);
                         });

TEST(GoldenManifest, CoversEveryApiKafkaPythonEncodes) { EXPECT_GE(load_manifest().size(), 60u); }

// The decoded value keeps views into `bytes`, so callers keep `bytes` alive.
template <class T>
T decode(const Bytes& bytes, int16_t version) {
  Reader r(bytes);
  auto m = T::decode(r, version);
  EXPECT_TRUE(m) << m.error().to_string();
  return m ? std::move(*m) : T{};
}

TEST(GoldenFields, ProduceV7CarriesTheBatchWithoutCopying) {
  const Bytes b = read_file("ProduceRequest_v7.bin");
  auto m = decode<ProduceRequest>(b, 7);
  EXPECT_FALSE(m.transactional_id.has_value());
  EXPECT_EQ(m.acks, 1);
  EXPECT_EQ(m.timeout_ms, 1500);
  ASSERT_EQ(m.topic_data.size(), 2u);
  EXPECT_EQ(m.topic_data[0].name, "orders");
  EXPECT_EQ(m.topic_data[1].name, "audit");
  ASSERT_EQ(m.topic_data[0].partition_data.size(), 1u);
  const auto& p = m.topic_data[0].partition_data[0];
  EXPECT_EQ(p.index, 2);
  ASSERT_FALSE(p.records.is_null);
  ByteSpan batch = p.records.bytes();
  EXPECT_GE(batch.data(), b.data());
  EXPECT_LE(batch.data() + batch.size(), b.data() + b.size());  // a view into the frame
  ASSERT_GT(batch.size(), 61u);
  EXPECT_EQ(batch[16], 2);  // magic
  EXPECT_EQ(load_be32(batch.data() + 8) + 12, batch.size());  // batch_length
}

TEST(GoldenFields, ProduceTransactionalIdNullAndSet) {
  const Bytes v3 = read_file("ProduceRequest_v3.bin");
  EXPECT_FALSE(decode<ProduceRequest>(v3, 3).transactional_id.has_value());
  const Bytes v8 = read_file("ProduceRequest_v8.bin");
  EXPECT_EQ(decode<ProduceRequest>(v8, 8).transactional_id, "txn-1");
}

TEST(GoldenFields, FetchV4AndV11Requests) {
  const Bytes b4 = read_file("FetchRequest_v4.bin");
  auto f4 = decode<FetchRequest>(b4, 4);
  EXPECT_EQ(f4.replica_id, -1);
  EXPECT_EQ(f4.max_wait_ms, 500);
  EXPECT_EQ(f4.max_bytes, 52428800);
  EXPECT_EQ(f4.isolation_level, 0);
  EXPECT_EQ(f4.session_epoch, -1);  // absent in v4: default
  ASSERT_EQ(f4.topics.size(), 1u);
  ASSERT_EQ(f4.topics[0].partitions.size(), 2u);
  EXPECT_EQ(f4.topics[0].partitions[0].fetch_offset, 100);
  EXPECT_EQ(f4.topics[0].partitions[0].partition_max_bytes, 1048576);
  const Bytes b11 = read_file("FetchRequest_v11.bin");
  auto f11 = decode<FetchRequest>(b11, 11);
  EXPECT_EQ(f11.isolation_level, 1);
  EXPECT_EQ(f11.session_id, 0);
  EXPECT_EQ(f11.session_epoch, -1);
  EXPECT_EQ(f11.rack_id, "rack-a");
  EXPECT_EQ(f11.topics[0].partitions[0].current_leader_epoch, -1);
}

TEST(GoldenFields, FetchResponsesNullAndEmptyRecords) {
  const Bytes b4 = read_file("FetchResponse_v4.bin");
  auto r4 = decode<FetchResponse>(b4, 4);
  ASSERT_EQ(r4.responses.size(), 1u);
  const auto& parts = r4.responses[0].partitions;
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_FALSE(parts[0].aborted_transactions.has_value());
  EXPECT_EQ(parts[0].high_watermark, 102);
  EXPECT_GT(parts[0].records.size(), 61u);
  EXPECT_EQ(parts[1].error_code, static_cast<int16_t>(ErrorCode::kOffsetOutOfRange));
  EXPECT_FALSE(parts[1].records.is_null);
  EXPECT_EQ(parts[1].records.size(), 0u);
  const Bytes b11 = read_file("FetchResponse_v11.bin");
  auto r11 = decode<FetchResponse>(b11, 11);
  const auto& p = r11.responses[0].partitions[0];
  ASSERT_TRUE(p.aborted_transactions.has_value());
  ASSERT_EQ(p.aborted_transactions->size(), 1u);
  EXPECT_EQ((*p.aborted_transactions)[0].producer_id, 7);
  EXPECT_EQ((*p.aborted_transactions)[0].first_offset, 50);
  EXPECT_EQ(p.preferred_read_replica, -1);
  EXPECT_EQ(p.log_start_offset, 0);
}

TEST(GoldenFields, MetadataRequestTopicListSemantics) {
  const Bytes v0 = read_file("MetadataRequest_v0.bin");
  auto m0 = decode<MetadataRequest>(v0, 0);
  ASSERT_TRUE(m0.topics.has_value());  // v0: [] = all topics
  EXPECT_TRUE(m0.topics->empty());
  const Bytes v1 = read_file("MetadataRequest_v1.bin");
  EXPECT_FALSE(decode<MetadataRequest>(v1, 1).topics.has_value());  // v1+: null = all
  const Bytes v4 = read_file("MetadataRequest_v4.bin");
  auto m4 = decode<MetadataRequest>(v4, 4);
  EXPECT_TRUE(m4.allow_auto_topic_creation);
  ASSERT_EQ(m4.topics->size(), 2u);
  EXPECT_EQ((*m4.topics)[1].name, "audit");
  const Bytes v5 = read_file("MetadataRequest_v5.bin");
  EXPECT_FALSE(decode<MetadataRequest>(v5, 5).allow_auto_topic_creation);
}

TEST(GoldenFields, MetadataResponses) {
  const Bytes v1 = read_file("MetadataResponse_v1.bin");
  auto m1 = decode<MetadataResponse>(v1, 1);
  ASSERT_EQ(m1.brokers.size(), 1u);
  EXPECT_EQ(m1.brokers[0].host, "localhost");
  EXPECT_EQ(m1.brokers[0].port, 9092);
  EXPECT_FALSE(m1.brokers[0].rack.has_value());
  EXPECT_EQ(m1.controller_id, 1);
  ASSERT_EQ(m1.topics.size(), 2u);
  EXPECT_EQ(m1.topics[1].error_code, 3);
  const Bytes v5 = read_file("MetadataResponse_v5.bin");
  auto m5 = decode<MetadataResponse>(v5, 5);
  EXPECT_EQ(m5.cluster_id, "AAAAAAAAAAAAAAAAAAAAAA");
  EXPECT_EQ(m5.brokers[0].rack, "rack-a");
  EXPECT_TRUE(m5.topics[0].is_internal);
  EXPECT_EQ(m5.topics[0].partitions[0].leader_epoch, -1);  // v7+ only: default
  EXPECT_TRUE(m5.topics[0].partitions[0].offline_replicas.empty());
}

TEST(GoldenFields, ListOffsetsV0UsesMaxNumOffsetsAndOldStyleOffsets) {
  const Bytes q = read_file("ListOffsetsRequest_v0.bin");
  auto req = decode<ListOffsetsRequest>(q, 0);
  EXPECT_EQ(req.topics[0].partitions[0].timestamp, -1);
  EXPECT_EQ(req.topics[0].partitions[0].max_num_offsets, 1);
  const Bytes r = read_file("ListOffsetsResponse_v0.bin");
  auto resp = decode<ListOffsetsResponse>(r, 0);
  EXPECT_EQ(resp.topics[0].partitions[0].old_style_offsets, std::vector<int64_t>{102});
  const Bytes r1 = read_file("ListOffsetsResponse_v1.bin");
  EXPECT_EQ(decode<ListOffsetsResponse>(r1, 1).topics[0].partitions[0].offset, 102);
}

TEST(GoldenFields, OffsetCommitAndFetch) {
  const Bytes c1 = read_file("OffsetCommitRequest_v1.bin");
  auto m1 = decode<OffsetCommitRequest>(c1, 1);
  EXPECT_EQ(m1.generation_id_or_member_epoch, 3);
  EXPECT_EQ(m1.member_id, "member-1");
  EXPECT_EQ(m1.topics[0].partitions[0].commit_timestamp, 1700000000000);
  EXPECT_EQ(m1.topics[0].partitions[0].committed_metadata, "meta");
  const Bytes c2 = read_file("OffsetCommitRequest_v2.bin");
  auto m2 = decode<OffsetCommitRequest>(c2, 2);
  EXPECT_EQ(m2.retention_time_ms, -1);
  EXPECT_EQ(m2.topics[0].partitions[1].committed_offset, 5);
  const Bytes f3 = read_file("OffsetFetchRequest_v3.bin");
  auto f = decode<OffsetFetchRequest>(f3, 3);
  EXPECT_EQ(f.group_id, "grp");
  EXPECT_FALSE(f.topics.has_value());  // null = all committed partitions
  const Bytes fr = read_file("OffsetFetchResponse_v1.bin");
  auto r = decode<OffsetFetchResponse>(fr, 1);
  EXPECT_EQ(r.topics[0].partitions[1].committed_offset, -1);
}

TEST(GoldenFields, JoinGroupV0HasNoRebalanceTimeout) {
  const Bytes v0 = read_file("JoinGroupRequest_v0.bin");
  auto j0 = decode<JoinGroupRequest>(v0, 0);
  EXPECT_EQ(j0.session_timeout_ms, 10000);
  EXPECT_EQ(j0.rebalance_timeout_ms, -1);
  EXPECT_EQ(j0.protocol_type, "consumer");
  const Bytes v2 = read_file("JoinGroupRequest_v2.bin");
  auto j2 = decode<JoinGroupRequest>(v2, 2);
  EXPECT_EQ(j2.rebalance_timeout_ms, 300000);
  ASSERT_EQ(j2.protocols.size(), 2u);
  EXPECT_EQ(j2.protocols[1].name, "roundrobin");
  EXPECT_EQ(j2.protocols[0].metadata, (Bytes{0, 1}));
  const Bytes r2 = read_file("JoinGroupResponse_v2.bin");
  auto jr = decode<JoinGroupResponse>(r2, 2);
  EXPECT_EQ(jr.protocol_name, "range");
  EXPECT_EQ(jr.members.size(), 2u);
}

TEST(GoldenFields, ApiVersionsV0Response) {
  const Bytes b = read_file("ApiVersionsResponse_v0.bin");
  auto m = decode<ApiVersionsResponse>(b, 0);
  ASSERT_EQ(m.api_keys.size(), 3u);
  EXPECT_EQ(m.api_keys[2].api_key, kApiVersions);
  EXPECT_EQ(m.api_keys[2].max_version, 4);
}

TEST(GoldenFields, AdminNullables) {
  const Bytes ct = read_file("CreateTopicsRequest_v3.bin");
  auto c = decode<CreateTopicsRequest>(ct, 3);
  EXPECT_FALSE(c.topics[0].configs[1].value.has_value());
  EXPECT_EQ(c.topics[1].num_partitions, -1);
  EXPECT_EQ(c.topics[1].assignments[0].broker_ids, std::vector<int32_t>{1});
  const Bytes dc = read_file("DescribeConfigsRequest_v2.bin");
  auto d = decode<DescribeConfigsRequest>(dc, 2);
  EXPECT_FALSE(d.resources[0].configuration_keys.has_value());
  EXPECT_EQ(d.resources[1].configuration_keys->at(0), "log.retention.ms");
  EXPECT_TRUE(d.include_synonyms);
  const Bytes cp = read_file("CreatePartitionsRequest_v1.bin");
  auto p = decode<CreatePartitionsRequest>(cp, 1);
  EXPECT_FALSE(p.topics[0].assignments.has_value());
  ASSERT_TRUE(p.topics[1].assignments.has_value());
  EXPECT_TRUE(p.validate_only);
  const Bytes ctr = read_file("CreateTopicsResponse_v3.bin");
  auto cr = decode<CreateTopicsResponse>(ctr, 3);
  EXPECT_FALSE(cr.topics[0].error_message.has_value());
  EXPECT_EQ(cr.topics[1].error_code, static_cast<int16_t>(ErrorCode::kTopicAlreadyExists));
}

}  // namespace
}  // namespace herald::protocol
