#!/usr/bin/python3
"""integration_malformed: bad input costs one connection, never data.

While a real client (confluent_kafka, acks=all) keeps producing in a
background thread, raw sockets send:
  - a non-Kafka protocol (an HTTP request), random bytes with an invalid
    length prefix, and a random frame body (garbage header);
  - a truncated frame (length 100, 10 bytes sent, then our write side closed);
  - absurd length prefixes: 0x7fffffff, -1, INT32_MIN, 0..7, socket.request.max.bytes + 1;
  - an unknown API key (999) in a valid frame; Metadata v99;
  - 50 connections sending garbage at once.
Each must get exactly that connection closed (recv returns b'' or a reset
within a few seconds) with a broker log line saying why, while the broker keeps
serving: a fresh connection gets ApiVersions answered and the background
producer keeps getting acknowledgements. ApiVersions v99 instead gets an
UNSUPPORTED_VERSION (35) answer and the connection stays usable.

Then, with raw Produce requests (hand-built record batches):
  - a batch with a bad CRC -> CORRUPT_MESSAGE (2), a truncated batch -> 2,
    and nothing is written (high watermark and fetched data unchanged);
  - a batch larger than the topic's max.message.bytes -> MESSAGE_TOO_LARGE (10)
    (and the confluent producer gets MSG_SIZE_TOO_LARGE for such a message);
  - an invalid topic name -> INVALID_TOPIC_EXCEPTION (17) from Metadata with
    auto-creation; Produce to it -> 17 or UNKNOWN_TOPIC_OR_PARTITION (3, what
    Kafka answers for any topic it does not have);
  - an unknown partition / unknown topic -> UNKNOWN_TOPIC_OR_PARTITION (3).
  - a good CRC over records that do not decode, a batch claiming more
    records than it holds, and a message set of magic 0/1 -> INVALID_RECORD
    (87: the producer made them so, a retry cannot help; CORRUPT_MESSAGE is
    retriable); a gzip batch that
    inflates past the broker's 64 MiB decompression cap -> MESSAGE_TOO_LARGE
    (10);
  - an acks=0 Produce that fails -> the connection is closed, with a log line.
Finally every message the background producer got acknowledged is read back.
Last, with 100 connections over a 64-descriptor limit the broker retries
accept every 100 ms (a few log lines, little CPU) and serves again after; a
CreateTopics or CreatePartitions that would leave too few descriptors free is
refused at once (INVALID_PARTITIONS).
"""
import os
import socket
import struct
import threading
import zlib
import time

import harness
import kwire
from harness import Failure, log

BG_TOPIC = "malformed-background"
TARGET = "malformed-target"
SMALL = "malformed-small-max"
MAX_REQUEST = 104857600  # socket.request.max.bytes default


class BackgroundProducer(threading.Thread):
    def __init__(self, bootstrap):
        super().__init__(daemon=True)
        from confluent_kafka import Producer
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2,
                           "enable.idempotence": True, "logger": harness.confluent_quiet_logger()})
        self.stop_ev = threading.Event()
        self.sent = 0
        self.acked = 0
        self.errors = []
        self.left = None

    def dr(self, err, m):
        if err is not None:
            self.errors.append(str(err))
        else:
            self.acked += 1

    def run(self):
        t0 = time.monotonic()
        while not self.stop_ev.is_set():
            due = int((time.monotonic() - t0) * 3000)  # ~3,000 msg/s
            while self.sent < due:
                self.p.produce(BG_TOPIC, b"bg-%08d" % self.sent, partition=0, on_delivery=self.dr)
                self.sent += 1
            self.p.poll(0.01)
        self.left = self.p.flush(30)

    def stop(self):
        self.stop_ev.set()
        self.join(60)


def expect_closed(sock, what, timeout=5.0):
    """The broker must close this connection: recv gives b'' (or a reset) within timeout."""
    sock.settimeout(timeout)
    t0 = time.monotonic()
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return "EOF", time.monotonic() - t0
            # A response to garbage would be wrong too: keep reading until close to report it.
            raise Failure(f"{what}: broker answered {len(data)} bytes instead of closing")
    except (ConnectionResetError, BrokenPipeError):
        return "RST", time.monotonic() - t0
    except socket.timeout:
        raise Failure(f"{what}: connection still open {timeout}s later")
    finally:
        sock.close()


def raw_conn(b):
    s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    return s


def check_alive(h, b, bg, what):
    with kwire.Conn("127.0.0.1", b.port) as c:
        apis = c.api_versions()
    before = bg.acked
    harness.wait_until(lambda: bg.acked > before, 10, f"background producer progress after {what}")
    b.assert_alive()
    return len(apis)


