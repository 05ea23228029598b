"""A deliberately small Kafka wire client for tests that need exact bytes:
hand-built frames, raw Produce with a chosen batch, raw Fetch to look at the
stored batch headers. Non-flexible request versions only (header v1).

    c = kwire.Conn("127.0.0.1", port)
    c.api_versions()                       -> {api_key: (min, max)}
    c.metadata(["t"], auto_create=True)    -> {"t": (error, [partition ids])}
    c.produce("t", 0, batch_bytes)         -> (error, base_offset, error_message)
    c.list_offsets("t", 0, -1)             -> (error, timestamp, offset)
    c.fetch("t", 0, offset)                -> (error, hwm, records_bytes)
    build_batch([(key, value, headers)], compression=0) -> bytes (kafka-python's builder)
    iter_batches(records_bytes)            -> [BatchHeader]
"""
from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass


class _Sent(Exception):
    """Conn.pipeline: the request is on the wire, its answer is read later."""


class ConnClosed(Exception):
    pass


# --- primitive encoders -----------------------------------------------------------

def i8(v): return struct.pack(">b", v)
def i16(v): return struct.pack(">h", v)
def i32(v): return struct.pack(">i", v)
def i64(v): return struct.pack(">q", v)


def string(s):
    if s is None:
        return i16(-1)
    b = s.encode() if isinstance(s, str) else s
    return i16(len(b)) + b


def bytes_(b):
    if b is None:
        return i32(-1)
    return i32(len(b)) + bytes(b)


def array(items, enc):
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(enc(x) for x in items)


def uvarint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([byte])
        out += bytes([byte | 0x80])


def compact_string(s):
    if s is None:
        return uvarint(0)
    b = s.encode() if isinstance(s, str) else s
    return uvarint(len(b) + 1) + b


def compact_array(items, enc):
    if items is None:
        return uvarint(0)
    return uvarint(len(items) + 1) + b"".join(enc(x) for x in items)


class Reader:
    def __init__(self, data: bytes):
        self.d = data
        self.p = 0

    def _take(self, n):
        if self.p + n > len(self.d):
            raise ValueError(f"short response: need {n} bytes at {self.p}, have {len(self.d) - self.p}")
        v = self.d[self.p:self.p + n]
        self.p += n
        return v

    def i8(self): return struct.unpack(">b", self._take(1))[0]
    def i16(self): return struct.unpack(">h", self._take(2))[0]
    def i32(self): return struct.unpack(">i", self._take(4))[0]
    def i64(self): return struct.unpack(">q", self._take(8))[0]
    def bool(self): return self.i8() != 0

    def string(self):
        n = self.i16()
        return None if n < 0 else self._take(n).decode()

    def bytes(self):
        n = self.i32()
        return None if n < 0 else self._take(n)

    def array(self, dec):
        n = self.i32()
        return None if n < 0 else [dec(self) for _ in range(n)]

    # flexible versions
    def uvarint(self):
        shift = v = 0
        while True:
            b = self._take(1)[0]
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7

    def compact_string(self):
        n = self.uvarint() - 1
        return None if n < 0 else self._take(n).decode()

    def compact_array(self, dec):
        n = self.uvarint() - 1
        return None if n < 0 else [dec(self) for _ in range(n)]

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self._take(self.uvarint())


def request_frame(api_key: int, api_version: int, correlation_id: int, body: bytes, client_id: str = "kwire") -> bytes:
    """Size-prefixed request with header v1 (api_key, api_version, correlation_id, client_id)."""
    payload = i16(api_key) + i16(api_version) + i32(correlation_id) + string(client_id) + body
    return i32(len(payload)) + payload


def request_frame_flex(api_key: int, api_version: int, correlation_id: int, body: bytes,
                       client_id: str = "kwire") -> bytes:
    """Size-prefixed request with header v2 (v1 and an empty tagged-field section), for flexible versions."""
    payload = i16(api_key) + i16(api_version) + i32(correlation_id) + string(client_id) + uvarint(0) + body
    return i32(len(payload)) + payload


def fetch_body(topic: str, partition: int, offset: int, max_bytes: int, max_wait_ms: int, min_bytes: int = 0) -> bytes:
    """Body of a Fetch v4 request (read_uncommitted) for one partition."""
    return i32(-1) + i32(max_wait_ms) + i32(min_bytes) + i32(max_bytes) + i8(0) + array(
        [topic], lambda t: string(t) + array([partition], lambda p: i32(p) + i64(offset) + i32(max_bytes)))


