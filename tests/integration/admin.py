#!/usr/bin/python3
"""integration_admin: topic administration with real admin clients.

confluent_kafka.admin.AdminClient:
  - create_topics with configs; errors: 0 partitions -> INVALID_PARTITIONS,
    duplicate -> TOPIC_ALREADY_EXISTS, bad config value / unknown config ->
    INVALID_CONFIG, replication factor 3 -> INVALID_REPLICATION_FACTOR,
    invalid name -> INVALID_TOPIC_EXCEPTION; validate_only creates nothing;
  - describe_configs (values and sources: dynamic topic config vs default),
    broker resource, unknown topic;
  - alter_configs (AlterConfigs replaces the whole override set), invalid
    value / read-only config set to another value -> INVALID_CONFIG (to its
    only value: accepted, as Kafka does);
  - create_partitions (grow; shrink or same -> INVALID_PARTITIONS), and the new
    partition takes data;
  - delete_records (AdminClient has none in 1.7.0: raw DeleteRecords v1, the
    version librdkafka uses) -> low watermark moves, consumers start there;
  - delete_topics, deleting again -> UNKNOWN_TOPIC_OR_PARTITION, and a topic
    re-created under the same name starts empty, without the deleted topic's
    committed offsets (also after a restart);
  - everything (topics, partition counts, configs) survives a clean restart;
  - __consumer_offsets does not exist until used, CreateTopics on it is
    INVALID_REQUEST, Metadata naming it creates it (compacted, 50 partitions);
    altering it to delete by retention or to skip the sync, or adding
    partitions to it -> POLICY_VIOLATION;
  - message.timestamp.after.max.ms = 2^63-1 accepts produces (no overflow);
    a Fetch asking for 2 GiB gets at most fetch.max.bytes (55 MiB).
Raw requests: CreateTopics v0-1, DescribeConfigs v0 and DeleteTopics v0 (older
client libraries' admin). A damaged cluster_id file is replaced and logged. A CreateTopics
whose files cannot be written: KAFKA_STORAGE_ERROR, logged. CreateTopics and CreatePartitions
that outlast their timeout_ms: REQUEST_TIMED_OUT, and the work goes on.
kafka-python KafkaAdminClient: create_topics (configs; duplicate raises
TopicAlreadyExistsError), describe_configs, alter_configs, create_partitions,
delete_topics.
Raw Metadata v12: a topic asked for by id, an unknown id (UNKNOWN_TOPIC_ID), a name given twice.
A Fetch waiting for min_bytes when its topic is deleted and created again (with new
data) answers UNKNOWN_TOPIC_OR_PARTITION at once, not the deleted topic's records.
Retention empties an idle partition: with retention.ms=3000 and the
maintenance sweep every 200 ms, three records are gone (low watermark = high
watermark = 3) a few seconds later, although they sit in the active segment.
"""
import os
import socket
import time

import harness
import kwire
from harness import Failure, log


def add_args(ap):
    pass


def admin(bootstrap):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": bootstrap, "logger": harness.confluent_quiet_logger()})


def result_code(fut, timeout=15):
    """0 on success, else the KafkaError code of the future's exception."""
    from confluent_kafka import KafkaException
    try:
        fut.result(timeout=timeout)
        return 0
    except KafkaException as e:
        return e.args[0].code()


def topics_now(a):
    md = a.list_topics(timeout=10)
    return {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}


def describe(a, name, restype=None):
    from confluent_kafka.admin import ConfigResource
    ResourceType = ConfigResource.Type
    res = ConfigResource(restype or ResourceType.TOPIC, name)
    fut = a.describe_configs([res], request_timeout=15)[res]
    return fut.result(timeout=15)