def bad_input_cases(h, b, bg):
    rng = h.rng

    # Random bytes whose length prefix is invalid (seeded: reroll until negative or > max).
    while True:
        junk = bytes(rng.getrandbits(8) for _ in range(4096))
        n = struct.unpack(">i", junk[:4])[0]
        if n < 8 or n > MAX_REQUEST:
            break
    # A random frame body: valid small length, garbage header with an api key nobody serves.
    with kwire.Conn("127.0.0.1", b.port) as c:
        served = set(c.api_versions())
    while True:
        body = bytes(rng.getrandbits(8) for _ in range(200))
        if struct.unpack(">h", body[:2])[0] not in served:
            break
    api_key_of_body = struct.unpack(">h", body[:2])[0]

    cases = [
        # (name, bytes to send, half-close after sending, expected log text)
        ("HTTP request instead of Kafka", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False, "invalid frame length"),
        (f"4 KiB of random bytes (length prefix {n})", junk, False, f"invalid frame length {n}"),
        (f"random 200-byte frame body (api key {api_key_of_body})", struct.pack(">i", len(body)) + body, False,
         "closing connection"),
        ("truncated frame (length 100, 10 bytes, then EOF)", struct.pack(">i", 100) + b"\x00" * 10, True,
         "truncated frame"),
        ("length prefix 0x7fffffff", struct.pack(">I", 0x7FFFFFFF) + b"\x00" * 16, False,
         "invalid frame length 2147483647"),
        ("length prefix -1", struct.pack(">i", -1) + b"\x00" * 16, False, "invalid frame length -1"),
        ("length prefix INT32_MIN", struct.pack(">I", 0x80000000), False, "invalid frame length -2147483648"),
        ("length prefix 0", struct.pack(">i", 0), False, "invalid frame length 0"),
        ("length prefix 7 (shorter than a header)", struct.pack(">i", 7) + b"\x00" * 7, False,
         "invalid frame length 7"),
        (f"length prefix socket.request.max.bytes+1", struct.pack(">i", MAX_REQUEST + 1), False,
         f"invalid frame length {MAX_REQUEST + 1}"),
        ("unknown API key 999 in a valid frame", kwire.request_frame(999, 0, 1, b""), False, "unknown api key 999"),
        ("Metadata v99", kwire.request_frame(3, 99, 1, b"\x00\x00\x00\x00"), False, "unsupported version 99"),
        ("Produce v99", kwire.request_frame(0, 99, 1, b"\x00"), False, "unsupported version 99"),
        ("header with a client id longer than the frame", struct.pack(">i", 10) + struct.pack(">hhih", 18, 0, 1, 500),
         False, "closing connection"),
    ]
    for name, data, half_close, needle in cases:
        mark = b.log_size()
        s = raw_conn(b)
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        how, dt = expect_closed(s, name)
        line = b.wait_log(needle, timeout=5, after=mark)
        napis = check_alive(h, b, bg, name)
        h.check(True, f"{name}: connection closed ({how} after {dt * 1000:.0f} ms), log: "
                      f"'{line.split('closing connection from ')[-1][:100]}'; broker still serves ({napis} APIs) and the producer "
                      f"advances")

    # A valid request, then garbage on the same connection: the answer comes, then the close.
    s = raw_conn(b)
    s.sendall(kwire.request_frame(18, 0, 7, b"") + struct.pack(">i", -5))
    data = b""
    s.settimeout(5)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout) as e:
        if isinstance(e, socket.timeout):
            raise Failure("ApiVersions + garbage: connection not closed within 5 s")
    s.close()
    h.check(len(data) >= 8 and struct.unpack(">i", data[4:8])[0] == 7,
            "ApiVersions then a bad length on one connection: ApiVersions answered (corr 7), then closed",
            f"got {data[:16]!r}")

    # ApiVersions with an unknown version: answered with UNSUPPORTED_VERSION, connection kept.
    with kwire.Conn("127.0.0.1", b.port) as c:
        # Request header v2 (ApiVersions v3+ is flexible, KIP-511): client id, then empty tagged fields;
        # body as v3 (compact client software name/version, tagged fields). The answer is a v0 response.
        r = c.request(18, 99, b"\x00" + b"\x01\x01\x00")
        err = r.i16()
        apis = r.array(lambda r: (r.i16(), r.i16(), r.i16()))
        full = c.api_versions()  # same connection, v0
        h.check(err == 35 and apis == [(18, *full[18])],
                f"ApiVersions v99 -> UNSUPPORTED_VERSION (35) listing ApiVersions' own range {full[18]} (as Kafka "
                f"does); the same connection then answers ApiVersions v0 ({len(full)} APIs)", f"error {err} {apis}")
    with kwire.Conn("127.0.0.1", b.port) as c:  # the same without the tagged fields: a bad header, closed
        mark = b.log_size()
        c.sock.sendall(kwire.request_frame(18, 99, 1, b""))
        how, dt = expect_closed(c.sock, "ApiVersions v99 with a v1 request header")
        h.check(True, f"ApiVersions v99 without the flexible header's tagged fields: closed ({how}), log: "
                      f"'{b.wait_log('closing connection', after=mark).split('closing connection from ')[-1]}'")

    # Many bad connections at once.
    mark = b.log_size()
    socks = []
    for i in range(50):
        s = raw_conn(b)
        s.sendall(struct.pack(">i", -1 - i))
        socks.append(s)
    closed = 0
    for i, s in enumerate(socks):
        expect_closed(s, f"concurrent bad connection {i}")
        closed += 1
    def count_lines():
        return sum(1 for l in b.log_text()[mark:].splitlines() if "invalid frame length" in l)
    try:
        harness.wait_until(lambda: count_lines() >= 50, 5, "50 'invalid frame length' log lines")
    except Failure:
        pass  # reported by the check below with the actual count
    n_lines = count_lines()
    check_alive(h, b, bg, "50 concurrent bad connections")
    h.check(closed == 50 and n_lines == 50,
            "50 concurrent garbage connections: all 50 closed, 50 log lines, broker and producer unaffected",
            f"closed {closed}, log lines {n_lines}")


