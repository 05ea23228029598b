#!/usr/bin/python3
"""integration_damaged_segment: one byte flipped on disk in the middle of a
closed segment of a stopped broker (10,000 records sent in flushes of 10:
batches of up to 10 records, one segment). After the restart a
confluent_kafka consumer reading from offset 0 gets every record before the
damaged batch (where the broker's log line says it begins), byte-identical and in order, then
an error for the damaged batch (CORRUPT_MESSAGE): the batches before it are
not withheld because a fetch's byte range also covers the damaged one, and
the damaged batch is never served. A read that starts after it goes on.
"""
import os
import re

import harness
from harness import log

TOPIC = "damaged"
BATCHES = 1000
PER_BATCH = 10


def run(h):
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
    b = h.broker()
    b.start()
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0, "batch.num.messages": PER_BATCH,
                  "logger": harness.confluent_quiet_logger()})
    for i in range(BATCHES):
        for j in range(PER_BATCH):
            p.produce(TOPIC, b"v%07d" % (i * PER_BATCH + j) + b"." * 90, partition=0)
        p.flush(30)  # one batch per flush
    b.stop()

    seg = os.path.join(b.data_dir, "topics", TOPIC, "0", "00000000000000000000.log")
    size = os.path.getsize(seg)
    at = size // 2
    with open(seg, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))
    log(f"flipped the byte at {at} of {size}")
    b.start()

    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "herald-integ-assign", "enable.auto.commit": False,
                  "enable.partition.eof": True, "logger": harness.confluent_quiet_logger()})
    c.assign([TopicPartition(TOPIC, 0, 0)])
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
    log(f"read {len(got)} records, then {error}")
    h.check(error is not None, "the damaged batch is reported to the consumer, not served")
    h.check(len(got) >= BATCHES * PER_BATCH // 2 - 3 * PER_BATCH,
            f"the records before the damaged batch are all served ({len(got)}, the damage is about halfway)")
    h.check_eq([o for o, _ in got], list(range(len(got))), "they come in order from offset 0")
    h.check(all(v == b"v%07d" % o + b"." * 90 for o, v in got), "byte-identical")
    line = b.wait_log("fetch read:")
    damaged = int(re.search(r"batch at offset (\d+)", line).group(1))
    h.check_eq(len(got), damaged, "the records served end where the damaged batch begins (from the broker's log)")

    # After the damaged batch (at most PER_BATCH records): served.
    nxt = damaged + PER_BATCH
    after = harness.consume_partition(b.bootstrap, TOPIC, start=nxt, end=nxt + 100)
    h.check_eq([m.offset() for m in after], list(range(nxt, nxt + 100)), "a read past the damaged batch goes on")


if __name__ == "__main__":
    h = harness.setup("damaged_segment", default_deadline=240)
    harness.main(run, h)
