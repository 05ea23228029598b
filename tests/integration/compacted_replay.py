#!/usr/bin/python3
"""integration_compacted_replay: real clients replay a compacted topic.

A compacted topic with 8 KiB segments gets 60 rounds of the same 50 keys
(one batch of ~6.5 KiB per round, so one round per segment; kafka-python
producer, acks=all). The broker's maintenance sweep runs every 200 ms, so
the cleaner compacts the closed segments (rounds 0-58) while the test waits:
the segments of rounds 0-57 are each left holding one empty batch
(compaction keeps a segment's last batch, emptied, so that segments stay
contiguous) and are merged into a few segments, round 58 is kept (newest in
the closed segments), and the active segment keeps round 59. The partition
ends with at most 4 segment files, not 60. Then:
  - kafka-python, with max_partition_fetch_bytes (4 KiB) below the size of a
    round's batch, replays from the beginning and gets exactly rounds 58 and
    59, in offset order, ending at the high watermark. A fetch
    response holding only empty batches made kafka-python 2.0 raise
    IndexError (it cannot advance past them), so a fetch that starts at an
    empty batch must also carry the next batch with records;
  - confluent-kafka (librdkafka) replays the same records with the same limit;
  - the same replays after a SIGKILL and restart.
"""
import glob
import os
import time

import harness
from harness import log

TOPIC = "compacted-replay"
KEYS = 50
ROUNDS = 60
FETCH_LIMIT = 4096


def add_args(ap):
    pass


def value(round_, k):
    return b"r%03d-k%02d|" % (round_, k) + b"v" * 110


def produce(h, bootstrap):
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic
    adm = KafkaAdminClient(bootstrap_servers=bootstrap)
    adm.create_topics([NewTopic(TOPIC, 1, 1, topic_configs={
        "cleanup.policy": "compact", "segment.bytes": "8192", "min.cleanable.dirty.ratio": "0.01",
        "min.compaction.lag.ms": "0"})])
    adm.close()
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1000, batch_size=1 << 20)
    for r in range(ROUNDS):
        futures = [p.send(TOPIC, key=b"k%02d" % k, value=value(r, k), partition=0) for k in range(KEYS)]
        p.flush()  # one batch per round
        offsets = [f.get(timeout=10).offset for f in futures]
        if offsets != list(range(r * KEYS, (r + 1) * KEYS)):
            raise harness.Failure(f"round {r} acknowledged at offsets {offsets[0]}..{offsets[-1]}")
    p.close()
    h.check(True, f"produced {ROUNDS} rounds of {KEYS} keys ({ROUNDS * KEYS} records) at the expected offsets")


def expected():
    # Rounds ROUNDS-2 (the newest in the closed segments) and ROUNDS-1 (the active segment).
    return [(r * KEYS + k, b"k%02d" % k, value(r, k)) for r in (ROUNDS - 2, ROUNDS - 1) for k in range(KEYS)]


def replay_kafka_python(bootstrap):
    from kafka import KafkaConsumer, TopicPartition
    tp = TopicPartition(TOPIC, 0)
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000,
                      max_partition_fetch_bytes=FETCH_LIMIT, fetch_max_wait_ms=100)
    try:
        c.assign([tp])
        c.seek_to_beginning(tp)
        end = c.end_offsets([tp])[tp]
        got = []
        deadline = time.monotonic() + 30
        while c.position(tp) < end and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():  # an IndexError from the client fails the test
                got.extend((m.offset, m.key, m.value) for m in recs)
        return got, c.position(tp), end
    finally:
        c.close()


def replay_confluent(bootstrap):
    msgs = harness.consume_partition(bootstrap, TOPIC, extra_conf={"fetch.message.max.bytes": FETCH_LIMIT})
    return [(m.offset(), m.key(), m.value()) for m in msgs]


def replays(h, b, when):
    got, position, end = replay_kafka_python(b.bootstrap)
    h.check_eq(end, ROUNDS * KEYS, f"{when}: high watermark")
    h.check(got == expected() and position == end,
            f"{when}: kafka-python (max_partition_fetch_bytes={FETCH_LIMIT}) replays exactly the last two rounds "
            f"and reaches the high watermark",
            f"got {len(got)} records, first {got[:2]!r:.200}, position {position} of {end}")
    got = replay_confluent(b.bootstrap)
    h.check(got == expected(), f"{when}: confluent-kafka replays the same {2 * KEYS} records",
            f"got {len(got)} records, first {got[:2]!r:.200}")


def run(h):
    b = h.broker(extra_args=["--maintenance-interval-ms", "200"], sticky_port=True).start()
    produce(h, b.bootstrap)
    # Passes run during the produce too; wait for the one that leaves only the last two rounds.
    harness.wait_until(lambda: replay_confluent(b.bootstrap) == expected(), 30,
                       "compaction of every closed segment", interval=0.2)
    log(next(l for l in reversed(b.log_text().splitlines()) if "compacted" in l))
    segments = glob.glob(os.path.join(b.data_dir, "topics", TOPIC, "0", "*.log"))
    h.check(len(segments) <= 4, f"compaction merged the {ROUNDS} rounds' segments into {len(segments)} (<= 4)",
            f"{len(segments)} segment files")
    replays(h, b, "live")
    b.kill()
    b.start()
    replays(h, b, "after SIGKILL+restart")
    b.stop()


if __name__ == "__main__":
    h = harness.setup("compacted_replay", add_args, default_deadline=240)
    harness.main(run, h)
