"""Every `herald` command's --help is complete: it exits 0, every subcommand
has a one-line description, every option and positional argument has a
description, and every client command (topic/produce/consume/group and their
subcommands) has examples in its footer. Walks the tree from `herald --help`,
so a new command is checked without touching this test."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness  # noqa: E402

CLIENT_COMMANDS = {"topic", "produce", "consume", "group"}
ENTRY = re.compile(r"^( {2}| {4})(-\S|[a-z][\w-]*( |$))")
SECTION = re.compile(r"^\s*(Options|Positionals|Subcommands):$")


def parse(text):
    """Returns (subcommands {name: description}, entries [(line, description)])."""
    subs, entries = {}, []
    lines = text.split("\n")
    # CLI11 starts descriptions at a fixed column (name width 30 at indent 2,
    # +2 inside option groups); a name exactly that wide is followed by a
    # single space, so find the column from the -h,--help line.
    col = next((l.index("Print this help") for l in lines if l.startswith("  -h,--help")), 30)
    section = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = SECTION.match(line)
        if m:
            section = m.group(1)
        elif line.strip() == "":
            section = None
        elif section and ENTRY.match(line):
            parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            desc = parts[1].strip() if len(parts) > 1 else ""
            c = col + (len(line) - len(line.lstrip()) - 2)
            if not desc and len(line) > c and line[c - 1] == " " and line[c] != " ":
                desc = line[c:].strip()
            if not desc and i + 1 < len(lines) and re.match(r"^\s{20,}\S", lines[i + 1]):
                desc = lines[i + 1].strip()
                i += 1
            if section == "Subcommands":
                subs[parts[0].split()[0]] = desc
            else:
                entries.append((line.strip(), desc))
        i += 1
    return subs, entries


def run(h):
    def help_of(path):
        p = subprocess.run([h.herald, *path, "--help"], capture_output=True, text=True, timeout=30)
        h.check(p.returncode == 0, f"`herald {' '.join(path)} --help` exits 0", p.stderr)
        return p.stdout

    leaves = 0

    def walk(path, description):
        nonlocal leaves
        text = help_of(path)
        name = " ".join(["herald", *path])
        subs, entries = parse(text)
        if path:
            h.check(description, f"{name}: has a description in its parent's list")
        missing = [e for e, d in entries if not d]
        h.check(not missing, f"{name}: every option has a description", missing)
        h.check(any(e.startswith("-h,--help") for e, _ in entries), f"{name}: lists its options", text)
        client = bool(path) and path[0] in CLIENT_COMMANDS
        if client:
            h.check(re.search(r"^Examples?:$", text, re.M) and re.search(r"^  herald ", text, re.M),
                    f"{name}: footer has examples", text)
        if subs:
            for sub, desc in subs.items():
                walk([*path, sub], desc)
        else:
            leaves += 1
        if client and not subs:
            h.check("--brokers" in text and "HERALD_BROKERS" in text, f"{name}: takes --brokers / HERALD_BROKERS")

    walk([], "")
    h.check(leaves >= 14, f"walked every command ({leaves} leaf commands)")
    v = subprocess.run([h.herald, "--version"], capture_output=True, text=True, timeout=30)
    h.check(v.returncode == 0 and v.stdout.startswith("herald "), "herald --version", v)
    bad = subprocess.run([h.herald, "consume"], capture_output=True, text=True, timeout=30)
    h.check(bad.returncode != 0 and "topic" in bad.stderr, "a missing argument is a usage error naming it", bad)
    bad = subprocess.run([h.herald, "version"], capture_output=True, text=True, timeout=30)
    h.check(bad.returncode == 2 and "unknown command 'version'" in bad.stderr and "serve" in bad.stderr,
            "a mistyped command is named as unknown, with the list of commands", bad)
    # Durations that are not finite, not positive, or overflow once in milliseconds are usage errors
    # before anything runs (they used to reach a float-to-integer conversion).
    for args in (["outbox-relay", "--db", "unused.db", "--once", "--once-timeout", "nan"],
                 ["outbox-relay", "--db", "unused.db", "--once", "--delivery-timeout", "0"],
                 ["outbox-relay", "--db", "unused.db", "--once", "--idle-wait", "inf"],
                 ["topic", "list", "--timeout", "1e12"],
                 ["group", "describe", "g", "--sample", "-1"]):
        bad = subprocess.run([h.herald, *args], capture_output=True, text=True, timeout=30)
        h.check(bad.returncode != 0 and args[-2] in bad.stderr and "is not a number in" in bad.stderr,
                f"herald {' '.join(args)}: usage error", bad)


if __name__ == "__main__":
    # No broker needed; the harness still provides the watchdog and checks.
    h = cli_harness.setup("help")
    cli_harness.main(h, run)
