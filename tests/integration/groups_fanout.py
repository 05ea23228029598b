#!/usr/bin/python3
"""integration_groups_fanout: every group gets every event; inside a group the
members share the partitions; a stopped service catches up from its commits.

(a) Group `billing` has 3 members (2 confluent-kafka, 1 kafka-python), group
    `audit` 1 member (kafka-python), on a 6-partition topic. 100,000 events
    are produced; each member commits synchronously after processing. Every
    event is processed exactly once in each group, and billing's members
    split the partitions (each owns 2).
(b) Catch-up: every billing member is stopped (it commits, leaves); 10,000 more
    events are produced while audit keeps consuming; billing is restarted and
    receives exactly those 10,000 (nothing before them, none twice, none missing).
Finally OffsetFetch (kafka-python admin) shows each group committed the log end.
"""
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import groups_lib as gl  # noqa: E402
import harness  # noqa: E402
from harness import Failure, log  # noqa: E402

TOPIC = "user-events"
PARTITIONS = 6
FIRST = 100_000
MORE = 10_000


def processed(members):
    """{(p, o): count} and the list of values over the given member logs."""
    seen = collections.Counter()
    for m in members:
        for _, p, o, v in m.read().messages:
            seen[(p, o)] += 1
    return seen


def wait_processed(h, members, want: int, what: str, timeout=180.0):
    def enough():
        for m in members:
            if not m.alive():
                raise Failure(f"member {m.name} died:\n" + open(m.err.name, "rb").read().decode()[-2000:])
        return sum(processed(members).values()) >= want
    harness.wait_until(enough, timeout, what, interval=0.25)


def check_exactly(h, seen, expected_keys, what):
    dup = [k for k, n in seen.items() if n > 1]
    missing = expected_keys - set(seen)
    extra = set(seen) - expected_keys
    h.check(not dup and not missing and not extra,
            f"{what}: {len(expected_keys)} events processed exactly once",
            f"duplicates {len(dup)} (e.g. {sorted(dup)[:5]}), missing {len(missing)} (e.g. {sorted(missing)[:5]}), "
            f"unexpected {len(extra)} (e.g. {sorted(extra)[:5]})")


def run(h):
    b = h.broker().start()
    gl.create_topic(b.bootstrap, TOPIC, PARTITIONS)
    billing = [
        gl.Member(harness, h, b.bootstrap, "billing", TOPIC, "billing-0", "confluent"),
        gl.Member(harness, h, b.bootstrap, "billing", TOPIC, "billing-1", "kafkapython"),
        gl.Member(harness, h, b.bootstrap, "billing", TOPIC, "billing-2", "confluent"),
    ]
    audit = [gl.Member(harness, h, b.bootstrap, "audit", TOPIC, "audit-0", "kafkapython")]

    # All four members get their partitions (billing: 2 each; audit: all 6).
    def assigned():
        bl = [m.read().last_assignment() for m in billing]
        al = audit[0].read().last_assignment()
        if any(x is None for x in bl) or al is None:
            return False
        return sorted(sum(bl, [])) == list(range(PARTITIONS)) and all(len(x) == 2 for x in bl) and \
            sorted(al) == list(range(PARTITIONS))
    harness.wait_until(assigned, 60, "billing (3 members) and audit (1 member) assigned", interval=0.2)
    log("assignments: " + ", ".join(f"{m.name}={m.read().last_assignment()}" for m in billing + audit))

    t0 = time.monotonic()
    t_prod_ms = gl.now_ms()
    acked = gl.produce(b.bootstrap, TOPIC, 0, FIRST, PARTITIONS)
    log(f"produced {FIRST} events in {time.monotonic() - t0:.1f}s")
    first_keys = {(p, o) for p, offs in acked.items() for o in offs}
    h.check_eq(len(first_keys), FIRST, "acknowledged events")

    wait_processed(h, billing, FIRST, f"billing processed {FIRST}")
    wait_processed(h, audit, FIRST, f"audit processed {FIRST}")
    log(f"both groups processed everything {time.monotonic() - t0:.1f}s after the first produce")
    time.sleep(0.5)  # nothing more may arrive
    check_exactly(h, processed(billing), first_keys, "(a) billing")
    check_exactly(h, processed(audit), first_keys, "(a) audit")
    per_member = {m.name: len(m.read().messages) for m in billing}
    h.check(all(n > 0 for n in per_member.values()), f"every billing member processed a share: {per_member}")
    h.check(all(not [r for r in m.read().revoked if r[1] and r[0] >= t_prod_ms] for m in billing),
            "no rebalance while consuming (no member was revoked)")

    # (b) billing goes down; audit keeps consuming the next 10,000.
    for m in billing:
        m.stop()
        h.check(m.read().exited, f"{m.name} committed, left the group and exited")
    state, members = gl.describe_group(b.bootstrap, "billing")
    h.check_eq((state, members), ("Empty", []), "billing after its members left (DescribeGroups)")
    acked2 = gl.produce(b.bootstrap, TOPIC, FIRST, MORE, PARTITIONS)
    more_keys = {(p, o) for p, offs in acked2.items() for o in offs}
    h.check_eq(len(more_keys), MORE, "acknowledged catch-up events")
    wait_processed(h, audit, FIRST + MORE, f"audit processed {FIRST + MORE}")

    billing2 = [
        gl.Member(harness, h, b.bootstrap, "billing", TOPIC, "billing-0", "confluent"),
        gl.Member(harness, h, b.bootstrap, "billing", TOPIC, "billing-1", "kafkapython"),
        gl.Member(harness, h, b.bootstrap, "billing", TOPIC, "billing-2", "confluent"),
    ]
    t1 = time.monotonic()
    wait_processed(h, billing2, MORE, f"restarted billing processed {MORE}")
    log(f"restarted billing caught up on {MORE} events in {time.monotonic() - t1:.1f}s (incl. the join)")
    time.sleep(1.0)
    check_exactly(h, processed(billing2), more_keys, "(b) restarted billing: exactly the events it missed")
    check_exactly(h, processed(audit), first_keys | more_keys, "(b) audit")

    # Committed offsets (OffsetFetch via kafka-python's admin client) are the log end.
    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    end = collections.Counter()
    for p, offs in list(acked.items()) + list(acked2.items()):
        end[p] = max(end[p], max(offs) + 1)
    for group in ("billing", "audit"):
        offs = admin.list_consumer_group_offsets(group)
        got = {tp.partition: om.offset for tp, om in offs.items() if tp.topic == TOPIC}
        h.check_eq(got, dict(end), f"{group}: committed offsets are the log end")
    groups = sorted(g for g, _ in admin.list_consumer_groups())
    h.check("billing" in groups and "audit" in groups, f"ListGroups shows both groups: {groups}")
    admin.close()
    for m in billing2 + audit:
        m.stop()
    b.stop()


if __name__ == "__main__":
    harness.main(run, harness.setup("groups_fanout"))