def hwm(c, topic, partition=0):
    err, ts, off = c.list_offsets(topic, partition, -1)
    if err:
        raise Failure(f"ListOffsets latest {topic}/{partition}: error {err}")
    return off


def produce_error_cases(h, b):
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    fs = a.create_topics([NewTopic(TARGET, 1, 1), NewTopic(SMALL, 1, 1, config={"max.message.bytes": "10000"})],
                         operation_timeout=10)
    for f in fs.values():
        f.result(timeout=15)

    with kwire.Conn("127.0.0.1", b.port) as c:
        recs = [(b"k%d" % i, b"value-%d" % i * 10, [("h", b"x")]) for i in range(3)]
        good = kwire.build_batch(recs)
        err, base, msg = c.produce(TARGET, 0, good)
        h.check(err == 0 and base == 0, "control: a hand-built valid batch is accepted at offset 0",
                f"error {err} base {base} {msg}")
        h.check_eq(hwm(c, TARGET), 3, "control: high watermark after 3 records")
        _, _, stored_before = c.fetch(TARGET, 0, 0)

        # Bad CRC: flip one byte of the last record (covered by the CRC).
        bad = bytearray(good)
        bad[-1] ^= 0x55
        err, base, msg = c.produce(TARGET, 0, bytes(bad))
        h.check_eq(err, 2, f"batch with a bad CRC -> CORRUPT_MESSAGE ({msg})")
        # Bad CRC field itself.
        bad2 = bytearray(good)
        bad2[17:21] = struct.pack(">I", (kwire.crc32c(bytes(good[21:])) + 1) & 0xFFFFFFFF)
        err, base, msg = c.produce(TARGET, 0, bytes(bad2))
        h.check_eq(err, 2, f"batch whose CRC field is off by one -> CORRUPT_MESSAGE ({msg})")
        # Truncated: the batch length says more than the request carries.
        err, base, msg = c.produce(TARGET, 0, good[:-7])
        h.check_eq(err, 2, f"truncated batch -> CORRUPT_MESSAGE ({msg})")

        def with_crc(batch):
            batch = bytearray(batch)
            batch[17:21] = struct.pack(">I", kwire.crc32c(bytes(batch[21:])))
            return bytes(batch)
        # A good CRC over records that do not decode (header: 61 bytes, then the records).
        garbage = bytearray(good)
        garbage[61:] = bytes((i * 37 + 11) & 0xFF for i in range(len(good) - 61))
        err, base, msg = c.produce(TARGET, 0, with_crc(garbage))
        h.check_eq(err, 87, f"good CRC over undecodable records -> INVALID_RECORD ({msg})")
        # A batch that claims 1000 records (last offset delta 999) and holds 3.
        claims = bytearray(good)
        claims[23:27] = struct.pack(">i", 999)
        claims[57:61] = struct.pack(">i", 1000)
        err, base, msg = c.produce(TARGET, 0, with_crc(claims))
        h.check_eq(err, 87, f"batch claiming 1000 records with 3 present -> INVALID_RECORD ({msg})")
        # A message set of the old format (magic 1: offset, size, crc, magic, attributes, timestamp, key, value).
        body = struct.pack(">bbqii", 1, 0, 0, -1, 1) + b"v"
        v1 = struct.pack(">qiI", 0, len(body) + 4, zlib.crc32(body)) + body
        err, base, msg = c.produce(TARGET, 0, v1)
        h.check_eq(err, 87, f"a magic-1 message set -> INVALID_RECORD ({msg})")
        bomb = kwire.build_batch([(b"k%d" % i, bytes(1 << 20), []) for i in range(70)], compression=1)
        err, base, msg = c.produce(TARGET, 0, bomb)
        h.check_eq(err, 10, f"a {len(bomb)}-byte gzip batch of 70 MiB -> MESSAGE_TOO_LARGE ({msg})")
        h.check_eq(hwm(c, TARGET), 3, "nothing written: high watermark unchanged")
        err, hw, stored_after = c.fetch(TARGET, 0, 0)
        h.check(err == 0 and stored_after == stored_before, "nothing written: fetched bytes unchanged")

        # max.message.bytes = 10000 on SMALL.
        ok_batch = kwire.build_batch([(b"k", b"v" * 5000, [])])
        err, base, msg = c.produce(SMALL, 0, ok_batch)
        h.check(err == 0, f"control: a {len(ok_batch)}-byte batch fits max.message.bytes=10000", f"error {err} {msg}")
        big = kwire.build_batch([(b"k", b"v" * 20000, [])])
        err, base, msg = c.produce(SMALL, 0, big)
        h.check_eq(err, 10, f"a {len(big)}-byte batch over max.message.bytes=10000 -> MESSAGE_TOO_LARGE ({msg})")
        h.check_eq(hwm(c, SMALL), 1, "nothing written: high watermark of the small topic unchanged")

        # Invalid topic names.
        for name in ["bad topic!", "a/b", "x" * 250, ".."]:
            md = c.metadata([name], auto_create=True)
            h.check_eq(md.get(name, (None,))[0], 17,
                       f"Metadata (auto-create) for invalid topic name {name[:20]!r} -> INVALID_TOPIC_EXCEPTION")
            err, base, msg = c.produce(name, 0, good)
            h.check(err in (17, 3), f"Produce to invalid topic name {name[:20]!r} -> {err} "
                                    f"({'INVALID_TOPIC_EXCEPTION' if err == 17 else 'UNKNOWN_TOPIC_OR_PARTITION'})",
                    f"error {err} {msg}")

        # Unknown partition / unknown topic.
        err, base, msg = c.produce(TARGET, 5, good)
        h.check_eq(err, 3, f"Produce to partition 5 of a 1-partition topic -> UNKNOWN_TOPIC_OR_PARTITION")
        err, base, msg = c.produce("no-such-topic-xyz", 0, good)
        h.check_eq(err, 3, "Produce to a topic that does not exist -> UNKNOWN_TOPIC_OR_PARTITION")
        h.check("no-such-topic-xyz" not in c.metadata(None), "... and Produce did not create it")
        h.check_eq(hwm(c, TARGET), 3, "target topic still holds exactly the 3 control records")

    # acks=0 has no response to carry an error: the broker closes the connection (as Kafka does).
    with kwire.Conn("127.0.0.1", b.port) as c:
        mark = b.log_size()
        body = kwire.string(None) + kwire.i16(0) + kwire.i32(10000) + kwire.array(
            [TARGET], lambda t: kwire.string(t) + kwire.array([7], lambda p: kwire.i32(p) + kwire.bytes_(good)))
        c.sock.sendall(kwire.request_frame(0, 8, 99, body))
        how, secs = expect_closed(c.sock, "acks=0 produce to a missing partition")
        h.check(True, f"acks=0 produce to a missing partition: connection closed ({how}, {secs:.2f}s)")
        h.check("acks=0 produce to malformed-target/7 failed" in b.wait_log("acks=0 produce", after=mark),
                "... with a log line naming the partition and the error")

    # The real client sees MESSAGE_TOO_LARGE as MSG_SIZE_TOO_LARGE for a too-large message.
    from confluent_kafka import Producer, KafkaError
    res = []
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "logger": harness.confluent_quiet_logger()})
    p.produce(SMALL, b"z" * 30000, partition=0, on_delivery=lambda err, m: res.append(err))
    p.produce(TARGET, b"fine", partition=0, on_delivery=lambda err, m: res.append(err))
    h.check_eq(p.flush(30), 0, "confluent producer flushed")
    h.check(res[0] is not None and res[0].code() == KafkaError.MSG_SIZE_TOO_LARGE and res[1] is None,
            f"confluent producer: 30 KB message to max.message.bytes=10000 -> {res[0]}; other topic fine")
    res.clear()
    p.produce("bad topic!", b"x", on_delivery=lambda err, m: res.append(err))
    p.flush(30)
    h.check(res and res[0] is not None and res[0].code() in (KafkaError.TOPIC_EXCEPTION,
                                                              KafkaError._UNKNOWN_TOPIC,
                                                              KafkaError.UNKNOWN_TOPIC_OR_PART),
            f"confluent producer: invalid topic name -> {res[0] if res else None}")


