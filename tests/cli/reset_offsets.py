"""`herald group reset-offsets`: refused (exit 3) while the group has active
members; --dry-run prints the plan and changes nothing; --to-datetime then
replays exactly the events after that time, for a confluent-kafka consumer
and for `herald consume --group`; the other targets (--to-earliest,
--to-latest, --to-offset, --shift-by) and --partition give the right plan."""
import os
import sys
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness  # noqa: E402
from group_members import Member, wait_assigned  # noqa: E402

HOUR = 3600_000


def committed(h, group):
    r = h.cli("group", "describe", group, "--format", "json", "--sample", "0")
    if r.rc != 0 and "does not exist" in r.err:
        return {}
    d = h.ok(r).json()
    return {p["partition"]: p["committed"] for p in d["partitions"] if p["topic"] == "users"}


def plan(r):
    return {p["partition"]: (p["current"], p["new"]) for p in r.json()["partitions"]}


def drain(h, group, idle_s=3.0, timeout=30):
    """Values a fresh confluent consumer of `group` receives until the topic is idle (commits each)."""
    c = h.consumer(group)
    assigned = []
    c.subscribe(["users"], on_assign=lambda _c, parts: assigned.append(time.monotonic()))
    got, last, start = [], None, time.monotonic()
    try:
        while time.monotonic() - start < timeout:
            if assigned and last is None:
                last = assigned[0]  # idle time counts from the assignment (joining takes ~3 s)
            if last is not None and time.monotonic() - last >= idle_s:
                break
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            got.append(m.value().decode())
            c.commit(message=m, asynchronous=False)
            last = time.monotonic()
    finally:
        c.close()
    return got


