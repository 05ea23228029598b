#!/usr/bin/python3
"""integration_time_replay: replay by time with real clients.

20,000 messages are produced (confluent, acks=all) with explicit CreateTime
timestamps, non-decreasing, 10 ms apart, with one run of 10 equal
timestamps, into a topic with small segments (so lookups cross segments and
time-index entries). Then, with confluent offsets_for_times, kafka-python
offsets_for_times and kcat -Q:
  - an exact timestamp from the middle -> that message's offset, and a
    consumer assigned there gets exactly that message first (value, timestamp);
  - a timestamp between two messages -> the later one;
  - the timestamp of the equal run -> its first offset;
  - before the first -> 0; the last -> N-1; after the last -> no offset (-1);
  - ListOffsets earliest/latest -> 0 / N (get_watermark_offsets,
    kafka-python beginning/end_offsets, kcat -Q -2/-1);
  - ListOffsets v0 (raw): a time -> [its offset], after the last -> [N], as Kafka's v0.
The same lookups are repeated after a SIGKILL + restart (time index rebuilt).
"""
import time

import harness
import kwire
from harness import Failure, log, run_cmd

TOPIC = "time-replay"
N = 20_000
TIE_AT, TIE_LEN = 10_000, 10


def add_args(ap):
    pass


def ts_of(base, i):
    step = i if i < TIE_AT else max(TIE_AT, i - (TIE_LEN - 1))
    return base + 10 * step


def create_topic(h, bootstrap):
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": bootstrap})
    fs = a.create_topics([NewTopic(TOPIC, 1, 1, config={"segment.bytes": "65536"})], operation_timeout=10)
    fs[TOPIC].result(timeout=15)
    h.check(True, f"created {TOPIC} with segment.bytes=65536")


def produce(h, bootstrap, base):
    from confluent_kafka import Producer, TIMESTAMP_CREATE_TIME
    bad = []
    acked = [0]

    def dr(err, m):
        if err is not None:
            bad.append(str(err))
            return
        acked[0] += 1
        i = int(m.value()[2:8])
        if m.offset() != i or m.timestamp() != (TIMESTAMP_CREATE_TIME, ts_of(base, i)):
            bad.append(f"message {i}: offset {m.offset()} timestamp {m.timestamp()}")

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2, "batch.num.messages": 400,
                  "enable.idempotence": True, "logger": harness.confluent_quiet_logger()})
    for i in range(N):
        p.produce(TOPIC, b"t-%06d|" % i + b"r" * (i % 50), key=b"%d" % i, partition=0, timestamp=ts_of(base, i),
                  on_delivery=dr)
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(60)
    h.check(left == 0 and not bad and acked[0] == N,
            f"produced {N} messages with explicit timestamps; acks report offset i and CreateTime ts(i)",
            f"left={left} acked={acked[0]} problems={bad[:3]}")


def confluent_lookup(bootstrap, ts):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "herald-integ-time", "enable.auto.commit": False,
                  "logger": harness.confluent_quiet_logger()})
    try:
        (tp,) = c.offsets_for_times([TopicPartition(TOPIC, 0, ts)], timeout=10)
        if tp.error:
            raise Failure(f"offsets_for_times({ts}): {tp.error}")
        return tp.offset
    finally:
        c.close()


