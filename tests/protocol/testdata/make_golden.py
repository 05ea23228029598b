#!/usr/bin/python3
"""Writes golden message bodies encoded by kafka-python 2.0.2 (Debian python3-kafka).

Run by hand from the repository root; the outputs are committed:

    /usr/bin/python3 tests/protocol/testdata/make_golden.py

Each case becomes tests/protocol/testdata/<Name>_v<version>.bin holding the
message body only (no size, no header), and one line of golden.txt:
"<file> <api_key> <version> <request|response>". golden_test.cc decodes every
file with Herald's generated codec, checks some fields, re-encodes and compares
byte for byte. kafka-python is an independent implementation, so agreement
means our schemas match what a real client puts on the wire.
"""
import os
import sys

from kafka.protocol import admin, commit, fetch, group, metadata, offset, produce
from kafka.record.default_records import DefaultRecordBatchBuilder

OUT = os.path.dirname(os.path.abspath(__file__))


def record_batch():
    """A deterministic magic-2 batch with two records (one with a header)."""
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 20)
    b.append(0, timestamp=1700000000000, key=b"k1", value=b"hello", headers=[])
    b.append(1, timestamp=1700000000001, key=None, value=b"world", headers=[("h", b"v")])
    return bytes(b.build())


BATCH = record_batch()

