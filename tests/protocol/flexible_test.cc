// Flexible (KIP-482) versions against hand-written bytes: compact strings,
// arrays and records, tagged-field sections at the end of every struct, known
// tags decoded, unknown tags skipped, tags written in ascending order and only
// when they differ from their default. kafka-python 2.0.2 has no flexible
// versions, so these bytes are written out by hand from KIP-482's encoding rules.
#include <gtest/gtest.h>

#include "protocol/messages.h"

namespace herald::protocol {
namespace {

template <class T>
T decode_ok(const Bytes& b, int16_t version) {
  Reader r(b);
  auto m = T::decode(r, version);
  EXPECT_TRUE(m) << m.error().to_string();
  EXPECT_EQ(r.remaining(), 0u);
  return m ? std::move(*m) : T{};
}

template <class T>
Bytes encode(const T& m, int16_t version) {
  Writer w;
  m.encode(w, version);
  return w.take();
}

TEST(Flexible, ApiVersionsV3RequestAsLibrdkafkaSendsIt) {
  const Bytes b = {0x0b, 'l', 'i', 'b', 'r', 'd', 'k', 'a', 'f', 'k', 'a',  // compact "librdkafka"
                   0x06, '2', '.', '0', '.', '2',                           // compact "2.0.2"
                   0x00};                                                   // no tagged fields
  auto m = decode_ok<ApiVersionsRequest>(b, 3);
  EXPECT_EQ(m.client_software_name, "librdkafka");
  EXPECT_EQ(m.client_software_version, "2.0.2");
  EXPECT_EQ(encode(m, 3), b);
  EXPECT_EQ(encode(m, 4), b);  // v4 is byte-identical to v3
  EXPECT_TRUE(encode(m, 2).empty());  // v0-2: empty body
}

TEST(Flexible, ApiVersionsV3ResponseOmitsDefaultTaggedFields) {
  ApiVersionsResponse m;
  m.api_keys.push_back({18, 0, 4});
  const Bytes expect = {0x00, 0x00,                                // error_code
                        0x02,                                      // compact array, 1 element
                        0x00, 0x12, 0x00, 0x00, 0x00, 0x04, 0x00,  // key 18, 0..4, element tags
                        0x00, 0x00, 0x00, 0x00,                    // throttle_time_ms
                        0x00};                                     // no tagged fields
  EXPECT_EQ(encode(m, 3), expect);
  EXPECT_EQ(decode_ok<ApiVersionsResponse>(expect, 3), m);
}

TEST(Flexible, TaggedFieldsAreWrittenInAscendingTagOrder) {
  ApiVersionsResponse m;
  m.zk_migration_ready = true;   // tag 3
  m.finalized_features_epoch = 5;  // tag 1
  const Bytes expect = {0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                        0x02,                                                  // two tagged fields
                        0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,  // tag 1: i64 5
                        0x03, 0x01, 0x01};                                     // tag 3: true
  EXPECT_EQ(encode(m, 3), expect);
  auto d = decode_ok<ApiVersionsResponse>(expect, 3);
  EXPECT_EQ(d.finalized_features_epoch, 5);
  EXPECT_TRUE(d.zk_migration_ready);
}

TEST(Flexible, UnknownTagsAreSkippedAndKnownOnesReadInAnyOrder) {
  const Bytes b = {0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                   0x03,                                  // three tagged fields
                   0x03, 0x01, 0x01,                      // tag 3: true
                   0x63, 0x02, 0xAA, 0xBB,                // tag 99: unknown, skipped
                   0x02, 0x0b,                            // tag 2: finalized_features, 11 bytes
                   0x02, 0x04, 'm', 'v', '1', 0x00, 0x03, 0x00, 0x01, 0x00,
                   0x00};  // one element: name "mv1", max 3, min 1, no tags; then one byte
  // The array takes 10 of the tag's 11 bytes; the 11th is slack inside the
  // tagged field and is ignored.
  auto m = decode_ok<ApiVersionsResponse>(b, 3);
  EXPECT_TRUE(m.zk_migration_ready);
  ASSERT_EQ(m.finalized_features.size(), 1u);
  EXPECT_EQ(m.finalized_features[0].name, "mv1");
  EXPECT_EQ(m.finalized_features[0].max_version_level, 3);
  EXPECT_EQ(m.finalized_features[0].min_version_level, 1);
  EXPECT_EQ(m.finalized_features_epoch, -1);
}

TEST(Flexible, TaggedValueShorterThanItsTypeIsTruncated) {
  const Bytes b = {0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                   0x01, 0x01, 0x04, 0x00, 0x00, 0x00, 0x05};  // tag 1 (i64) with 4 bytes
  Reader r(b);
  auto m = ApiVersionsResponse::decode(r, 3);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, Errc::kTruncated);
  EXPECT_NE(m.error().message.find("FinalizedFeaturesEpoch"), std::string::npos) << m.error().message;
}

TEST(Flexible, TaggedFieldSizePastTheEndIsTruncated) {
  const Bytes b = {0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x05, 0x10, 0x00};
  Reader r(b);
  auto m = ApiVersionsResponse::decode(r, 3);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, Errc::kTruncated);
}

