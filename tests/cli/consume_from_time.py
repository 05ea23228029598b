"""`herald consume --from <ISO-8601 datetime>` starts each partition at the
first record whose timestamp is at or after the given time (the broker's
time index), in every accepted spelling (Z, ±HH:MM offset, @epoch-ms), and
`herald produce --timestamp` sets record timestamps."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness  # noqa: E402

T0 = 1704067200000  # 2024-01-01T00:00:00Z
HOUR = 3600_000


def run(h):
    h.ok(h.cli("topic", "create", "audit", "--partitions", "3"))
    # Three "hours" of events, interleaved over the partitions.
    expected = []
    for hour in range(3):
        for i in range(6):
            ts = T0 + hour * HOUR + i * 1000
            value = f"h{hour}-e{i}"
            expected.append((ts, value))
            h.produce("audit", [{"value": value.encode(), "partition": i % 3, "timestamp": ts}])
    # And some through the CLI's --timestamp.
    h.ok(h.cli("produce", "audit", "--partition", "0", "--timestamp", "2024-01-01T03:00:00Z", "h3-cli"))
    h.ok(h.cli("produce", "audit", "--partition", "1", "--timestamp", f"@{T0 + 3 * HOUR + 500}", "h3-cli-ms"))
    expected += [(T0 + 3 * HOUR, "h3-cli"), (T0 + 3 * HOUR + 500, "h3-cli-ms")]

    def after(ms):
        return sorted(v for ts, v in expected if ts >= ms)

    def consume_from(spec):
        recs = h.ok(h.cli("consume", "audit", "--from", spec, "--format", "json")).json_lines()
        return recs

    recs = consume_from("2024-01-01T01:00:00Z")
    h.eq(sorted(r["value"] for r in recs), after(T0 + HOUR), "--from <datetime Z> gives exactly the later events")
    h.check(all(r["timestamp"] >= T0 + HOUR for r in recs), "every record is at or after the datetime")
    h.eq(sorted(r["value"] for r in consume_from("2024-01-01T02:30:00+02:00")), after(T0 + HOUR // 2),
         "--from with a +02:00 zone offset")
    h.eq(sorted(r["value"] for r in consume_from("2024-01-01T01:00:02.5Z")), after(T0 + HOUR + 2500),
         "--from with fractional seconds (first record at or after)")
    h.eq(sorted(r["value"] for r in consume_from(f"@{T0 + 2 * HOUR}")), after(T0 + 2 * HOUR), "--from @epoch-ms")
    h.eq(sorted(r["value"] for r in consume_from("2023-12-31")), after(0), "--from a date before everything: all")
    h.eq(consume_from("2030-01-01T00:00:00Z"), [], "--from after every record: nothing")
    recs = h.ok(h.cli("consume", "audit", "--from", "2024-01-01T03:00:00Z", "--partition", "0",
                      "--print-timestamp")).lines()
    h.eq(recs, ["2024-01-01T03:00:00.000Z\th3-cli"], "--timestamp on produce sets the record time")
    h.fails(h.cli("consume", "audit", "--from", "2024-13-01T00:00:00Z"), "ISO-8601")
    h.fails(h.cli("produce", "audit", "--timestamp", "noon", "x"), "ISO-8601")


if __name__ == "__main__":
    h = cli_harness.setup("consume_from_time")
    cli_harness.main(h, run)
