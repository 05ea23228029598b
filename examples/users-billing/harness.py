"""Process and HTTP plumbing for the example demos (Users/Billing, order saga) and their tests.

Standard library only (run with /usr/bin/python3). Used by scripts/demo,
scripts/demo-saga and tests/examples/*.py:

    h = Harness(build_dir)              # finds build/herald and build/examples/*
    broker = h.start_broker()           # herald serve --ephemeral on a free port
    users = h.start_service("users", "--db", "users.db")
    status, body = http("POST", users.url + "/users", {"id": "u1", ...})
    h.kill(billing)                     # SIGKILL
    h.cleanup()                         # always: SIGTERM, then SIGKILL, every child
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException


class CheckFailed(Exception):
    """A demo/test check did not hold."""


def http(method, url, body=None, timeout=10.0):
    """One HTTP request. Returns (status, parsed JSON or text or None).
    Connection failures, including a response cut off by a killed server,
    return (None, "<reason>")."""
    data = None
    headers = {}
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        if isinstance(data, str):
            data = data.encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
    except (urllib.error.URLError, HTTPException, OSError) as e:
        return None, f"{type(e).__name__}: {getattr(e, 'reason', e)}"
    if not raw:
        return status, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_until(what, predicate, timeout=30.0, interval=0.1):
    """Polls predicate() until it returns a truthy value; returns it.
    Raises CheckFailed naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = predicate()
        except CheckFailed:
            raise
        except Exception as e:  # noqa: BLE001 - keep polling through transient errors
            last = None
            err = e
        else:
            err = None
        if last:
            return last
        if time.monotonic() >= deadline:
            extra = f" (last error: {err})" if err else ""
            raise CheckFailed(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


class Proc:
    """A child process with a log file and (for services) an HTTP port."""

    def __init__(self, name, argv, popen, log_path, port_file=None):
        self.name = name
        self.argv = argv
        self.popen = popen
        self.log_path = log_path
        self.port_file = port_file
        self.port = None

    @property
    def pid(self):
        return self.popen.pid

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def alive(self):
        return self.popen.poll() is None

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


class Harness:
    def __init__(self, build_dir, work_dir=None, keep=False, verbose_logs=False,
                 services=("users", "billing", "notifications")):
        self.build_dir = os.path.abspath(build_dir)
        self.herald = os.path.join(self.build_dir, "herald")
        self.examples = os.path.join(self.build_dir, "examples")
        for exe in [self.herald] + [os.path.join(self.examples, n) for n in services]:
            if not os.access(exe, os.X_OK):
                raise CheckFailed(f"{exe} is missing: build it first (make build, or cmake --build {build_dir})")
        self.work = work_dir or tempfile.mkdtemp(prefix="herald-demo.")
        os.makedirs(self.work, exist_ok=True)
        self.keep = keep
        self.verbose_logs = verbose_logs
        self.procs = []
        self.broker = None
        self._seq = 0
        self._pg = None  # (cluster URL, databases to drop at cleanup), see service_databases()

    # ---- processes -------------------------------------------------------

    def _spawn(self, name, argv, port_file=None, env=None):
        self._seq += 1
        log_path = os.path.join(self.work, f"{self._seq:02d}-{name}.log")
        log = open(log_path, "w")
        full_env = dict(os.environ)
        full_env.pop("HERALD_BROKERS", None)
        if env:
            full_env.update(env)
        popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=full_env, cwd=self.work, start_new_session=True)
        log.close()
        p = Proc(name, argv, popen, log_path, port_file)
        self.procs.append(p)
        return p

    def _wait_port(self, p, timeout=60.0):
        def ready():
            if not p.alive():
                raise CheckFailed(f"{p.name} exited with status {p.popen.returncode} during start-up:\n"
                                  f"{p.log_tail()}")
            try:
                with open(p.port_file) as f:
                    text = f.read().strip()
                return int(text) if text else None
            except (OSError, ValueError):
                return None
        p.port = wait_until(f"{p.name} to listen", ready, timeout=timeout, interval=0.05)
        return p

    def start_broker(self, extra=()):
        port_file = os.path.join(self.work, "broker.port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        argv = [self.herald, "serve", "--ephemeral", "--listen", "127.0.0.1:0", "--port-file", port_file,
                "--auto-create-topics", "false", *extra]
        self.broker = self._wait_port(self._spawn("broker", argv, port_file))
        return self.broker

    @property
    def brokers(self):
        return self.broker.address

    def start_service(self, kind, *args, name=None, wait_ready=False, timeout=60.0):
        """Starts build/examples/<kind> with --listen 127.0.0.1:0 --brokers <ours> and `args`."""
        name = name or kind
        port_file = os.path.join(self.work, f"{name}.port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        argv = [os.path.join(self.examples, kind), "--listen", "127.0.0.1:0", "--brokers", self.brokers,
                "--port-file", port_file, *args]
        if self.verbose_logs:
            argv += ["--log-level", "debug"]
        p = self._wait_port(self._spawn(name, argv, port_file), timeout=timeout)
        if wait_ready:
            self.wait_ready(p, timeout=timeout)
        return p

    def wait_ready(self, p, timeout=60.0):
        def ready():
            if not p.alive():
                raise CheckFailed(f"{p.name} exited with status {p.popen.returncode}:\n{p.log_tail()}")
            status, _ = http("GET", p.url + "/ready", timeout=5)
            return status == 200
        wait_until(f"{p.name} to be ready (caught up)", ready, timeout=timeout, interval=0.1)

    def kill(self, p):
        """SIGKILL: no goodbye, no flush, no group leave."""
        if p.alive():
            os.kill(p.pid, signal.SIGKILL)
        p.popen.wait(timeout=30)

    def terminate(self, p, timeout=30.0):
        """SIGTERM and wait; returns the exit status (SIGKILL after `timeout`)."""
        if p.alive():
            p.popen.send_signal(signal.SIGTERM)
            try:
                p.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait()
                raise CheckFailed(f"{p.name} did not stop within {timeout:.0f}s of SIGTERM")
        return p.popen.returncode

    def cleanup(self):
        """Stops every child still running (services first, the broker last)."""
        for p in reversed(self.procs):
            if p.alive():
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except OSError:
                    pass
        deadline = time.monotonic() + 10
        for p in reversed(self.procs):
            try:
                p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.popen.wait()
        if not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        if self._pg:
            url, names = self._pg
            for name in names:
                pg_drop_database(url, name)
            self._pg = None

    def finish(self, ok, last=8):
        """End of a test: the tails of the last `last` logs when it failed,
        then cleanup()."""
        if not ok:
            for p in self.procs[-last:]:
                print(f"\n--- last lines of {p.name} (pid {p.pid}, log {p.log_path}) ---", file=sys.stderr)
                print(p.log_tail(25), file=sys.stderr, end="")
        self.cleanup()

    # ---- herald CLI ------------------------------------------------------

    def cli(self, *args, check=True, timeout=60):
        r = subprocess.run([self.herald, *args, "--brokers", self.brokers], capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise CheckFailed(f"herald {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r

    def group_describe(self, group):
        """`herald group describe GROUP --format json --sample 0` parsed."""
        r = self.cli("group", "describe", group, "--format", "json", "--sample", "0")
        return json.loads(r.stdout)

    def group_describe_text(self, group):
        return self.cli("group", "describe", group, "--sample", "0").stdout


# ---- databases -------------------------------------------------------------

def pg_url_for(base_url, dbname):
    """The libpq URL `base_url` with its database replaced by `dbname`."""
    u = urllib.parse.urlsplit(base_url)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + dbname, u.query, u.fragment))