def confluent_part(h, b):
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import NewTopic, NewPartitions, ConfigResource, ConfigSource
    ResourceType = ConfigResource.Type
    a = admin(b.bootstrap)

    # --- __consumer_offsets: created on first use, never by CreateTopics ------------
    h.check("__consumer_offsets" not in topics_now(a), "no __consumer_offsets before any group used the broker")
    nt = NewTopic("__consumer_offsets", 1, 1)
    h.check_eq(result_code(a.create_topics([nt], operation_timeout=10)[nt.topic]), KafkaError.INVALID_REQUEST,
               "create_topics __consumer_offsets -> INVALID_REQUEST")
    md = a.list_topics(topic="__consumer_offsets", timeout=10).topics["__consumer_offsets"]
    h.check_eq((md.error, len(md.partitions)), (None, 50),
               "Metadata naming __consumer_offsets creates it (50 partitions)")
    offsets_cfg = {k: v.value for k, v in describe(a, "__consumer_offsets").items()}
    h.check_eq((offsets_cfg.get("cleanup.policy"), offsets_cfg.get("flush.policy")), ("compact", "always"),
               "__consumer_offsets is compacted and synced before every answer")
    for conf, what in [({"cleanup.policy": "delete"}, "cleanup.policy=delete"),
                       ({"cleanup.policy": "compact,delete"}, "cleanup.policy=compact,delete"),
                       ({"flush.policy": "interval"}, "flush.policy=interval")]:
        r = ConfigResource(ResourceType.TOPIC, "__consumer_offsets", set_config=conf)
        h.check_eq(result_code(a.alter_configs([r])[r]), KafkaError.POLICY_VIOLATION,
                   f"alter_configs __consumer_offsets {what} -> POLICY_VIOLATION")
    offsets_cfg = {k: v.value for k, v in describe(a, "__consumer_offsets").items()}
    h.check_eq((offsets_cfg.get("cleanup.policy"), offsets_cfg.get("flush.policy")), ("compact", "always"),
               "__consumer_offsets configs unchanged by the refused alters")
    fut = a.create_partitions([NewPartitions("__consumer_offsets", 51)], operation_timeout=10)["__consumer_offsets"]
    h.check_eq(result_code(fut), KafkaError.POLICY_VIOLATION, "create_partitions __consumer_offsets -> POLICY_VIOLATION")
    h.check_eq(topics_now(a).get("__consumer_offsets"), 50, "__consumer_offsets keeps 50 partitions")

    # --- create_topics -------------------------------------------------------------
    cfg = {"retention.ms": "86400000", "cleanup.policy": "compact", "segment.bytes": "1048576",
           "max.message.bytes": "200000", "min.cleanable.dirty.ratio": "0.01", "max.compaction.lag.ms": "600000"}
    fs = a.create_topics([NewTopic("adm-a", 3, 1, config=cfg), NewTopic("adm-b", 1, 1)], operation_timeout=10)
    h.check_eq({t: result_code(f) for t, f in fs.items()}, {"adm-a": 0, "adm-b": 0},
               "create_topics adm-a (3 partitions, 6 configs) and adm-b")
    t = topics_now(a)
    h.check_eq((t.get("adm-a"), t.get("adm-b")), (3, 1), "list_topics: partition counts")

    bad = [
        (NewTopic("adm-zero", 0, 1), KafkaError.INVALID_PARTITIONS, "0 partitions"),
        (NewTopic("adm-a", 1, 1), KafkaError.TOPIC_ALREADY_EXISTS, "existing name"),
        (NewTopic("adm-badval", 1, 1, config={"retention.ms": "soon"}), KafkaError.INVALID_CONFIG,
         "retention.ms=soon"),
        (NewTopic("adm-unknowncfg", 1, 1, config={"no.such.config": "1"}), KafkaError.INVALID_CONFIG,
         "unknown config name"),
        (NewTopic("adm-badpolicy", 1, 1, config={"cleanup.policy": "shred"}), KafkaError.INVALID_CONFIG,
         "cleanup.policy=shred"),
        (NewTopic("adm-badratio", 1, 1, config={"min.cleanable.dirty.ratio": "1.5"}), KafkaError.INVALID_CONFIG,
         "min.cleanable.dirty.ratio=1.5"),
        (NewTopic("adm-badlag", 1, 1, config={"min.compaction.lag.ms": "60000", "max.compaction.lag.ms": "1000"}),
         KafkaError.INVALID_CONFIG, "min.compaction.lag.ms above max.compaction.lag.ms"),
        (NewTopic("adm-rf3", 1, 3), KafkaError.INVALID_REPLICATION_FACTOR, "replication factor 3 on one node"),
        (NewTopic("adm-badinert", 1, 1, config={"preallocate": "yes"}), KafkaError.INVALID_CONFIG, "preallocate=yes"),
        (NewTopic("adm-tiered", 1, 1, config={"remote.storage.enable": "true"}), KafkaError.INVALID_CONFIG,
         "remote.storage.enable=true (no tiered storage)"),
        (NewTopic("adm-assign2", 1, replica_assignment=[[0, 1]]), KafkaError.INVALID_REPLICA_ASSIGNMENT,
         "a replica assignment naming broker 1"),
        (NewTopic("adm-badthrottle", 1, 1, config={"leader.replication.throttled.replicas": "0-1"}),
         KafkaError.INVALID_CONFIG, "leader.replication.throttled.replicas=0-1"),
        (NewTopic("bad name!", 1, 1), KafkaError.TOPIC_EXCEPTION, "invalid topic name"),
        (NewTopic("__transaction_state", 1, 1), KafkaError.INVALID_REQUEST, "Kafka's other internal topic"),
    ]
    for nt, want, what in bad:
        code = result_code(a.create_topics([nt], operation_timeout=10)[nt.topic])
        h.check_eq(code, want, f"create_topics with {what} -> {KafkaError(want).name()}")
    # A replica assignment that puts every partition on this broker is what Kafka accepts too; values are trimmed.
    fut = a.create_topics([NewTopic("adm-assign", 2, replica_assignment=[[0], [0]], config={"retention.ms": " 5000 "})],
                          operation_timeout=10)["adm-assign"]
    h.check_eq(result_code(fut), 0, "create_topics with replica assignment [[0], [0]] and retention.ms ' 5000 '")
    h.check_eq((topics_now(a).get("adm-assign"), describe(a, "adm-assign")["retention.ms"].value), (2, "5000"),
               "adm-assign: 2 partitions from the assignment, retention.ms trimmed to 5000")
    fut = a.create_partitions([NewPartitions("adm-assign", 3, replica_assignment=[[0]])])["adm-assign"]
    h.check_eq(result_code(fut), 0, "create_partitions to 3 with assignment [[0]]")
    fut = a.create_partitions([NewPartitions("adm-assign", 5, replica_assignment=[[0]])])["adm-assign"]
    h.check_eq(result_code(fut), KafkaError.INVALID_REPLICA_ASSIGNMENT,
               "create_partitions to 5 with one assignment for two new partitions")
    h.check_eq(topics_now(a).get("adm-assign"), 3, "adm-assign has 3 partitions")
    fut = a.create_topics([NewTopic("adm-validate", 2, 1)], validate_only=True)["adm-validate"]
    h.check_eq(result_code(fut), 0, "create_topics validate_only succeeds")
    t = topics_now(a)
    h.check(not ({"adm-zero", "adm-badval", "adm-unknowncfg", "adm-badpolicy", "adm-badratio", "adm-badlag", "adm-rf3",
                  "adm-badinert", "adm-badthrottle", "adm-tiered", "adm-assign2", "adm-validate"} & set(t)),
            "none of the refused or validate-only topics exists", f"topics: {sorted(t)}")
    h.check_eq(t.get("adm-a"), 3, "the existing adm-a is untouched by the duplicate create")

    # --- describe_configs ------------------------------------------------------------
    d = describe(a, "adm-a")
    for k, v in cfg.items():
        e = d.get(k)
        h.check(e is not None and e.value == v and e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
                f"describe_configs adm-a: {k}={v} (DYNAMIC_TOPIC_CONFIG)",
                f"got {e and (e.value, e.source)}")
    e = d.get("delete.retention.ms")
    h.check(e is not None and e.source == ConfigSource.DEFAULT_CONFIG.value,
            f"describe_configs adm-a: delete.retention.ms={e and e.value} from DEFAULT_CONFIG")
    db = describe(a, "adm-b")
    h.check(db.get("cleanup.policy") is not None and db["cleanup.policy"].value == "delete" and
            db["retention.ms"].value == "-1",
            "describe_configs adm-b: defaults cleanup.policy=delete, retention.ms=-1 (keep forever)",
            f"got {db.get('cleanup.policy') and db['cleanup.policy'].value}, {db.get('retention.ms') and db['retention.ms'].value}")
    # Kafka configs that mean nothing on one node (as a Terraform or operator manifest sets them)
    # are accepted, stored and described back, with Kafka's defaults where not set.
    inert = {"unclean.leader.election.enable": "false", "preallocate": "true", "segment.index.bytes": "1048576",
             "flush.messages": "1", "file.delete.delay.ms": "1000", "message.downconversion.enable": "false",
             "leader.replication.throttled.replicas": "0:0,1:0", "follower.replication.throttled.replicas": "*",
             "message.format.version": "2.8", "local.retention.ms": "-2", "remote.storage.enable": "false",
             "remote.log.copy.disable": "true", "remote.log.delete.on.disable": "false",  # Kafka 3.9
             "compression.gzip.level": "-1", "compression.lz4.level": "12", "compression.zstd.level": "-5"}  # 3.8
    fut = a.create_topics([NewTopic("adm-inert", 1, 1, config=inert)], operation_timeout=10)["adm-inert"]
    h.check_eq(result_code(fut), 0, f"create_topics with {len(inert)} Kafka configs that have no effect on one node")
    di = describe(a, "adm-inert")
    h.check_eq({k: (di[k].value, di[k].source) for k in inert if k in di},
               {k: (v, ConfigSource.DYNAMIC_TOPIC_CONFIG.value) for k, v in inert.items()},
               f"describe_configs: those {len(inert)} values as set (DYNAMIC_TOPIC_CONFIG)")
    h.check_eq((db["segment.jitter.ms"].value, db["preallocate"].value, db["flush.messages"].value),
               ("0", "false", "9223372036854775807"), "describe_configs adm-b: Kafka's defaults for them")
    brk = describe(a, "0", ResourceType.BROKER)
    h.check(len(brk) > 0, f"describe_configs broker 0: {len(brk)} entries")
    h.check_eq({k: brk[k].value for k in ("broker.id", "num.partitions", "auto.create.topics.enable",
                                           "default.replication.factor", "log.dirs") if k in brk},
               {"broker.id": "0", "num.partitions": "1", "auto.create.topics.enable": "false",  # --auto-create-topics false
                "default.replication.factor": "1", "log.dirs": b.data_dir},
               "describe_configs broker 0: the broker's own settings, under Kafka's names")
    h.check(brk["num.partitions"].is_read_only and brk["listeners"].value == f"PLAINTEXT://{b.bootstrap}",
            "describe_configs broker 0: read-only, listeners is the bound address", brk["listeners"].value)
    try:
        describe(a, "adm-none")
        h.check(False, "describe_configs of an unknown topic fails")
    except Exception as ex:
        code = ex.args[0].code() if ex.args and hasattr(ex.args[0], "code") else None
        h.check_eq(code, KafkaError.UNKNOWN_TOPIC_OR_PART, "describe_configs of an unknown topic")

    # --- alter_configs (replaces the whole override set) ----------------------------------
    res = ConfigResource(ResourceType.TOPIC, "adm-a", set_config={"retention.ms": "3600000",
                                                                   "cleanup.policy": "delete"})
    h.check_eq(result_code(a.alter_configs([res])[res]), 0, "alter_configs adm-a retention.ms, cleanup.policy")
    d = describe(a, "adm-a")
    h.check((d["retention.ms"].value, d["cleanup.policy"].value) == ("3600000", "delete") and
            d["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
            "describe_configs after alter: retention.ms=3600000, cleanup.policy=delete (dynamic)")
    h.check(d["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value and
            d["max.message.bytes"].source == ConfigSource.DEFAULT_CONFIG.value,
            "AlterConfigs replaced the override set: segment.bytes and max.message.bytes back to defaults",
            f"segment.bytes={d['segment.bytes'].value} ({d['segment.bytes'].source}), "
            f"max.message.bytes={d['max.message.bytes'].value}")
    for conf, what in [({"retention.ms": "never"}, "retention.ms=never"),
                       ({"compression.type": "gzip"}, "read-only compression.type"),
                       ({"no.such.config": "1"}, "unknown config"),
                       ({"min.cleanable.dirty.ratio": "half"}, "min.cleanable.dirty.ratio=half"),
                       ({"min.compaction.lag.ms": "5000", "max.compaction.lag.ms": "4999"},
                        "min.compaction.lag.ms above max.compaction.lag.ms")]:
        r = ConfigResource(ResourceType.TOPIC, "adm-a", set_config=conf)
        h.check_eq(result_code(a.alter_configs([r])[r]), KafkaError.INVALID_CONFIG, f"alter_configs {what}")
    h.check_eq(describe(a, "adm-a")["retention.ms"].value, "3600000", "refused alters changed nothing")
    # A tool that writes the described overrides back with a change: a read-only config set to the
    # only value it can have is no change, and the alter goes through.
    res = ConfigResource(ResourceType.TOPIC, "adm-a", set_config={"retention.ms": "3600001", "cleanup.policy": "delete",
                                                                   "compression.type": "producer",
                                                                   "min.insync.replicas": "1"})
    h.check_eq(result_code(a.alter_configs([res])[res]), 0,
               "alter_configs with read-only configs at their only value (compression.type, min.insync.replicas)")
    h.check_eq(describe(a, "adm-a")["retention.ms"].value, "3600001", "that alter applied retention.ms")
    res = ConfigResource(ResourceType.TOPIC, "adm-a", set_config={"retention.ms": "3600000", "cleanup.policy": "delete"})
    h.check_eq(result_code(a.alter_configs([res])[res]), 0, "alter_configs back to retention.ms=3600000")
    r = ConfigResource(ResourceType.TOPIC, "adm-none", set_config={"retention.ms": "1"})
    h.check_eq(result_code(a.alter_configs([r])[r]), KafkaError.UNKNOWN_TOPIC_OR_PART, "alter_configs unknown topic")

    # --- create_partitions ----------------------------------------------------------------
    fut = a.create_partitions([NewPartitions("adm-a", 5)], operation_timeout=10)["adm-a"]
    h.check_eq(result_code(fut), 0, "create_partitions adm-a 3 -> 5")
    h.check_eq(topics_now(a).get("adm-a"), 5, "list_topics: adm-a has 5 partitions")
    for n, what in [(2, "shrink to 2"), (5, "same count 5")]:
        fut = a.create_partitions([NewPartitions("adm-a", n)], operation_timeout=10)["adm-a"]
        h.check_eq(result_code(fut), KafkaError.INVALID_PARTITIONS, f"create_partitions {what}")
    fut = a.create_partitions([NewPartitions("adm-none", 4)], operation_timeout=10)["adm-none"]
    h.check_eq(result_code(fut), KafkaError.UNKNOWN_TOPIC_OR_PART, "create_partitions unknown topic")
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "logger": harness.confluent_quiet_logger(),
                  "topic.metadata.refresh.interval.ms": 500})
    errs = []
    for i in range(10):
        p.produce("adm-a", b"new-partition-%d" % i, partition=4, on_delivery=lambda e, m: errs.append(e))
    h.check(p.flush(30) == 0 and errs == [None] * 10, "10 messages produced to the new partition 4", f"{errs[:2]}")
    got = [m.value() for m in harness.consume_partition(b.bootstrap, "adm-a", 4, 0, None)]
    h.check_eq(got, [b"new-partition-%d" % i for i in range(10)], "partition 4 reads back its 10 messages")

    # --- delete_records ---------------------------------------------------------------------
    errs.clear()
    for i in range(100):
        p.produce("adm-b", b"r-%03d" % i, partition=0, on_delivery=lambda e, m: errs.append(e))
    h.check(p.flush(30) == 0 and errs == [None] * 100, "100 messages produced to adm-b")
    if hasattr(a, "delete_records"):
        log("AdminClient.delete_records exists in this confluent-kafka; using the raw request anyway")
    with kwire.Conn("127.0.0.1", b.port) as c:
        err, low = c.delete_records("adm-b", 0, 40)
        h.check_eq((err, low), (0, 40), "DeleteRecords v1 adm-b/0 before offset 40 -> low watermark 40")
        err, low = c.delete_records("adm-b", 0, 500)
        h.check_eq(err, 1, "DeleteRecords beyond the high watermark -> OFFSET_OUT_OF_RANGE")
        err, low = c.delete_records("adm-b", 0, 30)
        h.check_eq((err, low), (0, 40), "DeleteRecords below the log start is a no-op (low stays 40)")
        err, ts, off = c.list_offsets("adm-b", 0, -2)
        h.check_eq((err, off), (0, 40), "ListOffsets earliest -> 40")
    h.check_eq(harness.watermarks(b.bootstrap, "adm-b"), (40, 100), "get_watermark_offsets (40, 100)")
    got = harness.consume_partition(b.bootstrap, "adm-b", 0, 40, None)
    h.check_eq([m.value() for m in got], [b"r-%03d" % i for i in range(40, 100)],
               "consumer from the new log start reads r-040..r-099")

    # --- bounds at their extremes -----------------------------------------------------------
    fut = a.create_topics([NewTopic("adm-ts", 1, 1, config={"message.timestamp.after.max.ms": str(2**63 - 1)})],
                          operation_timeout=10)["adm-ts"]
    h.check_eq(result_code(fut), 0, "create adm-ts with message.timestamp.after.max.ms = 2^63-1")
    fut = a.create_topics([NewTopic("adm-big", 1, 1)], operation_timeout=10)["adm-big"]
    h.check_eq(result_code(fut), 0, "create adm-big")
    fut = a.create_topics([NewTopic("adm-idx", 1, 1, config={"index.interval.bytes": "0"})],
                          operation_timeout=10)["adm-idx"]
    h.check_eq(result_code(fut), 0, "create adm-idx with index.interval.bytes=0 (an index entry per batch)")
    big = kwire.build_batch([(None, b"v" * (512 << 10), None)])  # built once: kafka-python's CRC is slow
    with kwire.Conn("127.0.0.1", b.port) as c:
        err, base, msg = c.produce("adm-ts", 0, kwire.build_batch([(b"k", b"now", None)]))
        h.check_eq((err, msg), (0, None), "produce to adm-ts: no overflow in the future-timestamp bound")
        errs = [c.produce("adm-idx", 0, kwire.build_batch([(b"k", b"%d" % i, None)]))[0] for i in range(3)]
        h.check_eq(errs, [0, 0, 0], "3 batches produced to adm-idx")
        errs = [c.produce("adm-big", 0, big, acks=1)[0] for _ in range(120)]
        h.check_eq(set(errs), {0}, "120 batches of 512 KiB produced to adm-big (60 MiB)")
        err, hwm, recs = c.fetch("adm-big", 0, 0, max_bytes=2**31 - 1)
        batches = list(kwire.iter_batches(recs))
        whole = sum(12 + bh.length for bh in batches) == len(recs)
        h.check(err == 0 and 0 < len(recs) <= 57671680 and len(batches) < 120 and whole,
                "Fetch with max_bytes 2^31-1 gets at most fetch.max.bytes (55 MiB), whole batches",
                f"err {err}, {len(recs)} bytes, {len(batches)} batches")

    # --- restart keeps topics, partition counts, configs, log start --------------------------
    b.stop()
    b.start()
    a = admin(b.bootstrap)
    t = topics_now(a)
    h.check_eq((t.get("adm-a"), t.get("adm-b")), (5, 1), "after clean restart: adm-a 5 partitions, adm-b 1")
    d = describe(a, "adm-a")
    h.check_eq((d["retention.ms"].value, d["cleanup.policy"].value, d["retention.ms"].source),
               ("3600000", "delete", ConfigSource.DYNAMIC_TOPIC_CONFIG.value),
               "after clean restart: adm-a configs kept")
    d = describe(a, "adm-b")
    h.check_eq((d["retention.bytes"].value, d["retention.bytes"].source),
               (str(1 << 40), ConfigSource.STATIC_BROKER_CONFIG.value),
               "after clean restart: the broker's --topic-default is still the broker's default, not an override "
               "of adm-b (STATIC_BROKER_CONFIG)")
    h.check_eq(harness.watermarks(b.bootstrap, "adm-idx"), (0, 3),
               "after clean restart: adm-idx (index.interval.bytes=0) opens with its 3 records")
    h.check_eq(harness.watermarks(b.bootstrap, "adm-b"), (40, 100), "after clean restart: adm-b watermarks")

    # --- delete_topics ------------------------------------------------------------------------
    from confluent_kafka import Consumer, TopicPartition
    grp = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "adm-grp", "enable.auto.commit": False,
                    "logger": harness.confluent_quiet_logger()})
    grp.commit(offsets=[TopicPartition("adm-b", 0, 77)], asynchronous=False)
    h.check_eq(grp.committed([TopicPartition("adm-b", 0)], timeout=10)[0].offset, 77,
               "group adm-grp committed offset 77 on adm-b")
    grp.close()
    fs = a.delete_topics(["adm-a", "adm-b"], operation_timeout=10)
    h.check_eq({k: result_code(f) for k, f in fs.items()}, {"adm-a": 0, "adm-b": 0}, "delete_topics adm-a, adm-b")
    t = topics_now(a)
    h.check("adm-a" not in t and "adm-b" not in t, "list_topics: both gone")
    fut = a.delete_topics(["adm-a"], operation_timeout=10)["adm-a"]
    h.check_eq(result_code(fut), KafkaError.UNKNOWN_TOPIC_OR_PART, "delete_topics again")
    fut = a.create_topics([NewTopic("adm-b", 2, 1)], operation_timeout=10)["adm-b"]
    h.check_eq(result_code(fut), 0, "re-create adm-b (2 partitions)")
    h.check_eq(harness.watermarks(b.bootstrap, "adm-b"), (0, 0), "re-created adm-b starts empty")
    d = describe(a, "adm-b")
    h.check(all(e.source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value for e in d.values()),
            "re-created adm-b has no overrides left over")
    b.stop()
    b.start()
    grp = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "adm-grp", "enable.auto.commit": False,
                    "logger": harness.confluent_quiet_logger()})
    h.check_eq(grp.committed([TopicPartition("adm-b", 0)], timeout=10)[0].offset, -1001,
               "after a restart, re-created adm-b has no committed offset from the deleted one (OFFSET_INVALID)")
    grp.close()


