#!/usr/bin/python3
"""integration_damaged_segment: one byte flipped on disk in a closed segment of a stopped broker
(10,000 records per topic sent in flushes of 10: batches of up to 10 records, one segment), in the
batch that holds the segment's middle byte. On topic `damaged` the byte is inside the batch's
records (the CRC catches it); on `damaged-header` it is the high byte of the batch's base offset,
which the CRC does not cover. After the restart a confluent_kafka consumer reading from offset 0
gets every record before the damaged batch, byte-identical and in order, then an error for it
(CORRUPT_MESSAGE): the batches before it are not withheld because a fetch's byte range also covers
the damaged one, and the damaged batch is never served. A read that starts after a batch damaged in
its records goes on. A partition directory removed by hand: the partition starts empty, logged.
An active segment cut short after a clean shutdown: what is left is served, the loss is logged as an
error. The data dir removed while the broker runs: logged, and writes are refused.
"""
import os
import shutil
import struct

import harness
from harness import log

BATCHES = 1000
PER_BATCH = 10
VALUE_PAD = b"." * 90


def value(offset):
    return b"v%07d" % offset + VALUE_PAD


def batches_of(path):
    """(position, base offset, size) of each batch in a segment file."""
    out, pos, data = [], 0, open(path, "rb").read()
    while pos + 12 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        out.append((pos, base, 12 + length))
        pos += 12 + length
    return out


def read_until_error(bootstrap, topic):
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "herald-integ-assign", "enable.auto.commit": False,
                  "enable.partition.eof": True, "logger": harness.confluent_quiet_logger()})
    c.assign([TopicPartition(topic, 0, 0)])
    # librdkafka fetches ahead: the error for the damaged batch may reach the application before the
    # records of the fetch before it. Poll on until the records stop coming after an error.
    got, error, quiet = [], None, 0
    for _ in range(300):  # at most ~90 s
        if quiet >= 10 or len(got) >= BATCHES * PER_BATCH:
            break
        batch = c.consume(num_messages=1000, timeout=0.3)
        quiet = quiet + 1 if error is not None and not any(not m.error() for m in batch) else 0
        for m in batch:
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    error = error or m.error()
                continue
            got.append((m.offset(), m.value()))
    c.close()
    log(f"{topic}: read {len(got)} records, then {error}")
    return got, error


