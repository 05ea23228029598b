"""Harness for Herald's integration tests with real Kafka clients.

Every test is a standalone script run as
    /usr/bin/python3 tests/integration/<x>.py --herald build/herald
(see CMakeLists.txt). /usr/bin/python3 is required: it is the interpreter that
has kafka-python (`import kafka`) and confluent-kafka (`import confluent_kafka`).

What the harness gives a test:

    h = harness.setup("kcat")               # parses --herald/--keep/--seed, starts the watchdog
    b = h.broker()                          # a herald process on 127.0.0.1:<ephemeral>, temp data dir
    b.start(); b.bootstrap                  # "127.0.0.1:PORT" once the port file exists
    b.kill(); b.restart()                   # SIGKILL, then the same data dir again
    b.stop()                                # SIGTERM, asserts a clean exit
    h.check(cond, "what was checked")       # prints "ok: ..." or raises Failure
    harness.main(run)                       # runs run(h); exit 0 / 1 with broker log tail

Safety rules it enforces:
- a broker is always killed when the test ends (try/finally in main(), atexit,
  and PR_SET_PDEATHSIG so that a SIGKILLed test - e.g. a CTest timeout - does
  not leave an orphan);
- every wait is bounded (`wait_until`), and a whole-test watchdog kills
  everything and exits 2 if the test overruns --deadline seconds;
- the broker's log (stdout+stderr of every start) goes to one file that the
  tests grep and that is printed (tail) on failure.
"""
from __future__ import annotations

import argparse
import atexit
import ctypes
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

PY = "/usr/bin/python3"

try:  # tests open 1,000+ sockets; the broker (our child) inherits the limit
    import resource
    _soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if _soft != resource.RLIM_INFINITY and (_hard == resource.RLIM_INFINITY or _soft < _hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(_hard, 65536) if _hard != resource.RLIM_INFINITY else 65536,
                                                    _hard))
except (ImportError, ValueError, OSError):
    pass
_LIVE_PROCS: list = []  # every Popen we started; killed at exit


class Failure(AssertionError):
    pass


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wait_until(cond, timeout: float, what: str, interval: float = 0.02):
    """Polls cond() until it returns a truthy value; raises Failure after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise Failure(f"timed out after {timeout:.1f}s waiting for: {what}")
        time.sleep(interval)


def _pdeathsig():
    """preexec_fn: the child gets SIGKILL when the thread that forked it dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def popen(args, **kw):
    """subprocess.Popen that is killed when the test exits, however it exits."""
    kw.setdefault("preexec_fn", _pdeathsig)
    p = subprocess.Popen(args, **kw)
    _LIVE_PROCS.append(p)
    return p


def _kill_all():
    for p in _LIVE_PROCS:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=5)
            except Exception:
                pass


atexit.register(_kill_all)