def kafka_python_part(h, b):
    from kafka.admin import KafkaAdminClient, NewTopic, NewPartitions, ConfigResource, ConfigResourceType
    from kafka.errors import (InvalidConfigurationError, InvalidPartitionsError, TopicAlreadyExistsError,
                              UnknownTopicOrPartitionError)
    a = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=15000, api_version_auto_timeout_ms=10000)
    try:
        a.create_topics([NewTopic("kp-a", 2, 1, topic_configs={"retention.ms": "1000000",
                                                                  "segment.bytes": "2097152"})])
        h.check("kp-a" in a.list_topics(), "kafka-python create_topics kp-a (2 partitions, configs)")
        try:
            a.create_topics([NewTopic("kp-a", 2, 1)])
            h.check(False, "kafka-python create_topics duplicate raises")
        except TopicAlreadyExistsError:
            h.check(True, "kafka-python create_topics duplicate raises TopicAlreadyExistsError")
        try:
            a.create_topics([NewTopic("kp-null", 1, 1, topic_configs={"retention.ms": None})])
            h.check(False, "kafka-python create_topics with a null config value raises")
        except InvalidConfigurationError:
            h.check("kp-null" not in a.list_topics(), "kafka-python create_topics with a null config value raises "
                    "InvalidConfigurationError, nothing created")

        def desc():
            (resp,) = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-a")])
            (err, msg, rtype, rname, entries), = resp.resources
            if err:
                raise Failure(f"kafka-python describe_configs: error {err} {msg}")
            return {e[0]: e[1] for e in entries}
        d = desc()
        h.check_eq((d.get("retention.ms"), d.get("segment.bytes")), ("1000000", "2097152"),
                   "kafka-python describe_configs kp-a")
        (resp,) = [a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-a",
                                                   configs={"retention.ms": "2000000"})])]
        errs = [r[0] for r in resp.resources]
        h.check_eq(errs, [0], "kafka-python alter_configs kp-a retention.ms=2000000")
        d = desc()
        h.check_eq((d.get("retention.ms"), d.get("segment.bytes")), ("2000000", "1073741824")
                   if d.get("segment.bytes") == "1073741824" else ("2000000", d.get("segment.bytes")),
                   "kafka-python describe_configs after alter: retention.ms=2000000")
        a.create_partitions({"kp-a": NewPartitions(4)})
        md = a.describe_topics(["kp-a"])
        h.check_eq(len(md[0]["partitions"]), 4, "kafka-python create_partitions kp-a 2 -> 4")
        try:
            a.create_partitions({"kp-a": NewPartitions(3)})
            h.check(False, "kafka-python create_partitions shrink raises")
        except InvalidPartitionsError:
            h.check(True, "kafka-python create_partitions shrink raises InvalidPartitionsError")
        a.delete_topics(["kp-a"])
        h.check("kp-a" not in a.list_topics(), "kafka-python delete_topics kp-a")
        try:
            a.delete_topics(["kp-a"])
            h.check(False, "kafka-python delete_topics of a missing topic raises")
        except UnknownTopicOrPartitionError:
            h.check(True, "kafka-python delete_topics of a missing topic raises UnknownTopicOrPartitionError")
    finally:
        a.close()


