"""Shared pieces of the consumer-group integration tests (groups_*.py).

A group member runs as its own process (so that a test can SIGKILL it):

    /usr/bin/python3 groups_lib.py member --client confluent|kafkapython --bootstrap B
        --group G --topic T --name N --out FILE [--instance-id I] [--session-ms 6000]

It subscribes, and for every message it "processes" it appends a line to FILE,
then commits synchronously what it processed (commit after processing). Lines:

    S <ms>                subscribing (the JoinGroup follows)
    A <ms> <p,p,...>      partitions assigned (wall clock ms)
    R <ms> <p,p,...>      partitions revoked
    M <ms> <p> <o> <v>    processed message (partition, offset, value)
    C <p> <next>          commit acknowledged (next offset to read)
    E <text>              commit failed
    X                     clean exit (after close(), which leaves the group)

SIGTERM makes it commit, close and exit. The test reads the files with
read_member_file().
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"


def now_ms() -> int:
    return int(time.time() * 1000)


# --- the member process -----------------------------------------------------------

class _Out:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1 << 16)

    def line(self, s: str):
        self.f.write(s + "\n")

    def flush(self):
        self.f.flush()


def _confluent_member(a, out: _Out, stop):
    from confluent_kafka import Consumer, TopicPartition, KafkaException
    import logging
    lg = logging.getLogger("rdkafka")
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter(f"  [{a.name}] %(message)s"))
    lg.addHandler(h)
    lg.setLevel(logging.WARNING)
    conf = {
        "bootstrap.servers": a.bootstrap,
        "group.id": a.group,
        "client.id": a.name,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": a.session_ms,
        "heartbeat.interval.ms": a.heartbeat_ms,
        "fetch.wait.max.ms": 100,
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 200,
        "logger": lg,
    }
    if a.instance_id:
        conf["group.instance.id"] = a.instance_id
    c = Consumer(conf)

    def on_assign(consumer, parts):
        out.line(f"A {now_ms()} " + ",".join(str(p.partition) for p in parts))
        out.flush()

    def on_revoke(consumer, parts):
        out.line(f"R {now_ms()} " + ",".join(str(p.partition) for p in parts))
        out.flush()

    out.line(f"S {now_ms()}")
    out.flush()
    c.subscribe([a.topic], on_assign=on_assign, on_revoke=on_revoke)
    while not stop[0]:
        msgs = c.consume(num_messages=1000, timeout=0.2)
        done = {}
        t = now_ms()
        for m in msgs:
            if m.error():
                continue
            out.line(f"M {t} {m.partition()} {m.offset()} {m.value().decode()}")
            done[m.partition()] = m.offset() + 1
        if done:
            out.flush()
            try:
                res = c.commit(offsets=[TopicPartition(a.topic, p, o) for p, o in sorted(done.items())],
                               asynchronous=False)
                for tp in res:
                    if tp.error is None:
                        out.line(f"C {tp.partition} {tp.offset}")
                    else:
                        out.line(f"E {tp.partition} {tp.error}")
            except KafkaException as e:
                out.line(f"E {e}")
            out.flush()
    c.close()


def _kafkapython_member(a, out: _Out, stop):
    import logging
    from kafka import KafkaConsumer, TopicPartition, OffsetAndMetadata
    from kafka.consumer.subscription_state import ConsumerRebalanceListener
    from kafka.errors import KafkaError
    logging.basicConfig(level=logging.ERROR, format=f"  [{a.name}] %(message)s")
    c = KafkaConsumer(bootstrap_servers=a.bootstrap, group_id=a.group, client_id=a.name,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      session_timeout_ms=a.session_ms, heartbeat_interval_ms=a.heartbeat_ms,
                      fetch_max_wait_ms=100, reconnect_backoff_ms=20, reconnect_backoff_max_ms=200)

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            out.line(f"R {now_ms()} " + ",".join(str(tp.partition) for tp in revoked))
            out.flush()

        def on_partitions_assigned(self, assigned):
            out.line(f"A {now_ms()} " + ",".join(str(tp.partition) for tp in assigned))
            out.flush()

    out.line(f"S {now_ms()}")
    out.flush()
    c.subscribe([a.topic], listener=Listener())
    while not stop[0]:
        recs = c.poll(timeout_ms=200, max_records=1000)
        done = {}
        t = now_ms()
        for tp, msgs in recs.items():
            for m in msgs:
                out.line(f"M {t} {m.partition} {m.offset} {m.value.decode()}")
                done[m.partition] = m.offset + 1
        if done:
            out.flush()
            try:
                c.commit({TopicPartition(a.topic, p): OffsetAndMetadata(o, None) for p, o in done.items()})
                for p, o in sorted(done.items()):
                    out.line(f"C {p} {o}")
            except KafkaError as e:
                out.line(f"E {e!r}")
            out.flush()
    c.close()


def member_main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", choices=["confluent", "kafkapython"], required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--instance-id")
    ap.add_argument("--session-ms", type=int, default=6000)
    ap.add_argument("--heartbeat-ms", type=int, default=1000)
    a = ap.parse_args(argv)
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    out = _Out(a.out)
    if a.client == "confluent":
        _confluent_member(a, out, stop)
    else:
        _kafkapython_member(a, out, stop)
    out.line("X")
    out.flush()
    os._exit(0)


# --- test side ---------------------------------------------------------------------

class Member:
    """A member process started by a test."""

    def __init__(self, harness_mod, h, bootstrap, group, topic, name, client, instance_id=None,
                 session_ms=6000, heartbeat_ms=1000):
        self.h = h
        self.name = name
        self.client = client
        self.out = h.path(f"{group}-{name}-{int(time.time() * 1000)}.log")
        self.err = open(h.path(f"{group}-{name}.stderr"), "ab")
        args = [PY, os.path.join(HERE, "groups_lib.py"), "member", "--client", client, "--bootstrap", bootstrap,
                "--group", group, "--topic", topic, "--name", name, "--out", self.out,
                "--session-ms", str(session_ms), "--heartbeat-ms", str(heartbeat_ms)]
        if instance_id:
            args += ["--instance-id", instance_id]
        open(self.out, "a").close()
        self.proc = harness_mod.popen(args, stdout=self.err, stderr=self.err, stdin=subprocess_devnull())

    def stop(self, timeout=30.0):
        """SIGTERM: the member commits, leaves the group and exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=timeout)

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=10)

    def alive(self):
        return self.proc.poll() is None

    def read(self):
        return read_member_file(self.out)


