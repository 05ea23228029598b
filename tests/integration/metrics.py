#!/usr/bin/python3
"""integration_metrics: `herald serve --metrics-listen` (Prometheus text format).

A broker with the endpoint on 127.0.0.1:0 (the port read from its log line):
  - 600 records produced with confluent_kafka (acks=all) over 3 partitions,
    and a group committing offset 150 on partition 0 and 10 on partition 1:
    GET /metrics gives each partition's log start, high watermark, log end,
    size and segment count, the group's committed offsets and lag (high
    watermark minus committed), Produce requests and fdatasyncs counted in
    their histograms, an open client connection while one is open;
  - every family has its HELP and TYPE lines, every sample parses as
    `name{labels} value`, histogram buckets are cumulative and end at +Inf
    with the count;
  - a malformed Kafka frame raises herald_connections_closed_on_error_total
    by one;
  - GET /health answers "ok"; another path 404, another method 405; a
    request head beyond 8 KiB closes the connection unanswered; the broker
    keeps serving Kafka clients throughout;
  - a metrics address already in use makes start-up fail with a message
    naming it (exit code 1), HERALD_METRICS_LISTEN sets the address, and
    without the setting no endpoint is opened.
"""
import os
import re
import socket
import subprocess

import harness
from harness import Failure, log

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def http(port, request: bytes, timeout=10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:  # closed with our request unread
                return out
            if not chunk:
                return out
            out += chunk


def get(port, path) -> tuple:
    raw = http(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body.decode()


def parse(h, text):
    """{(name, frozenset(labels)): value}; checks the format on the way."""
    samples, declared = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            declared[name] = kind
            continue
        m = SAMPLE.match(line)
        if not m:
            raise Failure(f"not a Prometheus sample line: {line!r}")
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in declared else name
        if family not in declared:
            raise Failure(f"sample {name} without a TYPE line")
        samples[(name, frozenset(LABEL.findall(labels)))] = float(value)
    return samples, declared


def value(samples, name, **labels):
    return samples.get((name, frozenset((k, str(v)) for k, v in labels.items())))


def run(h):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    b = h.broker(extra_args=["--metrics-listen", "127.0.0.1:0"]).start()
    line = b.wait_log("metrics at http://")
    mport = int(re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line).group(1))
    log(f"metrics on port {mport}")

    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic("met", 3, 1)])["met"].result(10)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(600):
        p.produce("met", key=str(i).encode(), value=b"v" * 100, partition=i % 3)
    h.check_eq(p.flush(30), 0, "600 records acknowledged")
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "mg", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("met", 0, 150), TopicPartition("met", 1, 10)], asynchronous=False)

    status, text = get(mport, "/metrics")
    h.check_eq(status, 200, "GET /metrics")
    s, declared = parse(h, text)
    h.check(len(declared) >= 14, f"{len(declared)} metric families, each with HELP and TYPE")
    for part in range(3):
        got = tuple(value(s, n, topic="met", partition=part) for n in (
            "herald_partition_log_start_offset", "herald_partition_high_watermark", "herald_partition_log_end_offset"))
        h.check_eq(got, (0, 200, 200), f"partition {part}: log start, high watermark, log end")
        size = value(s, "herald_partition_size_bytes", topic="met", partition=part)
        h.check(size is not None and size > 200 * 100, f"partition {part}: size {size} bytes > the 20,000 of values")
        h.check_eq(value(s, "herald_partition_segments", topic="met", partition=part), 1, f"partition {part}: segments")
    h.check_eq((value(s, "herald_group_committed_offset", group="mg", topic="met", partition=0),
                value(s, "herald_group_committed_offset", group="mg", topic="met", partition=1)),
               (150, 10), "group mg: committed offsets")
    h.check_eq((value(s, "herald_group_lag", group="mg", topic="met", partition=0),
                value(s, "herald_group_lag", group="mg", topic="met", partition=1)),
               (50, 190), "group mg: lag = high watermark - committed")
    h.check(value(s, "herald_group_members", group="mg", state="Empty") == 0, "group mg: no members, Empty")
    produce_count = value(s, "herald_request_duration_seconds_count", api="Produce")
    h.check(produce_count is not None and produce_count >= 1, f"Produce requests counted: {produce_count}")
    syncs = value(s, "herald_fdatasync_duration_seconds_count")
    h.check(syncs is not None and syncs >= 1, f"fdatasyncs counted: {syncs}")
    h.check(value(s, "herald_connections") >= 1, "an open client connection counted")
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in s.items()
                     if k[0] == "herald_fdatasync_duration_seconds_bucket")
    h.check(buckets[-1][0] == float("inf") and buckets[-1][1] == syncs and
            all(x[1] <= y[1] for x, y in zip(buckets, buckets[1:])),
            "fdatasync buckets cumulative, +Inf = count")

    before = value(s, "herald_connections_closed_on_error_total")
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as k:
        k.sendall(b"\x7f\xff\xff\xff garbage")
        h.check(k.recv(100) == b"", "a malformed Kafka frame closes its connection")
    s2, _ = parse(h, get(mport, "/metrics")[1])
    h.check_eq(value(s2, "herald_connections_closed_on_error_total"), before + 1,
               "herald_connections_closed_on_error_total counts it")

    h.check_eq(get(mport, "/health"), (200, "ok\n"), "GET /health")
    h.check_eq(get(mport, "/nope")[0], 404, "GET /nope -> 404")
    raw = http(mport, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    h.check(raw.startswith(b"HTTP/1.1 405"), "POST /metrics -> 405", raw[:40])
    raw = http(mport, b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    h.check_eq(raw, b"", "a request head beyond 8 KiB: closed unanswered")
    c.close()

    p.produce("met", value=b"after", partition=2)
    h.check_eq(p.flush(30), 0, "the broker still takes records")
    s3, _ = parse(h, get(mport, "/metrics")[1])
    h.check_eq(value(s3, "herald_partition_high_watermark", topic="met", partition=2), 201,
               "and the metrics follow (partition 2 high watermark 201)")
    b.stop()

    # Start-up: the address in use, the environment variable, and no endpoint by default.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    busy_port = busy.getsockname()[1]
    r = subprocess.run([h.herald, "serve", "--ephemeral", "--listen", "127.0.0.1:0",
                        "--metrics-listen", f"127.0.0.1:{busy_port}"], capture_output=True, text=True, timeout=30)
    h.check(r.returncode == 1 and "metrics on 127.0.0.1" in r.stdout + r.stderr,
            "metrics address in use: start-up fails naming it", (r.returncode, r.stdout[-300:], r.stderr[-300:]))
    busy.close()
    e = h.broker(name="env", env={"HERALD_METRICS_LISTEN": "127.0.0.1:0"}).start()
    h.check("metrics at http://127.0.0.1:" in e.wait_log("metrics at"), "HERALD_METRICS_LISTEN opens the endpoint")
    e.stop()
    n = h.broker(name="none").start()
    n.stop()
    h.check("metrics at" not in n.log_text(), "no endpoint without the setting")


if __name__ == "__main__":
    h = harness.setup("metrics")
    harness.main(run, h)
