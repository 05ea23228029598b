#!/usr/bin/python3
"""integration_idempotent: confluent_kafka.Producer with enable.idempotence=true
and acks=all sends 1,000,000 small messages (value = sequence number) to a
1-partition topic; a confluent consumer (assign from offset 0) reads exactly
1,000,000 back in order: no duplicates, no gaps, offset i holds message i.
The stored batches must carry one producer id with dense sequence numbers
(idempotence really was on). Produce and consume throughput are reported.

Then, with raw requests, retries after DeleteRecords: a producer's batches
removed by DeleteRecords up to the high watermark keep its sequence state,
so a retry of its last batch is answered with the original offset (not
appended again) and a sequence gap is still OUT_OF_ORDER_SEQUENCE_NUMBER;
the same after a clean restart. Then the producer_ids file deleted, and
damaged: the broker starts and a new producer's first batch is appended.
"""
import os
import struct
import time

import harness
import kwire
from harness import Failure, log

TOPIC = "idempotent-1m"


def add_args(ap):
    ap.add_argument("--count", type=int, default=1_000_000)


def produce(h, bootstrap, n):
    from confluent_kafka import Producer
    state = {"ok": 0, "err": 0, "first_err": None, "last_offset": -1, "out_of_order": 0}

    def dr(err, msg):
        if err is not None:
            state["err"] += 1
            if state["first_err"] is None:
                state["first_err"] = str(err)
            return
        state["ok"] += 1
        off = msg.offset()
        if off <= state["last_offset"]:
            state["out_of_order"] += 1
        state["last_offset"] = off

    p = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 500000,
        "message.timeout.ms": 120000,
        "logger": harness.confluent_quiet_logger(),
    })
    t0 = time.monotonic()
    produce_fn = p.produce
    for i in range(n):
        v = b"seq=%010d" % i
        while True:
            try:
                produce_fn(TOPIC, v, partition=0, on_delivery=dr)
                break
            except BufferError:  # local queue full (e.g. while the producer id is fetched): drain, retry
                p.poll(0.05)
        if i & 0x3FFF == 0:
            p.poll(0)
    left = p.flush(120)
    dt = time.monotonic() - t0
    if left:
        raise Failure(f"producer: {left} messages still queued 120 s after the last produce()")
    return state, dt


def consume(bootstrap, n):
    from confluent_kafka import Consumer, TopicPartition, KafkaError
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "herald-integ-assign",  # required by the client; assign() does not join a group
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 100,
        "logger": harness.confluent_quiet_logger(),
    })
    got = 0
    dups = gaps = bad_value = 0
    first_problem = None
    t0 = time.monotonic()
    deadline = t0 + 120
    eof_at = None
    try:
        c.assign([TopicPartition(TOPIC, 0, 0)])
        while True:
            if time.monotonic() > deadline:
                raise Failure(f"consumer: {got} of {n} messages after 120 s")
            for m in c.consume(num_messages=20000, timeout=0.5):
                e = m.error()
                if e is not None:
                    if e.code() == KafkaError._PARTITION_EOF:
                        eof_at = m.offset()
                        continue
                    raise Failure(f"consumer error: {e}")
                off = m.offset()
                if off != got:
                    if off < got:
                        dups += 1
                    else:
                        gaps += 1
                    if first_problem is None:
                        first_problem = f"expected offset {got}, got {off}"
                if m.value() != b"seq=%010d" % off:
                    bad_value += 1
                    if first_problem is None:
                        first_problem = f"offset {off} holds {m.value()!r}"
                got = off + 1 if off >= got else got
            if eof_at is not None and eof_at >= n and got >= n:
                break
        dt = time.monotonic() - t0
    finally:
        c.close()
    return got, dups, gaps, bad_value, first_problem, eof_at, dt


def check_batches(h, port, n):
    """Raw-fetch every stored batch: one producer id, sequences dense from 0, offsets dense."""
    pids = set()
    next_seq = 0
    next_off = 0
    batches = 0
    problems = []
    with kwire.Conn("127.0.0.1", port, timeout=30) as c:
        while next_off < n:
            err, hwm, recs = c.fetch(TOPIC, 0, next_off, max_bytes=8 << 20)
            if err:
                raise Failure(f"raw fetch @{next_off}: error {err}")
            bs = kwire.iter_batches(recs)
            if not bs:
                raise Failure(f"raw fetch @{next_off}: no complete batch (hwm {hwm})")
            for bh in bs:
                if bh.base_offset + bh.last_offset_delta < next_off:
                    continue
                batches += 1
                pids.add((bh.producer_id, bh.producer_epoch))
                if bh.base_offset != next_off and len(problems) < 5:
                    problems.append(f"batch at {bh.base_offset}, expected {next_off}")
                if bh.base_sequence != next_seq and len(problems) < 5:
                    problems.append(f"batch at {bh.base_offset}: sequence {bh.base_sequence}, expected {next_seq}")
                next_off = bh.base_offset + bh.last_offset_delta + 1
                next_seq = bh.base_sequence + bh.count
    h.check(len(pids) == 1 and next(iter(pids))[0] >= 0,
            f"all {batches} stored batches carry one producer id/epoch {sorted(pids)[:3]}")
    h.check(not problems, f"batch sequence numbers are dense 0..{n - 1} and batches tile the offsets",
            "; ".join(problems))


