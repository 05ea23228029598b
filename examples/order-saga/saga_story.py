"""The order saga story, step by step, with a check at each step.

Run by scripts/demo-saga (`make demo-saga`) and by the end-to-end tests
(tests/examples). Uses the process harness of examples/users-billing.
"""

import json

from harness import CheckFailed, http, wait_until  # noqa: F401 - CheckFailed re-exported for callers
from story import expect  # examples/users-billing/story.py

SERVICES = ("orders", "payments", "inventory")


class Shop:
    """The three services of one run, restartable by name."""

    def __init__(self, h, dbs, step_timeout_ms):
        self.h = h
        self.dbs = dbs
        self.step_timeout_ms = step_timeout_ms
        self.procs = {}

    def start(self, svc, wait_ready=True):
        args = ["--db", self.dbs[svc], "--instance-id", f"{svc}-1"]
        if svc == "orders":
            args += ["--step-timeout-ms", str(self.step_timeout_ms)]
        self.procs[svc] = self.h.start_service(svc, *args, wait_ready=wait_ready)
        return self.procs[svc]

    def url(self, svc):
        return self.procs[svc].url

    def kill(self, svc):
        self.h.kill(self.procs[svc])

    def order(self, customer, item, quantity, amount, order_id=None):
        body = {"customer_id": customer, "item": item, "quantity": quantity, "amount_cents": amount}
        if order_id:
            body["id"] = order_id
        status, resp = http("POST", self.url("orders") + "/orders", body)
        if status != 202:
            raise CheckFailed(f"POST /orders: HTTP {status} {resp}")
        return resp["id"]

    def get(self, svc, path):
        status, body = http("GET", self.url(svc) + path)
        if status != 200:
            raise CheckFailed(f"GET {svc}{path}: HTTP {status} {body}")
        return body

    def wait_final(self, order_id, timeout=60):
        def final():
            o = self.get("orders", f"/orders/{order_id}")
            return o if o["state"] != "PENDING" else None
        return wait_until(f"order {order_id} to leave PENDING", final, timeout=timeout)

    def audit(self, credit0, stock0):
        """Checks the cross-service invariants; returns a one-line summary.
        credit0 / stock0: initial credit per customer / stock per item."""
        orders = {o["id"]: o for o in self.get("orders", "/orders")}
        customers = {c["id"]: c for c in self.get("payments", "/customers")}
        items = {i["id"]: i for i in self.get("inventory", "/items")}
        credit_res = self.get("payments", "/reservations")
        stock_res = self.get("inventory", "/reservations")
        problems = []
        for name, res in (("credit", credit_res), ("stock", stock_res)):
            ids = [r["order_id"] for r in res]
            if len(ids) != len(set(ids)):
                problems.append(f"an order holds two {name} reservations")
            for r in res:
                o = orders.get(r["order_id"])
                if o is None or o["state"] != "APPROVED":
                    problems.append(f"{name} reservation of order {r['order_id']} in state "
                                    f"{o['state'] if o else 'unknown'}")
        by_order_credit = {r["order_id"]: r for r in credit_res}
        by_order_stock = {r["order_id"]: r for r in stock_res}
        for o in orders.values():
            if o["state"] != "APPROVED":
                continue
            c, s = by_order_credit.get(o["id"]), by_order_stock.get(o["id"])
            if not c or c["amount"] != o["amount_cents"] or c["account_id"] != o["customer_id"]:
                problems.append(f"approved order {o['id']} lacks its credit reservation")
            if not s or s["amount"] != o["quantity"] or s["account_id"] != o["item"]:
                problems.append(f"approved order {o['id']} lacks its stock reservation")
        for cid, c0 in credit0.items():
            c = customers[cid]
            held = sum(r["amount"] for r in credit_res if r["account_id"] == cid)
            if c["credit_cents"] + c["reserved_cents"] != c0 or c["reserved_cents"] != held:
                problems.append(f"customer {cid}: credit {c['credit_cents']} + reserved {c['reserved_cents']} "
                                f"(reservations {held}) != {c0}")
        for iid, s0 in stock0.items():
            i = items[iid]
            held = sum(r["amount"] for r in stock_res if r["account_id"] == iid)
            if i["stock"] + i["reserved"] != s0 or i["reserved"] != held:
                problems.append(f"item {iid}: stock {i['stock']} + reserved {i['reserved']} (reservations {held}) "
                                f"!= {s0}")
        if problems:
            raise CheckFailed("; ".join(problems[:10]))
        states = {}
        for o in orders.values():
            states[o["state"]] = states.get(o["state"], 0) + 1
        return (f"{len(orders)} orders {states}; {len(credit_res)} credit and {len(stock_res)} stock reservations; "
                f"credit and stock conserved")


