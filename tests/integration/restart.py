#!/usr/bin/python3
"""integration_restart: acknowledged messages survive SIGKILL of the broker.

A producer *process* (confluent_kafka, acks=all) sends numbered messages
without pause (throttled to a steady rate) to a 2-partition topic and appends
every acknowledged message (delivery report: sequence, partition, offset) to a
file. Meanwhile this script SIGKILLs the broker at random moments (seeded; the
seed is printed, rerun with --seed) and restarts it on the same data dir and
port. After each restart, before the next kill:
  - every partition is read back fully from offset 0: offsets are dense;
  - every message acknowledged before the kill is at the partition and offset
    its acknowledgement named.
Phase A uses a plain producer (retries may duplicate, which is allowed) and
includes one SIGTERM under load; phase B uses enable.idempotence=true, and
additionally no message of phase B may be stored twice (producer state must
survive the crash). Finally, with the producer stopped, a clean restart
(SIGTERM) must keep the log exactly as it was, and so must 5 more SIGTERMs
with 1,000 idle client connections open (each must exit promptly; the RSS
an idle connection costs is reported).

Run as `restart.py --role producer ...` it is the producer process.
"""
import json
import os
import sys
import time

import harness
from harness import Failure, log

TOPIC = "restart-under-load"
PARTITIONS = 2
PAD = b"." * 80


def add_args(ap):
    ap.add_argument("--role", default="test", choices=["test", "producer"])
    ap.add_argument("--kills-a", type=int, default=6, help="SIGKILL trials with the plain producer")
    ap.add_argument("--kills-b", type=int, default=6, help="SIGKILL trials with the idempotent producer")
    ap.add_argument("--rate", type=int, default=5000, help="producer messages per second")
    ap.add_argument("--idle-connections", type=int, default=1000, help="idle connections open at SIGTERM")
    ap.add_argument("--idle-reps", type=int, default=5, help="SIGTERMs with idle connections open")
    # producer role
    ap.add_argument("--bootstrap")
    ap.add_argument("--acked")
    ap.add_argument("--stop-file")
    ap.add_argument("--phase", default="A")
    ap.add_argument("--idempotent", action="store_true")


def value_of(phase: str, seq: int) -> bytes:
    return b"%s-%09d|" % (phase.encode(), seq) + PAD


# --- the producer process ---------------------------------------------------------

def producer_main(args):
    from confluent_kafka import Producer
    import logging
    lg = logging.getLogger("rdkafka-producer")
    hdl = logging.StreamHandler(sys.stderr)
    hdl.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    lg.addHandler(hdl)
    lg.setLevel(logging.INFO)
    conf = {
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "enable.idempotence": bool(args.idempotent),
        "linger.ms": 5,
        "message.timeout.ms": 60000,  # longer than any outage here: messages wait out the restarts
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 200,
        "retry.backoff.ms": 50,
        "socket.connection.setup.timeout.ms": 5000,
        "logger": lg,
    }
    if not args.idempotent:
        conf["retries"] = 1000000
    p = Producer(conf)
    acked = open(args.acked, "ab", buffering=1 << 16)
    st = {"sent": 0, "acked": 0, "failed": 0, "first_error": None}

    def dr(err, m):
        if err is not None:
            st["failed"] += 1
            if st["first_error"] is None:
                st["first_error"] = str(err)
            return
        st["acked"] += 1
        seq = int(m.value()[2:11])
        acked.write(b"%d %d %d\n" % (seq, m.partition(), m.offset()))

    t0 = time.monotonic()
    seq = 0
    while not os.path.exists(args.stop_file):
        # Steady rate: keep `sent` at rate * elapsed.
        due = int((time.monotonic() - t0) * args.rate)
        while seq < due:
            try:
                p.produce(TOPIC, value_of(args.phase, seq), on_delivery=dr)
                seq += 1
            except BufferError:
                break  # queue full (broker down): poll below and try again
        p.poll(0.005)
        acked.flush()
    st["sent"] = seq
    st["unflushed"] = p.flush(90)
    acked.flush()
    acked.close()
    print(json.dumps(st), flush=True)
    return 0


# --- the test ------------------------------------------------------------------------

