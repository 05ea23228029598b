"""`herald topic ...` lifecycle against a real broker: create (with configs,
--if-not-exists), list, describe (partitions, watermarks, configs and their
source), alter-config (set/delete keep the other overrides), add-partitions,
delete (--if-exists), and the error paths (duplicate, unknown topic/config)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness  # noqa: E402


def run(h):
    r = h.ok(h.cli("topic", "create", "orders", "--partitions", "3", "--config", "retention.ms=1000000"))
    h.check("3 partitions" in r.out, "create reports the partition count", r)
    h.fails(h.cli("topic", "create", "orders", "--partitions", "3"), "already exists")
    h.ok(h.cli("topic", "create", "orders", "--if-not-exists"), "--if-not-exists on an existing topic")
    h.ok(h.cli("topic", "create", "users", "--config", "cleanup.policy=compact"))
    h.fails(h.cli("produce", "users", "no-key"), "has no key")
    h.fails(h.cli("topic", "create", "bad", "--config", "no.such.config=1"))
    h.fails(h.cli("topic", "create", "bad2", "--config", "retention.ms"), "KEY=VALUE")

    # list: names one a line; --long; json
    names = h.ok(h.cli("topic", "list")).lines()
    h.check("orders" in names and "users" in names and "bad" not in names, "list shows the created topics", names)
    listing = {t["name"]: t["partitions"] for t in h.ok(h.cli("topic", "list", "--format", "json")).json()}
    h.eq(listing.get("orders"), 3, "list --format json has the partition count")
    h.check("PARTITIONS" in h.ok(h.cli("topic", "list", "--long")).out, "list --long prints a table")

    # HERALD_BROKERS is honoured when --brokers is absent
    r = h.cli("topic", "list", brokers=False, env={"HERALD_BROKERS": h.bootstrap})
    h.check(r.rc == 0 and "orders" in r.lines(), "HERALD_BROKERS selects the cluster", r)

    # describe: watermarks follow produced records
    h.produce("orders", [{"value": b"v%d" % i, "partition": i % 3} for i in range(7)])
    d = h.ok(h.cli("topic", "describe", "orders", "--format", "json")).json()
    h.eq([p["partition"] for p in d["partitions"]], [0, 1, 2], "describe lists every partition")
    h.eq([p["high_watermark"] for p in d["partitions"]], [3, 2, 2], "describe shows the high watermarks")
    h.eq([p["log_start"] for p in d["partitions"]], [0, 0, 0], "describe shows the log start offsets")
    h.eq(d["configs"]["retention.ms"], {"value": "1000000", "source": "topic", "read_only": False,
                                        "sensitive": False}, "describe shows the override and its source")
    h.eq(d["configs"]["cleanup.policy"]["source"], "default", "non-overridden configs show source default")
    text = h.ok(h.cli("topic", "describe", "orders")).out
    h.check("HIGH-WATERMARK" in text and "retention.ms" in text and "Records: 7" in text,
            "plain describe has the partition table, configs and record count", text)
    over = h.ok(h.cli("topic", "describe", "orders", "--overrides", "--format", "json")).json()
    h.eq(sorted(over["configs"]), ["retention.ms"], "--overrides shows only topic-level overrides")

    # alter-config: read-modify-write keeps the untouched overrides
    h.ok(h.cli("topic", "alter-config", "orders", "--set", "segment.bytes=1048576", "--set", "retention.ms=2000000"))
    c = h.ok(h.cli("topic", "describe", "orders", "--overrides", "--format", "json")).json()["configs"]
    h.eq({k: v["value"] for k, v in c.items()}, {"retention.ms": "2000000", "segment.bytes": "1048576"},
         "alter-config --set changes and adds overrides")
    h.ok(h.cli("topic", "alter-config", "orders", "--delete", "segment.bytes"))
    c = h.ok(h.cli("topic", "describe", "orders", "--format", "json")).json()["configs"]
    h.eq((c["retention.ms"]["value"], c["retention.ms"]["source"], c["segment.bytes"]["source"]),
         ("2000000", "topic", "default"), "alter-config --delete resets one key and keeps the others")
    h.fails(h.cli("topic", "alter-config", "orders", "--set", "no.such.config=1"))
    h.fails(h.cli("topic", "alter-config", "orders", "--delete", "no.such.config"), "unknown config")
    h.fails(h.cli("topic", "alter-config", "orders", "--set", "message.timestamp.difference.max.ms=1000"),
            "use message.timestamp.before.max.ms")
    h.fails(h.cli("topic", "alter-config", "orders"))  # neither --set nor --delete
    h.fails(h.cli("topic", "alter-config", "nope", "--set", "retention.ms=1"), "nope")
    r = h.ok(h.cli("topic", "alter-config", "orders", "--set", "retention.ms=5", "--validate-only"))
    c = h.ok(h.cli("topic", "describe", "orders", "--format", "json")).json()["configs"]
    h.eq(c["retention.ms"]["value"], "2000000", "--validate-only changes nothing")

    # add-partitions
    h.ok(h.cli("topic", "add-partitions", "orders", "--to", "5"))
    d = h.ok(h.cli("topic", "describe", "orders", "--format", "json")).json()
    h.eq(len(d["partitions"]), 5, "add-partitions grows the topic")
    h.fails(h.cli("topic", "add-partitions", "orders", "--to", "2"))

    # unknown topic
    h.fails(h.cli("topic", "describe", "nope"), "does not exist")

    # delete
    h.ok(h.cli("topic", "delete", "orders"))
    h.check("orders" not in h.ok(h.cli("topic", "list")).lines(), "deleted topic is gone from the list")
    h.fails(h.cli("topic", "delete", "orders"), "topic 'orders' does not exist")
    h.ok(h.cli("topic", "delete", "orders", "--if-exists"), "--if-exists on a missing topic")
    h.ok(h.cli("topic", "delete", "users"))
    h.eq(h.ok(h.cli("topic", "list")).lines(), [], "no topics left")


if __name__ == "__main__":
    h = cli_harness.setup("topic_lifecycle")
    cli_harness.main(h, run)