def run(h):
    from confluent_kafka import KafkaError, Producer
    b = h.broker()
    b.start()
    # topic -> byte of the damaged batch to flip (None: the middle of its records)
    topics = {"damaged": None, "damaged-header": 0}
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0, "batch.num.messages": PER_BATCH,
                  "logger": harness.confluent_quiet_logger()})
    for topic in topics:
        for i in range(BATCHES):
            for j in range(PER_BATCH):
                p.produce(topic, value(i * PER_BATCH + j), partition=0)
            p.flush(30)  # one batch per flush
    b.stop()

    damaged = {}
    for topic, field in topics.items():
        seg = os.path.join(b.data_dir, "topics", topic, "0", "00000000000000000000.log")
        batches = batches_of(seg)
        middle = batches[-1][0] // 2
        pos, base, size = next(x for x in batches if x[0] <= middle < x[0] + x[2])
        at = pos + (size // 2 if field is None else field)
        with open(seg, "r+b") as f:
            f.seek(at)
            byte = f.read(1)
            f.seek(at)
            f.write(bytes([byte[0] ^ 0x7F]))
        damaged[topic] = base
        log(f"{topic}: flipped the byte at {at} of the batch at offset {base} ({len(batches)} batches)")
    b.start()

    for topic in topics:
        got, error = read_until_error(b.bootstrap, topic)
        h.check(error is not None and error.code() == KafkaError.INVALID_MSG,
                f"{topic}: the damaged batch is reported to the consumer as CORRUPT_MESSAGE, not served")
        h.check_eq(len(got), damaged[topic], f"{topic}: every record before the damaged batch is served")
        h.check_eq([o for o, _ in got], list(range(len(got))), f"{topic}: in order from offset 0")
        h.check(all(v == value(o) for o, v in got), f"{topic}: byte-identical")
        b.wait_log(f"topics/{topic}/0/00000000000000000000.log: batch at")

    # After a batch damaged in its records (at most PER_BATCH records): served.
    nxt = damaged["damaged"] + PER_BATCH
    after = harness.consume_partition(b.bootstrap, "damaged", start=nxt, end=nxt + 100)
    h.check_eq([(m.offset(), m.value()) for m in after], [(o, value(o)) for o in range(nxt, nxt + 100)],
               "a read past the damaged batch goes on")

    # A damaged batch header (its magic byte) with no producer snapshot to start from (as after a
    # crash before the first maintenance sweep): the idempotent-producer state is rebuilt by reading
    # every batch header, which stops at the damage. The broker starts all the same (it refused to),
    # and the records before the damage are still served.
    b.stop()
    os.remove(os.path.join(b.data_dir, "topics", "damaged", "0.producers"))
    seg = os.path.join(b.data_dir, "topics", "damaged", "0", "00000000000000000000.log")
    pos, base, _ = batches_of(seg)[len(batches_of(seg)) // 4]
    with open(seg, "r+b") as f:
        f.seek(pos + 16)  # magic
        f.write(b"\x03")
    b.start()
    b.wait_log("idempotent-producer state rebuilt only up to damage")
    got, error = read_until_error(b.bootstrap, "damaged")
    h.check_eq(len(got), base, "after a restart without a producer snapshot: the records before the damaged header")

    # A partition directory gone: the partition starts empty, and that is logged as an error.
    b.stop()
    shutil.rmtree(os.path.join(b.data_dir, "topics", "damaged-header", "0"))
    b.start()
    b.wait_log("damaged-header: partition directory 0 missing")
    h.check_eq(harness.watermarks(b.bootstrap, "damaged-header"), (0, 0), "a lost partition directory: empty")

    # The active segment cut at a batch boundary after a clean shutdown: shorter than the checkpoint
    # says was synced. What is left is served, and the loss is logged as an error (it used to be an
    # info line about the recovery).
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0, "batch.num.messages": PER_BATCH,
                  "logger": harness.confluent_quiet_logger()})
    for i in range(100):
        for j in range(PER_BATCH):
            p.produce("shortened", value(i * PER_BATCH + j), partition=0)
        left = p.flush(30)
    h.check_eq(left, 0, "1,000 records into 'shortened', all acknowledged")
    b.stop()
    seg = os.path.join(b.data_dir, "topics", "shortened", "0", "00000000000000000000.log")
    pos, base, _ = batches_of(seg)[60]
    os.truncate(seg, pos)
    b.start()
    line = b.wait_log("synced records are missing")
    h.check("shortened/0" in line and "the clean shutdown left" in line, f"logged: {line.strip()[-160:]}")
    h.check_eq(harness.watermarks(b.bootstrap, "shortened"), (0, base), "what is left before the cut is served")
    b.stop()

    # The data dir removed while the broker runs (rm -rf, a tmp cleaner): a restart would find none of
    # what is written from then on. The next maintenance sweep notices; produce requests and topic
    # creation are refused with KAFKA_STORAGE_ERROR, offset commits with COORDINATOR_NOT_AVAILABLE (as
    # Kafka answers a commit its log refused), and what the open files hold is still served.
    from confluent_kafka.admin import AdminClient, NewTopic
    g = h.broker("removed", extra_args=["--maintenance-interval-ms", "100"])
    g.start()
    p = Producer({"bootstrap.servers": g.bootstrap, "acks": "all", "linger.ms": 0,
                  "logger": harness.confluent_quiet_logger()})
    for i in range(100):
        p.produce("kept", value(i), partition=0)
    h.check_eq(p.flush(30), 0, "100 records into 'kept', all acknowledged")
    shutil.rmtree(g.data_dir)
    line = g.wait_log("is not the directory this broker opened", timeout=10)
    h.check("KAFKA_STORAGE_ERROR" in line, f"logged: {line.strip()[-160:]}")
    failed = []
    p = Producer({"bootstrap.servers": g.bootstrap, "acks": "all", "linger.ms": 0, "retries": 0,
                  "logger": harness.confluent_quiet_logger()})
    p.produce("kept", value(100), partition=0, on_delivery=lambda err, msg: failed.append(err))
    p.flush(30)
    h.check(len(failed) == 1 and failed[0] is not None and failed[0].code() == KafkaError.KAFKA_STORAGE_ERROR,
            f"a produce after the removal is refused with KAFKA_STORAGE_ERROR (got {failed})")
    admin = AdminClient({"bootstrap.servers": g.bootstrap})
    created = admin.create_topics([NewTopic("new", 1, 1)])["new"]
    try:
        created.result(30)
        h.check(False, "creating a topic after the removal is refused")
    except Exception as e:  # the future raises the KafkaException of the topic's error
        h.check(e.args[0].code() == KafkaError.KAFKA_STORAGE_ERROR, f"topic creation refused: {e}")
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    c = Consumer({"bootstrap.servers": g.bootstrap, "group.id": "g", "logger": harness.confluent_quiet_logger()})
    try:
        c.commit(offsets=[TopicPartition("kept", 0, 50)], asynchronous=False)
        h.check(False, "an offset commit after the removal is refused")
    except KafkaException as e:
        h.check(e.args[0].code() == KafkaError.COORDINATOR_NOT_AVAILABLE, f"offset commit refused: {e}")
    c.close()
    kept = harness.consume_partition(g.bootstrap, "kept")
    h.check_eq([m.value() for m in kept], [value(i) for i in range(100)], "the 100 acknowledged records are served")
    g.stop()


if __name__ == "__main__":
    h = harness.setup("damaged_segment", default_deadline=240)
    harness.main(run, h)