def metadata_by_id(h, b):
    """Metadata v12 asks by topic id (the Java admin client's describeTopics(TopicCollection.ofTopicIds)):
    a known id is answered with its topic, an unknown one with UNKNOWN_TOPIC_ID, name null and the id; a
    topic named twice is answered once. DeleteTopics v6 deletes by id, and answers an unknown id alike."""
    a = admin(b.bootstrap)
    from confluent_kafka.admin import NewTopic
    h.check_eq(result_code(a.create_topics([NewTopic("by-id", 3, 1)])["by-id"]), 0, "create 'by-id' (3 partitions)")
    with kwire.Conn("127.0.0.1", b.port) as c:
        zero = bytes(16)
        (err, name, tid, parts), = c.metadata_v12([("by-id", zero), ("by-id", zero)])
        h.check(err == 0 and name == "by-id" and tid != zero and sorted(parts) == [0, 1, 2],
                f"Metadata v12 naming 'by-id' twice: one answer, id {tid.hex()}", f"{(err, name, tid, parts)}")
        got = c.metadata_v12([(None, tid)])
        h.check_eq(got, [(0, "by-id", tid, [0, 1, 2])], "Metadata v12 by that id: the topic, its name and partitions")
        unknown = bytes(range(1, 17))
        got = c.metadata_v12([(None, unknown)])
        h.check_eq(got, [(100, None, unknown, [])], "Metadata v12 by an unknown id: UNKNOWN_TOPIC_ID, name null, the id")
        h.check_eq(c.delete_topics_v6([(None, unknown)]), [(100, None, unknown)],
                   "DeleteTopics v6 by an unknown id: UNKNOWN_TOPIC_ID, name null, the id")
        h.check_eq(c.delete_topics_v6([(None, tid)]), [(0, "by-id", tid)], "DeleteTopics v6 by the id of 'by-id'")
        h.check_eq(c.metadata_v12([(None, tid)]), [(100, None, tid, [])], "... after which its id is unknown")


