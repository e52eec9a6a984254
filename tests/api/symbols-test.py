#!/usr/bin/env python3
"""Compare the shared library's exported symbols with src/lamina.map.

usage: symbols-test.py NM LIBRARY MAPFILE

Fails when a symbol is exported but not listed, listed but not exported,
exported from a different version node than the map says, or does not start
with lam_.
"""

import re
import subprocess
import sys

# Symbols the linker itself may define in the dynamic table.
LINKER_SYMBOLS = {"_init", "_fini", "_edata", "_end", "__bss_start"}


def parse_map(path):
    """Return {symbol: node} for every global symbol of the version script."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"(#|//)[^\n]*", " ", text)
    symbols = {}
    problems = []
    for m in re.finditer(r"([A-Za-z_][\w.]*)\s*\{(.*?)\}\s*([\w.]*)\s*;",
                         text, flags=re.S):
        node, body = m.group(1), m.group(2)
        scope = None
        for item in re.split(r"[;\s]+", body.replace(":", ": ")):
            if not item:
                continue
            if item in ("global:", "local:"):
                scope = item
                continue
            if scope != "global:":
                continue
            if any(c in item for c in "*?[") or item.endswith(":"):
                problems.append(f"{path}: node {node}: '{item}' is not a "
                                "plain symbol name; list every symbol")
                continue
            if item in symbols:
                problems.append(f"{path}: {item} is listed in {symbols[item]}"
                                f" and again in {node}")
            symbols[item] = node
    return symbols, problems


def exported(nm, lib):
    """Return {symbol: node or None} for the library's defined dynamic symbols."""
    out = subprocess.run([nm, "-D", "--defined-only", lib], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    symbols = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        kind, name = fields[-2], fields[-1]
        if kind in ("A", "a"):
            continue        # version node names such as LAMINA_0.1
        node = None
        if "@" in name:
            name, _, node = name.partition("@")
            node = node.lstrip("@")
        if name in LINKER_SYMBOLS:
            continue
        symbols[name] = node
    return symbols


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    nm, lib, mapfile = sys.argv[1:]
    listed, problems = parse_map(mapfile)
    actual = exported(nm, lib)

    if not listed:
        problems.append(f"{mapfile}: no global symbols found")
    for name in sorted(set(actual) - set(listed)):
        problems.append(f"exported but not in lamina.map: {name}")
    for name in sorted(set(listed) - set(actual)):
        problems.append(f"in lamina.map but not exported: {name}")
    for name in sorted(set(actual) & set(listed)):
        node = actual[name]
        if node is not None and node != listed[name]:
            problems.append(f"{name}: exported in node {node}, "
                            f"lamina.map lists it in {listed[name]}")
    for name in sorted(actual):
        if not name.startswith("lam_"):
            problems.append(f"exported symbol without the lam_ prefix: {name}")

    print(f"{len(actual)} exported, {len(listed)} listed in lamina.map")
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