TEST(Flexible, MetadataV12NullTopicsAndNullTopicName) {
  const Bytes all = {0x00, 0x01, 0x00, 0x00};  // topics null, auto-create true, authz false, tags
  auto m = decode_ok<MetadataRequest>(all, 12);
  EXPECT_FALSE(m.topics.has_value());
  EXPECT_TRUE(m.allow_auto_topic_creation);
  Bytes by_id = {0x02};                         // one topic
  for (int i = 0; i < 16; ++i) by_id.push_back(static_cast<uint8_t>(0xA0 + i));  // topic_id
  by_id.insert(by_id.end(), {0x00, 0x00,         // name null, element tags
                             0x00, 0x01, 0x00});  // auto-create false, authz true, tags
  auto t = decode_ok<MetadataRequest>(by_id, 12);
  ASSERT_TRUE(t.topics.has_value());
  ASSERT_EQ(t.topics->size(), 1u);
  EXPECT_FALSE((*t.topics)[0].name.has_value());
  EXPECT_EQ((*t.topics)[0].topic_id[15], 0xAF);
  EXPECT_FALSE(t.allow_auto_topic_creation);
  EXPECT_TRUE(t.include_topic_authorized_operations);
  EXPECT_EQ(encode(t, 12), by_id);
}

TEST(Flexible, NullTopicNameBeforeV10IsCorruption) {
  // v9 is flexible but Name is not nullable before v10.
  const Bytes b = {0x02, 0x00, 0x00, 0x01, 0x00, 0x00};
  Reader r(b);
  auto m = MetadataRequest::decode(r, 9);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, Errc::kCorruption);
  EXPECT_NE(m.error().message.find("MetadataRequest.Topics.Name"), std::string::npos);
}

TEST(Flexible, ProduceV9CompactRecordsAndNestedTagSections) {
  const Bytes b = {0x00,                    // transactional_id null
                   0xff, 0xff,              // acks -1
                   0x00, 0x00, 0x75, 0x30,  // timeout 30000
                   0x02,                    // topic_data: 1
                   0x02, 't',               // name "t"
                   0x02,                    // partition_data: 1
                   0x00, 0x00, 0x00, 0x03,  // index 3
                   0x04, 0xde, 0xad, 0xbe,  // records: 3 bytes
                   0x00,                    // partition tags
                   0x00,                    // topic tags
                   0x00};                   // top-level tags
  auto m = decode_ok<ProduceRequest>(b, 9);
  EXPECT_FALSE(m.transactional_id.has_value());
  EXPECT_EQ(m.acks, -1);
  EXPECT_EQ(m.timeout_ms, 30000);
  ASSERT_EQ(m.topic_data.size(), 1u);
  EXPECT_EQ(m.topic_data[0].name, "t");
  const auto& p = m.topic_data[0].partition_data.at(0);
  EXPECT_EQ(p.index, 3);
  EXPECT_EQ(p.records.size(), 3u);
  EXPECT_EQ(p.records.bytes().data(), b.data() + 16);  // a view, not a copy
  EXPECT_EQ(encode(m, 9), b);
}

