"""`herald group list|describe|delete` with a live confluent-kafka consumer
group: state, members (client id, host, assigned partitions), committed
offsets, log end, lag per partition and total in records and in seconds (age
of the oldest unconsumed event), the catch-up estimate while the group
consumes, and delete refused while members are active."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness  # noqa: E402
from group_members import Member, wait_assigned  # noqa: E402

AGE_S = 120  # the backlog's events are this old


def describe(h, group, *extra):
    return h.ok(h.cli("group", "describe", group, "--format", "json", *extra)).json()


def run(h):
    h.ok(h.cli("topic", "create", "orders", "--partitions", "3"))
    old = int(time.time() * 1000) - AGE_S * 1000
    h.produce("orders", [{"value": b"o%d" % i, "partition": i % 3, "timestamp": old + i} for i in range(30)])

    a = Member(h, "billing", "orders", "billing-a")
    b = Member(h, "billing", "orders", "billing-b")
    a.start()
    b.start()
    wait_assigned([a, b], 3)
    d = describe(h, "billing", "--sample", "0")
    h.check(d["total_lag"] == 0 and d["catch_up"]["note"].startswith("unknown (3 partitions with records and no "
                                                                     "committed offset"),
            "nothing committed yet: the catch-up is unknown, not 'caught up'", d["catch_up"])
    a.allow(4)
    b.allow(6)
    cli_harness.wait_until(lambda: a.committed_count() == 4 and b.committed_count() == 6, 30, "10 commits")

    names = h.ok(h.cli("group", "list")).lines()
    h.check("billing" in names, "group list shows the live group", names)
    listing = {g["group"]: g["state"] for g in h.ok(h.cli("group", "list", "--format", "json")).json()}
    h.eq(listing.get("billing"), "Stable", "group list --format json has the state")

    d = describe(h, "billing", "--sample", "0")
    h.eq(d["state"], "Stable", "describe: state")
    members = {m["client_id"]: m for m in d["members"]}
    h.eq(sorted(members), ["billing-a", "billing-b"], "describe: members with their client ids")
    h.check(all(m["host"] and m["member_id"] for m in d["members"]), "describe: members have host and member id",
            d["members"])
    h.eq(sorted(p["partition"] for m in d["members"] for p in m["assignment"]), [0, 1, 2],
         "describe: the assignments cover every partition once")
    h.eq(sorted(p["partition"] for p in members["billing-a"]["assignment"]), a.assignment,
         "describe: assignment decoded per member")
    parts = {p["partition"]: p for p in d["partitions"]}
    h.eq(sorted(parts), [0, 1, 2], "describe: one row per partition")
    h.eq(sum(p["committed"] or 0 for p in parts.values()), 10, "describe: committed offsets sum to the 10 commits")
    h.eq([parts[i]["log_end"] for i in range(3)], [10, 10, 10], "describe: log end offsets")
    for i, p in parts.items():
        if p["committed"] is not None:
            h.eq(p["lag"], p["log_end"] - p["committed"], f"describe: lag of partition {i}")
        else:
            h.eq(p["lag"], None, f"describe: partition {i} without a commit has no lag figure (as in Kafka)")
    want_lag = sum(p["lag"] for p in parts.values() if p["lag"] is not None)
    h.eq(d["total_lag"], want_lag, "describe: total lag in records sums the partitions")
    h.check(want_lag >= 10, "describe: total lag counts the unconsumed records", d)
    for i, p in parts.items():
        owner = [m["member_id"] for m in d["members"] if i in [x["partition"] for x in m["assignment"]]]
        h.eq(p["member_id"], owner[0], f"describe: partition {i} shows its member")
    lagging = [p for p in parts.values() if (p["lag"] or 0) > 0]
    h.check(lagging and all(AGE_S - 5 <= p["lag_seconds"] <= AGE_S + 60 for p in lagging),
            f"describe: lag in seconds is the age of the oldest unconsumed event (~{AGE_S}s)", lagging)
    h.check(AGE_S - 5 <= d["total_lag_seconds"] <= AGE_S + 60, "describe: total lag in seconds", d)
    h.check(d["catch_up"]["seconds"] is None and "disabled" in d["catch_up"]["note"],
            "--sample 0 skips the estimate", d["catch_up"])

    # A held group (no commits) gets "n/a" rather than a made-up estimate.
    d = describe(h, "billing")
    h.check(d["catch_up"]["seconds"] is None and d["catch_up"]["note"].startswith("n/a"),
            "no commits during the sample: estimate n/a", d["catch_up"])

    text = h.ok(h.cli("group", "describe", "billing", "--sample", "0")).out
    for needle in ("State: Stable", "billing-a", "billing-b", "LAG-TIME", f"Total lag: {want_lag} records", "behind",
                   "orders[", "Catch-up estimate"):
        h.check(needle in text, f"plain describe mentions {needle!r}", text)

    # Consuming: the estimate comes from two samples a moment apart.
    h.produce("orders", [{"value": b"n%d" % i, "partition": i % 3} for i in range(600)])
    a.throttle(25)
    b.throttle(25)
    time.sleep(1.0)
    d = describe(h, "billing", "--sample", "1.5")
    est = d["catch_up"]
    h.check(est["consume_rate"] and est["consume_rate"] > 5 and est["seconds"] is not None and est["seconds"] > 0,
            "while consuming, describe estimates the catch-up time", est)
    h.check(est["note"].startswith("~"), "the estimate note reads ~<duration>", est)
    want = d["total_lag"] / (est["consume_rate"] - est["produce_rate"])
    h.check(abs(est["seconds"] - want) < 0.01 * want + 0.01,
            "the table's total lag is the sample the estimate ends with (estimate = total lag / net rate)",
            f"total_lag {d['total_lag']}, estimate {est}")

    h.fails(h.cli("group", "delete", "billing"), "active members")

    a.stop()
    b.stop()
    cli_harness.wait_until(lambda: describe(h, "billing", "--sample", "0")["state"] == "Empty", 30, "group empty")
    d = describe(h, "billing")
    h.eq((d["members"], d["catch_up"]["seconds"]), ([], None), "stopped group: no members, no estimate")
    h.check(d["total_lag"] > 0 and all(p["committed"] is not None for p in d["partitions"]),
            "stopped group keeps its committed offsets and lag", d)
    h.check("Members: none" in h.ok(h.cli("group", "describe", "billing")).out, "plain: Members: none")

    h.fails(h.cli("group", "describe", "nope"), "does not exist")
    h.ok(h.cli("group", "delete", "billing"))
    h.check("billing" not in h.ok(h.cli("group", "list")).lines(), "deleted group is gone")
    h.fails(h.cli("group", "delete", "billing"), "billing")


if __name__ == "__main__":
    h = cli_harness.setup("group_describe")
    cli_harness.main(h, run)