class Conn:
    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.corr = 0
        self._pipeline = None  # pipeline(): correlation ids sent, answers not read yet
        self._pipeline_sending = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnClosed(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def request(self, api_key: int, api_version: int, body: bytes, flexible: bool = False) -> Reader:
        """One request; with `flexible`, header v2 and the response header's tagged fields are skipped."""
        if self._pipeline is None or self._pipeline_sending:
            self.corr += 1
            self.sock.sendall((request_frame_flex if flexible else request_frame)(api_key, api_version, self.corr, body))
            expected = self.corr
            if self._pipeline is not None:
                self._pipeline.append(expected)
                raise _Sent()
        else:
            expected = self._pipeline.pop(0)
        size = struct.unpack(">i", self._recv_exact(4))[0]
        data = self._recv_exact(size)
        corr = struct.unpack(">i", data[:4])[0]
        if corr != expected:
            raise ValueError(f"correlation id {corr}, expected {expected}")
        r = Reader(data[4:])
        if flexible:
            r.tags()
        return r

    def pipeline(self, *calls):
        """Sends the requests of `calls` (each a function making one request on this Conn, e.g.
        `lambda: c.fetch("t", 0, 0)`) back to back before reading any answer; returns their results."""
        self._pipeline, self._pipeline_sending = [], True
        try:
            for call in calls:
                try:
                    call()
                except _Sent:
                    pass
            self._pipeline_sending = False
            return [call() for call in calls]
        finally:
            self._pipeline = None

    # --- APIs -------------------------------------------------------------------
    def api_versions(self) -> dict:
        r = self.request(18, 0, b"")
        err = r.i16()
        if err:
            raise ValueError(f"ApiVersions error {err}")
        return {k: (lo, hi) for k, lo, hi in r.array(lambda r: (r.i16(), r.i16(), r.i16()))}

    def metadata(self, topics, auto_create: bool = False) -> dict:
        """Metadata v4 -> {topic: (error_code, [partition ids])}."""
        body = array(topics, string) + i8(1 if auto_create else 0)
        r = self.request(3, 4, body)
        r.i32()  # throttle
        r.array(lambda r: (r.i32(), r.string(), r.i32(), r.string()))  # brokers
        r.string()  # cluster id
        r.i32()  # controller
        out = {}

        def part(r):
            err, idx, leader = r.i16(), r.i32(), r.i32()
            r.array(lambda r: r.i32())
            r.array(lambda r: r.i32())
            return idx

        for err, name, internal, parts in r.array(lambda r: (r.i16(), r.string(), r.bool(), r.array(part))):
            out[name] = (err, parts or [])
        return out

    def delete_topics_v6(self, topics, timeout_ms: int = 10000):
        """DeleteTopics v6; `topics` is a list of (name or None, 16-byte topic id) ->
        [(error_code, name or None, topic id)]."""
        body = compact_array(topics, lambda t: compact_string(t[0]) + bytes(t[1]) + uvarint(0)) + i32(timeout_ms)
        r = self.request(20, 6, body + uvarint(0), flexible=True)
        r.i32()  # throttle

        def result(r):
            name, tid, err = r.compact_string(), r._take(16), r.i16()
            r.compact_string()  # error message
            r.tags()
            return err, name, tid
        return r.compact_array(result)

    def metadata_v12(self, topics):
        """Metadata v12; `topics` is a list of (name or None, 16-byte topic id) ->
        [(error_code, name or None, topic id, [partition ids])]."""
        body = compact_array(topics, lambda t: bytes(t[1]) + compact_string(t[0]) + uvarint(0)) + i8(0) + i8(0) + uvarint(0)
        r = self.request(3, 12, body, flexible=True)
        r.i32()  # throttle

        def broker(r):
            r.i32(), r.compact_string(), r.i32(), r.compact_string(), r.tags()

        r.compact_array(broker)
        r.compact_string()  # cluster id
        r.i32()  # controller

        def part(r):
            r.i16()
            idx = r.i32()
            r.i32(), r.i32()
            for _ in range(3):
                r.compact_array(lambda r: r.i32())
            r.tags()
            return idx

        def topic(r):
            err, name, tid, _internal = r.i16(), r.compact_string(), r._take(16), r.bool()
            parts = r.compact_array(part)
            r.i32()  # authorized operations
            r.tags()
            return err, name, tid, parts or []

        return r.compact_array(topic)

    def produce(self, topic: str, partition: int, records: bytes, acks: int = -1, timeout_ms: int = 10000,
                version: int = 8):
        """Produce v3..v8 with one partition -> (error_code, base_offset, error_message)."""
        body = string(None) + i16(acks) + i32(timeout_ms) + array(
            [topic], lambda t: string(t) + array([partition], lambda p: i32(p) + bytes_(records)))
        r = self.request(0, version, body)

        def part(r):
            idx, err, base = r.i32(), r.i16(), r.i64()
            r.i64()  # log_append_time
            if version >= 5:
                r.i64()  # log_start_offset
            msg = None
            if version >= 8:
                r.array(lambda r: (r.i32(), r.string()))
                msg = r.string()
            return idx, err, base, msg

        topics = r.array(lambda r: (r.string(), r.array(part)))
        (_, parts), = topics
        (_, err, base, msg), = parts
        return err, base, msg

    def list_offsets(self, topic: str, partition: int, timestamp: int):
        """ListOffsets v1 -> (error_code, timestamp, offset)."""
        body = i32(-1) + array([topic], lambda t: string(t) + array([partition], lambda p: i32(p) + i64(timestamp)))
        r = self.request(2, 1, body)
        topics = r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16(), r.i64(), r.i64()))))
        (_, parts), = topics
        (_, err, ts, off), = parts
        return err, ts, off

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = 64 << 20, max_wait_ms: int = 0,
              min_bytes: int = 0):
        """Fetch v4 (read_uncommitted) -> (error_code, high_watermark, records bytes)."""
        r = self.request(1, 4, fetch_body(topic, partition, offset, max_bytes, max_wait_ms, min_bytes))
        r.i32()  # throttle

        def part(r):
            idx, err, hwm, lso = r.i32(), r.i16(), r.i64(), r.i64()
            r.array(lambda r: (r.i64(), r.i64()))
            return idx, err, hwm, r.bytes()

        topics = r.array(lambda r: (r.string(), r.array(part)))
        (_, parts), = topics
        (_, err, hwm, recs), = parts
        return err, hwm, recs or b""

    def init_producer_id(self):
        """InitProducerId v0 without a transactional id -> (error_code, producer_id, producer_epoch)."""
        r = self.request(22, 0, string(None) + i32(60000))
        r.i32()  # throttle
        return r.i16(), r.i64(), r.i16()

    def delete_records(self, topic: str, partition: int, offset: int, timeout_ms: int = 10000):
        """DeleteRecords v1 -> (error_code, low_watermark)."""
        body = array([topic], lambda t: string(t) + array([partition], lambda p: i32(p) + i64(offset))) + i32(timeout_ms)
        r = self.request(21, 1, body)
        r.i32()
        topics = r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i64(), r.i16()))))
        (_, parts), = topics
        (_, low, err), = parts
        return err, low

    def describe_configs(self, resource_type: int, name: str, keys=None):
        """DescribeConfigs v1 with synonyms -> (error_code, error_message,
        {name: (value, source, [(synonym name, value, source)])})."""
        body = array([(resource_type, name, keys)], lambda x: i8(x[0]) + string(x[1]) + array(x[2], string)) + i8(1)
        r = self.request(32, 1, body)
        r.i32()

        def entry(r):
            name, value, _read_only, source, _sensitive = r.string(), r.string(), r.bool(), r.i8(), r.bool()
            return name, (value, source, r.array(lambda r: (r.string(), r.string(), r.i8())))
        (err, msg, _type, _name, configs), = r.array(
            lambda r: (r.i16(), r.string(), r.i8(), r.string(), r.array(entry)))
        return err, msg, dict(configs)

    def incremental_alter_configs(self, topic: str, changes, validate_only: bool = False):
        """IncrementalAlterConfigs v0 on one topic; changes: [(name, op, value)] with op 0 SET,
        1 DELETE, 2 APPEND, 3 SUBTRACT -> (error_code, error_message)."""
        body = array([(2, topic, changes)], lambda x: i8(x[0]) + string(x[1]) + array(
            x[2], lambda c: string(c[0]) + i8(c[1]) + string(c[2])))
        r = self.request(44, 0, body + i8(1 if validate_only else 0))
        r.i32()
        (err, msg, _type, _name), = r.array(lambda r: (r.i16(), r.string(), r.i8(), r.string()))
        return err, msg


