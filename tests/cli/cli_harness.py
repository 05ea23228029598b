"""Harness for the `herald` CLI tests: a real broker process and the real CLI.

Each test is a standalone script run as
    /usr/bin/python3 tests/cli/<x>.py --herald build/herald [--keep]
(/usr/bin/python3 is the interpreter with confluent_kafka and kafka-python).

    h = cli_harness.setup("topic")       # parses args, starts the broker, arms the watchdog
    r = h.cli("topic", "list")           # runs `herald topic list --brokers ...`; r.rc, r.out, r.err
    h.ok(r)                              # asserts exit 0 (prints the command and stderr otherwise)
    h.check(cond, "what was checked")    # prints "ok: ..." or raises Failure
    cli_harness.main(h, run)             # runs run(h); exit 0 / 1 with the broker log tail

The broker is `herald serve --listen 127.0.0.1:0 --ephemeral --port-file F`;
it is killed when the test ends however it ends (atexit, PR_SET_PDEATHSIG and a
watchdog that kills everything if the test overruns --deadline seconds).
"""
from __future__ import annotations

import argparse
import atexit
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

_PROCS: list = []


class Failure(AssertionError):
    pass


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _pdeathsig():
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def popen(args, **kw):
    kw.setdefault("preexec_fn", _pdeathsig)
    p = subprocess.Popen(args, **kw)
    _PROCS.append(p)
    return p


def _kill_all():
    for p in _PROCS:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=5)
            except Exception:
                pass


atexit.register(_kill_all)


def wait_until(cond, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise Failure(f"timed out after {timeout:.1f}s waiting for: {what}")
        time.sleep(interval)


class Result:
    def __init__(self, args, rc, out, err):
        self.args, self.rc, self.out, self.err = args, rc, out, err

    def lines(self):
        return [l for l in self.out.split("\n") if l != ""]

    def json(self):
        return json.loads(self.out)

    def json_lines(self):
        return [json.loads(l) for l in self.lines()]

    def __repr__(self):
        return f"$ {' '.join(self.args)}\n-> exit {self.rc}\nstdout:\n{self.out}\nstderr:\n{self.err}"


class Harness:
    def __init__(self, name: str, args):
        self.name = name
        self.herald = os.path.abspath(args.herald)
        self.keep = args.keep
        self.workdir = tempfile.mkdtemp(prefix=f"herald-cli-{name}-")
        self.broker_proc = None
        self.broker_log = os.path.join(self.workdir, "broker.log")
        self.bootstrap = None
        self.checks = 0

    # --- broker ----------------------------------------------------------
    def start_broker(self, *extra, env=None):
        port_file = os.path.join(self.workdir, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        logf = open(self.broker_log, "ab")
        self.broker_proc = popen([self.herald, "serve", "--listen", "127.0.0.1:0", "--ephemeral",
                                  "--port-file", port_file, *extra],
                                 stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env={**os.environ, **(env or {})})

        def port():
            if self.broker_proc.poll() is not None:
                raise Failure(f"broker exited with {self.broker_proc.returncode} at start")
            try:
                with open(port_file) as f:
                    return int(f.read().strip() or 0)
            except (OSError, ValueError):
                return 0

        self.bootstrap = f"127.0.0.1:{wait_until(port, 20, 'broker port file')}"
        log(f"broker listening on {self.bootstrap}")

    def stop_broker(self):
        if self.broker_proc and self.broker_proc.poll() is None:
            self.broker_proc.send_signal(signal.SIGTERM)
            try:
                self.broker_proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.broker_proc.kill()

    # --- the CLI ---------------------------------------------------------
    def cli(self, *args, input=None, timeout=60, brokers=True, env=None):
        """Runs `herald ARGS --brokers BOOTSTRAP`; returns a Result (never raises on non-zero exit)."""
        argv = [self.herald, *args]
        if brokers:
            argv += ["--brokers", self.bootstrap]
        e = dict(os.environ)
        e.pop("HERALD_BROKERS", None)
        if env:
            e.update(env)
        if isinstance(input, str):
            input = input.encode()
        p = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=e,
                           preexec_fn=_pdeathsig)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        return Result([os.path.basename(self.herald), *args], p.returncode, out, err)

    def ok(self, r: Result, what: str = "") -> Result:
        if r.rc != 0:
            raise Failure(f"command failed{': ' + what if what else ''}\n{r!r}")
        return r

    def fails(self, r: Result, needle: str = "", rc=None) -> Result:
        if r.rc == 0 or (rc is not None and r.rc != rc):
            raise Failure(f"expected exit {rc if rc is not None else 'non-zero'}\n{r!r}")
        if needle and needle.lower() not in r.err.lower():
            raise Failure(f"expected stderr to mention {needle!r}\n{r!r}")
        return r

    def check(self, cond, what: str, detail=None):
        self.checks += 1
        if not cond:
            raise Failure(f"check failed: {what}" + (f"\n{detail}" if detail is not None else ""))
        print(f"ok: {what}", flush=True)

    def eq(self, got, want, what: str):
        self.check(got == want, what, f"got:  {got!r}\nwant: {want!r}")

    # --- clients ---------------------------------------------------------
    def producer(self, **conf):
        from confluent_kafka import Producer
        return Producer({"bootstrap.servers": self.bootstrap, **conf})

    def produce(self, topic, records):
        """records: iterable of dicts(value, key=None, partition=None, timestamp=None, headers=None)."""
        p = self.producer(**{"enable.idempotence": True})
        errors = []
        for r in records:
            kw = {k: v for k, v in r.items() if v is not None and k != "value"}
            p.produce(topic, value=r.get("value"), on_delivery=lambda e, m: e and errors.append(e), **kw)
        p.flush(30)
        if errors:
            raise Failure(f"produce failed: {errors[:3]}")

    def consumer(self, group, **conf):
        from confluent_kafka import Consumer
        return Consumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, **conf})


def setup(name: str, *broker_args) -> Harness:
    ap = argparse.ArgumentParser()
    ap.add_argument("--herald", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--deadline", type=float, default=170.0, help="watchdog: seconds before killing everything")
    args = ap.parse_args()
    h = Harness(name, args)

    def watchdog():
        time.sleep(args.deadline)
        print(f"WATCHDOG: test {name} overran {args.deadline}s; killing", flush=True)
        _print_log_tail(h)
        _kill_all()
        os._exit(2)

    threading.Thread(target=watchdog, daemon=True).start()
    h.start_broker(*broker_args)
    return h


def _print_log_tail(h: Harness, n: int = 40):
    try:
        with open(h.broker_log, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()[-n:]
        print("---- broker log (tail) ----\n" + "\n".join(lines) + "\n---------------------------", flush=True)
    except OSError:
        pass


def main(h: Harness, run) -> None:
    start = time.monotonic()
    code = 0
    try:
        run(h)
        log(f"PASS {h.name}: {h.checks} checks in {time.monotonic() - start:.1f}s")
    except Exception:
        traceback.print_exc()
        _print_log_tail(h)
        log(f"FAIL {h.name}")
        code = 1
    finally:
        h.stop_broker()
        _kill_all()
        if not h.keep:
            shutil.rmtree(h.workdir, ignore_errors=True)
        else:
            log(f"kept {h.workdir}")
    sys.exit(code)
