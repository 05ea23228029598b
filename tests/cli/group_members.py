"""A confluent-kafka consumer group member driven from a test thread.

    m = Member(h, "billing", "orders", "billing-1")
    m.start(); wait_until(lambda: m.assignment, ...)
    m.allow(5)            # consume and commit (synchronously) 5 more records, then hold
    m.throttle(20)        # consume and commit at most 20 records/s until told otherwise
    m.stop()              # close(): leaves the group

While holding, the member keeps polling (so it stays in the group) with its
partitions paused, so its committed offsets stay where they are.
"""
import threading
import time

from confluent_kafka import Consumer, TopicPartition

import cli_harness


class Member(threading.Thread):
    def __init__(self, h, group, topic, client_id, **conf):
        super().__init__(daemon=True)
        self.topic = topic
        self.c = Consumer({"bootstrap.servers": h.bootstrap, "group.id": group, "client.id": client_id,
                           "auto.offset.reset": "earliest", "enable.auto.commit": False,
                           "session.timeout.ms": 10000, "heartbeat.interval.ms": 500, **conf})
        self.lock = threading.Lock()
        self.budget = 0          # records still allowed; -1 = unlimited
        self.rate = None         # records/s when unlimited
        self.values = []         # values consumed and committed, in order
        self.assignment = []
        self.error = None
        self._halt = threading.Event()
        self._paused = False

    def allow(self, n):
        with self.lock:
            self.budget += n
            self.rate = None

    def throttle(self, per_second):
        with self.lock:
            self.budget = -1
            self.rate = per_second

    def stop(self):
        self._halt.set()
        self.join(timeout=30)

    def committed_count(self):
        with self.lock:
            return len(self.values)

    def _on_assign(self, consumer, parts):
        self.assignment = sorted(p.partition for p in parts)
        self._paused = False

    def _on_revoke(self, consumer, parts):
        self.assignment = []

    def run(self):
        try:
            self.c.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
            while not self._halt.is_set():
                with self.lock:
                    budget, rate = self.budget, self.rate
                if budget == 0:
                    if not self._paused and self.assignment:
                        self.c.pause(self.c.assignment())
                        self._paused = True
                    self.c.poll(0.1)
                    continue
                if self._paused:
                    self.c.resume(self.c.assignment())
                    self._paused = False
                m = self.c.poll(0.1)
                if m is None or m.error():
                    continue
                with self.lock:
                    if self.budget == 0:  # fetched beyond the budget: leave it unconsumed
                        self.c.seek(TopicPartition(m.topic(), m.partition(), m.offset()))
                        continue
                self.c.commit(message=m, asynchronous=False)
                with self.lock:
                    self.values.append(m.value())
                    if self.budget > 0:
                        self.budget -= 1
                if rate:
                    time.sleep(1.0 / rate)
        except Exception as e:  # surfaced by the test
            self.error = e
        finally:
            self.c.close()


def wait_assigned(members, partitions, timeout=30):
    """Waits until the members together own exactly `partitions` partitions, each member at least one."""
    def done():
        for m in members:
            if m.error:
                raise cli_harness.Failure(f"member failed: {m.error}")
        owned = [p for m in members for p in m.assignment]
        return all(m.assignment for m in members) and sorted(owned) == list(range(partitions))
    cli_harness.wait_until(done, timeout, "group members assigned")