def timestamp_cases(h, b):
    """Every record's timestamp is checked against message.timestamp.before/after.max.ms, and a batch header
    whose max_timestamp understates its records is corrected (ListOffsets by time finds them)."""
    from confluent_kafka.admin import AdminClient, NewTopic
    from kafka.record.default_records import DefaultRecordBatchBuilder
    topic = "malformed-ts"
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in a.create_topics([NewTopic(topic, 1, 1, config={"message.timestamp.before.max.ms": "3600000"})],
                             operation_timeout=10).values():
        f.result(timeout=15)

    def batch(timestamps, header_max=None):
        bb = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                       producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
        for i, ts in enumerate(timestamps):
            bb.append(i, ts, b"k%d" % i, b"v%d" % i, [])
        raw = bytearray(bb.build())
        if header_max is not None:
            raw[35:43] = struct.pack(">q", header_max)
            raw[17:21] = struct.pack(">I", kwire.crc32c(bytes(raw[21:])))
        return bytes(raw)

    now = int(time.time() * 1000)
    hour = 3600_000
    with kwire.Conn("127.0.0.1", b.port) as c:
        err, base, msg = c.produce(topic, 0, batch([now, now + 1000], header_max=now))
        h.check_eq(err, 0, "a batch whose header max_timestamp understates its records is accepted")
        err, ts, off = c.list_offsets(topic, 0, now + 500)
        h.check_eq((err, off), (0, base + 1), "... and ListOffsets(now + 0.5 s) finds its second record")
        err, _, recs = c.fetch(topic, 0, base)
        h.check_eq(kwire.iter_batches(recs)[0].max_timestamp if recs else None, now + 1000,
                   "... stored with the records' max_timestamp")
        err, _, msg = c.produce(topic, 0, batch([now, now - 2 * hour]))
        h.check_eq(err, 32, f"a record 2 h old behind a fresh first record -> INVALID_TIMESTAMP ({msg})")
        err, _, msg = c.produce(topic, 0, batch([now, now + 2 * hour], header_max=now))
        h.check_eq(err, 32, f"a record 2 h ahead behind an understated header max -> INVALID_TIMESTAMP ({msg})")
        h.check_eq(hwm(c, topic), base + 2, "nothing of the refused batches was written")