# (file stem, api key, kind, kafka-python instance)
CASES = [
    # --- Produce ---
    ("ProduceRequest_v3", 0, "request", produce.ProduceRequest[3](
        None, -1, 30000, [("orders", [(0, BATCH), (1, BATCH)])])),
    ("ProduceRequest_v7", 0, "request", produce.ProduceRequest[7](
        None, 1, 1500, [("orders", [(2, BATCH)]), ("audit", [(0, BATCH)])])),
    ("ProduceRequest_v8", 0, "request", produce.ProduceRequest[8](
        "txn-1", -1, 30000, [("orders", [(0, BATCH)])])),
    ("ProduceResponse_v7", 0, "response", produce.ProduceResponse[7](
        [("orders", [(0, 0, 42, -1, 0), (1, 3, -1, -1, -1)])], 0)),
    # Not ProduceResponse v8: kafka-python 2.0.2's class lacks record_errors and
    # error_message (added in Kafka's v8); it sends Produce v7.
    # --- Fetch ---
    ("FetchRequest_v4", 1, "request", fetch.FetchRequest[4](
        -1, 500, 1, 52428800, 0, [("orders", [(0, 100, 1048576), (1, 0, 1048576)])])),
    ("FetchRequest_v11", 1, "request", fetch.FetchRequest[11](
        -1, 500, 1, 52428800, 1, 0, -1,
        [("orders", [(0, -1, 100, -1, 1048576)])], [], "rack-a")),  # kafka-python cannot
    # encode a non-empty forgotten_topics_data (its topic field is the String class)
    ("FetchResponse_v4", 1, "response", fetch.FetchResponse[4](
        0, [("orders", [(0, 0, 102, 102, None, BATCH), (1, 1, -1, -1, None, b"")])])),
    ("FetchResponse_v11", 1, "response", fetch.FetchResponse[11](
        0, 0, 0, [("orders", [(0, 0, 102, 102, 0, [(7, 50)], -1, BATCH)])])),
    # --- ListOffsets ---
    ("ListOffsetsRequest_v0", 2, "request", offset.OffsetRequest[0](
        -1, [("orders", [(0, -1, 1)])])),
    ("ListOffsetsRequest_v1", 2, "request", offset.OffsetRequest[1](
        -1, [("orders", [(0, -2), (1, 1700000000000)])])),
    ("ListOffsetsRequest_v2", 2, "request", offset.OffsetRequest[2](
        -1, 1, [("orders", [(0, -1)])])),
    # Not ListOffsetsRequest v4/v5: kafka-python 2.0.2 encodes current_leader_epoch as
    # an int64 (Kafka: int32); it sends ListOffsets v1.
    ("ListOffsetsResponse_v0", 2, "response", offset.OffsetResponse[0](
        [("orders", [(0, 0, [102])])])),
    ("ListOffsetsResponse_v1", 2, "response", offset.OffsetResponse[1](
        [("orders", [(0, 0, -1, 102)])])),
    ("ListOffsetsResponse_v5", 2, "response", offset.OffsetResponse[5](
        0, [("orders", [(0, 0, 1700000000000, 7, 0)])])),
    # --- Metadata ---
    ("MetadataRequest_v0", 3, "request", metadata.MetadataRequest[0]([])),
    ("MetadataRequest_v1", 3, "request", metadata.MetadataRequest[1](None)),
    ("MetadataRequest_v4", 3, "request", metadata.MetadataRequest[4](["orders", "audit"], True)),
    ("MetadataRequest_v5", 3, "request", metadata.MetadataRequest[5](["orders"], False)),
    ("MetadataResponse_v0", 3, "response", metadata.MetadataResponse[0](
        [(1, "localhost", 9092)], [(0, "orders", [(0, 0, 1, [1], [1]), (0, 1, 1, [1], [1])])])),
    ("MetadataResponse_v1", 3, "response", metadata.MetadataResponse[1](
        [(1, "localhost", 9092, None)], 1,
        [(0, "orders", False, [(0, 0, 1, [1], [1])]), (3, "missing", False, [])])),
    ("MetadataResponse_v5", 3, "response", metadata.MetadataResponse[5](
        0, [(1, "broker1.example", 19092, "rack-a")], "AAAAAAAAAAAAAAAAAAAAAA", 1,
        [(0, "__consumer_offsets", True, [(0, 0, 1, [1], [1], [])])])),
    # --- OffsetCommit / OffsetFetch ---
    ("OffsetCommitRequest_v0", 8, "request", commit.OffsetCommitRequest[0](
        "grp", [("orders", [(0, 100, "")])])),
    ("OffsetCommitRequest_v1", 8, "request", commit.OffsetCommitRequest[1](
        "grp", 3, "member-1", [("orders", [(0, 100, 1700000000000, "meta")])])),
    ("OffsetCommitRequest_v2", 8, "request", commit.OffsetCommitRequest[2](
        "grp", 3, "member-1", -1, [("orders", [(0, 100, ""), (1, 5, "x")])])),
    ("OffsetCommitResponse_v2", 8, "response", commit.OffsetCommitResponse[2](
        [("orders", [(0, 0), (1, 22)])])),
    ("OffsetCommitResponse_v3", 8, "response", commit.OffsetCommitResponse[3](
        0, [("orders", [(0, 0)])])),
    ("OffsetFetchRequest_v1", 9, "request", commit.OffsetFetchRequest[1](
        "grp", [("orders", [0, 1])])),
    ("OffsetFetchRequest_v3", 9, "request", commit.OffsetFetchRequest[3]("grp", None)),
    ("OffsetFetchResponse_v1", 9, "response", commit.OffsetFetchResponse[1](
        [("orders", [(0, 100, "", 0), (1, -1, "", 0)])])),
    ("OffsetFetchResponse_v3", 9, "response", commit.OffsetFetchResponse[3](
        0, [("orders", [(0, 100, "m", 0)])], 0)),
    # --- FindCoordinator ---
    ("FindCoordinatorRequest_v0", 10, "request", commit.GroupCoordinatorRequest[0]("grp")),
    ("FindCoordinatorRequest_v1", 10, "request", commit.GroupCoordinatorRequest[1]("grp", 0)),
    ("FindCoordinatorResponse_v0", 10, "response", commit.GroupCoordinatorResponse[0](0, 1, "localhost", 9092)),
    # Not FindCoordinatorResponse v1: kafka-python 2.0.2's class lacks throttle_time_ms
    # (Kafka's v1 has it first); kafka-python only ever sends v0.
    # --- Groups ---
    ("JoinGroupRequest_v0", 11, "request", group.JoinGroupRequest[0](
        "grp", 10000, "", "consumer", [("range", b"\x00\x01meta")])),
    ("JoinGroupRequest_v2", 11, "request", group.JoinGroupRequest[2](
        "grp", 10000, 300000, "", "consumer", [("range", b"\x00\x01"), ("roundrobin", b"")])),
    ("JoinGroupResponse_v2", 11, "response", group.JoinGroupResponse[2](
        0, 0, 1, "range", "m-1", "m-1", [("m-1", b"\x00\x01"), ("m-2", b"\x00\x02")])),
    ("SyncGroupRequest_v1", 14, "request", group.SyncGroupRequest[1](
        "grp", 1, "m-1", [("m-1", b"\x00\x00a"), ("m-2", b"")])),
    ("SyncGroupResponse_v1", 14, "response", group.SyncGroupResponse[1](0, 0, b"\x00\x00a")),
    ("HeartbeatRequest_v1", 12, "request", group.HeartbeatRequest[1]("grp", 1, "m-1")),
    ("HeartbeatResponse_v1", 12, "response", group.HeartbeatResponse[1](0, 27)),
    ("LeaveGroupRequest_v1", 13, "request", group.LeaveGroupRequest[1]("grp", "m-1")),
    ("LeaveGroupResponse_v1", 13, "response", group.LeaveGroupResponse[1](0, 0)),
    ("DescribeGroupsRequest_v3", 15, "request", admin.DescribeGroupsRequest[3](["grp", "other"], True)),
    # Not DescribeGroupsResponse v3: kafka-python 2.0.2's class lacks each group's
    # authorized_operations (added in Kafka's v3), although its admin client sends v3.
    ("DescribeGroupsResponse_v1", 15, "response", admin.DescribeGroupsResponse[1](
        0, [(0, "grp", "Stable", "consumer", "range",
             [("m-1", "client-1", "/127.0.0.1", b"\x00\x01", b"\x00\x02")]),
            (0, "gone", "Dead", "", "", [])])),
    ("ListGroupsRequest_v1", 16, "request", admin.ListGroupsRequest[1]()),
    ("ListGroupsResponse_v1", 16, "response", admin.ListGroupsResponse[1](
        0, 0, [("grp", "consumer"), ("offsets-only", "")])),
    ("DeleteGroupsRequest_v1", 42, "request", admin.DeleteGroupsRequest[1](["grp", "old"])),
    ("DeleteGroupsResponse_v1", 42, "response", admin.DeleteGroupsResponse[1](0, [("grp", 0), ("old", 69)])),
    # --- SASL ---
    ("SaslHandshakeRequest_v0", 17, "request", admin.SaslHandShakeRequest[0]("PLAIN")),
    ("SaslHandshakeResponse_v1", 17, "response", admin.SaslHandShakeResponse[1](0, ["PLAIN", "SCRAM-SHA-256"])),
    ("SaslAuthenticateRequest_v1", 36, "request", admin.SaslAuthenticateRequest[1](b"\x00user\x00pass")),
    ("SaslAuthenticateResponse_v1", 36, "response", admin.SaslAuthenticateResponse[1](0, None, b"", 3600000)),
    # --- ApiVersions ---
    ("ApiVersionsRequest_v0", 18, "request", admin.ApiVersionRequest[0]()),
    ("ApiVersionsResponse_v0", 18, "response", admin.ApiVersionResponse[0](
        0, [(0, 0, 11), (1, 4, 12), (18, 0, 4)])),
    ("ApiVersionsResponse_v1", 18, "response", admin.ApiVersionResponse[1](
        0, [(3, 0, 12), (18, 0, 4)], 0)),
    # --- Topics and configs ---
    ("CreateTopicsRequest_v3", 19, "request", admin.CreateTopicsRequest[3](
        [("orders", 3, 1, [], [("retention.ms", "86400000"), ("cleanup.policy", None)]),
         ("manual", -1, -1, [(0, [1])], [])], 30000, False)),
    ("CreateTopicsResponse_v3", 19, "response", admin.CreateTopicsResponse[3](
        0, [("orders", 0, None), ("manual", 36, "Topic 'manual' already exists.")])),
    ("DeleteTopicsRequest_v3", 20, "request", admin.DeleteTopicsRequest[3](["orders", "audit"], 30000)),
    ("DeleteTopicsResponse_v3", 20, "response", admin.DeleteTopicsResponse[3](0, [("orders", 0), ("audit", 3)])),
    ("CreatePartitionsRequest_v1", 37, "request", admin.CreatePartitionsRequest[1](
        [("orders", (6, None)), ("audit", (2, [[1]]))], 30000, True)),
    ("CreatePartitionsResponse_v1", 37, "response", admin.CreatePartitionsResponse[1](
        0, [("orders", 0, None), ("audit", 37, "count must grow")])),
    ("DescribeConfigsRequest_v2", 32, "request", admin.DescribeConfigsRequest[2](
        [(2, "orders", None), (4, "1", ["log.retention.ms"])], True)),
    ("DescribeConfigsResponse_v2", 32, "response", admin.DescribeConfigsResponse[2](
        0, [(0, None, 2, "orders",
             [("retention.ms", "86400000", False, 1, False, [("retention.ms", "86400000", 1)]),
              ("cleanup.policy", "delete", False, 5, False, [])])])),
    ("AlterConfigsRequest_v1", 33, "request", admin.AlterConfigsRequest[1](
        [(2, "orders", [("retention.ms", "1000"), ("segment.bytes", None)])], False)),
    # AlterConfigsResponse v0, not v1: kafka-python 2.0.2's v1 response class is a copy of
    # the request schema (v1 has the same layout as v0 in Kafka).
    ("AlterConfigsResponse_v0", 33, "response", admin.AlterConfigsResponse[0](
        0, [(0, None, 2, "orders"), (40, "bad value", 2, "audit")])),
]


def main():
    lines = []
    for stem, api_key, kind, msg in CASES:
        try:
            data = msg.encode()
        except (ValueError, TypeError) as e:
            sys.exit(f"{stem}: {e}")
        if msg.API_KEY != api_key:
            sys.exit(f"{stem}: api key {msg.API_KEY} != {api_key}")
        version = int(stem.rsplit("_v", 1)[1])
        with open(os.path.join(OUT, stem + ".bin"), "wb") as f:
            f.write(data)
        lines.append(f"{stem}.bin {api_key} {version} {kind}")
    with open(os.path.join(OUT, "golden.txt"), "w") as f:
        f.write("# file api_key version kind (written by make_golden.py; kafka-python 2.0.2)\n")
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} golden files")


if __name__ == "__main__":
    main()
