#!/usr/bin/python3
"""Crash test of the order saga: the orchestrator (orders) is SIGKILLed at
seeded random moments, at least K times, while N sagas run; payments is
SIGKILLed too, a few times.

Orders are posted by a client thread with ids it chooses, so a POST cut off
by a kill is simply retried (202 the first time, 409 once it committed).
Some orders are refused (not enough credit or stock), so compensations run
across the kills as well. At the end every order must be APPROVED or
REJECTED, and across the three databases:
  - an approved order has exactly one credit and one stock reservation, of
    its amount and quantity; a rejected order has none;
  - per customer, credit + reserved is what it started with and reserved is
    the sum of its reservations (the same for item stock);
  - `herald saga list` shows every saga completed or compensated as its order.

  saga_crash.py --build-dir build [--pg-url-file F] [--seed 7] [--sagas 200] [--kills 20]
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
sys.path.insert(0, os.path.join(ROOT, "examples", "order-saga"))

import harness  # noqa: E402
import saga_story  # noqa: E402
from harness import CheckFailed, http, log, wait_until  # noqa: E402


class Client:
    """Posts `n` orders, spread over `seconds`, retrying each until it is taken."""

    def __init__(self, shop, n, seed, seconds, customers, items):
        self.shop = shop
        self.n = n
        self.rng = random.Random(seed)
        self.seconds = seconds
        self.customers = customers
        self.items = items
        self.posted = []
        self.retries = 0
        self.error = None
        self.finished = threading.Event()

    def run(self):
        try:
            for i in range(self.n):
                oid = f"o{i:04d}"
                body = {"id": oid, "customer_id": self.rng.choice(self.customers), "item": self.rng.choice(self.items),
                        "quantity": self.rng.randint(1, 4), "amount_cents": self.rng.randint(100, 2500)}
                deadline = time.monotonic() + 120
                while True:
                    try:
                        url = self.shop.url("orders")
                    except KeyError:
                        url = None
                    status, resp = http("POST", url + "/orders", body, timeout=5) if url else (None, "not started")
                    if status in (202, 409):
                        break
                    if status is not None and status < 500:
                        raise CheckFailed(f"POST /orders {oid}: HTTP {status} {resp}")
                    if time.monotonic() > deadline:
                        raise CheckFailed(f"POST /orders {oid}: no answer for 120 s ({resp})")
                    self.retries += 1
                    time.sleep(0.05)
                self.posted.append(oid)
                time.sleep(self.seconds / self.n)
        except Exception as e:  # noqa: BLE001
            self.error = e
        finally:
            self.finished.set()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--pg-url-file", help="PostgreSQL: one database per service in this cluster")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sagas", type=int, default=200)
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs of orders, at least")
    ap.add_argument("--participant-kills", type=int, default=3, help="SIGKILLs of payments")
    ap.add_argument("--seconds", type=float, default=25.0, help="spread the orders over this long")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    harness.install_signal_cleanup()

    rng = random.Random(args.seed)
    log(f"saga crash: seed {args.seed}, {args.sagas} sagas, >= {args.kills} orchestrator kills, "
        f"{args.participant_kills} payments kills, {'PostgreSQL' if args.pg_url_file else 'SQLite'}")
    started = time.monotonic()
    h = harness.Harness(args.build_dir, keep=args.keep, services=saga_story.SERVICES)
    pg_url = None
    ok = False
    try:
        if args.pg_url_file:
            with open(args.pg_url_file) as f:
                pg_url = f.read().strip()
        dbs = harness.service_databases(h, saga_story.SERVICES, pg_url, "sagacrash")

        h.start_broker()
        # A step timeout well above a restart, so that outcomes depend on the
        # participants' answers, not on how long the orchestrator was down.
        shop = saga_story.Shop(h, dbs, step_timeout_ms=60000)
        for svc in ("payments", "inventory", "orders"):
            shop.start(svc)
        credit0 = {f"c{i}": rng.randint(5000, 30000) for i in range(5)}
        stock0 = {f"i{i}": rng.randint(40, 120) for i in range(3)}
        for cid, credit in credit0.items():
            st, body = http("POST", shop.url("payments") + "/customers", {"id": cid, "credit_cents": credit})
            if st != 201:
                raise CheckFailed(f"create customer: HTTP {st} {body}")
        for iid, stock in stock0.items():
            st, body = http("POST", shop.url("inventory") + "/items", {"id": iid, "stock": stock})
            if st != 201:
                raise CheckFailed(f"create item: HTTP {st} {body}")

        client = Client(shop, args.sagas, args.seed, args.seconds, sorted(credit0), sorted(stock0))
        threading.Thread(target=client.run, daemon=True).start()
        kills = participant_kills = 0
        participant_every = max(1, args.kills // max(1, args.participant_kills))
        while kills < args.kills or not client.finished.is_set():
            if client.error:
                break
            time.sleep(rng.uniform(0.2, 1.5))
            orders_health = http("GET", shop.url("orders") + "/health", timeout=2)[1]
            pending = orders_health.get("outbox_pending") if isinstance(orders_health, dict) else "?"
            shop.kill("orders")
            kills += 1
            log(f"kill {kills}: SIGKILL orders after {len(client.posted)}/{args.sagas} orders (outbox {pending})")
            if participant_kills < args.participant_kills and kills % participant_every == 0:
                shop.kill("payments")
                participant_kills += 1
                log(f"  and SIGKILL payments ({participant_kills})")
                shop.start("payments", wait_ready=False)
            time.sleep(rng.uniform(0.0, 0.5))
            shop.start("orders", wait_ready=False)
        if client.error:
            raise CheckFailed(f"client: {client.error}")
        log(f"{len(client.posted)} orders posted ({client.retries} POST retries around kills); "
            f"{kills} orchestrator and {participant_kills} payments kills")

        def all_final():
            st, orders = http("GET", shop.url("orders") + "/orders?state=PENDING", timeout=10)
            return st == 200 and not orders
        try:
            wait_until("every saga to finish", all_final, timeout=180, interval=0.5)
        except CheckFailed:
            pending = http("GET", shop.url("orders") + "/orders?state=PENDING")[1]
            raise CheckFailed(f"{len(pending)} orders still PENDING, e.g. {pending[:3]}")
        orders = shop.get("orders", "/orders")
        if sorted(o["id"] for o in orders) != sorted(client.posted):
            raise CheckFailed(f"{len(orders)} orders stored, {len(client.posted)} posted")
        summary = shop.audit(credit0, stock0)
        states = saga_story.saga_states(h)
        want = {"APPROVED": "completed", "REJECTED": "compensated"}
        wrong = [(o["id"], o["state"], states.get(o["id"])) for o in orders if states.get(o["id"]) != want[o["state"]]]
        if wrong or len(states) != len(orders):
            raise CheckFailed(f"herald saga list disagrees ({len(states)} sagas): {wrong[:5]}")
        rejected = [o for o in orders if o["state"] == "REJECTED"]
        compensated = [o for o in rejected if "stock" in o["reason"]]
        if not rejected or not compensated:
            raise CheckFailed(f"the run exercised no compensation ({len(rejected)} rejected); change --seed")
        for svc in ("orders", "payments", "inventory"):
            rc = h.terminate(shop.procs[svc])
            if rc != 0:
                raise CheckFailed(f"{svc} exited {rc} on SIGTERM")
        log(f"PASS: {kills} SIGKILLs of the orchestrator and {participant_kills} of payments during "
            f"{len(orders)} sagas: {summary}; {len(compensated)} of the rejections compensated a credit "
            f"reservation; {time.monotonic() - started:.0f}s (seed {args.seed})")
        ok = True
    except BaseException as e:  # noqa: BLE001 - reported, then the children are stopped
        harness.report_failure(e)
    finally:
        h.finish(ok, last=8)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