def out_of_descriptors(h, b):
    """With its descriptors used up, the broker neither spins nor floods its log, and serves again after."""
    import resource
    soft, hard = resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE, (64, hard))
    mark = b.log_size()
    cpu0 = cpu_seconds(b.proc.pid)
    socks = [socket.create_connection(("127.0.0.1", b.port), timeout=5) for _ in range(100)]
    time.sleep(2.0)
    cpu = cpu_seconds(b.proc.pid) - cpu0
    warnings = b.log_text()[mark:].count("accept:")
    for s in socks:
        s.close()
    resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
    h.check(1 <= warnings <= 5, f"100 connections over a 64-descriptor limit: {warnings} accept warnings in 2 s",
            f"{warnings} lines")
    h.check(cpu < 0.5, f"... and the broker used {cpu:.2f} CPU-s in those 2 s (no busy retry)")
    with kwire.Conn("127.0.0.1", b.port) as c:
        h.check(len(c.api_versions()) > 10, "after the clients closed: a new connection is served")
        # A topic whose partitions would leave too few descriptors free (an eighth of the limit is kept
        # for connections and file work): refused up front, nothing opened, no directory.
        create = kwire.array(["fd-short"], lambda t: kwire.string(t) + kwire.i32(100) + kwire.i16(1) + kwire.i32(0) +
                             kwire.i32(0)) + kwire.i32(30000)
        in_use = len(os.listdir(f"/proc/{b.proc.pid}/fd"))
        resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE, (in_use + 100, hard))
        try:
            t0 = time.monotonic()
            (name, err, msg), = c.request(19, 1, create + kwire.i8(0)).array(
                lambda r: (r.string(), r.i16(), r.string()))
            took = time.monotonic() - t0
        finally:
            resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
        left = os.path.exists(os.path.join(b.data_dir, "topics", "fd-short"))
        h.check(err == 37 and "ulimit" in (msg or "") and not left,
                f"CreateTopics of 100 partitions with {in_use + 100} descriptors, {in_use} open: INVALID_PARTITIONS "
                f"in {took * 1000:.0f} ms ('{(msg or '')[:90]}...'), no directory", f"{(err, msg, left)}")
        r = c.request(19, 0, create)
        h.check_eq(r.array(lambda r: (r.string(), r.i16())), [("fd-short", 0)],
                   "... and created once descriptors are free again")
        grow = kwire.array(["fd-short"], lambda t: kwire.string(t) + kwire.i32(200) + kwire.i32(-1)) + \
            kwire.i32(30000) + kwire.i8(1)  # CreatePartitions v0, validate_only: 100 more
        in_use = len(os.listdir(f"/proc/{b.proc.pid}/fd"))
        resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE, (in_use + 100, hard))
        try:
            r = c.request(37, 0, grow)
        finally:
            resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
        r.i32()  # throttle_time_ms
        (_, err, msg), = r.array(lambda r: (r.string(), r.i16(), r.string()))
        h.check(err == 37 and "ulimit" in (msg or ""), "CreatePartitions of 100 more, with as few descriptors: "
                "INVALID_PARTITIONS", f"{(err, msg)}")


def descriptor_limit(h):
    """`herald serve` started with a soft descriptor limit of 256 raises it to the hard limit (each partition
    keeps a file open and each client a socket; the usual default soft limit, 1024, is soon used up)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        b = h.broker("low-limit").start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    got, _ = resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE)
    b.stop()
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    h.check_eq(got, want, f"herald serve started with a soft descriptor limit of 256 (hard {hard}) runs with")


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak(pid):
    """Starts a new peak-RSS measurement (VmHWM) of `pid`; returns its RSS now in MB."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    return rss_mb(pid)