def subprocess_devnull():
    import subprocess
    return subprocess.DEVNULL


class MemberLog:
    def __init__(self):
        self.assigned = []   # (ms, [partitions])
        self.revoked = []
        self.messages = []   # (ms, p, o, value)
        self.commits = []    # (p, next)
        self.errors = []
        self.exited = False
        self.subscribed = []  # ms

    def last_assignment(self):
        return self.assigned[-1][1] if self.assigned else None


def read_member_file(path) -> MemberLog:
    log = MemberLog()
    try:
        with open(path) as f:
            data = f.read()
    except FileNotFoundError:
        return log
    for line in data.splitlines():
        if not line:
            continue
        kind = line[0]
        parts = line.split(" ")
        try:
            if kind == "M" and len(parts) >= 5:
                log.messages.append((int(parts[1]), int(parts[2]), int(parts[3]), parts[4]))
            elif kind == "A":
                log.assigned.append((int(parts[1]), [int(x) for x in parts[2].split(",") if x] if len(parts) > 2 else []))
            elif kind == "R":
                log.revoked.append((int(parts[1]), [int(x) for x in parts[2].split(",") if x] if len(parts) > 2 else []))
            elif kind == "C":
                log.commits.append((int(parts[1]), int(parts[2])))
            elif kind == "E":
                log.errors.append(line[2:])
            elif kind == "S":
                log.subscribed.append(int(parts[1]))
            elif kind == "X":
                log.exited = True
        except (ValueError, IndexError):
            pass  # a line cut by SIGKILL
    return log


def produce(bootstrap, topic, start, count, partitions):
    """Produces values e<start>..e<start+count-1>, keyed so that they spread over the partitions,
    acks=all; returns {partition: [offsets]}."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": True})
    acked = {}
    errors = []

    def dr(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked.setdefault(msg.partition(), []).append(msg.offset())

    for i in range(start, start + count):
        while True:
            try:
                p.produce(topic, value=f"e{i}".encode(), partition=i % partitions, on_delivery=dr)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(60)
    if left or errors:
        raise RuntimeError(f"produce: {left} not delivered, errors {errors[:3]}")
    return acked


def create_topic(bootstrap, topic, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": bootstrap})
    for f in a.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result()


def describe_group(bootstrap, group):
    """(state, [(member_id, client_id, host, instance_id?)]) via kafka-python's admin (DescribeGroups v3)."""
    from kafka.admin import KafkaAdminClient
    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        d = a.describe_consumer_groups([group])[0]
        return d.state, [(m.member_id, m.client_id, m.client_host) for m in d.members]
    finally:
        a.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "member":
        member_main(sys.argv[2:])
    else:
        raise SystemExit("usage: groups_lib.py member ...")
