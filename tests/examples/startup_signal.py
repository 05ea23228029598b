#!/usr/bin/python3
"""SIGTERM during start-up: every example service started against a broker
address where nothing listens blocks in its start-up (creating its topics,
retried for up to a minute). A SIGTERM then must end it at once: exit status
0 within a few seconds, with a log line that says so.

  startup_signal.py --build-dir build
"""
import argparse
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "examples", "users-billing"))

import harness  # noqa: E402
from harness import CheckFailed, log  # noqa: E402

SERVICES = ("users", "billing", "notifications", "orders", "payments", "inventory")


def closed_port():
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    harness.install_signal_cleanup()
    h = harness.Harness(args.build_dir, keep=args.keep, services=SERVICES)
    brokers = f"127.0.0.1:{closed_port()}"
    ok = False
    try:
        procs = []
        for svc in SERVICES:
            argv = [os.path.join(h.examples, svc), "--listen", "127.0.0.1:0", "--brokers", brokers,
                    "--db", os.path.join(h.work, f"{svc}.db")]
            procs.append(h._spawn(svc, argv))
        time.sleep(2.0)
        for p in procs:
            if not p.alive():
                raise CheckFailed(f"{p.name} exited ({p.popen.returncode}) before the signal:\n{p.log_tail()}")
        for p in procs:
            t0 = time.monotonic()
            rc = h.terminate(p, timeout=5.0)
            took = time.monotonic() - t0
            with open(p.log_path, errors="replace") as f:
                text = f.read()
            if rc != 0 or "during start-up: exiting" not in text:
                raise CheckFailed(f"{p.name}: exit status {rc} after SIGTERM during start-up:\n{p.log_tail()}")
            log(f"ok: {p.name} blocked in start-up (no broker at {brokers}) exited 0 {took * 1000:.0f} ms "
                f"after SIGTERM")
        ok = True
    except CheckFailed as e:
        harness.report_failure(e)
    finally:
        h.finish(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