def retries_after_delete_records(h, b):
    topic = "idempotent-purged"
    out_of_order = 45  # OUT_OF_ORDER_SEQUENCE_NUMBER
    with kwire.Conn("127.0.0.1", b.port) as c:
        c.metadata([topic], auto_create=True)
        err, pid, epoch = c.init_producer_id()
        h.check(err == 0 and pid >= 0, f"InitProducerId: producer id {pid}, epoch {epoch}")
        first = kwire.build_batch([(b"k", b"a", []), (b"k", b"b", [])], producer=(pid, epoch, 0))
        second = kwire.build_batch([(b"k", b"c", [])], producer=(pid, epoch, 2))
        h.check_eq((c.produce(topic, 0, first)[:2], c.produce(topic, 0, second)[:2]), ((0, 0), (0, 2)),
                   "two idempotent batches at offsets 0 and 2")
        h.check_eq(c.delete_records(topic, 0, -1), (0, 3), "DeleteRecords up to the high watermark")
    for when in ("after DeleteRecords", "after DeleteRecords and a clean restart"):
        with kwire.Conn("127.0.0.1", b.port) as c:
            h.check_eq(c.produce(topic, 0, second)[:2], (0, 2),
                       f"{when}: a retry of the last batch is answered with its original offset")
            h.check_eq(c.produce(topic, 0, first)[:2], (0, 0),
                       f"{when}: a retry of an earlier batch of the window too")
            gap = kwire.build_batch([(b"k", b"x", [])], producer=(pid, epoch, 9))
            h.check_eq(c.produce(topic, 0, gap)[0], out_of_order, f"{when}: a sequence gap is refused")
            h.check_eq(c.list_offsets(topic, 0, -1)[2], 3, f"{when}: nothing was appended (log end)")
        if when.endswith("DeleteRecords"):
            b.stop()
            b.start()


def producer_ids_lost(h, b):
    """A missing or damaged producer_ids file: the broker starts and hands out
    producer ids above every one in the logs, so a new producer's first batch
    is appended, not answered as a duplicate of an old producer's."""
    topic = "idempotent-purged"
    path = os.path.join(b.data_dir, "producer_ids")
    for damage in ("deleted", "damaged"):
        b.stop()
        if damage == "deleted":
            os.unlink(path)
        else:
            with open(path, "wb") as f:
                f.write(b"\x07garbage")
        b.start()
        with kwire.Conn("127.0.0.1", b.port) as c:
            end = c.list_offsets(topic, 0, -1)[2]
            err, pid, epoch = c.init_producer_id()
            h.check(err == 0 and pid >= 1000, f"producer_ids {damage}: a new producer id above those in the logs",
                    f"error {err}, producer id {pid}")
            batch = kwire.build_batch([(b"k", b"new", [])], producer=(pid, epoch, 0))
            h.check_eq(c.produce(topic, 0, batch)[:2], (0, end), f"producer_ids {damage}: its first batch is appended")
            h.check_eq(c.list_offsets(topic, 0, -1)[2], end + 1, f"producer_ids {damage}: log end")
        with open(b.log_path) as f:
            h.check(f"producer_ids: {damage if damage == 'damaged' else 'missing'}" in f.read(),
                    f"producer_ids {damage}: logged")


def run(h):
    n = h.args.count
    b = h.broker().start()
    log(f"producing {n:,} messages, idempotent, acks=all, to {TOPIC} (1 partition)")
    st, pdt = produce(h, b.bootstrap, n)
    h.check(st["err"] == 0, f"producer: no delivery errors", f"{st['err']} errors, first: {st['first_err']}")
    h.check_eq(st["ok"], n, "producer: delivery reports (acks=all)")
    h.check(st["out_of_order"] == 0, "producer: acknowledged offsets strictly increase")
    h.check_eq(st["last_offset"], n - 1, "producer: last acknowledged offset")
    log(f"PRODUCE THROUGHPUT: {n / pdt:,.0f} msg/s ({n:,} msgs in {pdt:.2f} s, idempotent, acks=all)")

    lo, hi = harness.watermarks(b.bootstrap, TOPIC)
    h.check_eq((lo, hi), (0, n), "watermarks (low, high)")

    got, dups, gaps, bad, first, eof_at, cdt = consume(b.bootstrap, n)
    h.check(dups == 0, "consumer: no duplicates", first or "")
    h.check(gaps == 0, "consumer: no gaps", first or "")
    h.check(bad == 0, "consumer: offset i holds message i (in order)", first or "")
    h.check_eq(got, n, "consumer: messages read")
    h.check_eq(eof_at, n, "consumer: end of partition right after the last message")
    log(f"CONSUME THROUGHPUT: {n / cdt:,.0f} msg/s ({n:,} msgs in {cdt:.2f} s)")

    check_batches(h, b.port, n)
    retries_after_delete_records(h, b)
    producer_ids_lost(h, b)
    b.stop()
    log(f"figures: produce {n / pdt:,.0f} msg/s, consume {n / cdt:,.0f} msg/s")


if __name__ == "__main__":
    h = harness.setup("idempotent", add_args, default_deadline=300)
    harness.main(run, h)
