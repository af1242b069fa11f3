#!/usr/bin/env python3
"""Checks that keep the house easy to change (run by test.sh):
1. no binding file imports another binding file that imports it back (directly or around a
   circle): src/bindings/*.rs and src/bindings/*/ are nodes, `super::x` / `crate::bindings::x`
   references are edges;
2. the README's Layout section names every source file of the core crate and the bindings and
   every script in sql/.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINDINGS = os.path.join(ROOT, "src", "bindings")
failures = []

# 1. Import circles among binding modules.
modules = {}
for entry in sorted(os.listdir(BINDINGS)):
    path = os.path.join(BINDINGS, entry)
    if entry.endswith(".rs") and entry != "mod.rs":
        modules[entry[:-3]] = [path]
    elif os.path.isdir(path):
        modules[entry] = [os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(".rs")]
edges = {m: set() for m in modules}
for m, files in modules.items():
    for f in files:
        text = open(f).read()
        # `super::x::` names a sibling binding from a top-level file or a folder's mod.rs;
        # `super::super::x::` from the other files of a folder.
        top_level = os.path.dirname(f) == BINDINGS or os.path.basename(f) == "mod.rs"
        refs = set(re.findall(r"crate::bindings::([a-z_]+)::", text))
        refs |= set(re.findall(r"super::super::([a-z_]+)::", text))
        if top_level:
            refs |= set(re.findall(r"(?<!super::)super::([a-z_]+)::", text))
        edges[m] |= {r for r in refs if r in modules and r != m}


def cycle_from(start):
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in edges[node]:
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


for m in modules:
    c = cycle_from(m)
    if c:
        failures.append("binding modules import each other in a circle: " + " -> ".join(c))
        break

# 2. The README's layout names every file.
readme = open(os.path.join(ROOT, "README.md")).read()
layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
wanted = []
for base in ("crates/vasttile-core/src", "src/bindings"):
    for dirpath, _, files in os.walk(os.path.join(ROOT, base)):
        wanted += [f for f in files if f.endswith((".rs", ".sql")) and f not in ("mod.rs", "lib.rs")]
for f in sorted(set(wanted)):
    if not re.search(r"\b" + re.escape(f), layout):
        failures.append(f"README Layout does not name {f}")
if "sql/" not in layout:
    failures.append("README Layout does not name sql/")

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"layout: {len(modules)} binding modules without import circles; README names {len(set(wanted))} source files")
