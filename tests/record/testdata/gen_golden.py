#!/usr/bin/python3
"""Writes golden record batches produced by real Kafka clients (run by hand).

    /usr/bin/python3 tests/record/testdata/gen_golden.py

kafka_python_<codec>.bin  one batch from kafka-python 2.0.2's
                          DefaultRecordBatchBuilder (the codecs its Python
                          modules support here: none, gzip).
librdkafka_<codec>.bin    what librdkafka (confluent-kafka-python) sent to its
                          built-in mock broker, fetched back raw with Fetch v4
                          (every codec; the mock stores batches as received,
                          only base_offset rewritten).

Every file holds the same four records (record_batch_golden_test.cc knows them):
  i = 0..2: key "key-i", value "value-i" * 5, header ("h", "v-i"),
            timestamp 1700000000000 + i
  i = 3   : null key, null value, no headers, timestamp 1700000000003
"""
import os
import socket
import struct

import confluent_kafka
from kafka.protocol.fetch import FetchRequest, FetchResponse
from kafka.record.default_records import DefaultRecordBatchBuilder

HERE = os.path.dirname(os.path.abspath(__file__))
BASE_TS = 1700000000000


def records():
    for i in range(3):
        yield (b"key-%d" % i, b"value-%d" % i * 5, [("h", b"v-%d" % i)], BASE_TS + i)
    yield (None, None, [], BASE_TS + 3)


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    print(name, len(data), "bytes")


def kafka_python(codec_name, codec_id, producer):
    pid, epoch, seq = producer
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec_id, is_transactional=False,
                                  producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                                  batch_size=1 << 20)
    for offset, (k, v, h, ts) in enumerate(records()):
        b.append(offset, timestamp=ts, key=k, value=v, headers=h)
    write("kafka_python_%s.bin" % codec_name, bytes(b.build()))


def fetch_raw(host, port, topic):
    s = socket.create_connection((host, port))
    req = FetchRequest[4](-1, 100, 1, 10000000, 0, [(topic, [(0, 0, 10000000)])])
    client_id = b"golden"
    body = struct.pack(">hhih", req.API_KEY, req.API_VERSION, 1, len(client_id)) + client_id + req.encode()
    s.sendall(struct.pack(">i", len(body)) + body)
    n = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
    data = b""
    while len(data) < n:
        data += s.recv(n - len(data))
    s.close()
    resp = FetchResponse[4].decode(data[4:])
    (_, partitions), = resp.topics
    (_, error, _, _, _, message_set), = partitions
    assert error == 0, error
    return message_set


def librdkafka(codec):
    p = confluent_kafka.Producer({"test.mock.num.brokers": 1, "compression.codec": codec,
                                  "linger.ms": 200, "enable.idempotence": True})
    topic = "golden-" + codec
    for k, v, h, ts in records():
        p.produce(topic, key=k, value=v, headers=h, partition=0, timestamp=ts)
    assert p.flush(10) == 0
    broker = p.list_topics(timeout=5).brokers[1]
    write("librdkafka_%s.bin" % codec, fetch_raw(broker.host, broker.port, topic))


if __name__ == "__main__":
    kafka_python("none", DefaultRecordBatchBuilder.CODEC_NONE, (-1, -1, -1))
    kafka_python("gzip", DefaultRecordBatchBuilder.CODEC_GZIP, (1234, 5, 7))
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        librdkafka(codec)