TEST(Flexible, FetchV12ClusterIdIsATopLevelTag) {
  Writer w;
  w.put_i32(-1);  // replica_id
  w.put_i32(500);
  w.put_i32(1);
  w.put_i32(1 << 20);
  w.put_i8(1);
  w.put_i32(0);
  w.put_i32(-1);
  w.put_u8(0x01);  // topics: empty
  w.put_u8(0x01);  // forgotten: empty
  w.put_u8(0x01);  // rack_id ""
  w.put_bytes(Bytes{0x01, 0x00, 0x04, 0x03, 'a', 'b', 0x00});  // tag 0: cluster_id "ab"... 
  // (the body of tag 0 is 4 bytes: compact "ab" plus one byte of slack)
  auto m = decode_ok<FetchRequest>(w.buffer(), 12);
  EXPECT_EQ(m.cluster_id, "ab");
  EXPECT_EQ(m.isolation_level, 1);
  EXPECT_EQ(m.max_bytes, 1 << 20);
  // Re-encoded without the slack byte.
  Bytes again = encode(m, 12);
  EXPECT_EQ(again.size(), w.size() - 1);
  EXPECT_EQ(decode_ok<FetchRequest>(again, 12), m);
}

TEST(Flexible, FetchV12ResponseTaggedStructsOnlyWhenNotDefault) {
  FetchResponse m;
  auto& p = m.responses.emplace_back().partitions.emplace_back();
  p.records = Records::empty();
  const size_t plain = encode(m, 12).size();
  p.current_leader.leader_id = 1;  // tag 1 now differs from its default
  Bytes with_tag = encode(m, 12);
  // tag count 1 (was 0), then tag 1, size 9 (i32 + i32 + empty tag section)
  EXPECT_EQ(with_tag.size(), plain + 2 + 9);
  auto d = decode_ok<FetchResponse>(with_tag, 12);
  EXPECT_EQ(d.responses[0].partitions[0].current_leader.leader_id, 1);
  EXPECT_EQ(d.responses[0].partitions[0].current_leader.leader_epoch, -1);
  EXPECT_EQ(d, m);
}

TEST(Flexible, CreateTopicsV5TopicConfigErrorCodeIsANestedTag) {
  const Bytes b = {0x00, 0x00, 0x00, 0x00,        // throttle
                   0x02,                          // topics: 1
                   0x02, 'x',                     // name
                   0x00, 0x28,                    // error_code 40
                   0x00,                          // error_message null
                   0x00, 0x00, 0x00, 0x01,        // num_partitions
                   0x00, 0x01,                    // replication_factor
                   0x00,                          // configs null
                   0x01, 0x00, 0x02, 0x00, 0x28,  // tags: tag 0 = i16 40
                   0x00};                         // top-level tags
  auto m = decode_ok<CreateTopicsResponse>(b, 5);
  ASSERT_EQ(m.topics.size(), 1u);
  EXPECT_EQ(m.topics[0].topic_config_error_code, 40);
  EXPECT_FALSE(m.topics[0].configs.has_value());
  EXPECT_EQ(encode(m, 5), b);
  EXPECT_EQ(encode(m, 4).size(), 4u + 4u + 3u + 2u + 2u);  // v4: no tags, no v5 fields
}

TEST(Flexible, DescribeClusterIsFlexibleFromV0) {
  DescribeClusterRequest m;
  m.include_cluster_authorized_operations = true;
  EXPECT_EQ(encode(m, 0), (Bytes{0x01, 0x00}));
  EXPECT_EQ(encode(m, 1), (Bytes{0x01, 0x01, 0x00}));  // endpoint_type default 1
}

}  // namespace
}  // namespace herald::protocol
