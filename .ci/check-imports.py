#!/usr/bin/env python3
"""Checks the library's import graph: no cycle, and layers that hold.

Reads every `crate::` path in `shmpipe/src` (in `use` items and inline
paths) and `super::` paths in submodules, and checks two rules:

1. Between the crate's top-level modules, every import goes to a module
   to the left of it on the `// layers:` line of `lib.rs` (which lists them
   bottom up), so the graph is acyclic and that line is the layer order;
   every module declared in `lib.rs` must be on it.
2. Between the submodules of one directory module (say `handles/`), the
   imports form no cycle (imports of the parent `mod.rs` are allowed: it
   holds what its children share).

Prints the top-level graph (`--print` for the edges) and exits 1 with the
offending edges when a rule breaks. Comments and doc comments are ignored.
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "shmpipe" / "src"


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def module_of(path):
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts  # [] is the crate root


def use_paths(text):
    """Every path mentioned: `crate::a::b`, and the members of brace groups
    in `use crate::a::{b, c::d}` expanded to full paths."""
    out = []
    for m in re.finditer(r"\buse\s+((?:crate|super)(?:::[\w{},\s:*]+)?)\s*;", text, flags=re.S):
        out.extend(expand(m.group(1).replace("\n", " ")))
    for m in re.finditer(r"\b((?:crate|super)(?:::\w+)+)", text):
        out.append(m.group(1).split("::"))
    return out


def expand(tree):
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [tree.split("::")]
    i = tree.index("{")
    prefix = [p for p in tree[:i].split("::") if p]
    inner = tree[i + 1 : tree.rindex("}")]
    items, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur:
        items.append(cur)
    out = []
    for it in items:
        if it == "self":
            out.append(prefix)
        else:
            out.extend(prefix + sub for sub in expand(it))
    return out


def main():
    raw = (SRC / "lib.rs").read_text()
    lib = strip_comments(raw)
    declared = re.findall(r"^\s*(?:pub(?:\(crate\))?\s+)?mod\s+(\w+)\s*;", lib, flags=re.M)
    line = re.search(r"^//\s*layers:(.*)$", raw, flags=re.M)
    if not line:
        print("lib.rs has no `// layers:` line listing its modules bottom up")
        return 1
    order = line.group(1).split()
    rank = {m: i for i, m in enumerate(order)}
    missing = sorted(set(declared) - set(order))
    if missing:
        print("modules declared in lib.rs but missing from its `// layers:` line: " + ", ".join(missing))
        return 1
    files = sorted(SRC.rglob("*.rs"))
    modules = {tuple(module_of(f)) for f in files}
    top_edges, sub_edges = set(), {}
    for f in files:
        me = module_of(f)
        if not me:
            continue
        text = strip_comments(f.read_text())
        # Unit tests may reach anywhere in the crate.
        text = re.split(r"#\[cfg\((?:all\()?test", text)[0]
        for path in use_paths(text):
            if path[0] == "crate":
                target = path[1:]
            else:  # super::...
                base = me[:-1] if f.name != "mod.rs" else me[:-1]
                target = list(base)
                rest = path
                while rest and rest[0] == "super":
                    rest = rest[1:]
                    if rest and rest[0] == "super":
                        target = target[:-1]
                target = target + rest
            if not target:
                continue
            # The longest prefix that names a module of the crate.
            mod = None
            for n in range(len(target), 0, -1):
                if tuple(target[:n]) in modules:
                    mod = tuple(target[:n])
                    break
            if mod is None:
                continue
            if mod[0] != me[0]:
                top_edges.add((me[0], mod[0]))
            elif len(me) > 1 and len(mod) > 1 and mod[:2] != tuple(me[:2]):
                sub_edges.setdefault(me[0], set()).add((me[1], mod[1]))
    errors = []
    for a, b in sorted(top_edges):
        if a not in rank or b not in rank:
            errors.append(f"{a} -> {b}: module not declared in lib.rs")
        elif rank[b] >= rank[a]:
            errors.append(
                f"{a} -> {b}: an upward import ({b} is not below {a} on lib.rs's `// layers:` line)"
            )
    for parent, edges in sorted(sub_edges.items()):
        graph = {}
        for a, b in edges:
            graph.setdefault(a, set()).add(b)
        state = {}

        def visit(n, stack):
            state[n] = 1
            for m in sorted(graph.get(n, ())):
                if state.get(m) == 1:
                    errors.append(f"{parent}: import cycle " + " -> ".join(stack + [n, m]))
                elif not state.get(m):
                    visit(m, stack + [n])
            state[n] = 2

        for n in sorted(graph):
            if not state.get(n):
                visit(n, [])
    print("library layers, bottom up (each imports only from those before it):")
    for m in order:
        deps = sorted({b for a, b in top_edges if a == m}, key=lambda x: rank.get(x, 99))
        print(f"  {m:<10} <- {', '.join(deps) if deps else '(nothing of the crate)'}")
    if "--print" in sys.argv:
        for parent, edges in sorted(sub_edges.items()):
            for a, b in sorted(edges):
                print(f"  {parent}::{a} -> {parent}::{b}")
    if errors:
        print("\nimport rules broken:")
        for e in errors:
            print("  " + e)
        return 1
    print("no import cycle; every import goes down the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