def confluent_first_message(bootstrap, ts):
    """offsets_for_times, assign there, consume one message."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "herald-integ-time", "enable.auto.commit": False,
                  "logger": harness.confluent_quiet_logger()})
    try:
        tps = c.offsets_for_times([TopicPartition(TOPIC, 0, ts)], timeout=10)
        c.assign(tps)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise Failure(f"consume after offsets_for_times({ts}): {m.error()}")
            return tps[0].offset, m.offset(), m.value(), m.timestamp()[1]
        raise Failure(f"no message within 20 s after seeking to timestamp {ts}")
    finally:
        c.close()


def kafka_python_first_message(bootstrap, ts):
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      api_version_auto_timeout_ms=10000, fetch_max_wait_ms=100)
    try:
        tp = TopicPartition(TOPIC, 0)
        found = c.offsets_for_times({tp: ts})[tp]
        begin, end = c.beginning_offsets([tp])[tp], c.end_offsets([tp])[tp]
        if found is None:
            return None, None, None, None, begin, end
        c.assign([tp])
        c.seek(tp, found.offset)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500, max_records=1).values():
                r = recs[0]
                return found.offset, r.offset, r.value, r.timestamp, begin, end
        raise Failure(f"kafka-python: no message within 20 s after seeking to timestamp {ts}")
    finally:
        c.close(autocommit=False)


def kcat_query(bootstrap, ts):
    out = run_cmd(["kcat", "-b", bootstrap, "-Q", "-t", f"{TOPIC}:0:{ts}"], timeout=30).stdout.decode()
    prefix = f"{TOPIC} [0] offset "
    for line in out.splitlines():
        if line.startswith(prefix):
            return int(line[len(prefix):].split()[0])
    raise Failure(f"kcat -Q {ts}: unexpected output {out!r}")


def lookups(h, b, base, when):
    mid = N // 2 - 1234 + h.rng.randrange(0, 2000)
    last = N - 1
    cases = [
        (f"exact timestamp of message {mid}", ts_of(base, mid), mid),
        (f"between messages {mid} and {mid + 1}", ts_of(base, mid) + 5, mid + 1),
        (f"the timestamp of the equal run at {TIE_AT}", ts_of(base, TIE_AT), TIE_AT),
        ("before the first message", base - 100000, 0),
        ("timestamp 0", 0, 0),
        ("the first message", base, 0),
        ("the last message", ts_of(base, last), last),
        ("after the last message", ts_of(base, last) + 1, -1),
    ]
    for what, ts, want in cases:
        got = confluent_lookup(b.bootstrap, ts)
        h.check_eq(got, want, f"{when}: confluent offsets_for_times, {what} (t={ts})")
        got = kcat_query(b.bootstrap, ts)
        h.check_eq(got, want, f"{when}: kcat -Q, {what}")

    # Seek by time and consume: the first message is the right one.
    found, off, val, mts = confluent_first_message(b.bootstrap, ts_of(base, mid))
    h.check_eq((found, off, val[:8], mts), (mid, mid, b"t-%06d" % mid, ts_of(base, mid)),
               f"{when}: confluent seek to ts({mid}) -> first message is #{mid} with its timestamp")
    found, off, val, mts = confluent_first_message(b.bootstrap, ts_of(base, mid) + 5)
    h.check_eq((found, off, val[:8]), (mid + 1, mid + 1, b"t-%06d" % (mid + 1)),
               f"{when}: confluent seek to ts({mid})+5 -> first message is #{mid + 1}")

    found, off, val, mts, begin, end = kafka_python_first_message(b.bootstrap, ts_of(base, mid))
    h.check_eq((found, off, val[:8], mts), (mid, mid, b"t-%06d" % mid, ts_of(base, mid)),
               f"{when}: kafka-python offsets_for_times + seek -> first message is #{mid}")
    h.check_eq((begin, end), (0, N), f"{when}: kafka-python beginning_offsets/end_offsets")
    found, off, val, mts, begin, end = kafka_python_first_message(b.bootstrap, ts_of(base, last) + 1)
    h.check(found is None, f"{when}: kafka-python offsets_for_times after the last message -> None")

    # ListOffsets v0 (older client libraries): the offset at/after a time, and the log end for a
    # time after the last record (as Kafka's v0 answers), never an empty list.
    with kwire.Conn("127.0.0.1", b.port) as c:
        for ts, want in ((ts_of(base, mid), [mid]), (ts_of(base, last) + 1, [N]), (-1, [N]), (-2, [0])):
            body = kwire.i32(-1) + kwire.array([TOPIC], lambda t: kwire.string(t) + kwire.array(
                [0], lambda p: kwire.i32(p) + kwire.i64(ts) + kwire.i32(1)))
            r = c.request(2, 0, body)
            got = r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16(), r.array(lambda r: r.i64())))))
            h.check_eq(got, [(TOPIC, [(0, 0, want)])], f"{when}: ListOffsets v0 at t={ts}")

    # ListOffsets earliest / latest.
    h.check_eq(harness.watermarks(b.bootstrap, TOPIC), (0, N), f"{when}: get_watermark_offsets (low, high)")
    h.check_eq(kcat_query(b.bootstrap, -2), 0, f"{when}: kcat -Q earliest (-2)")
    h.check_eq(kcat_query(b.bootstrap, -1), N, f"{when}: kcat -Q latest (-1)")


def run(h):
    b = h.broker(sticky_port=True).start()
    create_topic(h, b.bootstrap)
    base = (int(time.time() * 1000) - 3_600_000) // 1000 * 1000  # an hour ago, whole second
    log(f"timestamps: ts(i) = {base} + 10*i (equal run of {TIE_LEN} at {TIE_AT})")
    produce(h, b.bootstrap, base)
    lookups(h, b, base, "live")
    b.kill()
    b.start()
    lookups(h, b, base, "after SIGKILL+restart")
    b.stop()


if __name__ == "__main__":
    h = harness.setup("time_replay", add_args, default_deadline=240)
    harness.main(run, h)