class AckLog:
    """Incrementally parsed acked-file: list of (seq, partition, offset), complete lines only."""

    def __init__(self, path):
        self.path = path
        self.pos = 0
        self.buf = b""
        self.entries = []

    def refresh(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return self.entries
        self.pos += len(data)
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            s, p, o = line.split()
            self.entries.append((int(s), int(p), int(o)))
        return self.entries


class Producer:
    def __init__(self, h, b, phase, idempotent):
        self.phase = phase
        self.acked_path = h.path(f"acked-{phase}.txt")
        self.stop_path = h.path(f"stop-{phase}")
        self.log_path = h.path(f"producer-{phase}.log")
        self.acks = AckLog(self.acked_path)
        args = [harness.PY, os.path.abspath(__file__), "--herald", h.herald, "--role", "producer",
                "--bootstrap", b.bootstrap, "--acked", self.acked_path, "--stop-file", self.stop_path,
                "--phase", phase, "--rate", str(h.args.rate)]
        if idempotent:
            args.append("--idempotent")
        self.logf = open(self.log_path, "wb")
        self.proc = harness.popen(args, stdout=harness.subprocess.PIPE, stderr=self.logf)

    def acked_count(self):
        if self.proc.poll() is not None:
            raise Failure(f"producer {self.phase} exited early (rc {self.proc.returncode})\n{self.log_tail()}")
        return len(self.acks.refresh())

    def log_tail(self, n=30):
        with open(self.log_path, "rb") as f:
            return "\n".join("  | " + l for l in f.read().decode(errors="replace").splitlines()[-n:])

    def stop(self, timeout=120):
        open(self.stop_path, "w").close()
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except harness.subprocess.TimeoutExpired:
            self.proc.kill()
            raise Failure(f"producer {self.phase} did not finish within {timeout}s of the stop request")
        if self.proc.returncode != 0:
            raise Failure(f"producer {self.phase} exited with {self.proc.returncode}\n{self.log_tail()}")
        st = json.loads(out.decode().strip().splitlines()[-1])
        self.acks.refresh()
        return st


def read_all(b):
    """Every partition from offset 0 to its high watermark: {partition: [value]}; offsets must be dense."""
    content = {}
    for p in range(PARTITIONS):
        msgs = harness.consume_partition(b.bootstrap, TOPIC, p, 0, None, timeout=90)
        offs = [m.offset() for m in msgs]
        if offs != list(range(len(offs))):
            gap = next(i for i, o in enumerate(offs) if o != i)
            raise Failure(f"partition {p}: offsets not dense from 0: position {gap} holds offset {offs[gap]}")
        content[p] = [m.value() for m in msgs]
    return content


def verify(h, b, acked, what, phases):
    """acked: {phase: [(seq, p, off)]}. Checks presence at the acknowledged position."""
    t0 = time.monotonic()
    content = read_all(b)
    total = sum(len(v) for v in content.values())
    missing = []
    n_acked = 0
    for phase, entries in acked.items():
        n_acked += len(entries)
        for seq, p, off in entries:
            want = value_of(phase, seq)
            if off >= len(content[p]) or content[p][off] != want:
                missing.append((phase, seq, p, off, content[p][off][:12] if off < len(content[p]) else None))
    h.check(not missing, f"{what}: all {n_acked} acknowledged messages at their acknowledged offsets "
                         f"(log holds {total}, dense offsets, read in {time.monotonic() - t0:.1f}s)",
            f"{len(missing)} missing/moved, first: {missing[:3]}")
    for phase in phases:
        prefix = phase.encode() + b"-"
        seqs = [v[2:11] for vals in content.values() for v in vals if v.startswith(prefix)]
        dups = len(seqs) - len(set(seqs))
        h.check(dups == 0, f"{what}: no message of idempotent phase {phase} stored twice ({len(seqs)} stored)",
                f"{dups} duplicates")
    return content


def trials(h, b, prod, kills, sigterm_at, acked_all, idem_phases, counter):
    phase = prod.phase
    for t in range(kills):
        # Under load: the producer has been acknowledged a random number of new messages since the start.
        base = prod.acked_count()
        need = h.rng.randint(300, 4000)
        harness.wait_until(lambda: prod.acked_count() >= base + need, 60,
                           f"producer {phase}: {need} more acks after (re)start")
        time.sleep(h.rng.uniform(0.0, 0.4))  # the random moment
        clean = (t == sigterm_at)
        before = prod.acked_count()
        if clean:
            b.stop()
        else:
            b.kill()
        counter["kills" if not clean else "sigterms"] += 1
        # Everything in the file now was acknowledged by the broker that just died.
        acked_all[phase] = list(prod.acks.refresh())
        b.start()
        log(f"trial {phase}{t}: {'SIGTERM' if clean else 'SIGKILL'} after {before} acks in phase {phase}; "
            f"{b.log_text().splitlines()[-1].split(' info ')[-1] if b.log_text() else ''}")
        verify(h, b, acked_all, f"after {'SIGTERM' if clean else 'SIGKILL'} #{t + 1} of phase {phase}",
               idem_phases)


def idle_connections(h, b, content):
    """Clean shutdown with many idle client connections open (each has had one request answered),
    repeated: SIGTERM must still exit promptly and cleanly, and the log is unchanged afterwards.
    Also reports what an idle connection costs in broker memory."""
    import socket
    import struct
    import kwire
    n, reps = h.args.idle_connections, h.args.idle_reps
    for rep in range(reps):
        b.start()
        rss0 = b.rss_kib()
        socks = []
        try:
            for i in range(n):
                s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
                s.sendall(kwire.request_frame(18, 0, i, b""))
                socks.append(s)
            for s in socks:
                size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
                if len(s.recv(size, socket.MSG_WAITALL)) != size:
                    raise Failure("short ApiVersions answer on an idle connection")
            rss1 = b.rss_kib()
            t0 = time.monotonic()
            b.stop(timeout=30)
            dt = time.monotonic() - t0
        finally:
            for s in socks:
                s.close()
        h.check(True, f"SIGTERM with {n} idle connections open (#{rep + 1}/{reps}): clean exit in {dt:.2f}s; "
                      f"RSS {rss0} -> {rss1} KiB with them open ({(rss1 - rss0) / n:.1f} KiB per connection)")
    after = read_all(b.start())
    h.check(after == content, "log unchanged after the shutdowns with idle connections")
    b.stop()


def run(h):
    if h.args.role == "producer":
        raise SystemExit(producer_main(h.args))
    b = h.broker(sticky_port=True, extra_args=["--num-partitions", str(PARTITIONS)]).start()
    acked_all = {}
    counter = {"kills": 0, "sigterms": 0}

    log(f"phase A: plain producer (acks=all, retries), {h.args.kills_a} SIGKILLs + 1 SIGTERM under load")
    pa = Producer(h, b, "A", idempotent=False)
    trials(h, b, pa, h.args.kills_a + 1, h.rng.randrange(h.args.kills_a + 1), acked_all, [], counter)
    st = pa.stop()
    log(f"producer A: {st}")
    acked_all["A"] = list(pa.acks.entries)
    h.check(st["unflushed"] == 0 and st["acked"] + st["failed"] == st["sent"],
            f"producer A: every message sent got a delivery report ({st['acked']} acked, {st['failed']} failed)")

    log(f"phase B: idempotent producer (enable.idempotence=true, acks=all), {h.args.kills_b} SIGKILLs")
    pb = Producer(h, b, "B", idempotent=True)
    trials(h, b, pb, h.args.kills_b, -1, acked_all, ["B"], counter)
    st = pb.stop()
    log(f"producer B: {st}")
    acked_all["B"] = list(pb.acks.entries)
    h.check(st["unflushed"] == 0 and st["acked"] + st["failed"] == st["sent"],
            f"producer B: every message sent got a delivery report ({st['acked']} acked, {st['failed']} failed)")
    h.check(st["failed"] == 0, "producer B (idempotent): no message failed", st.get("first_error") or "")

    # Quiescent clean restart: the log must be exactly what it was.
    before = verify(h, b, acked_all, "before the final clean restart", ["B"])
    b.stop()
    after = verify(h, b.start(), acked_all, "after the final clean restart (SIGTERM)", ["B"])
    h.check(before == after, "clean restart keeps the log exactly (every partition, every offset, every value)")
    b.stop()
    idle_connections(h, b, before)
    h.check(counter["kills"] >= 10, f"{counter['kills']} SIGKILL trials under load (>= 10), "
                                    f"{counter['sigterms']} SIGTERM under load")
    log(f"figures: {counter['kills']} SIGKILL trials, {counter['sigterms']} SIGTERM under load, "
        f"{sum(len(v) for v in acked_all.values())} acknowledged messages verified, seed {h.seed}")


if __name__ == "__main__":
    if "--role" in sys.argv and "producer" in sys.argv:
        # The producer role is not a test: no work dir, no verdict. It dies with the test (PDEATHSIG).
        import argparse
        ap = argparse.ArgumentParser()
        ap.add_argument("--herald")
        ap.add_argument("--deadline")
        add_args(ap)
        sys.exit(producer_main(ap.parse_args()))
    h = harness.setup("restart", add_args, default_deadline=300)
    harness.main(run, h)
