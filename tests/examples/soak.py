#!/usr/bin/python3
"""Soak test of the Users/Billing example.

Two users services (one shared database) take N random changes (change
e-mail, delete; create when the user does not exist) across U users from W
concurrent writers, spread over --write-seconds, while billing is SIGKILLed
and restarted at seeded random moments (each incarnation gets its partitions,
works for 0-2 s, often mid catch-up, and dies), at least K times. At the end billing's replica must equal users' table exactly
(id, name, email, version of every user), which only holds if every event
took effect exactly once and in order, across every crash.

  soak.py --build-dir build [--pg-url-file F] [--seed 42] [--changes 10000]
          [--users 1000] [--kills 10]
"""
import argparse
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "examples", "users-billing"))

import harness  # noqa: E402
from harness import CheckFailed, http, log, wait_until  # noqa: E402


class Writers:
    """W threads sending `changes` random requests to the users instances."""

    def __init__(self, urls, n_users, changes, seed, threads, seconds):
        self.urls = urls
        self.ids = [f"u{i:04d}" for i in range(n_users)]
        self.changes = changes
        self.seed = seed
        self.threads = threads
        self.seconds = seconds  # spread the writes over this long (0: as fast as possible)
        self.done = 0
        self.lock = threading.Lock()
        self.counts = {}
        self.errors = []
        self.finished = threading.Event()

    def _record(self, kind):
        with self.lock:
            self.done += 1
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def _worker(self, idx, quota, start):
        rng = random.Random(self.seed * 1000 + idx)
        for i in range(quota):
            if self.errors:
                return
            if self.seconds:
                delay = start + self.seconds * i / quota - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            uid = rng.choice(self.ids)
            url = rng.choice(self.urls)
            # One effective change per iteration: delete (10%) or change the
            # e-mail (90%); a user that does not exist is created instead.
            if rng.random() < 0.10:
                st, body = http("DELETE", f"{url}/users/{uid}")
                if st == 204:
                    self._record("delete")
                    continue
                if st != 404:
                    self.errors.append(f"delete {uid} via {url}: HTTP {st} {body}")
                    return
            else:
                st, body = http("PUT", f"{url}/users/{uid}/email",
                                {"email": f"{uid}.{rng.randrange(10**9)}@example.org"})
                if st == 200:
                    self._record("email")
                    continue
                if st != 404:
                    self.errors.append(f"email {uid} via {url}: HTTP {st} {body}")
                    return
            st, body = http("POST", f"{url}/users", {
                "id": uid, "name": f"User {uid} #{rng.randrange(1000)}",
                "email": f"{uid}.{rng.randrange(10**9)}@example.com"})
            if st == 201:
                self._record("create")
            elif st == 409:
                self._record("lost race (409)")  # the other writer created it first: no change
            else:
                self.errors.append(f"create {uid} via {url}: HTTP {st} {body}")
                return

    def run(self):
        per = [self.changes // self.threads + (1 if i < self.changes % self.threads else 0)
               for i in range(self.threads)]
        start = time.monotonic()
        ts = [threading.Thread(target=self._worker, args=(i, q, start), daemon=True) for i, q in enumerate(per)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.finished.set()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--pg-url-file")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "20240501")))
    ap.add_argument("--changes", type=int, default=10000)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--kills", type=int, default=10, help="minimum number of billing SIGKILLs")
    ap.add_argument("--max-kills", type=int, default=60)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--write-seconds", type=float, default=70.0,
                    help="spread the writes over this many seconds, so that they overlap the kills")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    harness.install_signal_cleanup()

    rng = random.Random(args.seed)
    log(f"soak: seed {args.seed}, {args.changes} changes across {args.users} users, "
        f">= {args.kills} billing kills, {'PostgreSQL' if args.pg_url_file else 'SQLite'}")
    started = time.monotonic()
    h = harness.Harness(args.build_dir, keep=args.keep)
    pg_url = None
    ok = False
    try:
        if args.pg_url_file:
            with open(args.pg_url_file) as f:
                pg_url = f.read().strip()
        dbs = harness.service_databases(h, ("users", "billing"), pg_url, "soak")

        h.start_broker()
        users = [h.start_service("users", "--db", dbs["users"], name=f"users{i}") for i in (1, 2)]
        billing_args = ("--db", dbs["billing"], "--group", "billing", "--users-url", users[0].url)
        billing = h.start_service("billing", *billing_args, name="billing")
        h.wait_ready(billing, timeout=60)
        writers = Writers([u.url for u in users], args.users, args.changes, args.seed, args.writers,
                          args.write_seconds)
        writer_thread = threading.Thread(target=writers.run, daemon=True)
        writer_thread.start()

        # The killer: each billing incarnation joins the group, gets the
        # partitions, works for a seeded random while (often in the middle of
        # catching up on what piled up while it was down) and is SIGKILLed.
        kills = 0
        while (kills < args.kills or not writers.finished.is_set()) and kills < args.max_kills:
            if writers.errors:
                break

            def assigned():
                if not billing.alive():
                    raise CheckFailed(f"billing exited {billing.popen.returncode}:\n{billing.log_tail()}")
                st, hl = http("GET", billing.url + "/health", timeout=2)
                return st == 200 and hl["partitions"]
            wait_until("billing to get its partitions", assigned, timeout=90, interval=0.05)
            time.sleep(rng.uniform(0.0, 2.0))
            _, health = http("GET", billing.url + "/health", timeout=2)
            info = (f"applied {health['stats']['applied']} events, lag {health['lag']}"
                    if isinstance(health, dict) else "?")
            h.kill(billing)
            kills += 1
            log(f"kill {kills}: SIGKILL billing at {writers.done}/{args.changes} writes ({info})")
            time.sleep(rng.uniform(0.0, 1.0))
            billing = h.start_service("billing", *billing_args, name="billing")
        writer_thread.join(timeout=600)
        if writers.errors:
            raise CheckFailed("writes failed: " + "; ".join(writers.errors[:5]))
        if kills < args.kills:
            raise CheckFailed(f"only {kills} kills")
        log(f"writes done: {writers.done} ({dict(sorted(writers.counts.items()))})")

        # Both users instances publish through one outbox (one relay holds the lease).
        wait_until("users' outbox to drain",
                   lambda: http("GET", users[0].url + "/health")[1].get("outbox_pending") == 0, timeout=120)
        h.wait_ready(billing, timeout=120)

        def project(rows):
            return {r["id"]: (r["name"], r["email"], r["version"]) for r in rows}

        state = {}

        def equal():
            st1, u = http("GET", users[0].url + "/users", timeout=30)
            st2, b = http("GET", billing.url + "/customers", timeout=30)
            if st1 != 200 or st2 != 200:
                return False
            state["users"], state["billing"] = project(u), project(b)
            return state["users"] == state["billing"]
        try:
            wait_until("billing's replica to equal users' table", equal, timeout=120, interval=0.5)
        except CheckFailed:
            u, b = state.get("users", {}), state.get("billing", {})
            missing = sorted(set(u) - set(b))[:10]
            extra = sorted(set(b) - set(u))[:10]
            differ = [(k, u[k], b[k]) for k in sorted(set(u) & set(b)) if u[k] != b[k]][:10]
            raise CheckFailed(f"replica != table: {len(u)} users, {len(b)} customers; missing {missing}; "
                              f"extra {extra}; differ {differ}")
        _, health = http("GET", billing.url + "/health")
        stats = health["stats"]
        if stats["dead_lettered"] != 0:
            raise CheckFailed(f"billing dead-lettered events: {stats}")
        rc = h.terminate(billing)
        if rc != 0:
            raise CheckFailed(f"billing exited {rc} on SIGTERM")
        for u in users:
            rc = h.terminate(u)
            if rc != 0:
                raise CheckFailed(f"{u.name} exited {rc} on SIGTERM")
        log(f"PASS: {kills} SIGKILLs of billing survived; billing's replica equals users' table exactly "
            f"({len(state['users'])} users, same name/email/version) after {writers.done} changes; "
            f"{time.monotonic() - started:.0f}s (seed {args.seed})")
        ok = True
    except BaseException as e:  # noqa: BLE001 - reported, then the children are stopped
        harness.report_failure(e)
    finally:
        h.finish(ok, last=6)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