def run(h):
    h.ok(h.cli("topic", "create", "users", "--partitions", "2"))
    now = int(time.time() * 1000)
    before = [f"before-{i}" for i in range(10)]   # two hours ago
    after = [f"after-{i}" for i in range(8)]      # one hour ago
    h.produce("users", [{"value": v.encode(), "partition": i % 2, "timestamp": now - 2 * HOUR + i * 1000}
                        for i, v in enumerate(before)])
    h.produce("users", [{"value": v.encode(), "partition": i % 2, "timestamp": now - HOUR + i * 1000}
                        for i, v in enumerate(after)])
    mid = datetime.fromtimestamp((now - 1.5 * HOUR) / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    end = {0: 9, 1: 9}

    # The group consumes everything and stays active.
    m = Member(h, "billing", "users", "billing-1")
    m.start()
    wait_assigned([m], 2)
    m.allow(18)
    cli_harness.wait_until(lambda: m.committed_count() == 18, 30, "billing consumed everything")
    h.eq(committed(h, "billing"), end, "the group committed to the end")

    r = h.fails(h.cli("group", "reset-offsets", "billing", "--topic", "users", "--to-datetime", mid), rc=3)
    h.check("active member" in r.err and "billing" in r.err, "refusal says why (active members)", r)
    h.fails(h.cli("group", "reset-offsets", "billing", "--topic", "users", "--to-earliest", "--dry-run"), rc=3)
    h.eq(committed(h, "billing"), end, "a refused reset changes nothing")

    m.stop()
    cli_harness.wait_until(lambda: h.ok(h.cli("group", "describe", "billing", "--format", "json", "--sample", "0"))
                           .json()["state"] == "Empty", 30, "group empty after its member left")

    # Dry run: the plan, nothing committed.
    r = h.ok(h.cli("group", "reset-offsets", "billing", "--topic", "users", "--to-datetime", mid, "--dry-run",
                   "--format", "json"))
    h.eq(plan(r), {0: (9, 5), 1: (9, 5)}, "dry run plans current -> first offset after the datetime")
    h.eq(r.json()["dry_run"], True, "the JSON plan says dry_run")
    text = h.ok(h.cli("group", "reset-offsets", "billing", "--topic", "users", "--to-datetime", mid,
                      "--dry-run")).out
    h.check("CURRENT" in text and "NEW" in text and "Dry run" in text, "plain dry run prints the plan table", text)
    h.eq(committed(h, "billing"), end, "dry run changes nothing")

    # The reset, then a confluent consumer of the group replays exactly the later events.
    h.ok(h.cli("group", "reset-offsets", "billing", "--topic", "users", "--to-datetime", mid))
    h.eq(committed(h, "billing"), {0: 5, 1: 5}, "reset committed the planned offsets")
    got = drain(h, "billing")
    h.eq(sorted(got), sorted(after), "after --to-datetime the group receives exactly the events after it")
    h.eq(len(got), len(set(got)), "no event twice")

    # The same through `herald consume --group`.
    h.ok(h.cli("group", "reset-offsets", "billing", "--topic", "users", "--to-datetime", mid))
    got = h.ok(h.cli("consume", "users", "--group", "billing")).lines()
    h.eq(sorted(got), sorted(after), "herald consume --group replays exactly the later events")
    h.eq(h.ok(h.cli("consume", "users", "--group", "billing")).lines(), [], "and then nothing more")

    # The other targets (dry runs against current = end).
    def dry(*args):
        return plan(h.ok(h.cli("group", "reset-offsets", "billing", "--topic", "users", "--dry-run",
                               "--format", "json", *args)))
    h.eq(dry("--to-earliest"), {0: (9, 0), 1: (9, 0)}, "--to-earliest plans the log start")
    h.eq(dry("--to-latest"), {0: (9, 9), 1: (9, 9)}, "--to-latest plans the log end")
    h.eq(dry("--to-offset", "3"), {0: (9, 3), 1: (9, 3)}, "--to-offset N")
    h.eq(dry("--to-offset", "1000"), {0: (9, 9), 1: (9, 9)}, "--to-offset is clamped to the log end")
    h.eq(dry("--shift-by", "-2"), {0: (9, 7), 1: (9, 7)}, "--shift-by -N moves back N")
    h.eq(dry("--shift-by", "-100"), {0: (9, 0), 1: (9, 0)}, "--shift-by is clamped to the log start")
    h.eq(dry("--to-earliest", "--partition", "1"), {1: (9, 0)}, "--partition limits the plan")
    h.eq(sorted(dry("--to-earliest", "--partition", "0,1")), [0, 1], "--partition 0,1 names both")
    h.eq(dry("--to-datetime", "2030-01-01T00:00:00Z"), {0: (9, 9), 1: (9, 9)},
         "--to-datetime after every event plans the log end")
    h.fails(h.cli("group", "reset-offsets", "billing", "--topic", "users", "--dry-run"))  # no target
    h.fails(h.cli("group", "reset-offsets", "billing", "--topic", "users", "--to-earliest", "--to-latest"))
    h.fails(h.cli("group", "reset-offsets", "billing", "--topic", "users", "--to-datetime", "soon"), "ISO-8601")
    h.fails(h.cli("group", "reset-offsets", "billing", "--topic", "nope", "--to-earliest"), "does not exist")
    h.fails(h.cli("group", "reset-offsets", "fresh", "--topic", "users", "--shift-by", "1"), "no committed offset")

    # A group that never consumed can be positioned before its first start.
    h.ok(h.cli("group", "reset-offsets", "fresh", "--topic", "users", "--to-datetime", mid))
    h.eq(sorted(drain(h, "fresh")), sorted(after), "a new group positioned by datetime starts there")

    # delete-offsets forgets the group's position on the topic.
    r = h.ok(h.cli("group", "delete-offsets", "fresh", "--topic", "users"))
    h.check("deleted committed offsets" in r.out, "delete-offsets says what it deleted", r)
    h.eq(committed(h, "fresh"), {}, "delete-offsets removes the committed offsets")
    r = h.ok(h.cli("group", "delete-offsets", "fresh", "--topic", "users"))
    h.check("no committed offsets" in r.out, "a second delete-offsets says there was nothing to delete", r)
    h.fails(h.cli("group", "delete-offsets", "no-such-group", "--topic", "users"), "group 'no-such-group' does not exist")


if __name__ == "__main__":
    h = cli_harness.setup("reset_offsets")
    cli_harness.main(h, run)