def peak_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def unread_fetch_responses(h, b, long_poll):
    """64 pipelined 16 MiB fetches whose responses the client does not read: the broker stops reading the
    connection, or holds the fetches it has read back, instead of building all of them (1 GiB), and answers
    every one once the client reads. Long-polling ones (min_bytes 2 GiB, max_wait 100 ms) are all read
    before the first is answered: they are held back by the responses not yet sent."""
    topic = "bulk"
    if not long_poll:
        batch = kwire.build_batch([(b"k", b"x" * 100_000, []) for _ in range(9)])  # ~900 kB
        with kwire.Conn("127.0.0.1", b.port) as c:
            c.metadata([topic], auto_create=True)
            harness.wait_until(lambda: c.produce(topic, 0, batch)[0] == 0, 10, "first batch into 'bulk'")
            errors = [c.produce(topic, 0, batch)[0] for _ in range(20)]
            h.check_eq(errors, [0] * 20, "20 more batches of ~900 kB into 'bulk'")
    n, max_bytes = 64, 16 << 20
    wait_ms, min_bytes = (100, 0x7FFFFFFF) if long_poll else (0, 0)
    what = "long-polling " if long_poll else ""
    base = rss_mb(b.proc.pid)
    s = socket.create_connection(("127.0.0.1", b.port), timeout=30)
    s.sendall(b"".join(kwire.request_frame(1, 4, i + 1, kwire.fetch_body(topic, 0, 0, max_bytes, wait_ms,
                                                                          min_bytes=min_bytes))
                       for i in range(n)))
    peak = base
    for _ in range(30):
        time.sleep(0.1)
        peak = max(peak, rss_mb(b.proc.pid))
    h.check(peak - base < 300, f"{n} unread {what}16 MiB fetch responses: broker RSS grew by {peak - base:.0f} MB "
            f"(from {base:.0f} MB; all of them would be {n * 16} MiB)")
    got = []
    f = s.makefile("rb")
    for _ in range(n):
        size = struct.unpack(">i", f.read(4))[0]
        data = f.read(size)
        got.append((struct.unpack(">i", data[:4])[0], size))
    s.close()
    h.check_eq([c for c, _ in got], list(range(1, n + 1)), "... then every response arrives, in order")
    h.check(min(sz for _, sz in got) > 15 << 20, f"... each with ~16 MiB of records (smallest {min(sz for _, sz in got)})")


def decode_amplification(h, b):
    """A Metadata v4 request of 2 M empty topic names (2 bytes each on the wire, ~56 bytes decoded, and an
    entry each in the response) is refused with a log line and a closed connection, without the broker
    allocating hundreds of MB; a topic named twice is answered once."""
    n = 2_000_000
    body = kwire.i32(n) + b"\x00\x00" * n + kwire.i8(0)
    mark = b.log_size()
    base = reset_peak(b.proc.pid)
    s = raw_conn(b)
    s.sendall(kwire.request_frame(3, 4, 1, body))
    how, dt = expect_closed(s, "Metadata of 2 M empty names")
    line = b.wait_log("decoding needs more than", timeout=5, after=mark)
    grew = peak_mb(b.proc.pid) - base
    h.check(grew < 100, f"Metadata v4 with {n} empty topic names ({len(body) >> 20} MiB): connection closed ({how}), "
            f"broker peak RSS {grew:.0f} MB above its RSS before; log: '{line.split('closing connection from ')[-1][:120]}'")
    with kwire.Conn("127.0.0.1", b.port) as c:
        md = c.request(3, 4, kwire.array([BG_TOPIC] * 1000, kwire.string) + kwire.i8(0))
        md.i32()
        md.array(lambda r: (r.i32(), r.string(), r.i32(), r.string()))
        md.string(), md.i32()
        names = md.array(lambda r: (r.i16(), r.string(), r.bool(),
                                    r.array(lambda r: (r.i16(), r.i32(), r.i32(), r.array(lambda r: r.i32()),
                                                       r.array(lambda r: r.i32())))))
        h.check_eq([(e, n) for e, n, _, _ in names], [(0, BG_TOPIC)], "Metadata naming one topic 1,000 times: one answer")


