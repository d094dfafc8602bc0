#!/usr/bin/env python3
"""The shape of the production code: largest files and functions, and import cycles between the
domain crate's modules. Test modules (`#[cfg(test)]` to the end of the file) are left out.

    python3 scripts/code_shape.py [--top N]
"""

import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "shared" / "src", ROOT / "functions"]
DOMAIN = ROOT / "shared" / "src"
FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def production_lines(path):
    lines = path.read_text().splitlines()
    for index, line in enumerate(lines):
        if line.strip() == "#[cfg(test)]":
            return lines[:index]
    return lines


def functions(path, lines):
    """(length, name) of every fn, by brace depth from its signature to its closing brace."""
    found = []
    for start, line in enumerate(lines):
        match = FN.match(line)
        if not match:
            continue
        depth, opened = 0, False
        for end in range(start, len(lines)):
            text = re.sub(r'"(\\.|[^"\\])*"', '""', lines[end].split("//")[0])
            depth += text.count("{") - text.count("}")
            opened = opened or "{" in text
            if opened and depth <= 0:
                found.append((end - start + 1, f"{path.relative_to(ROOT)}:{start + 1} {match.group(6)}"))
                break
            if not opened and text.rstrip().endswith(";"):
                break
    return found


def module_of(path):
    parts = path.relative_to(DOMAIN).with_suffix("").parts
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts[0] if parts else "lib"


def cycles():
    """Top-level modules of the domain crate that import each other, directly or around a ring."""
    edges = {}
    for path in DOMAIN.rglob("*.rs"):
        source = module_of(path)
        text = "\n".join(line.split("//")[0] for line in production_lines(path))
        for target in re.findall(r"crate::(\w+)", text):
            if target != source:
                edges.setdefault(source, set()).add(target)
    found = set()

    def walk(node, trail):
        for nxt in edges.get(node, ()):
            if nxt == trail[0]:
                ring = trail[:]
                turn = ring.index(min(ring))
                found.add(tuple(ring[turn:] + ring[:turn]))
            elif nxt not in trail and len(trail) < 6:
                walk(nxt, trail + [nxt])

    for node in edges:
        walk(node, [node])
    return sorted(found, key=lambda ring: (len(ring), ring))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    files, fns = [], []
    for base in SOURCES:
        for path in base.rglob("*.rs"):
            lines = production_lines(path)
            code = [l for l in lines if l.strip() and not l.strip().startswith("//")]
            files.append((len(code), str(path.relative_to(ROOT))))
            fns.extend(functions(path, lines))
    print(f"largest files (code lines, tests aside), top {args.top}:")
    for count, name in sorted(files, reverse=True)[: args.top]:
        print(f"  {count:5}  {name}")
    print(f"longest functions (lines), top {args.top}:")
    for count, name in sorted(fns, reverse=True)[: args.top]:
        print(f"  {count:5}  {name}")
    rings = cycles()
    print(f"import cycles between the domain crate's top-level modules: {len(rings)}")
    for ring in rings:
        print("  " + " -> ".join(ring + (ring[0],)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
