#!/usr/bin/python3
"""integration_groups_crash: committed offsets survive SIGKILL of the broker.

A committer process (confluent-kafka, subscribed to a 3-partition topic in
group `crashers`) commits synchronously, as fast as it can, an increasing
offset per assigned partition, logging each attempt (T) and each
acknowledgement (C). The test SIGKILLs the broker at seeded random moments
while commits flow (12 trials), freezes the committer (SIGSTOP), restarts the
broker on the same data dir and reads the committed offsets with another
client (OffsetFetch). For every partition:

    last acknowledged commit <= committed offset <= last attempted commit

i.e. every acknowledged commit is there (an unacknowledged one may or may not
be). The committer is then resumed and must get acknowledgements again (the
group survives the restart: no rejoin is needed). A final clean restart
(SIGTERM) must keep the offsets exactly.

Run as `groups_crash.py --role committer ...` it is the committer process.
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Failure, log  # noqa: E402

TOPIC = "commit-crash"
GROUP = "crashers"
PARTITIONS = 3


def add_args(ap):
    ap.add_argument("--role", default="test", choices=["test", "committer"])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--bootstrap")
    ap.add_argument("--out")


def committer_main(args):
    from confluent_kafka import Consumer, TopicPartition, KafkaException
    import logging
    lg = logging.getLogger("rdkafka")
    lg.addHandler(logging.StreamHandler(sys.stderr))
    lg.setLevel(logging.ERROR)
    c = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": GROUP, "client.id": "committer",
        "enable.auto.commit": False, "session.timeout.ms": 30000, "heartbeat.interval.ms": 1000,
        "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 100, "socket.timeout.ms": 3000,
        "logger": lg,
    })
    assigned = []
    c.subscribe([TOPIC], on_assign=lambda cons, parts: assigned.__setitem__(slice(None), [p.partition for p in parts]))
    out = open(args.out, "a", buffering=1)
    n = {}
    while True:
        c.poll(0.01)
        if not assigned:
            continue
        for p in list(assigned):
            n[p] = n.get(p, 0) + 1
            out.write(f"T {p} {n[p]}\n")
            try:
                res = c.commit(offsets=[TopicPartition(TOPIC, p, n[p])], asynchronous=False)
                if res and res[0].error is None:
                    out.write(f"C {p} {n[p]}\n")
                else:
                    out.write(f"E {p} {res[0].error if res else '?'}\n")
            except KafkaException as e:
                out.write(f"E {p} {e}\n")
                time.sleep(0.02)


def read_log(path):
    attempted, acked, errors = {}, {}, 0
    if not os.path.exists(path):  # the committer has not started writing yet
        return attempted, acked, errors
    with open(path) as f:
        for line in f.read().splitlines():
            parts = line.split(" ")
            if len(parts) < 3:
                continue
            try:
                p, v = int(parts[1]), int(parts[2])
            except ValueError:
                if parts[0] == "E":
                    errors += 1
                continue
            if parts[0] == "T":
                attempted[p] = max(attempted.get(p, 0), v)
            elif parts[0] == "C":
                acked[p] = max(acked.get(p, 0), v)
            elif parts[0] == "E":
                errors += 1
    return attempted, acked, errors


def committed(bootstrap):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "logger": harness.confluent_quiet_logger()})
    try:
        res = c.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=15)
        return {tp.partition: tp.offset for tp in res}
    finally:
        c.close()


def run(h):
    from confluent_kafka.admin import AdminClient, NewTopic
    b = h.broker(sticky_port=True).start()
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in a.create_topics([NewTopic(TOPIC, PARTITIONS, 1)]).values():
        f.result()
    out = h.path("committer.log")
    err = open(h.path("committer.stderr"), "ab")
    proc = harness.popen([harness.PY, os.path.abspath(__file__), "--herald", h.herald, "--role", "committer",
                          "--bootstrap", b.bootstrap, "--out", out], stdout=err, stderr=err)

    def acks():
        return sum(read_log(out)[1].values())
    harness.wait_until(lambda: acks() >= 30, 60, "the committer's first acknowledged commits", interval=0.1)
    total_acked_at_kill = 0
    t_run = time.monotonic()
    for trial in range(h.args.trials):
        time.sleep(h.rng.uniform(0.2, 1.2))
        if proc.poll() is not None:
            raise Failure(f"committer exited with {proc.returncode}")
        b.kill()
        time.sleep(0.3)  # let the committer write down acknowledgements it already received
        proc.send_signal(signal.SIGSTOP)
        attempted, acked, errors = read_log(out)
        total_acked_at_kill = sum(acked.values())
        b.start()
        got = committed(b.bootstrap)
        for p in range(PARTITIONS):
            lo, hi, c = acked.get(p, 0), attempted.get(p, 0), got.get(p, -1001)
            if not (lo <= c <= hi):
                raise Failure(f"trial {trial}: partition {p}: committed {c}, but acknowledged {lo} "
                              f"(attempted up to {hi}); seed {h.seed}")
        log(f"trial {trial}: SIGKILL with {total_acked_at_kill} commits acknowledged so far; after restart "
            f"committed={dict(sorted(got.items()))} acked={dict(sorted(acked.items()))} "
            f"attempted={dict(sorted(attempted.items()))}")
        proc.send_signal(signal.SIGCONT)
        before = acks()
        harness.wait_until(lambda: acks() >= before + 10, 60, f"trial {trial}: commits acknowledged again",
                           interval=0.05)
    h.check(True, f"{h.args.trials} SIGKILLs while commits flowed: every acknowledged commit survived")
    attempted, acked, errors = read_log(out)
    elapsed = time.monotonic() - t_run
    log(f"{sum(acked.values())} commits acknowledged, {errors} failed (broker down), in {elapsed:.1f}s")

    # A clean restart with the committer stopped keeps the offsets exactly.
    proc.kill()
    proc.wait(10)
    before = committed(b.bootstrap)
    b.restart()
    h.check_eq(committed(b.bootstrap), before, "committed offsets after a clean restart")
    attempted, acked, errors = read_log(out)
    h.check(all(acked[p] <= before[p] <= attempted[p] for p in range(PARTITIONS)),
            "final committed offsets between acknowledged and attempted")
    b.stop()


if __name__ == "__main__":
    if "--role" in sys.argv and sys.argv[sys.argv.index("--role") + 1] == "committer":
        import argparse
        ap = argparse.ArgumentParser()
        ap.add_argument("--herald")
        add_args(ap)
        committer_main(ap.parse_args())
    else:
        harness.main(run, harness.setup("groups_crash", add_args))