def parked_fetches(h, b):
    """16 fetches parked for min_bytes = 2 GiB on a partition holding ~19 MB: while they wait the broker holds
    no copy of the data (it checks sizes on each append), and each is answered with the data at max_wait."""
    topic, n, max_bytes, wait_ms = "bulk", 16, 16 << 20, 1000  # one after the other, as in Kafka: 16 s
    body = kwire.fetch_body(topic, 0, 0, max_bytes, wait_ms, min_bytes=0x7FFFFFFF)
    base = reset_peak(b.proc.pid)
    s = socket.create_connection(("127.0.0.1", b.port), timeout=30)
    t0 = time.monotonic()
    s.sendall(b"".join(kwire.request_frame(1, 4, i + 1, body) for i in range(n)))
    errors = []
    with kwire.Conn("127.0.0.1", b.port) as c:  # appends wake the parked fetches
        for _ in range(10):
            errors.append(c.produce(topic, 0, kwire.build_batch([(b"k", b"y" * 1000, [])]), acks=1)[0])
            time.sleep(0.2)
    peak = peak_mb(b.proc.pid)
    h.check_eq(errors, [0] * 10, "10 produces to the partition the fetches wait on")
    f = s.makefile("rb")
    sizes = []
    for _ in range(n):
        size = struct.unpack(">i", f.read(4))[0]
        f.read(size)
        sizes.append(size)
    dt = time.monotonic() - t0
    s.close()
    h.check(peak - base < 100, f"{n} fetches parked for 2 GiB (16 MiB each): broker peak RSS {peak - base:.0f} MB above "
            f"its RSS before, while they waited and 10 appends woke them")
    h.check(dt >= wait_ms / 1000 * 0.9 and min(sizes) > 15 << 20,
            f"... answered after {dt:.1f} s (max_wait {wait_ms / 1000:.0f} s), each with ~16 MiB (smallest {min(sizes)})")


def fetch_min_bytes_zero(h, b):
    """Fetch at the high watermark with min_bytes 0 is answered at once, as in Kafka, not after max_wait."""
    with kwire.Conn("127.0.0.1", b.port) as c:
        hw = c.fetch(BG_TOPIC, 0, 0, max_bytes=1)[1]
        t0 = time.monotonic()
        body = kwire.fetch_body(BG_TOPIC, 0, hw, 1 << 20, 10000, min_bytes=0)
        c.request(1, 4, body)
        dt = time.monotonic() - t0
    h.check(dt < 5, f"Fetch at the high watermark, min_bytes 0, max_wait 10 s: answered after {dt * 1000:.0f} ms")


def closed_while_waiting(h, b):
    """Clients that close while their fetch waits (max_wait 60 s) free their sockets at once: the broker
    closes its side instead of holding it in CLOSE-WAIT until the wait ends."""
    def fds():
        return len(os.listdir(f"/proc/{b.proc.pid}/fd"))
    with kwire.Conn("127.0.0.1", b.port) as c:
        hw = c.fetch(BG_TOPIC, 0, 0, max_bytes=1)[1]
    before = fds()
    socks = []
    for _ in range(50):
        s = raw_conn(b)
        s.sendall(kwire.request_frame(1, 4, 1, kwire.fetch_body(BG_TOPIC, 0, hw, 1 << 20, 60000, min_bytes=1)))
        socks.append(s)
    harness.wait_until(lambda: fds() >= before + 45, 10, "50 connections with a waiting fetch")
    for s in socks:
        s.close()
    h.check_eventually(lambda: fds() <= before + 2, 5,
                       f"50 clients closed while their fetch waited: broker descriptors back to {before} + at most 2",
                       lambda: f"the broker still holds {fds() - before} more descriptors")


def metrics_reader(b):
    """A function reading one unlabelled integer metric of broker `b` (started with --metrics-listen)."""
    import re
    import urllib.request
    mport = int(re.search(r"http://127\.0\.0\.1:(\d+)/metrics", b.wait_log("metrics at http://")).group(1))

    def value(name):
        text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
        return int(re.search(rf"^{name} (\d+)", text, re.M).group(1))
    return value


def unread_across_connections(h):
    """--response-memory-mb 32: 12 clients each pipelining 16 fetches of ~19 MB and reading nothing hold
    the budget plus about two batches each (without it, 64 MiB each: ~0.9 GB), while a client that reads
    gets every batch (one per fetch while the budget is used up); once they close, nothing is held."""
    b = h.broker("budget", extra_args=["--response-memory-mb", "32", "--metrics-listen", "127.0.0.1:0"]).start()
    metric = metrics_reader(b)

    def unsent():
        return metric("herald_unsent_response_bytes")

    topic, batches = "bulk", 21
    batch = kwire.build_batch([(b"k", b"x" * 100_000, []) for _ in range(9)])  # ~900 kB
    with kwire.Conn("127.0.0.1", b.port) as c:
        c.metadata([topic], auto_create=True)
        harness.wait_until(lambda: c.produce(topic, 0, batch)[0] == 0, 10, "first batch into 'bulk'")
        errors = [c.produce(topic, 0, batch)[0] for _ in range(batches - 1)]
        h.check_eq(errors, [0] * (batches - 1), f"{batches - 1} more batches of ~900 kB into 'bulk'")
    base = reset_peak(b.proc.pid)
    stuck = []
    for _ in range(12):
        s = socket.create_connection(("127.0.0.1", b.port), timeout=30)
        s.sendall(b"".join(kwire.request_frame(1, 4, i + 1, kwire.fetch_body(topic, 0, 0, 32 << 20, 0))
                           for i in range(16)))
        stuck.append(s)
    time.sleep(2)
    held = unsent()
    with kwire.Conn("127.0.0.1", b.port, timeout=30) as c:
        offset, fetches = 0, 0
        while offset < batches * 9 and fetches < 100:
            err, _, recs = c.fetch(topic, 0, offset, max_bytes=32 << 20)
            fetches += 1
            hs = kwire.iter_batches(recs) if err == 0 else []
            if hs:
                offset = hs[-1].base_offset + hs[-1].last_offset_delta + 1
    peak = peak_mb(b.proc.pid)
    h.check(peak - base < 200 and held < 100 << 20,
            f"12 clients with 16 unread ~19 MB fetches each: {held >> 20} MiB of responses unsent, broker peak RSS "
            f"{peak - base:.0f} MB above its RSS before (budget 32 MiB; 64 MiB per client without it)")
    h.check_eq(offset, batches * 9, f"meanwhile a client that reads gets all {batches * 9} records "
               f"({fetches} fetches)")
    for s in stuck:
        s.close()
    h.check_eventually(lambda: unsent() == 0, 10, "the 12 clients closed: herald_unsent_response_bytes back to 0",
                       lambda: f"still {unsent()}")
    b.stop()


