"""`herald serve` settings: a TOML file < HERALD_* environment < flags, and
every bad setting refused at start (non-zero exit, a message naming it) instead of
being ignored: an unknown file key, a value of the wrong type, an environment
variable or flag that does not parse, an unknown log level."""
import os
import socket
import subprocess
import time

import cli_harness


def run(h):
    conf = os.path.join(h.workdir, "herald.toml")

    def write_conf(text):
        with open(conf, "w") as f:
            f.write(text)

    def partitions_of_new_topic(name):
        h.ok(h.cli("produce", name, "x"))  # auto-created
        return len(h.ok(h.cli("topic", "describe", name, "--format", "json")).json()["partitions"])

    write_conf('num_partitions = 3\nlog_level = "info"\n[topic_defaults]\n"retention.ms" = "604800000"\n')
    for extra, env, want, what in [
            ((), None, 3, "the file's num_partitions"),
            ((), {"HERALD_NUM_PARTITIONS": "4"}, 4, "HERALD_NUM_PARTITIONS over the file"),
            (("--num-partitions", "5"), {"HERALD_NUM_PARTITIONS": "4"}, 5, "the flag over both")]:
        h.stop_broker()
        h.start_broker("--config", conf, *extra, env=env)
        h.eq(partitions_of_new_topic(f"auto-{want}"), want, f"auto-created topic partitions: {what}")
    c = h.ok(h.cli("topic", "describe", "auto-5", "--format", "json")).json()["configs"]["retention.ms"]
    h.eq((c["value"], c["source"]), ("604800000", "broker"), "[topic_defaults] is the broker's default")
    h.stop_broker()
    h.start_broker(env={"HERALD_AUTO_CREATE_TOPICS": "OFF"})
    h.fails(h.cli("produce", "nope", "x", "--timeout", "3"))
    h.fails(h.cli("topic", "describe", "nope"), "nope")
    h.check(True, "HERALD_AUTO_CREATE_TOPICS=OFF turns auto-creation off")

    def refused(what, needle, *args, conf_text=None, env=None):
        if conf_text is not None:
            write_conf(conf_text)
            args = ("--config", conf, *args)
        p = subprocess.run([h.herald, "serve", "--ephemeral", "--listen", "127.0.0.1:0", *args], capture_output=True,
                           text=True, timeout=20, env={**os.environ, **(env or {})})
        h.check(p.returncode > 0 and needle in p.stderr, f"refused: {what}",
                f"exit {p.returncode}, stderr: {p.stderr}")

    refused("an unknown file key", "unknown key 'num_partitons'", conf_text="num_partitons = 3\n")
    refused("a string key given a number", "listen must be a string, not 19215", conf_text="listen = 19215\n")
    refused("a bad log level in the file, naming the file", f"config file {conf}: log level 'loud'",
            conf_text='log_level = "loud"\n')
    refused("a bad HERALD_LOG_LEVEL, naming the environment", "environment (HERALD_*): log level 'verbose'",
            env={"HERALD_LOG_LEVEL": "verbose"})
    refused("a bad [topic_defaults] value, naming the file", f"config file {conf}: retention.ms",
            conf_text='[topic_defaults]\nretention.ms = "abc"\n')
    refused("a boolean key given a string", "auto_create_topics", conf_text='auto_create_topics = "no way"\n')
    refused("a non-integer HERALD_THREADS", "HERALD_THREADS", env={"HERALD_THREADS": "abc"})
    refused("a non-integer HERALD_NUM_PARTITIONS", "HERALD_NUM_PARTITIONS", env={"HERALD_NUM_PARTITIONS": "3x"})
    refused("HERALD_AUTO_CREATE_TOPICS=maybe", "not true or false", env={"HERALD_AUTO_CREATE_TOPICS": "maybe"})
    refused("--auto-create-topics maybe", "not true or false", "--auto-create-topics", "maybe")
    refused("--log-level loud", "log level 'loud'", "--log-level", "loud")
    # Level names in any case, as booleans: WARN from the environment hides the info lines.
    srv = subprocess.Popen([h.herald, "serve", "--ephemeral", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=dict(os.environ, HERALD_LOG_LEVEL="WARN"))
    time.sleep(0.5)
    srv.terminate()
    out, _ = srv.communicate(timeout=20)
    h.check(srv.returncode == 0 and "listening on" not in out, "HERALD_LOG_LEVEL=WARN: accepted, info lines hidden",
            f"exit {srv.returncode}: {out}")
    refused("--threads 0", "threads", "--threads", "0")
    refused("--num-partitions 0", "num partitions", "--num-partitions", "0")
    refused("--flush-threads 0", "flush threads", "--flush-threads", "0")
    refused("a non-integer flush_threads in the file", "flush_threads", conf_text='flush_threads = "two"\n')
    refused("a bad --topic-default value", "retention.ms", "--topic-default", "retention.ms=abc")
    # A relative --port-file: written in the working directory, and the broker keeps serving.
    port_file = os.path.join(h.workdir, "port")
    srv = subprocess.Popen([h.herald, "serve", "--ephemeral", "--listen", "127.0.0.1:0", "--port-file", "port"],
                           cwd=h.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file) and srv.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # a broker that fails after writing the file has exited by now
        h.check(srv.poll() is None and os.path.exists(port_file), "a relative --port-file: the broker keeps running",
                f"exit {srv.poll()}")
        if srv.poll() is None:
            with open(port_file) as f, socket.create_connection(("127.0.0.1", int(f.read())), timeout=5):
                h.check(True, "a relative --port-file: the written port accepts connections")
    finally:
        srv.terminate()
        _, err = srv.communicate(timeout=20)
    h.check(srv.returncode == 0, "a relative --port-file: clean exit on SIGTERM", f"exit {srv.returncode}: {err}")
    refused("--ephemeral with TMPDIR naming no directory", "TMPDIR", env={"TMPDIR": os.path.join(h.workdir, "absent")})

    # Unquoted dotted [topic_defaults] names are topic config names too; --metrics-listen '' turns off the
    # file's metrics endpoint; a data dir given with --ephemeral is warned about (it is not used).
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    write_conf(f'metrics_listen = "127.0.0.1:{metrics_port}"\n[topic_defaults]\nretention.ms = 5000\n')
    h.stop_broker()
    h.start_broker("--config", conf, "--metrics-listen", "")
    h.ok(h.cli("topic", "create", "dotted"))
    c = h.ok(h.cli("topic", "describe", "dotted", "--format", "json")).json()["configs"]["retention.ms"]
    h.eq((c["value"], c["source"]), ("5000", "broker"), "[topic_defaults] retention.ms = 5000 (a dotted key)")
    try:
        socket.create_connection(("127.0.0.1", metrics_port), timeout=2).close()
        h.check(False, "--metrics-listen '' turns off the file's metrics endpoint")
    except OSError:
        h.check(True, "--metrics-listen '' turns off the file's metrics endpoint")
    h.stop_broker()
    srv = subprocess.Popen([h.herald, "serve", "--ephemeral", "--listen", "127.0.0.1:0", "--data-dir",
                            os.path.join(h.workdir, "unused")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    time.sleep(0.5)
    srv.terminate()
    out, _ = srv.communicate(timeout=20)
    h.check(srv.returncode == 0 and "data dir " + os.path.join(h.workdir, "unused") + " is not used" in out and
            not os.path.exists(os.path.join(h.workdir, "unused")), "--ephemeral with --data-dir: warned, not used",
            out)

    # --listen takes a host name; listening on every address without --advertised-host is warned about;
    # an IPv6 address is logged in brackets, as given (when this machine has IPv6 loopback).
    listens = [("localhost:0", "listening on localhost:", "--listen localhost:0 (a host name)"),
               ("0.0.0.0:0", "advertising 127.0.0.1 (no --advertised-host)",
                "--listen 0.0.0.0:0 warns that 127.0.0.1 is advertised")]
    try:
        with socket.socket(socket.AF_INET6) as s6:
            s6.bind(("::1", 0))
        listens.append(("[::1]:0", "listening on [::1]:", "--listen [::1]:0 is logged as [::1]:PORT"))
    except OSError as e:
        cli_harness.log(f"skipped the IPv6 case: {e}")
    for listen, needle, what in listens:
        srv = subprocess.Popen([h.herald, "serve", "--ephemeral", "--listen", listen], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        time.sleep(0.5)
        srv.terminate()
        out, _ = srv.communicate(timeout=20)
        h.check(srv.returncode == 0 and needle in out, what, f"exit {srv.returncode}: {out}")

    # One broker per data dir: a second one is refused, naming the first one's pid, until the first dies
    # (SIGKILL releases the lock too). Two brokers appending to the same segments lose acknowledged records.
    shared, lock_port = os.path.join(h.workdir, "shared"), os.path.join(h.workdir, "lock-port")

    def serve_shared():
        if os.path.exists(lock_port):
            os.unlink(lock_port)
        srv = subprocess.Popen([h.herald, "serve", "--listen", "127.0.0.1:0", "--data-dir", shared,
                                "--port-file", lock_port], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(lock_port) and srv.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        h.check(os.path.exists(lock_port), f"a broker on {shared} started")
        return srv

    first = serve_shared()
    try:
        second = subprocess.run([h.herald, "serve", "--listen", "127.0.0.1:0", "--data-dir", shared],
                                capture_output=True, text=True, timeout=20)
        h.check(second.returncode == 1 and f"in use by another broker (pid {first.pid})" in second.stderr,
                "a second broker on the same data dir is refused, naming the first one's pid",
                f"exit {second.returncode}, stderr: {second.stderr}")
    finally:
        first.kill()
        first.wait()
    again = serve_shared()
    again.terminate()
    h.check(again.wait(timeout=20) == 0, "after the first one's SIGKILL the data dir is free again")


if __name__ == "__main__":
    h = cli_harness.setup("serve_config")
    cli_harness.main(h, run)