def config_sources(h, b):
    """DescribeConfigs reports where a value comes from, with Kafka's synonym chain, and the broker's
    defaults under their broker-wide names; IncrementalAlterConfigs refuses what Kafka refuses."""
    a = admin(b.bootstrap)
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import NewTopic
    h.check_eq(result_code(a.create_topics([NewTopic("src", 1, 1, config={"retention.ms": "1000000"})])["src"]), 0,
               "create 'src' with retention.ms=1000000")
    big = str(1 << 40)
    with kwire.Conn("127.0.0.1", b.port) as c:
        err, msg, cfg = c.describe_configs(2, "src", ["retention.ms", "retention.bytes", "segment.bytes"])
        h.check_eq((err, msg), (0, None), "DescribeConfigs v1 of 'src': no error, error_message null")
        h.check_eq(cfg["retention.ms"], ("1000000", 1, [("retention.ms", "1000000", 1), ("log.retention.ms", "-1", 5)]),
                   "a topic's own value: DYNAMIC_TOPIC_CONFIG, then the built-in default as log.retention.ms")
        h.check_eq(cfg["retention.bytes"],
                   (big, 4, [("log.retention.bytes", big, 4), ("log.retention.bytes", "-1", 5)]),
                   "the broker's --topic-default: STATIC_BROKER_CONFIG, synonyms log.retention.bytes (broker, default)")
        h.check_eq(cfg["segment.bytes"], ("1073741824", 5, [("log.segment.bytes", "1073741824", 5)]),
                   "a built-in default: DEFAULT_CONFIG, synonym log.segment.bytes")
        err, msg, brk = c.describe_configs(4, "0")
        h.check(err == 0 and brk.get("log.retention.bytes", (None, None))[:2] == (big, 4) and
                brk.get("log.retention.ms", (None, None))[:2] == ("-1", 5) and "retention.ms" not in brk,
                "broker 0's configs under broker-wide names: log.retention.bytes (STATIC_BROKER), log.retention.ms "
                "(DEFAULT)", sorted(brk))
        h.check_eq(c.describe_configs(4, ""), (0, None, {}),
                   "broker '' (cluster-wide dynamic defaults): none")

        def iac(changes, what, want_err):
            err, msg = c.incremental_alter_configs("src", changes)
            h.check(err == want_err and (msg is None) == (want_err == 0),
                    f"IncrementalAlterConfigs {what} -> {want_err}", f"{err} {msg!r}")
        iac([("retention.ms", 0, "1"), ("retention.ms", 0, "2")], "with retention.ms twice", 42)
        iac([("retention.ms", 0, None)], "SET with a null value", 42)
        iac([("cleanup.policy", 3, "delete")], "SUBTRACT of the only cleanup.policy", 40)
        iac([("retention.ms", 2, "5")], "APPEND to retention.ms (not a list)", 40)
        iac([("cleanup.policy", 2, "compact")], "APPEND compact to cleanup.policy", 0)
        h.check_eq(c.describe_configs(2, "src", ["retention.ms", "cleanup.policy"])[2],
                   {"retention.ms": ("1000000", 1, [("retention.ms", "1000000", 1), ("log.retention.ms", "-1", 5)]),
                    "cleanup.policy": ("compact,delete", 1, [("cleanup.policy", "compact,delete", 1),
                                                             ("log.cleanup.policy", "delete", 5)])},
                   "the refused changes changed nothing; the APPEND applied")

    # Names equal but for '.' against '_' are one name in metrics: the second is refused.
    h.check_eq(result_code(a.create_topics([NewTopic("src.dot", 1, 1)])["src.dot"]), 0, "create 'src.dot'")
    h.check_eq(result_code(a.create_topics([NewTopic("src_dot", 1, 1)])["src_dot"]), KafkaError.TOPIC_EXCEPTION,
               "create 'src_dot' collides with 'src.dot' -> INVALID_TOPIC_EXCEPTION")
    h.check("src_dot" not in topics_now(a), "'src_dot' does not exist")


