#!/usr/bin/python3
"""integration_groups_failover: members that die, and members that come back.

(c) Group `billing` (2 confluent-kafka members + 1 kafka-python member) consumes
    a 6-partition topic while a producer keeps producing. One member is
    SIGKILLed: the coordinator expires its session (6 s) and its partitions
    move to the survivors, who resume from its last commit. Checked: the move
    happens within the session timeout plus a few heartbeats, and with
    commit-after-processing no acknowledged event is skipped (duplicates of the
    dead member's uncommitted tail are allowed: at-least-once).
(e) Static membership: group `static` has two confluent members with
    group.instance.id. One is SIGKILLed and restarted with the same instance id
    within its session timeout: it gets the same partitions back, the other
    member is not revoked, and the group does not rebalance (no new
    generation in the broker log).
"""
import collections
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import groups_lib as gl  # noqa: E402
import harness  # noqa: E402
from harness import Failure, log  # noqa: E402

PARTITIONS = 6
SESSION_MS = 6000


class BackgroundProducer:
    """Produces e0, e1, ... round-robin over the partitions at ~rate/s until stopped."""

    def __init__(self, bootstrap, topic, rate=2000):
        from confluent_kafka import Producer
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
        self.topic, self.rate = topic, rate
        self.acked = set()
        self.errors = []
        self.stop_flag = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _dr(self, err, msg):
        if err is not None:
            self.errors.append(err)
        else:
            self.acked.add((msg.partition(), msg.offset()))

    def _run(self):
        i = 0
        t0 = time.monotonic()
        while not self.stop_flag:
            for _ in range(50):
                self.p.produce(self.topic, value=f"e{i}".encode(), partition=i % PARTITIONS, on_delivery=self._dr)
                i += 1
            self.p.poll(0)
            ahead = i / self.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        self.p.flush(30)

    def stop(self):
        self.stop_flag = True
        self.t.join(60)


def seen(members):
    c = collections.Counter()
    for m in members:
        for _, p, o, _v in m.read().messages:
            c[(p, o)] += 1
    return c


def case_kill_member(h, b):
    topic = "orders"
    gl.create_topic(b.bootstrap, topic, PARTITIONS)
    members = [
        gl.Member(harness, h, b.bootstrap, "billing", topic, "billing-0", "confluent", session_ms=SESSION_MS),
        gl.Member(harness, h, b.bootstrap, "billing", topic, "billing-1", "kafkapython", session_ms=SESSION_MS),
        gl.Member(harness, h, b.bootstrap, "billing", topic, "billing-2", "confluent", session_ms=SESSION_MS),
    ]

    def assigned():
        a = [m.read().last_assignment() for m in members]
        return all(a) and sorted(sum(a, [])) == list(range(PARTITIONS))
    harness.wait_until(assigned, 60, "3 billing members assigned", interval=0.2)
    prod = BackgroundProducer(b.bootstrap, topic)
    harness.wait_until(lambda: all(len(m.read().messages) > 500 for m in members), 60,
                       "every member consuming", interval=0.2)
    victim = members[2]
    victim_parts = victim.read().last_assignment()
    survivors = members[:2]
    kill_ms = gl.now_ms()
    victim.kill()
    log(f"SIGKILLed {victim.name} (partitions {victim_parts})")

    def moved():
        # A survivor was assigned the victim's partitions and processed a message from each.
        got = {}
        for m in survivors:
            lg = m.read()
            for t, p, o, v in lg.messages:
                if t >= kill_ms and p in victim_parts and p not in got:
                    got[p] = t
        return got if set(got) == set(victim_parts) else None
    got = harness.wait_until(moved, SESSION_MS / 1000 + 30, "the dead member's partitions consumed by the others",
                             interval=0.1)
    took = max(got.values()) - kill_ms
    log(f"partitions {victim_parts} consumed again by the survivors {took} ms after the SIGKILL "
        f"(session timeout {SESSION_MS} ms)")
    h.check(took <= SESSION_MS + 3000, f"(c) the partitions moved within the session timeout + 3 s ({took} ms)")
    time.sleep(1.0)
    prod.stop()
    h.check(not prod.errors, "producer had no errors", str(prod.errors[:3]))
    acked = prod.acked
    harness.wait_until(lambda: acked <= set(seen(members)), 60, "every acknowledged event processed", interval=0.25)
    s = seen(members)
    dups = sum(1 for k, n in s.items() if n > 1)
    missing = acked - set(s)
    h.check(not missing, f"(c) nothing skipped: {len(acked)} events all processed "
                         f"({dups} reprocessed from the dead member's uncommitted tail)")
    for m in survivors:
        m.stop()
    return took