# --- record batches -------------------------------------------------------------

@dataclass
class BatchHeader:
    base_offset: int
    length: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    count: int

    @property
    def compression(self) -> int:
        return self.attributes & 0x07


def iter_batches(data: bytes):
    """Batch headers of every complete batch in a records blob."""
    out = []
    p = 0
    while p + 61 <= len(data):
        base, length = struct.unpack_from(">qi", data, p)
        if p + 12 + length > len(data):
            break  # partial trailing batch
        (_, magic, crc, attrs, lod, bts, mts, pid, pep, bseq, cnt) = struct.unpack_from(">ibIhiqqqhii", data, p + 12)
        out.append(BatchHeader(base, length, magic, crc, attrs, lod, bts, mts, pid, pep, bseq, cnt))
        p += 12 + length
    return out


def build_batch(records, compression: int = 0, base_timestamp_ms: int | None = None,
                producer=(-1, -1, -1)) -> bytes:
    """A valid magic-2 batch built by kafka-python's DefaultRecordBatchBuilder.
    records: iterable of (key, value, headers[list of (str, bytes)]);
    producer: (producer_id, producer_epoch, base_sequence) of an idempotent producer."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    pid, epoch, seq = producer
    b = DefaultRecordBatchBuilder(magic=2, compression_type=compression, is_transactional=0,
                                  producer_id=pid, producer_epoch=epoch, base_sequence=seq, batch_size=1 << 30)
    ts = base_timestamp_ms if base_timestamp_ms is not None else int(time.time() * 1000)
    for i, (k, v, hdrs) in enumerate(records):
        if b.append(i, ts, k, v, hdrs or []) is None:
            raise ValueError("batch builder refused a record")
    return bytes(b.build())


def crc32c(data: bytes) -> int:
    from kafka.record.util import calc_crc32c
    return calc_crc32c(data)