def idle_retention(h, b):
    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic
    a = admin(b.bootstrap)
    h.check_eq(result_code(a.create_topics([NewTopic("adm-ret", 1, 1, config={"retention.ms": "3000"})])["adm-ret"]),
               0, "create adm-ret with retention.ms=3000")
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "logger": harness.confluent_quiet_logger()})
    for i in range(3):
        p.produce("adm-ret", b"r%d" % i, partition=0)
    h.check_eq(p.flush(10), 0, "three records acknowledged")
    h.check_eq(harness.watermarks(b.bootstrap, "adm-ret"), (0, 3), "adm-ret watermarks right after")
    harness.wait_until(lambda: harness.watermarks(b.bootstrap, "adm-ret") == (3, 3), 15,
                       "retention to remove the idle partition's records (watermarks (3, 3))", interval=0.2)
    h.check(True, "an idle partition's records past retention.ms are removed: watermarks (3, 3)")


def delete_while_fetching(h, b):
    """A Fetch waiting for min_bytes on a topic that is deleted (and created again under the same
    name, with new data) answers UNKNOWN_TOPIC_OR_PARTITION, not the deleted topic's records."""
    import threading
    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic
    a = admin(b.bootstrap)
    h.check_eq(result_code(a.create_topics([NewTopic("adm-del", 1, 1)])["adm-del"]), 0, "create adm-del")
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "logger": harness.confluent_quiet_logger()})
    for i in range(3):
        p.produce("adm-del", b"old-%d" % i, partition=0)
    h.check_eq(p.flush(10), 0, "three records in adm-del")
    answer = {}

    def fetch():
        with kwire.Conn("127.0.0.1", b.port, timeout=30) as c:
            t0 = time.monotonic()
            answer["result"] = c.fetch("adm-del", 0, 0, max_wait_ms=20000, min_bytes=1 << 20)
            answer["secs"] = time.monotonic() - t0

    th = threading.Thread(target=fetch)
    th.start()
    time.sleep(0.5)
    h.check_eq(result_code(a.delete_topics(["adm-del"], operation_timeout=10)["adm-del"]), 0, "delete adm-del")
    h.check_eq(result_code(a.create_topics([NewTopic("adm-del", 1, 1)])["adm-del"]), 0, "create adm-del again")
    p.produce("adm-del", b"new-0", partition=0)
    h.check_eq(p.flush(10), 0, "one record in the new adm-del")
    th.join(30)
    h.check("result" in answer, "the waiting fetch was answered")
    err, hwm, recs = answer["result"]
    h.check_eq((err, hwm, recs), (3, -1, b""),
               "the waiting fetch answers UNKNOWN_TOPIC_OR_PARTITION (3), no records, high watermark -1")
    h.check(answer["secs"] < 15, f"... before its 20 s max_wait ({answer['secs']:.2f} s)")