def pg_create_database(base_url, dbname):
    """Creates (after dropping) database `dbname` in the cluster of `base_url`; returns its URL."""
    psql = shutil.which("psql") or "/usr/bin/psql"
    for sql in (f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)', f'CREATE DATABASE "{dbname}"'):
        r = subprocess.run([psql, base_url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise CheckFailed(f"psql {sql!r}: {r.stderr.strip()}")
    return pg_url_for(base_url, dbname)


def service_databases(h, services, pg_url=None, prefix="demo"):
    """One database per service: a SQLite file in the work dir, or (with
    pg_url) a fresh PostgreSQL database in that cluster, dropped by
    h.cleanup(). Returns service -> path or URL."""
    if not pg_url:
        return {svc: os.path.join(h.work, f"{svc}.db") for svc in services}
    dbs, names = {}, []
    h._pg = (pg_url, names)
    for svc in services:
        name = f"{prefix}_{svc}_{os.getpid()}"
        names.append(name)
        dbs[svc] = pg_create_database(pg_url, name)
    return dbs


def report_failure(e):
    """Logs why a test stopped: a failed check, an interruption, or a bug (traceback)."""
    if isinstance(e, CheckFailed):
        log(f"FAIL: {e}")
    elif isinstance(e, SystemExit):
        log(f"interrupted ({e.code})")
    else:
        traceback.print_exception(type(e), e, e.__traceback__)


def log(msg):
    """A timestamped progress line (tests)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pg_drop_database(base_url, dbname):
    psql = shutil.which("psql") or "/usr/bin/psql"
    subprocess.run([psql, base_url, "-q", "-c", f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'],
                   capture_output=True, text=True, timeout=60)


def default_build_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "build"))


def install_signal_cleanup():
    """SIGTERM/SIGINT/SIGHUP -> SystemExit so that `finally: cleanup()` runs."""
    def handler(signum, _frame):
        raise SystemExit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, handler)
