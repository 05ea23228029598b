#!/usr/bin/python3
"""groups_bench: consumer-group figures for bench/RESULTS.md (not a CTest test).

    /usr/bin/python3 bench/groups/groups_bench.py --herald build/herald [--seconds 5]

1. Rebalance: two confluent-kafka members consume a 6-partition topic fed at
   ~2,000 events/s; a third member starts. Reported: time from the third
   member's subscribe (its FindCoordinator + JoinGroup follow at once) until
   all three are consuming again (each has its new assignment and processed an
   event from it), for heartbeat.interval.ms 3000 (librdkafka's default) and
   500. Existing members learn about the rebalance from their next heartbeat,
   so the interval dominates. Also the broker-side time from that JoinGroup to
   the group being Stable again (from the broker log).
2. Offset commits: synchronous OffsetCommit round trips per second (each
   answered only after fdatasync) with 1 and with 8 concurrent committers
   (each its own confluent consumer, group and partition), and the disk's
   own fdatasync rate for comparison.
"""
import os
import re
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))
import groups_lib as gl  # noqa: E402
import harness  # noqa: E402
from harness import log  # noqa: E402


def add_args(ap):
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of each commit measurement")
    ap.add_argument("--trials", type=int, default=3, help="rebalance trials per heartbeat interval")


class Feeder:
    def __init__(self, bootstrap, topic, partitions, rate=2000):
        from confluent_kafka import Producer
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
        self.topic, self.partitions, self.rate = topic, partitions, rate
        self.stop_flag = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        i, t0 = 0, time.monotonic()
        while not self.stop_flag:
            for _ in range(20):
                self.p.produce(self.topic, value=f"e{i}".encode(), partition=i % self.partitions)
                i += 1
            self.p.poll(0)
            ahead = i / self.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        self.p.flush(10)

    def stop(self):
        self.stop_flag = True
        self.t.join(30)


def rebalance_trial(h, b, heartbeat_ms, trial):
    topic = f"bench-rebalance-{heartbeat_ms}-{trial}"
    group = f"bench-{heartbeat_ms}-{trial}"
    gl.create_topic(b.bootstrap, topic, 6)
    feeder = Feeder(b.bootstrap, topic, 6)
    kw = dict(session_ms=10000, heartbeat_ms=heartbeat_ms)
    m = [gl.Member(harness, h, b.bootstrap, group, topic, f"m{i}", "confluent", **kw) for i in range(2)]
    harness.wait_until(lambda: all(x.read().messages for x in m), 60, "two members consuming", interval=0.05)
    time.sleep(h.rng.uniform(0.5, 1.5))  # a random phase against the heartbeat timers
    log_at = b.log_size()
    third = gl.Member(harness, h, b.bootstrap, group, topic, "m2", "confluent", **kw)
    members = m + [third]
    harness.wait_until(lambda: third.read().subscribed, 30, "third member subscribing", interval=0.01)
    t0 = third.read().subscribed[0]

    def all_consuming():
        done = []
        for x in members:
            lg = x.read()
            after = [(t, parts) for t, parts in lg.assigned if t >= t0]
            if not after:
                return None
            ta, parts = after[-1]
            if len(parts) != 2:
                return None
            first = [t for t, p, o, v in lg.messages if t >= ta and p in parts]
            if not first:
                return None
            done.append(first[0])
        return max(done)
    t_all = harness.wait_until(all_consuming, 60, "all three consuming", interval=0.02)
    text = b.log_text()[log_at:]
    broker_ms = None
    tj = re.search(rf"(\d\d:\d\d:\d\d\.\d+) info group {group}: preparing rebalance", text)
    ts = re.search(rf"(\d\d:\d\d:\d\d\.\d+) info group {group}: stable at generation", text)
    if tj and ts:
        def sec(s):
            hh, mm, ss = s.split(":")
            return int(hh) * 3600 + int(mm) * 60 + float(ss)
        broker_ms = (sec(ts.group(1)) - sec(tj.group(1))) * 1000
    for x in members:
        x.stop()
    feeder.stop()
    return t_all - t0, broker_ms


def commit_rate(bootstrap, topic, committers, seconds):
    from confluent_kafka import Consumer, TopicPartition
    counts = [0] * committers
    stop = [False]

    def work(i):
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-commit-{committers}-{i}",
                      "enable.auto.commit": False, "logger": harness.confluent_quiet_logger()})
        n = 0
        c.commit(offsets=[TopicPartition(topic, i % 8, 0)], asynchronous=False)  # warm-up: coordinator lookup
        while not stop[0]:
            n += 1
            c.commit(offsets=[TopicPartition(topic, i % 8, n)], asynchronous=False)
            counts[i] += 1
        c.close()

    ts = [threading.Thread(target=work, args=(i,)) for i in range(committers)]
    for t in ts:
        t.start()
    time.sleep(1.0)
    base = sum(counts)
    t0 = time.monotonic()
    time.sleep(seconds)
    total = sum(counts) - base
    el = time.monotonic() - t0
    stop[0] = True
    for t in ts:
        t.join(30)
    return total / el


def fdatasync_rate(dirpath, seconds=2.0):
    fd, path = tempfile.mkstemp(dir=dirpath)
    try:
        n, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            os.write(fd, b"x" * 200)
            os.fdatasync(fd)
            n += 1
        return n / (time.monotonic() - t0)
    finally:
        os.close(fd)
        os.unlink(path)


def run(h):
    b = h.broker().start()
    results = {}
    for hb in (3000, 500):
        vals = [rebalance_trial(h, b, hb, t) for t in range(h.args.trials)]
        results[hb] = vals
        log(f"heartbeat.interval.ms={hb}: third JoinGroup -> all 3 consuming: "
            + ", ".join(f"{c:.0f} ms (broker join->stable {bk:.0f} ms)" if bk is not None else f"{c:.0f} ms"
                        for c, bk in vals))
    gl.create_topic(b.bootstrap, "bench-commits", 8)
    r1 = commit_rate(b.bootstrap, "bench-commits", 1, h.args.seconds)
    r8 = commit_rate(b.bootstrap, "bench-commits", 8, h.args.seconds)
    disk = fdatasync_rate(b.data_dir)
    log(f"sync offset commits/s (durable): 1 committer {r1:.0f}/s, 8 committers {r8:.0f}/s in total; "
        f"disk fdatasync alone {disk:.0f}/s")
    print("\nRESULTS")
    for hb, vals in results.items():
        cs = sorted(c for c, _ in vals)
        print(f"rebalance (3rd member joins, heartbeat {hb} ms): median {cs[len(cs) // 2]:.0f} ms, "
              f"min {cs[0]:.0f}, max {cs[-1]:.0f}; broker join->stable "
              + ", ".join(f"{bk:.0f}" for _, bk in vals if bk is not None) + " ms")
    print(f"sync offset commits: {r1:.0f}/s (1 committer), {r8:.0f}/s (8 committers); fdatasync {disk:.0f}/s")
    h.check(True, "benchmark ran")
    b.stop()


if __name__ == "__main__":
    harness.main(run, harness.setup("groups_bench", add_args, default_deadline=900))
