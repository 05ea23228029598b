#!/usr/bin/env python3
"""Keeps docs/sdk.md and the compiled snippets in examples/sdk_snippets identical.

In the sources a region is marked
    // [START name]
    ...code...
    // [END name]
and the guide shows it as
    <!-- snippet: name -->
    ```cpp
    ...the same code, dedented...
    ```
Every ```cpp block of the guide must carry such a marker, so all C++ the
reader sees is compiled with the build.

    check_doc.py DOC SNIPPET_DIR          exit 1 and print a diff on any mismatch
    check_doc.py DOC SNIPPET_DIR --fix    rewrite the doc's blocks from the sources
"""
import difflib
import pathlib
import re
import sys
import textwrap

START = re.compile(r"^\s*// \[START (\w+)\]\s*$")
END = re.compile(r"^\s*// \[END (\w+)\]\s*$")
MARK = re.compile(r"^<!-- snippet: (\w+) -->\s*$")


def regions(snippet_dir):
    out = {}
    for path in sorted(pathlib.Path(snippet_dir).glob("*.cc")):
        lines = path.read_text().splitlines()
        open_name, body = None, []
        for n, line in enumerate(lines, 1):
            if m := START.match(line):
                open_name, body = m.group(1), []
            elif m := END.match(line):
                if m.group(1) != open_name:
                    sys.exit(f"{path}:{n}: [END {m.group(1)}] without its [START]")
                if open_name in out:
                    sys.exit(f"{path}:{n}: region {open_name} defined twice")
                out[open_name] = textwrap.dedent("\n".join(body)).strip("\n")
                open_name = None
            elif open_name:
                body.append(line)
        if open_name:
            sys.exit(f"{path}: [START {open_name}] is never closed")
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    doc_path, fix = pathlib.Path(sys.argv[1]), "--fix" in sys.argv[3:]
    snippets = regions(sys.argv[2])
    lines = doc_path.read_text().splitlines()
    out, errors, used, i = [], [], set(), 0
    while i < len(lines):
        line = lines[i]
        m = MARK.match(line)
        if line.startswith("```cpp") and not (out and MARK.match(out[-1])):
            errors.append(f"{doc_path}:{i + 1}: ```cpp block without a <!-- snippet: name --> marker")
        if not m:
            out.append(line)
            i += 1
            continue
        name = m.group(1)
        out.append(line)
        if i + 1 >= len(lines) or not lines[i + 1].startswith("```cpp"):
            errors.append(f"{doc_path}:{i + 1}: marker {name} is not followed by a ```cpp block")
            i += 1
            continue
        j = i + 2
        while j < len(lines) and lines[j] != "```":
            j += 1
        shown = "\n".join(lines[i + 2:j])
        if name not in snippets:
            errors.append(f"{doc_path}:{i + 1}: no region [START {name}] in the snippets")
        else:
            used.add(name)
            if shown != snippets[name] and not fix:
                diff = "\n".join(difflib.unified_diff(
                    snippets[name].splitlines(), shown.splitlines(),
                    f"snippet {name}", f"{doc_path.name} block", lineterm=""))
                errors.append(f"{doc_path}:{i + 1}: block {name} differs from its source:\n{diff}")
        out.append("```cpp")
        out.extend((snippets.get(name, shown)).splitlines())
        out.append("```")
        i = j + 1
    if fix:
        doc_path.write_text("\n".join(out) + "\n")
        print(f"rewrote {len(used)} blocks in {doc_path}")
        return
    for e in errors:
        print(e, file=sys.stderr)
    unused = sorted(set(snippets) - used)
    if unused:
        print(f"note: regions not shown in the guide: {', '.join(unused)}")
    if errors:
        sys.exit(1)
    print(f"{doc_path}: {len(used)} code blocks match examples/sdk_snippets")


if __name__ == "__main__":
    main()