def pipelined_requests(h, b):
    """Requests pipelined on one connection run one after the other, as Kafka runs them: a Fetch sent
    right behind an acks=all Produce sees its record, a DescribeConfigs behind an alter sees the change.
    An empty list of config names describes every config (Kafka's answer; KafkaJS sends it)."""
    from confluent_kafka.admin import NewTopic
    a = admin(b.bootstrap)
    h.check_eq(result_code(a.create_topics([NewTopic("adm-pipe", 1, 1)])["adm-pipe"]), 0, "create adm-pipe")
    with kwire.Conn("127.0.0.1", b.port) as c:
        for i in range(20):
            (perr, base, _), (ferr, hwm, recs) = c.pipeline(
                lambda: c.produce("adm-pipe", 0, kwire.build_batch([(None, b"v%d" % i, [])])),
                lambda: c.fetch("adm-pipe", 0, i))
            h.check_eq((perr, base, ferr, hwm, len(list(kwire.iter_batches(recs)))), (0, i, 0, i + 1, 1),
                       f"produce #{i} then fetch from {i}, pipelined: the fetch sees the record")
        (aerr, _), (derr, _, cfg) = c.pipeline(
            lambda: c.incremental_alter_configs("adm-pipe", [("retention.ms", 0, "4242")]),
            lambda: c.describe_configs(2, "adm-pipe", ["retention.ms"]))
        h.check_eq((aerr, derr, cfg["retention.ms"][0]), (0, 0, "4242"),
                   "alter then describe, pipelined: the describe sees the new retention.ms")
        err, _, every = c.describe_configs(2, "adm-pipe", [])
        _, _, every_null = c.describe_configs(2, "adm-pipe", None)
        h.check(err == 0 and len(every) > 10 and every.keys() == every_null.keys(),
                f"DescribeConfigs with an empty key list: all {len(every_null)} configs", f"got {sorted(every)}")


def old_admin_versions(h, b):
    """CreateTopics v0 and v1, DescribeConfigs v0 and DeleteTopics v0, which older client
    libraries' admin sends (Kafka 3.x serves them), answered in their own layouts."""
    from kwire import array, i8, i16, i32, string
    topic = "old-admin-versions"
    cfg = lambda kv: string(kv[0]) + string(kv[1])  # noqa: E731
    with kwire.Conn("127.0.0.1", b.port) as c:
        lo = {k: v[0] for k, v in c.api_versions().items()}
        h.check_eq((lo[19], lo[20], lo[32]), (0, 0, 0),
                   "ApiVersions: CreateTopics, DeleteTopics, DescribeConfigs from v0")
        body = array([topic], lambda t: string(t) + i32(2) + i16(1) + array([], None) +
                      array([("retention.ms", "3600000")], cfg)) + i32(10000)
        r = c.request(19, 0, body)
        h.check_eq(r.array(lambda r: (r.string(), r.i16())), [(topic, 0)], "CreateTopics v0: created")
        r = c.request(19, 1, body + i8(0))
        res = r.array(lambda r: (r.string(), r.i16(), r.string()))
        h.check(len(res) == 1 and res[0][:2] == (topic, 36) and topic in (res[0][2] or ""),
                "CreateTopics v1: TOPIC_ALREADY_EXISTS with a message naming the topic", str(res))
        r = c.request(32, 0, array([topic], lambda t: i8(2) + string(t) + i32(-1)))  # null keys: all
        r.i32()  # throttle

        def entry(r):
            return r.string(), r.string(), r.bool(), r.bool(), r.bool()  # name, value, read-only, default, sensitive

        res = r.array(lambda r: (r.i16(), r.string(), r.i8(), r.string(), r.array(entry)))
        h.check_eq([x[:4] for x in res], [(0, None, 2, topic)], "DescribeConfigs v0: one result")
        got = {e[0]: e for e in res[0][4]}
        h.check_eq(got.get("retention.ms"), ("retention.ms", "3600000", False, False, False),
                   "DescribeConfigs v0: an override is not default")
        h.check_eq(got.get("cleanup.policy"), ("cleanup.policy", "delete", False, True, False),
                   "DescribeConfigs v0: a default is marked default")
        r = c.request(20, 0, array([topic], string) + i32(10000))
        h.check_eq(r.array(lambda r: (r.string(), r.i16())), [(topic, 0)], "DeleteTopics v0: deleted")
        h.check_eq(c.metadata([topic])[topic][0], 3, "Metadata: the topic is gone (UNKNOWN_TOPIC_OR_PARTITION)")


def cluster_id_damaged(h, b):
    """A cluster_id file that holds no cluster id is replaced (logged), never served as is."""
    import re
    from confluent_kafka.admin import AdminClient
    b.stop()
    with open(os.path.join(b.data_dir, "cluster_id"), "wb") as f:
        f.write(b"\xff\xfe not an id")
    b.start()
    cid = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10).cluster_id
    h.check(cid is not None and re.fullmatch(r"[A-Za-z0-9_-]{22}", cid) is not None,
            "a damaged cluster_id is replaced by a valid one", repr(cid))
    with open(b.log_path) as f:
        h.check("not a cluster id" in f.read(), "a damaged cluster_id is logged")


def create_fails_on_disk(h, b):
    """A CreateTopics whose file work fails (here: a leftover directory of that name holding a file
    marked immutable, which even root cannot remove) is answered KAFKA_STORAGE_ERROR and logged."""
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import NewTopic
    leftover = os.path.join(b.data_dir, "topics", "adm-stuck")
    os.makedirs(leftover)
    pinned = os.path.join(leftover, "pinned")
    open(pinned, "w").close()
    if harness.run_cmd(["chattr", "+i", pinned], timeout=10, check=False).returncode != 0:
        log("skipped: chattr +i is not supported here")
        return
    try:
        mark = b.log_size()
        a = admin(b.bootstrap)
        code = result_code(a.create_topics([NewTopic("adm-stuck", 1, 1)])["adm-stuck"])
        h.check_eq(code, KafkaError.KAFKA_STORAGE_ERROR, "CreateTopics that cannot write its files")
        line = b.wait_log("creating topic adm-stuck failed", timeout=5, after=mark)
        h.check("remove leftover" in line, f"logged: {line.strip()[-120:]}")
    finally:
        harness.run_cmd(["chattr", "-i", pinned], timeout=10, check=False)