def idle_and_gone_clients(h):
    """connections.max.idle.ms (here 1 s): a connection that sends nothing, or stops half-way through a
    frame, is closed; one whose fetch waits longer than that is not, and gets its answer. A fetch whose
    client closed while it waited ends then, not at its max_wait (60 s): the connection is gone from
    herald_connections."""
    b = h.broker("idle", extra_args=["--connections-max-idle-ms", "1000", "--metrics-listen", "127.0.0.1:0"]).start()
    metric = metrics_reader(b)

    def open_connections():
        return metric("herald_connections")

    silent, half = raw_conn(b), raw_conn(b)
    half.sendall(struct.pack(">i", 1000) + b"\x00" * 10)
    how, dt = expect_closed(silent, "a connection that sends nothing", timeout=10)
    h.check(dt < 5, f"a connection that sends nothing is closed after the idle time ({how} after {dt:.1f} s)")
    how, dt = expect_closed(half, "a connection stopped half-way through a frame", timeout=10)
    h.check(True, f"a connection stopped half-way through a frame is closed too ({how})")
    with kwire.Conn("127.0.0.1", b.port, timeout=30) as c:
        c.metadata(["idle-t"], auto_create=True)
        t0 = time.monotonic()
        harness.wait_until(lambda: c.fetch("idle-t", 0, 0)[0] == 0, 10, "idle-t to be ready")
        err, hw, _ = c.fetch("idle-t", 0, 0, max_bytes=1 << 20, max_wait_ms=3000, min_bytes=1 << 20)
        dt = time.monotonic() - t0
    h.check(err == 0 and dt >= 2.5, f"a fetch waiting 3 s (3x the idle time) is answered, not cut off "
            f"(error {err} after {dt:.1f} s)")
    socks = []
    for _ in range(20):
        s = raw_conn(b)
        s.sendall(kwire.request_frame(1, 4, 1, kwire.fetch_body("idle-t", 0, 0, 1 << 20, 60000, min_bytes=1 << 20)))
        socks.append(s)
    harness.wait_until(lambda: open_connections() >= 20, 10, "20 connections with a fetch waiting 60 s")
    for s in socks:
        s.close()
    h.check_eventually(lambda: open_connections() == 0, 5,
                       "20 clients closed while their fetch waited 60 s: herald_connections 0 within 5 s",
                       lambda: f"still {open_connections()}")
    b.stop()


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(h):
    b = h.broker().start()
    bg = BackgroundProducer(b.bootstrap)
    bg.start()
    harness.wait_until(lambda: bg.acked > 100, 20, "background producer's first acknowledgements")
    log(f"background producer running ({bg.acked} acked)")
    try:
        bad_input_cases(h, b, bg)
        produce_error_cases(h, b)
        check_alive(h, b, bg, "the produce error cases")
    finally:
        bg.stop()
    out_of_descriptors(h, b)
    unread_fetch_responses(h, b, long_poll=False)
    unread_fetch_responses(h, b, long_poll=True)
    parked_fetches(h, b)
    decode_amplification(h, b)
    fetch_min_bytes_zero(h, b)
    closed_while_waiting(h, b)
    timestamp_cases(h, b)
    idle_and_gone_clients(h)
    unread_across_connections(h)
    h.check(bg.left == 0 and not bg.errors and bg.acked == bg.sent,
            f"background producer: all {bg.sent} messages acknowledged, no errors",
            f"left={bg.left} acked={bg.acked} errors={bg.errors[:3]}")
    msgs = harness.consume_partition(b.bootstrap, BG_TOPIC, 0, 0, None, timeout=60)
    vals = [m.value() for m in msgs]
    h.check(vals == [b"bg-%08d" % i for i in range(bg.sent)],
            f"background topic holds exactly the {bg.sent} acknowledged messages, in order",
            f"read {len(vals)}")
    b.stop()
    descriptor_limit(h)


if __name__ == "__main__":
    h = harness.setup("malformed", default_deadline=240)
    harness.main(run, h)