def saga_history(h, saga_id):
    r = h.cli("saga", "show", saga_id)
    return r.stdout


def saga_rows(h):
    """saga id -> its row of `herald saga list --json`."""
    r = h.cli("saga", "list", "--json")
    return {j["saga_id"]: j for j in map(json.loads, r.stdout.splitlines())}


def saga_states(h):
    """saga id -> state, from `herald saga list --json`."""
    return {sid: j["state"] for sid, j in saga_rows(h).items()}


def run(n, h, dbs, pause=0.0):
    """The whole story; raises CheckFailed at the first check that does not hold."""
    import time

    def breathe():
        if pause:
            time.sleep(pause)

    n.step("Start a Herald broker and the three services")
    h.start_broker()
    shop = Shop(h, dbs, step_timeout_ms=3000)
    for svc in ("payments", "inventory", "orders"):
        p = shop.start(svc)
        n.say(f"{svc:<9} {p.url}  (db {dbs[svc]})")
    n.check(True, "orders, payments and inventory are ready (each caught up with its topic)")
    credit0 = {"alice": 1000, "bob": 100000}
    stock0 = {"widget": 5, "gadget": 1000}
    for cid, credit in credit0.items():
        expect(n, *http("POST", shop.url("payments") + "/customers", {"id": cid, "credit_cents": credit}), 201,
               f"payments: customer {cid} with {credit} cents of credit")
    for iid, stock in stock0.items():
        expect(n, *http("POST", shop.url("inventory") + "/items", {"id": iid, "stock": stock}), 201,
               f"inventory: item {iid} with {stock} in stock")
    breathe()

    n.step("An order that every service accepts")
    n.say("orders stores the order as PENDING and starts the saga in one transaction:")
    n.say("reserve credit (payments), then reserve stock (inventory), then approve.")
    a = shop.order("alice", "widget", 2, 300)
    o = shop.wait_final(a)
    n.check(o["state"] == "APPROVED" and o["reason"] == "", f"order {a[:8]}.. is APPROVED", o)
    alice = shop.get("payments", "/customers/alice")
    widget = shop.get("inventory", "/items/widget")
    n.check(alice == {"id": "alice", "credit_cents": 700, "reserved_cents": 300},
            "payments: 300 of alice's credit is reserved", alice)
    n.check(widget == {"id": "widget", "stock": 3, "reserved": 2}, "inventory: 2 widgets are reserved", widget)
    n.say(f"$ herald saga show {a}")
    n.show(saga_history(h, a))
    breathe()

    n.step("Refused at the first step: not enough credit")
    b = shop.order("alice", "widget", 1, 5000)
    o = shop.wait_final(b)
    n.check(o["state"] == "REJECTED" and "insufficient credit" in o["reason"],
            f"order {b[:8]}.. is REJECTED: {o['reason']}", o)
    n.check(shop.get("payments", "/customers/alice")["credit_cents"] == 700, "alice's credit is unchanged")
    breathe()

    n.step("Refused at the second step: the credit reservation is compensated")
    c = shop.order("alice", "widget", 10, 100)
    o = shop.wait_final(c)
    n.check(o["state"] == "REJECTED" and "insufficient stock" in o["reason"],
            f"order {c[:8]}.. is REJECTED: {o['reason']}", o)
    alice = shop.get("payments", "/customers/alice")
    n.check(alice == {"id": "alice", "credit_cents": 700, "reserved_cents": 300},
            "payments released the 100 cents it had reserved for it (release_credit)", alice)
    history = saga_history(h, c)
    n.say(f"$ herald saga show {c}")
    n.show(history)
    n.check("step_compensated" in history and "compensated" in history.split("\n")[-2],
            "the saga's history shows the compensation and ends compensated")
    breathe()

    n.step("The orchestrator crashes mid-saga (SIGKILL) and resumes")
    batch = [shop.order("bob", "gadget", 1, 100) for _ in range(10)]
    shop.kill("orders")
    n.say(f"10 orders posted; orders SIGKILLed at once. Restarting it on the same database...")
    shop.start("orders")
    finals = [shop.wait_final(x) for x in batch]
    n.check(all(f["state"] == "APPROVED" for f in finals), "all 10 sagas finished: APPROVED",
            [f["state"] for f in finals])
    n.check(len([r for r in shop.get("payments", "/reservations") if r["order_id"] in batch]) == 10,
            "payments holds exactly one credit reservation per order")
    n.check(len([r for r in shop.get("inventory", "/reservations") if r["order_id"] in batch]) == 10,
            "inventory holds exactly one stock reservation per order")
    breathe()

    n.step("A participant is down: the step times out and is compensated when it returns")
    shop.kill("inventory")
    d = shop.order("bob", "gadget", 3, 500)
    n.say(f"inventory is down; order {d[:8]}.. waits for its stock reservation (step timeout 3 s)")

    def waiting_for_stock():
        row = saga_rows(h).get(d) or {}
        return row if row.get("step_name") == "reserve_stock" else None
    row = wait_until("`herald saga list` to show the saga waiting for reserve_stock", waiting_for_stock, timeout=10)
    n.check((row["state"], row["step"]) == ("running", 1),
            "`herald saga list`: running, waiting for step 1 reserve_stock", row)
    wait_until("the saga to time out and compensate",
               lambda: saga_states(h).get(d) == "compensating", timeout=30)
    n.check(shop.get("orders", f"/orders/{d}")["state"] == "PENDING",
            "after the timeout the saga is compensating; the order stays PENDING until that is done")
    shop.start("inventory")
    o = shop.wait_final(d)
    n.check(o["state"] == "REJECTED" and "timed out" in o["reason"], f"order {d[:8]}.. is REJECTED: {o['reason']}", o)
    n.check(not [r for r in shop.get("inventory", "/reservations") if r["order_id"] == d],
            "inventory handled the late command, then its compensation: no stock reserved for it")
    n.check(not [r for r in shop.get("payments", "/reservations") if r["order_id"] == d],
            "payments released the credit")
    breathe()

    n.step("A participant crashes mid-saga (SIGKILL): its commands are handled exactly once")
    batch = [shop.order("bob", "gadget", 2, 50) for _ in range(20)]
    shop.kill("payments")
    n.say("20 orders posted; payments SIGKILLed at once. Restarting it...")
    shop.start("payments")
    finals = [shop.wait_final(x) for x in batch]
    n.check(all(f["state"] == "APPROVED" for f in finals), "all 20 orders APPROVED")
    res = [r for r in shop.get("payments", "/reservations") if r["order_id"] in batch]
    n.check(len(res) == 20 and all(r["amount"] == 50 for r in res), "one credit reservation of 50 cents per order")
    breathe()

    n.step("Across the three databases")
    summary = shop.audit(credit0, stock0)
    n.check(True, summary)
    states = saga_states(h)
    orders = shop.get("orders", "/orders")
    want = {"APPROVED": "completed", "REJECTED": "compensated"}
    n.check(all(states.get(o["id"]) == want[o["state"]] for o in orders),
            f"`herald saga list` shows {len(states)} sagas, each completed or compensated like its order")