def admin_timeouts(h, b):
    """CreateTopics and CreatePartitions with a timeout_ms shorter than the work: REQUEST_TIMED_OUT at the
    timeout, as Kafka answers, and the work goes on to its end (Metadata shows it)."""
    import resource
    from kwire import array, i8, i16, i32, string
    limit, _ = resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE)
    n = min(500, (limit - limit // 8 - len(os.listdir(f"/proc/{b.proc.pid}/fd"))) // 2 - 50)
    if n < 100:
        log(f"skipped: a descriptor limit of {limit} leaves too little room for {2 * n} partitions")
        return
    with kwire.Conn("127.0.0.1", b.port, timeout=60) as c:
        t0 = time.monotonic()
        r = c.request(19, 1, array(["adm-slow"], lambda t: string(t) + i32(n) + i16(1) + i32(0) + i32(0)) + i32(1) + i8(0))
        (name, err, msg), = r.array(lambda r: (r.string(), r.i16(), r.string()))
        took = time.monotonic() - t0
        h.check(err == 7 and took < 5, f"CreateTopics of {n} partitions with timeout_ms 1: REQUEST_TIMED_OUT in "
                f"{took * 1000:.0f} ms ({msg})", f"{(err, msg)}")
        harness.wait_until(lambda: len(c.metadata(["adm-slow"])["adm-slow"][1]) == n, 60, "adm-slow fully created")
        h.check(True, f"... and adm-slow has its {n} partitions later")
        r = c.request(37, 0, array(["adm-slow"], lambda t: string(t) + i32(2 * n) + i32(-1)) + i32(1) + i8(0))
        r.i32()  # throttle_time_ms
        (_, err, msg), = r.array(lambda r: (r.string(), r.i16(), r.string()))
        h.check_eq(err, 7, f"CreatePartitions to {2 * n} with timeout_ms 1: REQUEST_TIMED_OUT ({msg})")
        harness.wait_until(lambda: len(c.metadata(["adm-slow"])["adm-slow"][1]) == 2 * n, 60, "adm-slow grown")
        h.check(True, f"... and adm-slow has {2 * n} partitions later")
        h.check_eq([e for e, _, _ in c.delete_topics_v6([("adm-slow", bytes(16))], timeout_ms=60000)], [0],
                   "adm-slow deleted")


def delete_racing_recreate(h, b):
    """DeleteTopics deletes the topic that existed when it arrived, never one deleted and created again
    under that name meanwhile (by another client): by id, the re-created topic is not the one named; by
    name, its committed offsets are dropped before its files, so a SIGTERM while the deletion waits for
    the admin thread cannot hand them to the next topic of that name. A CreateTopics of 1,000 partitions
    sent first holds the admin thread, so that the requests sent behind it run in the order sent."""
    from confluent_kafka import Consumer, TopicPartition
    from kwire import array, i16, i32, string
    unanswered = []

    def create(name, n):  # CreateTopics v0
        return array([name], lambda t: string(t) + i32(n) + i16(1) + i32(0) + i32(0)) + i32(60000)

    def send(api, version, body):  # not waited for
        s = socket.create_connection(("127.0.0.1", b.port))
        s.sendall(kwire.request_frame(api, version, 1, body))
        unanswered.append(s)
        time.sleep(0.05)

    def commit(offset):
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "race-g",
                      "logger": harness.confluent_quiet_logger()})
        if offset is not None:
            c.commit(offsets=[TopicPartition("adm-race", 0, offset)], asynchronous=False)
        got = c.committed([TopicPartition("adm-race", 0)], timeout=10)[0].offset
        c.close()
        return got

    with kwire.Conn("127.0.0.1", b.port, timeout=60) as c:
        c.request(19, 0, create("adm-race", 1))
        (_, _, old_id, _), = c.metadata_v12([("adm-race", bytes(16))])
    h.check_eq(commit(7), 7, "group race-g committed 7 on adm-race")
    send(19, 0, create("adm-race-hold-1", 1000))
    send(20, 1, array(["adm-race"], string) + i32(60000))  # another client: delete, then create again
    send(19, 0, create("adm-race", 2))
    with kwire.Conn("127.0.0.1", b.port, timeout=120) as c:
        h.check_eq([e for e, _, _ in c.delete_topics_v6([(None, old_id)], timeout_ms=60000)], [100],
                   "DeleteTopics v6 by the id of adm-race as it was: UNKNOWN_TOPIC_ID once it is re-created")
        (err, _, new_id, parts), = c.metadata_v12([("adm-race", bytes(16))])
    h.check((err, len(parts)) == (0, 2) and new_id != old_id, "... and the re-created adm-race (2 partitions) "
            "is still there", f"{(err, new_id.hex(), parts)}")
    h.check_eq(commit(9), 9, "group race-g committed 9 on the re-created adm-race")
    send(19, 0, create("adm-race-hold-2", 1000))
    send(20, 1, array(["adm-race"], string) + i32(60000))
    send(19, 0, create("adm-race", 1))
    time.sleep(0.2)
    b.restart()  # SIGTERM while the deletion and the next creation wait for the admin thread
    for s in unanswered:
        s.close()
    h.check_eq(commit(None), -1001, "after the restart the third adm-race has no committed offset of the second")


def run(h):
    b = h.broker(extra_args=["--auto-create-topics", "false", "--topic-default", f"retention.bytes={1 << 40}",
                             "--maintenance-interval-ms", "200"]).start()
    confluent_part(h, b)
    kafka_python_part(h, b)
    metadata_by_id(h, b)
    config_sources(h, b)
    idle_retention(h, b)
    delete_while_fetching(h, b)
    pipelined_requests(h, b)
    old_admin_versions(h, b)
    cluster_id_damaged(h, b)
    create_fails_on_disk(h, b)
    admin_timeouts(h, b)
    delete_racing_recreate(h, b)
    b.stop()


if __name__ == "__main__":
    h = harness.setup("admin", add_args, default_deadline=240)
    harness.main(run, h)