def pick_port() -> int:
    """A port that is free now and below the ephemeral range (so outgoing connections never get it)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        lo = 32768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, lo - 12000), lo)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise Failure("no free port found below the ephemeral range")


class Broker:
    """One herald broker process; the data dir survives restarts within a test."""

    def __init__(self, herald: str, workdir: str, name: str = "broker", extra_args=(), env=None,
                 sticky_port: bool = False):
        """sticky_port: listen on one fixed free port (below the kernel's ephemeral range, so that no
        client's own source port can take it while the broker is down) and keep it across restarts,
        so that running clients reconnect to the restarted broker. Otherwise every start binds
        127.0.0.1:0 and the port comes from --port-file."""
        self.herald = herald
        self.sticky_port = pick_port() if sticky_port else None
        self.name = name
        self.dir = os.path.join(workdir, name)
        self.data_dir = os.path.join(self.dir, "data")
        self.port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "herald.log")
        self.extra_args = list(extra_args)
        self.env = env
        self.proc = None
        self.port = None
        self.starts = 0
        os.makedirs(self.data_dir, exist_ok=True)

    # --- lifecycle -------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise Failure(f"{self.name} is not running")
        return f"127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0) -> "Broker":
        if self.running():
            raise Failure(f"{self.name} already running")
        try:
            os.unlink(self.port_file)
        except FileNotFoundError:
            pass
        listen = f"127.0.0.1:{self.sticky_port or 0}"
        args = [self.herald, "serve", "--listen", listen, "--data-dir", self.data_dir,
                "--port-file", self.port_file] + self.extra_args
        self.starts += 1
        with open(self.log_path, "ab") as lf:
            lf.write(f"==== start #{self.starts}: {' '.join(args)}\n".encode())
            lf.flush()
            env = dict(os.environ)
            for k in list(env):
                if k.startswith("HERALD_"):
                    del env[k]  # the test decides every setting
            if self.env:
                env.update(self.env)
            self.proc = popen(args, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        t0 = time.monotonic()

        def port_ready():
            if self.proc.poll() is not None:
                raise Failure(f"{self.name} exited with {self.proc.returncode} during start-up\n{self.log_tail()}")
            try:
                with open(self.port_file) as f:
                    s = f.read().strip()
                return int(s) if s else None
            except (FileNotFoundError, ValueError):
                return None

        self.port = wait_until(port_ready, timeout, f"{self.name} port file {self.port_file}", interval=0.005)
        self.startup_s = time.monotonic() - t0
        log(f"{self.name}: started (pid {self.proc.pid}) on {self.bootstrap} in {self.startup_s * 1000:.0f} ms")
        return self

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL and reap."""
        if not self.running():
            raise Failure(f"{self.name}: kill() but the process is not running (rc={self.proc and self.proc.returncode})")
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=timeout)
        with open(self.log_path, "ab") as lf:
            lf.write(b"==== SIGKILL by test\n")
        self.port = None

    def stop(self, timeout: float = 30.0, expect_rc: int | None = 0) -> int:
        """SIGTERM (clean shutdown); returns the exit code, checking it by default."""
        if not self.running():
            raise Failure(f"{self.name}: stop() but the process is not running (rc={self.proc and self.proc.returncode})")
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stacks = self.dump_stacks()
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise Failure(f"{self.name} did not exit within {timeout}s of SIGTERM\n{stacks}")
        self.port = None
        if expect_rc is not None and rc != expect_rc:
            raise Failure(f"{self.name} exited with {rc} after SIGTERM (expected {expect_rc})\n{self.log_tail()}")
        return rc

    def restart(self, kill: bool = False, timeout: float = 30.0) -> "Broker":
        if self.running():
            self.kill() if kill else self.stop()
        return self.start(timeout=timeout)

    def dump_stacks(self, timeout: float = 60.0) -> str:
        """Every thread's backtrace of the running broker (gdb, if installed); also appended to the log."""
        gdb = shutil.which("gdb")
        if not gdb or not self.running():
            return "(no gdb: no stacks)"
        try:
            cp = subprocess.run([gdb, "-p", str(self.proc.pid), "-batch", "-nx", "-ex", "set pagination off",
                                 "-ex", "thread apply all bt"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                timeout=timeout)
            text = cp.stdout.decode(errors="replace")
        except (subprocess.TimeoutExpired, OSError) as e:
            text = f"(gdb failed: {e})"
        with open(self.log_path, "ab") as lf:
            lf.write(b"==== stacks (gdb, by test)\n" + text.encode() + b"\n")
        lines = [l for l in text.splitlines() if l.startswith(("Thread ", "#"))]
        return "stacks:\n" + "\n".join("  " + l for l in lines[:200])

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def assert_alive(self) -> None:
        if not self.running():
            raise Failure(f"{self.name} died (rc={self.proc.returncode})\n{self.log_tail()}")

    # --- log ---------------------------------------------------------------
    def rss_kib(self) -> int:
        """Resident set size of the running broker, KiB."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise Failure("no VmRSS")

    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        lines = self.log_text().splitlines()
        return "\n".join(f"  | {l}" for l in lines[-n:])

    def wait_log(self, needle: str, timeout: float = 5.0, after: int = 0) -> str:
        """Waits for a log line containing `needle` (at byte offset >= after); returns it."""
        def find():
            text = self.log_text()[after:]
            for line in text.splitlines():
                if needle in line:
                    return line
            return None
        return wait_until(find, timeout, f"{self.name} log line containing {needle!r}")

    def log_size(self) -> int:
        return len(self.log_text())


class Harness:
    def __init__(self, name: str, args):
        self.name = name
        self.args = args
        self.herald = os.path.abspath(args.herald)
        if not os.access(self.herald, os.X_OK):
            raise SystemExit(f"--herald {self.herald}: not an executable")
        self.workdir = tempfile.mkdtemp(prefix=f"herald-integ-{name}-")
        self.brokers: list[Broker] = []
        self.checks = 0
        self.t0 = time.monotonic()
        self.seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
        self.rng = random.Random(self.seed)

    def broker(self, name: str = "broker", extra_args=(), env=None, sticky_port: bool = False) -> Broker:
        b = Broker(self.herald, self.workdir, name, extra_args, env, sticky_port)
        self.brokers.append(b)
        return b

    def path(self, name: str) -> str:
        return os.path.join(self.workdir, name)

    def check(self, cond, what: str, detail: str = "") -> None:
        self.checks += 1
        if not cond:
            raise Failure(f"FAILED: {what}" + (f"\n  {detail}" if detail else ""))
        log(f"ok: {what}")

    def check_eventually(self, cond, timeout: float, what: str, detail=lambda: "") -> None:
        """check() that `cond()` becomes true within `timeout` s; detail() says what was seen instead."""
        try:
            wait_until(cond, timeout, what)
        except Failure:
            self.check(False, what, detail())
        else:
            self.check(True, what)

    def check_eq(self, got, want, what: str) -> None:
        self.check(got == want, f"{what} == {want!r}" if len(repr(want)) < 80 else what,
                   f"got {got!r:.300}, want {want!r:.300}")

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def cleanup(self, ok: bool) -> None:
        for b in self.brokers:
            b.ensure_dead()
        _kill_all()
        if ok and not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            log(f"work dir kept: {self.workdir}")


def setup(name: str, extra_args=None, default_deadline: float = 300.0) -> Harness:
    ap = argparse.ArgumentParser(description=f"Herald integration test: {name}")
    ap.add_argument("--herald", required=True, help="path to the herald binary")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (data dirs, logs) even on success")
    ap.add_argument("--seed", type=int, default=None, help="random seed (printed when not given)")
    ap.add_argument("--deadline", type=float, default=default_deadline,
                    help="whole-test watchdog: kill everything and exit 2 after this many seconds")
    if extra_args:
        extra_args(ap)
    args = ap.parse_args()
    h = Harness(name, args)
    log(f"{name}: herald={h.herald} workdir={h.workdir} seed={h.seed}")
    _start_watchdog(h, args.deadline)
    return h


def _start_watchdog(h: Harness, deadline: float) -> None:
    def fire():
        log(f"WATCHDOG: {h.name} exceeded {deadline:.0f}s; killing brokers and exiting")
        for b in h.brokers:
            if b.proc is not None and b.proc.poll() is None:
                print(b.log_tail(), flush=True)
        for b in h.brokers:
            b.ensure_dead()
        _kill_all()
        sys.stdout.flush()
        os._exit(2)

    t = threading.Timer(deadline, fire)
    t.daemon = True
    t.start()


def main(run, h: Harness) -> None:
    """Runs run(h); prints a verdict; exits 0 on success, 1 on failure."""
    ok = False
    try:
        run(h)
        for b in h.brokers:
            # A broker that died behind the test's back is a failure even if every check passed.
            if b.proc is not None and b.proc.poll() not in (None, 0, -signal.SIGKILL, -signal.SIGTERM):
                raise Failure(f"{b.name} exited with {b.proc.returncode}\n{b.log_tail()}")
        ok = True
    except Failure as e:
        log(str(e))
    except Exception:
        log("ERROR: unexpected exception\n" + traceback.format_exc())
    finally:
        if not ok:
            for b in h.brokers:
                log(f"--- {b.name} log tail ({b.log_path}) ---\n{b.log_tail(60)}")
        h.cleanup(ok)
    verdict = "PASS" if ok else "FAIL"
    log(f"{verdict}: {h.name} ({h.checks} checks, {h.elapsed():.1f}s, seed={h.seed})")
    sys.stdout.flush()
    os._exit(0 if ok else 1)  # no lingering client threads may keep us alive


# --- small helpers shared by tests --------------------------------------------

def run_cmd(args, timeout: float, input_bytes: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Runs a command with a timeout (and our pdeathsig); returns the CompletedProcess."""
    p = popen(args, stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(input=input_bytes, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=10)
        raise Failure(f"command timed out after {timeout}s: {' '.join(args)}\nstderr: {err.decode(errors='replace')[-2000:]}")
    cp = subprocess.CompletedProcess(args, p.returncode, out, err)
    if check and p.returncode != 0:
        raise Failure(f"command failed (rc={p.returncode}): {' '.join(args)}\nstderr: {err.decode(errors='replace')[-2000:]}")
    return cp


def confluent_quiet_logger():
    """A logging.Logger for confluent_kafka clients that keeps librdkafka chatter off stdout
    unless it is a warning or worse."""
    import logging
    lg = logging.getLogger("rdkafka")
    if not lg.handlers:
        hdl = logging.StreamHandler(sys.stdout)
        hdl.setFormatter(logging.Formatter("  rdkafka: %(message)s"))
        lg.addHandler(hdl)
        lg.setLevel(logging.WARNING)
        lg.propagate = False
    return lg


def consume_partition(bootstrap: str, topic: str, partition: int = 0, start: int = 0, end: int | None = None,
                      timeout: float = 60.0, extra_conf=None):
    """Reads [start, end) of one partition with confluent_kafka (assign, no group protocol).
    end=None reads up to the high watermark at the time of the call. Returns a list of Messages."""
    from confluent_kafka import Consumer, TopicPartition, KafkaError
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": "herald-integ-assign",  # required by the client; assign() never joins the group
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 10000,
        "topic.metadata.refresh.interval.ms": 1000,
        "logger": confluent_quiet_logger(),
    }
    conf.update(extra_conf or {})
    c = Consumer(conf)
    try:
        if end is None:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            end = hi
        out = []
        if end <= start:
            return out
        c.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise Failure(f"consume {topic}/{partition} [{start},{end}): timed out after {timeout}s "
                              f"with {len(out)} messages")
            for m in c.consume(num_messages=10000, timeout=0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise Failure(f"consume {topic}/{partition}: {m.error()}")
                if m.offset() < end:
                    out.append(m)
            if out and out[-1].offset() >= end - 1:
                return out
    finally:
        c.close()


def watermarks(bootstrap: str, topic: str, partition: int = 0, timeout: float = 10.0):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "herald-integ-wm", "logger": confluent_quiet_logger()})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
    finally:
        c.close()
