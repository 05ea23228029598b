"""The Users/Billing catch-up story, step by step, with a check at each step.

Run by scripts/demo (`make demo`) and by the end-to-end tests
(tests/examples). Every step narrates what it does and what it checks; the
first check that does not hold raises CheckFailed.
"""

import sys
import time

from harness import CheckFailed, http, wait_until


class Narrator:
    def __init__(self, out=sys.stdout, color=None):
        self.out = out
        self.color = out.isatty() if color is None else color
        self.step_no = 0
        self.checks = 0

    def _c(self, code, text):
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def step(self, title):
        self.step_no += 1
        print(file=self.out)
        print(self._c("1;34", f"== {self.step_no}. {title}"), file=self.out)
        self.out.flush()

    def say(self, text):
        for line in text.rstrip("\n").split("\n"):
            print(f"   {line}", file=self.out)
        self.out.flush()

    def show(self, text):
        for line in text.rstrip("\n").split("\n"):
            print(self._c("2", f"   | {line}"), file=self.out)
        self.out.flush()

    def check(self, cond, what, detail=""):
        if not cond:
            print(self._c("1;31", f"   [FAIL] {what}") + (f": {detail}" if detail else ""), file=self.out)
            self.out.flush()
            raise CheckFailed(f"{what}{': ' + str(detail) if detail else ''}")
        self.checks += 1
        print(self._c("32", f"   [ok] {what}"), file=self.out)
        self.out.flush()


def expect(n, status, body, want, what):
    n.check(status == want, what, f"HTTP {status} {body}")
    return body


def group_lag(h, group):
    """(per-partition lag {p: lag}, description) from `herald group describe`.
    A partition without a committed offset counts from 0."""
    d = h.group_describe(group)
    lags = {}
    for p in d.get("partitions", []):
        if p["topic"] != "users":
            continue
        committed = p["committed"] if p["committed"] is not None else 0
        lags[p["partition"]] = p["log_end"] - committed
    return lags, d


def wait_published(h, users, n, timeout=30):
    """Until users' outbox is empty (every event is on the broker)."""
    def empty():
        status, body = http("GET", users.url + "/health")
        return status == 200 and body.get("outbox_pending") == 0
    wait_until("users' outbox to drain", empty, timeout=timeout)


def same_users(a, b):
    key = lambda u: (u["id"], u["name"], u["email"], u["version"])  # noqa: E731
    return sorted(map(key, a)) == sorted(map(key, b))


