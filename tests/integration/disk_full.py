#!/usr/bin/python3
"""integration_disk_full: the broker's data dir on a small ext4 file system
(a loop-mounted image in the test's temp dir) that fills up under an
idempotent confluent_kafka producer (acks=all).

- While the disk is full a Produce is answered KAFKA_STORAGE_ERROR (56), the
  broker logs "no space" (once per partition and 10 s, not per retry) and
  keeps serving: reads, metadata, other requests.
- Every acknowledged message is readable afterwards, at dense offsets, in the
  order it was sent; nothing unacknowledged became a duplicate.
- Once space is freed the same broker accepts produces again, no restart.
- Filled up again and SIGKILLed, it starts on the full disk (index and
  checkpoint writes fail and are logged) and serves everything acknowledged.

Needs root and a loop device (mount -o loop); exits 77 (CTest: skipped) when
the image cannot be mounted.
"""
import os
import subprocess
import time

import harness
import kwire
from harness import Failure, log

TOPIC = "disk-full"
RAW_TOPIC = "disk-full-raw"  # raw Produce requests
VALUE_PAD = b"x" * 990


def produce(h, bootstrap, first, count, timeout_s):
    """Sends values first..first+count-1 (idempotent, acks=all); returns (acked offsets by value, error codes)."""
    from confluent_kafka import Producer
    acked, errors = {}, {}

    def dr(err, msg):
        if err is not None:
            errors[err.name()] = errors.get(err.name(), 0) + 1
        else:
            acked[int(msg.value()[:9])] = msg.offset()

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                  "message.timeout.ms": timeout_s * 1000, "logger": harness.confluent_quiet_logger()})
    for i in range(first, first + count):
        while True:
            try:
                p.produce(TOPIC, b"%09d" % i + VALUE_PAD, key=b"k%d" % (i % 10), partition=0, on_delivery=dr)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(timeout_s + 30)
    if left:
        raise Failure(f"producer: {left} messages neither acknowledged nor failed")
    return acked, errors


def check_log(h, bootstrap, acked, what):
    msgs = harness.consume_partition(bootstrap, TOPIC)
    values = [int(m.value()[:9]) for m in msgs]
    h.check_eq([m.offset() for m in msgs], list(range(len(msgs))), f"{what}: offsets are dense from 0")
    h.check(values == sorted(values) and len(set(values)) == len(values),
            f"{what}: {len(values)} messages in the order sent, none twice")
    by_value = {v: m.offset() for v, m in zip(values, msgs)}
    missing = [v for v, off in acked.items() if by_value.get(v) != off]
    h.check(not missing, f"{what}: all {len(acked)} acknowledged messages are there at their acknowledged offsets",
            f"missing or moved: {missing[:10]}")
    return len(msgs)


def fill(path, mib):
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(b"\0" * (1 << 20))
        f.flush()
        os.fsync(f.fileno())


def run(h):
    img = h.path("fs.img")
    mnt = h.path("mnt")
    os.makedirs(mnt)
    with open(img, "wb") as f:
        f.truncate(48 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", img], check=True, timeout=60)
    r = subprocess.run(["mount", "-o", "loop", img, mnt], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        log(f"SKIP: cannot mount a loop file system here: {r.stderr.strip()}")
        os._exit(77)
    try:
        run_mounted(h, mnt)
    finally:
        for b in h.brokers:
            b.ensure_dead()
        subprocess.run(["umount", "-l", mnt], timeout=60)


def run_mounted(h, mnt):
    ballast = os.path.join(mnt, "ballast")
    fill(ballast, 12)  # ~25 MiB left for the broker
    b = h.broker()
    b.data_dir = os.path.join(mnt, "data")
    os.makedirs(b.data_dir)
    b.start()
    with kwire.Conn("127.0.0.1", b.port) as c:
        c.metadata([RAW_TOPIC], auto_create=True)

    # 1. Fill the disk: ~60 MB of 1 KB messages; what does not fit fails after retries.
    acked, errors = produce(h, b.bootstrap, 0, 60000, timeout_s=8)
    log(f"first round: {len(acked)} acknowledged, failed: {errors}")
    h.check(10000 < len(acked) < 60000, f"the disk filled up: {len(acked)} of 60,000 acknowledged")
    h.check(set(errors) <= {"_MSG_TIMED_OUT", "KAFKA_STORAGE_ERROR"} and sum(errors.values()) == 60000 - len(acked),
            "the rest failed with a storage error or timed out retrying it", str(errors))
    b.assert_alive()
    b.wait_log("no space")
    with kwire.Conn("127.0.0.1", b.port) as c:
        # What the producer left free (a batch smaller than its 1 MB ones may fit) fills up first.
        answers = []
        while len(answers) < 200 and (not answers or answers[-1][0] == 0):
            err, base, _ = c.produce(RAW_TOPIC, 0, kwire.build_batch([(b"k", b"v" * 4096, None)] * 64))
            answers.append((err, base))
        h.check_eq(answers[-1][0], 56, f"a Produce on the full disk is answered KAFKA_STORAGE_ERROR "
                                       f"(after {len(answers) - 1} smaller batches fitted)")
    n = check_log(h, b.bootstrap, acked, "disk full")

    # 2. Space freed: the same broker takes produces again.
    os.unlink(ballast)
    more, errors = produce(h, b.bootstrap, 100000, 1000, timeout_s=30)
    h.check(len(more) == 1000 and not errors, f"after freeing space: 1000 of 1000 acknowledged ({errors})")
    h.check_eq(min(more.values()), n, "they follow the last stored message")
    h.check("works again after" in b.wait_log("works again after"), "the broker logs that appends work again")
    acked.update(more)
    check_log(h, b.bootstrap, acked, "after freeing space")

    # 3. Full again, SIGKILL, restart on the full disk.
    st = os.statvfs(mnt)
    fill(os.path.join(mnt, "ballast2"), max(0, st.f_bavail * st.f_frsize // (1 << 20) - 1))
    more, errors = produce(h, b.bootstrap, 200000, 5000, timeout_s=8)
    log(f"third round: {len(more)} acknowledged, failed: {errors}")
    h.check(len(more) < 5000, f"the disk is full again ({len(more)} of 5,000 acknowledged)")
    acked.update(more)
    b.kill()
    try:  # whatever the broker freed by dying, the disk stays full
        fill(os.path.join(mnt, "ballast3"), 64)
    except OSError:
        pass
    log_at = b.log_size()
    b.start()
    b.wait_log("listening on", after=log_at)
    check_log(h, b.bootstrap, acked, "restarted on a full disk")
    b.stop()


if __name__ == "__main__":
    h = harness.setup("disk_full", default_deadline=240)
    harness.main(run, h)
