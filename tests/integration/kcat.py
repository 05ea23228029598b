#!/usr/bin/python3
"""integration_kcat: 100,000 keyed messages with headers, produced by `kcat -P`
(acks=all, librdkafka's default) from a file and consumed back with `kcat -C`;
keys, values and headers must come back byte-identical at dense offsets.

The file uses kcat's own delimiters: -K '\\x1f' between key and value, -D
'\\x1e' between messages, so keys and values may hold any other byte
(newlines, NUL, tabs, UTF-8, 0x80-0xff). kcat -H adds the same headers to
every message of one run, so the messages are produced in several runs with
different header sets; offsets must continue densely across the runs.
"""
import os
import harness
from harness import Failure, log, run_cmd

N = 100_000
RUNS = 4  # kcat -P invocations, each with its own headers
TOPIC = "kcat-roundtrip"
FORBIDDEN = {0x1E, 0x1F}
ALLOWED = bytes(b for b in range(256) if b not in FORBIDDEN)

HEADER_SETS = [
    [("trace-id", "run-0"), ("content-type", "application/octet-stream")],
    [("trace-id", "run-1"), ("h\u00e9llo", "w\u00f6rld \u2603"), ("empty", "")],
    [("ce_type", "user.email.changed"), ("ce_source", "/users"), ("x", "1"), ("x", "2")],  # repeated name
    [("trace-id", "run-3")],
]


def make_messages(rng):
    msgs = []
    for i in range(N):
        # Keys: a readable prefix plus random bytes; a few empty keys.
        if i % 997 == 0:
            key = b""
        else:
            key = b"key-%06d-" % i + bytes(rng.choice(ALLOWED) for _ in range(rng.randrange(0, 12)))
        # Values: mostly printable with some arbitrary bytes, sizes 0..300; a few empty ones.
        n = 0 if i % 1009 == 0 else rng.randrange(1, 300)
        if i % 5 == 0:
            value = bytes(rng.choice(ALLOWED) for _ in range(n))
        else:
            value = (b"value %d " % i + b"x" * n)[:max(n, 1)] + b"\n\t\0\xff"
        msgs.append((key, value))
    return msgs


def parse_kcat_output(out: bytes, h):
    """Format '%o %K %S %k%s%h\\n': offset, key length, value length, key, value, headers."""
    recs = []
    pos = 0
    n = len(out)
    while pos < n:
        sp1 = out.index(b" ", pos)
        sp2 = out.index(b" ", sp1 + 1)
        sp3 = out.index(b" ", sp2 + 1)
        off = int(out[pos:sp1])
        klen = int(out[sp1 + 1:sp2])
        vlen = int(out[sp2 + 1:sp3])
        p = sp3 + 1
        key = None if klen < 0 else out[p:p + klen]
        p += max(klen, 0)
        value = None if vlen < 0 else out[p:p + vlen]
        p += max(vlen, 0)
        nl = out.index(b"\n", p)
        hdrs = out[p:nl].decode("utf-8")
        recs.append((off, key, value, hdrs))
        pos = nl + 1
    return recs


def run(h):
    b = h.broker().start()
    msgs = make_messages(h.rng)
    per_run = N // RUNS
    total_bytes = 0
    for r in range(RUNS):
        chunk = msgs[r * per_run:(r + 1) * per_run]
        path = h.path(f"messages-{r}.txt")
        with open(path, "wb") as f:
            for k, v in chunk:
                f.write(k + b"\x1f" + v + b"\x1e")
        total_bytes += os.path.getsize(path)
        args = ["kcat", "-b", b.bootstrap, "-P", "-t", TOPIC, "-p", "0", "-K", "\\x1f", "-D", "\\x1e",
                "-X", "acks=all", "-l", path]
        for name, value in HEADER_SETS[r]:
            args += ["-H", f"{name}={value}"]
        cp = run_cmd(args, timeout=120)
        h.check(cp.returncode == 0 and b"ERROR" not in cp.stderr,
                f"kcat -P run {r}: {len(chunk)} messages delivered with acks=all",
                cp.stderr.decode(errors="replace")[-1000:])
    log(f"produced {N} messages ({total_bytes} bytes of input) in {RUNS} kcat runs")

    wm = run_cmd(["kcat", "-b", b.bootstrap, "-Q", "-t", f"{TOPIC}:0:-1"], timeout=30).stdout.decode()
    h.check(f"{TOPIC} [0] offset {N}" in wm, f"kcat -Q: latest offset of {TOPIC}/0 is {N}", wm)

    out = run_cmd(["kcat", "-b", b.bootstrap, "-C", "-t", TOPIC, "-p", "0", "-o", "beginning", "-e",
                   "-f", "%o %K %S %k%s%h\\n"], timeout=120).stdout
    recs = parse_kcat_output(out, h)
    h.check_eq(len(recs), N, "kcat -C record count")
    h.check_eq([r[0] for r in recs], list(range(N)), "offsets are dense 0..N-1")

    bad_keys = bad_vals = bad_hdrs = 0
    first_bad = None
    for i, (off, key, value, hdrs) in enumerate(recs):
        k, v = msgs[i]
        want_h = ",".join(f"{n}={x}" for n, x in HEADER_SETS[i // per_run])
        if key != k:
            bad_keys += 1
        if value != v:
            bad_vals += 1
        if hdrs != want_h:
            bad_hdrs += 1
        if first_bad is None and (key != k or value != v or hdrs != want_h):
            first_bad = f"offset {off}: got key={key!r} value={value!r:.80} headers={hdrs!r}; " \
                        f"want key={k!r} value={v!r:.80} headers={want_h!r}"
    h.check(bad_keys == 0, f"all {N} keys byte-identical", f"{bad_keys} differ; first: {first_bad}")
    h.check(bad_vals == 0, f"all {N} values byte-identical", f"{bad_vals} differ; first: {first_bad}")
    h.check(bad_hdrs == 0, f"all {N} header sets identical (names, values, order, repeats)",
            f"{bad_hdrs} differ; first: {first_bad}")

    # Reading from the middle: kcat -o <offset> must start exactly there.
    mid = N // 2 + 17
    out = run_cmd(["kcat", "-b", b.bootstrap, "-C", "-t", TOPIC, "-p", "0", "-o", str(mid), "-c", "3",
                   "-f", "%o %K %S %k%s%h\\n"], timeout=60).stdout
    part = parse_kcat_output(out, h)
    h.check_eq([(r[0], r[1], r[2]) for r in part], [(mid + j, *msgs[mid + j]) for j in range(3)],
               f"kcat -C -o {mid} -c 3 returns offsets {mid}..{mid + 2} with their keys/values")
    b.stop()


if __name__ == "__main__":
    h = harness.setup("kcat", default_deadline=240)
    harness.main(run, h)