def run(h, dbs, n, pause=0.0):
    """The whole story. `dbs`: {"users": url, "billing": url, "notifications": url}."""
    def breathe():
        if pause:
            time.sleep(pause)

    # ------------------------------------------------------------------
    n.step("Start a Herald broker, the users service and the billing service")
    broker = h.start_broker()
    n.say(f"herald serve --ephemeral        -> Kafka protocol on {broker.address} (temporary data dir)")
    users = h.start_service("users", "--db", dbs["users"])
    n.say(f"users   --db {dbs['users']:<28} -> {users.url}")
    billing = h.start_service("billing", "--db", dbs["billing"], "--group", "billing", "--users-url", users.url,
                              "--client-id", "billing-1")
    n.say(f"billing --db {dbs['billing']:<28} -> {billing.url}   (consumer group 'billing')")
    h.wait_ready(billing)
    st, health = http("GET", billing.url + "/health")
    n.check(st == 200 and len(health["partitions"]) == 3,
            "billing is ready and holds all 3 partitions of the compacted topic 'users'", health)
    breathe()

    # ------------------------------------------------------------------
    n.step("Create users (each change: users' table + outbox row in ONE local transaction)")
    # Two users per partition of the 3 (librdkafka's default partitioner:
    # CRC32(key) % 3), so every partition has events before billing goes down.
    people = [("alice", "Alice Liddell", "alice@example.com"),
              ("bob", "Bob Marley", "bob@old.example.com"),
              ("erin", "Erin Brockovich", "erin@example.com"),
              ("judy", "Judy Hopps", "judy@example.com"),
              ("mallory", "Mallory Knox", "mallory@example.com"),
              ("trent", "Trent Reznor", "trent@example.com")]
    for uid, name, email in people:
        st, body = http("POST", users.url + "/users", {"id": uid, "name": name, "email": email})
        expect(n, st, body, 201, f"POST /users {uid} <{email}> -> 201")
    st, body = http("POST", users.url + "/users", {"id": "alice", "name": "Alice Again", "email": "a@example.com"})
    expect(n, st, body, 409, "POST /users alice again -> 409 (the id exists)")
    st, body = http("POST", users.url + "/users", {"id": "zed", "name": "Zed", "email": "not-an-email"})
    n.check(st == 400 and "error" in body, "POST /users with an invalid e-mail -> 400 with a JSON error", body)
    st, body = http("POST", users.url + "/users", "{not json")
    n.check(st == 400 and "error" in body, "POST /users with bad JSON -> 400 with a JSON error", body)

    def billing_has_all():
        for uid, _, email in people:
            st, body = http("GET", f"{billing.url}/customers/{uid}")
            if st != 200 or body["email"] != email:
                return False
        return True
    wait_until("billing's replica to have every user", billing_has_all, timeout=30)
    n.check(True, "billing's replica has all 6 customers (GET /customers/{id} on billing)")
    st, bob0 = http("GET", billing.url + "/customers/bob")
    n.check(st == 200 and bob0["updated_partition"] >= 0 and bob0["updated_offset"] >= 0,
            f"bob's row records where its last change is in the users topic "
            f"(partition {bob0.get('updated_partition')}, offset {bob0.get('updated_offset')})", bob0)
    st, inv = http("POST", billing.url + "/invoices", {"user_id": "bob", "amount_cents": 1999})
    expect(n, st, inv, 201, f"POST /invoices for bob -> 201, billed to <{inv.get('email') if inv else '?'}>")
    n.check(inv["email"] == "bob@old.example.com", "the invoice carries bob's current e-mail", inv)

    # Billing commits its offsets to the broker every second (only so that
    # `herald group describe` can show lag; its real position is in its DB).
    def caught_up():
        lags, d = group_lag(h, "billing")
        return d if len(lags) == 3 and all(v == 0 for v in lags.values()) else None
    wait_until("billing's committed offsets to reach the log end", caught_up, timeout=30)
    n.say("$ herald group describe billing")
    n.show(h.group_describe_text("billing"))
    n.check(True, "the 'billing' group has lag 0 on every partition")
    breathe()

    # ------------------------------------------------------------------
    n.step("Billing crashes (SIGKILL: no shutdown, no goodbye to the group)")
    h.kill(billing)
    st, err = http("GET", billing.url + "/customers/bob", timeout=3)
    n.check(st is None, f"billing is gone (GET /customers/bob: {err})")
    n.say("Its position stays where it was: in billing's database (and, for `group describe`, in the")
    n.say("group's committed offsets). The broker drops the dead member after session.timeout.ms (6 s).")
    breathe()

    # ------------------------------------------------------------------
    n.step("While billing is down: bob changes his e-mail twice, mallory is deleted")
    lags0, _ = group_lag(h, "billing")
    total0 = sum(lags0.values())
    changes = [("PUT", "/users/bob/email", {"email": "bob@new.example.com"}, 200, "bob -> bob@new.example.com"),
               ("PUT", "/users/bob/email", {"email": "bob@newest.example.com"}, 200, "bob -> bob@newest.example.com"),
               ("DELETE", "/users/mallory", None, 204, "mallory deleted (a tombstone: null value for key 'mallory')")]
    produced = 0
    for method, path, body, want, what in changes:
        st, resp = http(method, users.url + path, body)
        expect(n, st, resp, want, f"{method} {path} -> {want}: {what}")
        produced += 1
        wait_published(h, users, produced)
        lags, _ = group_lag(h, "billing")
        total = sum(lags.values())
        n.check(total == total0 + produced, f"billing's lag in the log grew to {total}", lags)
    st, body = http("PUT", users.url + "/users/nobody/email", {"email": "x@example.com"})
    expect(n, st, body, 404, "PUT /users/nobody/email -> 404")
    st, body = http("PUT", users.url + "/users/bob/email", {"email": "bob at example"})
    expect(n, st, body, 400, "PUT /users/bob/email with an invalid e-mail -> 400")
    n.say("Nobody told billing anything. The events simply wait in the log:")
    n.say("$ herald group describe billing")
    n.show(h.group_describe_text("billing"))
    breathe()

    # ------------------------------------------------------------------
    n.step("Restart billing: it resumes from the position stored in ITS OWN database")
    billing = h.start_service("billing", "--db", dbs["billing"], "--group", "billing", "--users-url", users.url,
                              "--client-id", "billing-1")
    st, body = http("GET", billing.url + "/ready")
    n.say(f"GET /ready right after start -> {st} {body}")
    h.wait_ready(billing, timeout=90)
    st, body = http("GET", billing.url + "/ready")
    n.check(st == 200 and body["lag"] == 0, "GET /ready -> 200, lag 0", body)
    st, bob = http("GET", billing.url + "/customers/bob")
    n.check(st == 200 and bob["email"] == "bob@newest.example.com",
            "billing's replica has bob's newest e-mail (both changes applied, in order)", bob)
    n.check(bob["updated_partition"] == bob0["updated_partition"] and
            bob["updated_offset"] >= bob0["updated_offset"] + 2,
            f"bob's row now points at offset {bob['updated_offset']} of partition {bob['updated_partition']} "
            f"(was {bob0['updated_offset']}: two changes later)", bob)
    st, body = http("GET", billing.url + "/customers/mallory")
    n.check(st == 404, "mallory is gone from billing's replica", body)
    st, inv = http("POST", billing.url + "/invoices", {"user_id": "bob", "amount_cents": 4250})
    n.check(st == 201 and inv["email"] == "bob@newest.example.com",
            f"POST /invoices for bob -> 201, billed to <{inv.get('email') if isinstance(inv, dict) else inv}>", inv)
    st, got = http("GET", f"{billing.url}/invoices/{inv['id']}")
    n.check(st == 200 and got["email"] == "bob@newest.example.com", f"GET /invoices/{inv['id']} -> 200", got)
    st, body = http("POST", billing.url + "/invoices", {"user_id": "mallory", "amount_cents": 100})
    expect(n, st, body, 422, "POST /invoices for mallory -> 422 (unknown to the replica)")
    st, body = http("POST", billing.url + "/invoices", {"user_id": "bob", "amount_cents": "lots"})
    expect(n, st, body, 400, "POST /invoices with a non-integer amount -> 400")
    wait_until("billing's committed lag to drop to 0",
               lambda: all(v == 0 for v in group_lag(h, "billing")[0].values()), timeout=60)
    n.say("$ herald group describe billing")
    n.show(h.group_describe_text("billing"))
    n.check(True, "`herald group describe billing` shows lag 0")
    breathe()

    # ------------------------------------------------------------------
    n.step("The alternative, asking the owner directly (?consistency=strong)")
    st, body = http("GET", billing.url + "/customers/bob?consistency=strong")
    n.check(st == 200 and body["source"] == "users" and body["email"] == "bob@newest.example.com",
            "GET /customers/bob?consistency=strong -> 200 from users itself", body)
    rc = h.terminate(users)
    n.check(rc == 0, "users stopped cleanly on SIGTERM (exit 0)", rc)
    st, body = http("GET", billing.url + "/customers/bob?consistency=strong")
    n.check(st == 503, "with users down, ?consistency=strong -> 503", body)
    st, body = http("GET", billing.url + "/customers/bob")
    n.check(st == 200 and body["email"] == "bob@newest.example.com",
            "with users down, the replica read still answers -> 200", body)
    st, inv = http("POST", billing.url + "/invoices", {"user_id": "alice", "amount_cents": 500})
    n.check(st == 201, "with users down, billing still issues invoices", inv)
    users = h.start_service("users", "--db", dbs["users"])
    n.say(f"users restarted -> {users.url}")
    breathe()

    # ------------------------------------------------------------------
    n.step("A brand-new service: notifications bootstraps from the compacted topic")
    st, all_users = http("GET", users.url + "/users")
    n.check(st == 200, f"users has {len(all_users)} current users", all_users)
    notif = h.start_service("notifications", "--db", dbs["notifications"])
    n.say(f"notifications --db {dbs['notifications']} -> {notif.url} (first start: empty database)")
    h.wait_ready(notif, timeout=90)
    st, contacts = http("GET", notif.url + "/contacts")
    n.check(st == 200 and same_users(contacts, all_users),
            f"notifications has every current user ({len(contacts)}), with their current e-mails",
            {"contacts": contacts, "users": all_users})
    n.check(not any(c["id"] == "mallory" for c in contacts), "and not mallory (deleted before it existed)")
    n.say("Nobody broadcast anything: notifications read the users topic from the start, and the topic")
    n.say("(cleanup.policy=compact) keeps the latest event per user: a snapshot of all current users.")
    breathe()

    # ------------------------------------------------------------------
    n.step("Scale billing out: a second instance joins the group and the partitions are shared")
    billing2 = h.start_service("billing", "--db", dbs["billing"], "--group", "billing", "--users-url", users.url,
                               "--client-id", "billing-2", name="billing2")
    n.say(f"billing (2nd instance, same database) -> {billing2.url}")

    def shared():
        d = h.group_describe("billing")
        members = d.get("members", [])
        if len(members) != 2:
            return None
        owned = [sorted(a["partition"] for a in m["assignment"] if a["topic"] == "users") for m in members]
        if any(not o for o in owned) or sorted(sum(owned, [])) != [0, 1, 2]:
            return None
        return d
    d = wait_until("both billing instances to own partitions", shared, timeout=90)
    split = {m["client_id"]: [a["partition"] for a in m["assignment"]] for m in d["members"]}
    n.say("$ herald group describe billing")
    n.show(h.group_describe_text("billing"))
    n.check(True, f"2 members share the 3 partitions: {split}")
    h.wait_ready(billing, timeout=60)
    h.wait_ready(billing2, timeout=60)
    st, body = http("POST", users.url + "/users", {"id": "grace", "name": "Grace Hopper",
                                                   "email": "grace@example.com"})
    expect(n, st, body, 201, "POST /users grace -> 201")
    st, body = http("PUT", users.url + "/users/alice/email", {"email": "alice@wonderland.example"})
    expect(n, st, body, 200, "PUT /users/alice/email -> 200")

    def both_see():
        for b in (billing, billing2):
            s1, g = http("GET", b.url + "/customers/grace")
            s2, a = http("GET", b.url + "/customers/alice")
            if s1 != 200 or s2 != 200 or a["email"] != "alice@wonderland.example":
                return False
        return True
    wait_until("both instances to see the new changes", both_see, timeout=30)
    n.check(True, "each change is applied once, by the instance owning its partition; both serve it")

    # ------------------------------------------------------------------
    n.step("Shut everything down cleanly (SIGTERM)")
    for p in (billing2, billing, notif, users):
        rc = h.terminate(p)
        n.check(rc == 0, f"{p.name} exited 0 on SIGTERM", rc)
    return n.checks
