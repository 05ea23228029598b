"""`herald produce` / `herald consume` round trip against a real broker: keys,
headers, explicit partitions, key separator, stdin and --file input, JSON and
plain output with the --print-* fields, --count, --partition, --from
earliest/latest/OFFSET/-N, --follow with SIGINT, binary values, delivery
failures (exit non-zero), and --group (commits only what was printed)."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness  # noqa: E402


def run(h):
    h.ok(h.cli("topic", "create", "events", "--partitions", "2"))

    # arguments, a fixed key and headers, to partition 0
    r = h.ok(h.cli("produce", "events", "--key", "user-1", "--header", "ce_type=EmailChanged",
                   "--header", "ce_id=42", "--partition", "0", "--print-offsets", "a@example.com", "b@example.com"))
    h.eq(r.lines(), ["0\t0", "0\t1"], "--print-offsets prints PARTITION<TAB>OFFSET per acknowledged record")
    # stdin lines split at the key separator, to partition 1
    h.ok(h.cli("produce", "events", "-K", ":", "--partition", "1", input="user-2:c@example.com\nuser-3:d:e\n"))
    # a file, no key, acks=1
    path = os.path.join(h.workdir, "lines.txt")
    with open(path, "w") as f:
        f.write("from-file-1\nfrom-file-2\n")
    h.ok(h.cli("produce", "events", "--file", path, "--partition", "1", "--acks", "1"))
    h.fails(h.cli("produce", "events", "--acks", "0", "--print-offsets", "x"), "no offset")

    recs = h.ok(h.cli("consume", "events", "--format", "json")).json_lines()
    h.eq(len(recs), 6, "consume (default: from earliest, exit at end) prints every record once")
    h.eq(list(recs[0]), ["topic", "partition", "offset", "timestamp", "timestamp_type", "key", "value", "headers"],
         "JSON fields in the documented order")
    by = {(r["partition"], r["offset"]): r for r in recs}
    r0 = by[(0, 0)]
    h.eq((r0["topic"], r0["key"], r0["value"]), ("events", "user-1", "a@example.com"), "JSON has topic/key/value")
    h.eq(r0["headers"], [{"key": "ce_type", "value": "EmailChanged"}, {"key": "ce_id", "value": "42"}],
         "JSON headers keep order and duplicates")
    h.check(abs(r0["timestamp"] - time.time() * 1000) < 120_000 and r0["timestamp_type"] == "create",
            "JSON timestamp is the producer's create time (ms)", r0)
    h.eq((by[(1, 0)]["key"], by[(1, 0)]["value"]), ("user-2", "c@example.com"), "-K splits key and value")
    h.eq((by[(1, 1)]["key"], by[(1, 1)]["value"]), ("user-3", "d:e"), "-K splits at the first separator only")
    h.eq((by[(1, 2)]["key"], by[(1, 2)]["value"], by[(1, 2)]["headers"]), (None, "from-file-1", []),
         "--file records have no key and no headers")
    h.eq(sorted(by), [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (1, 3)], "offsets are dense per partition")

    # plain output with fields
    lines = h.ok(h.cli("consume", "events", "--partition", "0", "--print-partition", "--print-offset",
                       "--print-key", "--print-headers")).lines()
    h.eq(lines, ["0\t0\tuser-1\tce_type=EmailChanged,ce_id=42\ta@example.com",
                 "0\t1\tuser-1\tce_type=EmailChanged,ce_id=42\tb@example.com"],
         "plain output: partition, offset, key, headers, value separated by TAB")
    lines = h.ok(h.cli("consume", "events", "--partition", "1", "--print-timestamp", "--separator", "|")).lines()
    h.check(len(lines) == 4 and all(l.split("|")[0].endswith("Z") for l in lines), "--print-timestamp is ISO UTC", lines)
    h.eq(h.ok(h.cli("consume", "events", "--partition", "1")).lines(),
         ["c@example.com", "d:e", "from-file-1", "from-file-2"], "plain default prints only values")

    # positions and limits
    h.eq(len(h.ok(h.cli("consume", "events", "--count", "3")).lines()), 3, "--count N stops after N records")
    h.eq(h.ok(h.cli("consume", "events", "--partition", "1", "--from", "2")).lines(), ["from-file-1", "from-file-2"],
         "--from OFFSET")
    h.eq(sorted(h.ok(h.cli("consume", "events", "--from", "-1")).lines()), ["b@example.com", "from-file-2"],
         "--from -1 gives the last record of each partition")
    h.eq(h.ok(h.cli("consume", "events", "--from", "latest")).lines(), [], "--from latest without --follow: nothing")
    h.eq(h.ok(h.cli("consume", "events", "--partition", "1", "--from", "99")).lines(), [],
         "--from past the end is clamped to the end")
    h.eq(h.ok(h.cli("consume", "events", "--from", "2")).lines(), ["from-file-1", "from-file-2"],
         "--from OFFSET on every partition: the one starting at its end prints nothing, the other its rest")
    h.ok(h.cli("topic", "create", "empty", "--partitions", "2"))
    for start in ("earliest", "latest", "-3", "0"):
        h.eq(h.ok(h.cli("consume", "empty", "--from", start)).lines(), [], f"empty topic, --from {start}: nothing")
    h.fails(h.cli("consume", "events", "--from", "yesterday"), "ISO-8601")
    h.fails(h.cli("consume", "events", "--partition", "5"), "no partition 5")
    h.fails(h.cli("consume", "nope"), "does not exist")

    # binary and empty values
    h.produce("events", [{"value": b"\xff\x00\x01", "key": b"bin", "partition": 0}, {"value": None, "key": b"tomb",
                                                                                      "partition": 0}])
    recs = h.ok(h.cli("consume", "events", "--partition", "0", "--from", "2", "--format", "json")).json_lines()
    h.eq([(r["key"], r["value"]) for r in recs], [("bin", {"base64": "/wAB"}), ("tomb", None)],
         "non-UTF-8 values are base64, null values are null")
    h.ok(h.cli("produce", "events", "--tombstones", "--partition", "0", "user-9"))
    last = h.ok(h.cli("consume", "events", "--partition", "0", "--from", "-1", "--format", "json")).json_lines()
    h.eq([(r["key"], r["value"]) for r in last], [("user-9", None)], "--tombstones sends null values")

    # failures are reported and make the exit status non-zero
    h.fails(h.cli("produce", "events", "--partition", "7", "x"), "no partition 7")
    h.fails(h.cli("produce", "events", "-K", ":", input="ok:1\nno-separator\n"), "separator")
    h.fails(h.cli("produce", "events", "--header", "novalue", "x"), "KEY=VALUE")
    h.fails(h.cli("produce", "events", "--timestamp", "@0", "x"), "librdkafka takes a timestamp of 0")

    # one value per --header (and -X, --config, ...): the next word is the record, even with a '='
    h.ok(h.cli("produce", "events", "--partition", "0", "--header", "a=b", "v=1"))
    last = h.ok(h.cli("consume", "events", "--partition", "0", "--from", "-1", "--format", "json")).json_lines()
    h.eq([(r["value"], r["headers"]) for r in last], [("v=1", [{"key": "a", "value": "b"}])],
         "a value after --header KEY=VALUE is the record's value")

    # --brokers wins over HERALD_BROKERS, for the libherald commands too
    for cmd in (["dlq", "list", "--topic", "events"], ["saga", "list"]):
        h.ok(h.cli(*cmd, "--timeout", "5", env={"HERALD_BROKERS": "127.0.0.1:1"}),
             f"herald {cmd[0]}: --brokers over HERALD_BROKERS")

    # an unreachable broker: one failure message naming the cause, not librdkafka's log lines
    for cmd in (["topic", "list"], ["consume", "events"], ["dlq", "list", "--topic", "events"], ["saga", "list"]):
        r = h.fails(h.cli(*cmd, "--timeout", "2", "--brokers", "127.0.0.1:1", brokers=False), "connection refused")
        h.check("%3|" not in r.err and r.err.count("\n") == 2,
                f"herald {cmd[0]} {cmd[1]}: an unreachable broker is reported in 2 lines", r.err)

    # without --follow, consume ends at the high watermark it saw, even while records keep arriving
    h.ok(h.cli("topic", "create", "steady"))
    stop = threading.Event()
    sent = [0]

    def keep_producing():
        p = h.producer(**{"linger.ms": 0})
        while not stop.is_set():
            p.produce("steady", value=b"s%d" % sent[0])
            p.flush(10)
            sent[0] += 1
            time.sleep(0.005)

    t = threading.Thread(target=keep_producing, daemon=True)
    t.start()
    try:
        cli_harness.wait_until(lambda: sent[0] >= 200, 30, "200 records in 'steady'")
        before = sent[0]
        recs = h.ok(h.cli("consume", "steady", "--format", "json", timeout=40)).json_lines()
    finally:
        stop.set()
        t.join(timeout=20)
    h.check(before <= len(recs) <= sent[0] and [r["offset"] for r in recs] == list(range(len(recs))),
            f"consume under steady traffic exits with every record up to its start ({before} sent before, "
            f"{sent[0]} in all)", len(recs))

    # --follow: records produced later show up; SIGINT ends it cleanly
    p = cli_harness.popen([h.herald, "consume", "events", "--partition", "1", "--from", "latest", "--follow",
                           "--format", "json", "--brokers", h.bootstrap],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)  # let it reach the end before producing
    h.ok(h.cli("produce", "events", "--partition", "1", "live-1", "live-2"))
    got = [json.loads(p.stdout.readline())["value"] for _ in range(2)]
    h.eq(got, ["live-1", "live-2"], "--follow prints records as they arrive")
    p.send_signal(signal.SIGINT)
    h.eq(p.wait(timeout=20), 0, "SIGINT ends --follow with exit 0")

    # a pipe that closes early does not hang or crash the consumer
    c = subprocess.run(f"'{h.herald}' consume events --brokers {h.bootstrap} | head -1", shell=True,
                       capture_output=True, timeout=60, text=True)
    h.eq(len(c.stdout.splitlines()), 1, "consume into `head -1` ends cleanly")

    # --group: commits what was printed; a second run resumes after it
    # (JSON, so that the null-valued records count: plain output prints them as empty lines)
    def positions(*args):
        return [(r["partition"], r["offset"]) for r in h.ok(h.cli("consume", "events", "--format", "json",
                                                                   *args)).json_lines()]
    first = positions("--group", "cli-g", "--count", "4")
    h.eq(len(first), 4, "--group --count 4 prints 4 records")
    rest = positions("--group", "cli-g")
    h.eq(sorted(first + rest), sorted(positions()),
         "the group resumes exactly after what it printed (no gap, no repeat)")
    h.eq(h.ok(h.cli("consume", "events", "--group", "cli-g")).lines(), [], "nothing new for the group")
    h.ok(h.cli("produce", "events", "--key", "k", "new-1", "new-2"))
    h.eq(sorted(h.ok(h.cli("consume", "events", "--group", "cli-g")).lines()), ["new-1", "new-2"],
         "the group gets exactly the records produced since")
    h.fails(h.cli("consume", "events", "--group", "cli-g", "--from", "5"), "reset-offsets")
    # --group with --partition reads under the committed offset without joining
    h.ok(h.cli("produce", "events", "--partition", "0", "p0-new"))
    h.eq(h.ok(h.cli("consume", "events", "--group", "cli-g", "--partition", "0")).lines(), ["p0-new"],
         "--group --partition starts at the committed offset")
    h.eq(h.ok(h.cli("consume", "events", "--group", "cli-g", "--partition", "0", "--from", "earliest")).lines(), [],
         "--group --partition --from earliest keeps to the committed offset")
    h.fails(h.cli("consume", "events", "--group", "cli-g", "--partition", "0", "--from", "0"), "reset-offsets")
    h.ok(h.cli("produce", "events", "--partition", "0", "p0-newer"))
    h.eq(h.ok(h.cli("consume", "events", "--group", "cli-g", "--partition", "0")).lines(), ["p0-newer"],
         "the committed offset did not move back")
    # A reader that closes the pipe: the command stops and exits 141, as a command killed by SIGPIPE.
    h.ok(h.cli("produce", "piped", *[f"{i:06d}" + "x" * 200 for i in range(2000)]))  # 400 KB, beyond a pipe buffer
    p = subprocess.Popen([h.herald, "consume", "piped", "--brokers", h.bootstrap], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    first = p.stdout.readline()
    p.stdout.close()
    rc = p.wait(timeout=60)
    err = p.stderr.read().decode()
    h.eq((first[:6], rc, err), (b"000000", 141, ""), "stdout closed by its reader: exit 141, nothing on stderr")
    # Output that cannot be written (a full disk) fails the command, whichever it is.
    for args in (["topic", "list"], ["topic", "describe", "piped"], ["produce", "piped", "--print-offsets", "x"],
                 ["consume", "piped", "--count", "1"], ["group", "list"]):
        with open("/dev/full", "wb") as full:
            p = subprocess.run([h.herald, *args, "--brokers", h.bootstrap], stdout=full, stderr=subprocess.PIPE,
                               timeout=60)
        h.eq((p.returncode, b"writing to stdout failed" in p.stderr), (1, True),
             f"`herald {' '.join(args)} > /dev/full` exits 1 and says why")


if __name__ == "__main__":
    h = cli_harness.setup("produce_consume")
    cli_harness.main(h, run)