def generations(b, group):
    return re.findall(rf"group {group}: generation (\d+)", b.log_text())


def case_static(h, b):
    topic = "static-events"
    gl.create_topic(b.bootstrap, topic, 4)
    session = 10000
    m0 = gl.Member(harness, h, b.bootstrap, "static", topic, "static-0", "confluent", instance_id="inst-0",
                   session_ms=session)
    m1 = gl.Member(harness, h, b.bootstrap, "static", topic, "static-1", "confluent", instance_id="inst-1",
                   session_ms=session)

    def assigned():
        a = [m.read().last_assignment() for m in (m0, m1)]
        return a if all(a) and sorted(sum(a, [])) == [0, 1, 2, 3] else None
    before = harness.wait_until(assigned, 60, "2 static members assigned", interval=0.2)
    gl.produce(b.bootstrap, topic, 0, 2000, 4)
    harness.wait_until(lambda: len(seen([m0, m1])) >= 2000, 60, "static group consumed 2000", interval=0.2)
    gens_before = generations(b, "static")
    rebalances_before = b.log_text().count("group static: preparing rebalance")
    state, members_before = gl.describe_group(b.bootstrap, "static")
    h.check_eq((state, len(members_before)), ("Stable", 2), "static group before the restart")

    m1.kill()
    log("SIGKILLed static-1; restarting it with group.instance.id inst-1")
    restart_ms = gl.now_ms()
    m1b = gl.Member(harness, h, b.bootstrap, "static", topic, "static-1b", "confluent", instance_id="inst-1",
                    session_ms=session)
    harness.wait_until(lambda: m1b.read().last_assignment() is not None, 30, "restarted static member assigned",
                       interval=0.1)
    back_ms = m1b.read().assigned[0][0] - restart_ms
    log(f"restarted static member had its assignment {back_ms} ms after its process started")
    h.check_eq(sorted(m1b.read().last_assignment()), sorted(before[1]), "(e) the restarted member's partitions")
    gl.produce(b.bootstrap, topic, 2000, 2000, 4)
    harness.wait_until(lambda: len(seen([m0, m1, m1b])) >= 4000, 60, "static group consumed 4000", interval=0.2)
    h.check_eq([r for r in m0.read().revoked if r[1]], [], "(e) the other member was never revoked")
    h.check_eq(generations(b, "static"), gens_before, "(e) no new generation (broker log)")
    h.check_eq(b.log_text().count("group static: preparing rebalance"), rebalances_before,
               "(e) no rebalance started (broker log)")
    h.check("group static: static member inst-1 replaced" in b.log_text(), "the broker replaced the static member in place")
    state, members_after = gl.describe_group(b.bootstrap, "static")
    h.check_eq((state, len(members_after)), ("Stable", 2), "static group after the restart")
    h.check(set(x[0] for x in members_after) != set(x[0] for x in members_before),
            "the restarted instance has a new member id")
    for m in (m0, m1b):
        m.stop()
    return back_ms


def run(h):
    b = h.broker().start()
    case_kill_member(h, b)
    case_static(h, b)
    b.stop()


if __name__ == "__main__":
    harness.main(run, harness.setup("groups_failover"))
