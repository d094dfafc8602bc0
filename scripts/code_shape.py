#!/usr/bin/env python3
"""The shape of the production code: largest files and functions, import cycles between the
domain crate's modules, and the layering rules (what use cases and functions may import). Test
modules (`#[cfg(test)]` to the end of the file) are left out.

    python3 scripts/code_shape.py [--top N]       # report
    python3 scripts/code_shape.py --check         # fail on a cycle or a broken layering rule
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
    # `#[cfg(test)] mod tests;` files are test code whole.
    if path.stem == "tests":
        return []
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


# Adapters and wiring: what speaks to AWS, Genesys, Graph, Google, webhooks, the TLS stack.
ADAPTERS = {"aws", "genesys", "graph", "google", "wfm", "tls", "secret_cache", "calendar_client"}
SENDERS = {"webhook", "slack", "teams", "http", "ssrf"}
# Use cases see only ports and the domain (docs/architecture.md, "Layers").
SERVICE_FORBIDDEN = ADAPTERS | {"compose", "cli", "operator", "fakes"}
USE = re.compile(r"\b(crate|presence_autopilot)::")


def imported_paths(text, prefix):
    """Every `prefix::a::b` path named in `text`, with `{…}` groups expanded (nested too)."""
    found = []

    def group_end(start):
        depth = 0
        for index in range(start, len(text)):
            depth += (text[index] == "{") - (text[index] == "}")
            if depth == 0:
                return index
        return len(text)

    def split_top(body):
        depth, part, parts = 0, "", []
        for char in body:
            if char == "," and depth == 0:
                parts.append(part)
                part = ""
                continue
            depth += (char == "{") - (char == "}")
            part += char
        return parts + [part]

    def expand(head, body):
        for piece in (p.strip() for p in split_top(body)):
            if piece == "self":
                found.append(head)
            if piece in ("", "self"):
                continue
            if "{" in piece:
                inner_head, inner = piece.split("{", 1)
                expand(head + [p for p in inner_head.split("::") if p], inner.rsplit("}", 1)[0])
            else:
                found.append(head + piece.split(" as ")[0].strip().split("::"))

    for match in USE.finditer(text):
        if match.group(1) != prefix:
            continue
        path = re.match(r"[\w:]*", text[match.end():]).group(0)
        after = match.end() + len(path)
        head = [p for p in path.split("::") if p]
        if text[after : after + 1] == "{":
            expand(head, text[after + 1 : group_end(after)])
        else:
            found.append(head)
    return found


def code_of(path):
    return "\n".join(line.split("//")[0] for line in production_lines(path))


def is_sender(parts):
    """`delivery::{webhook, slack, teams, http, ssrf}`: the senders, adapters behind `Channel`."""
    return parts[:1] == ["delivery"] and len(parts) > 1 and parts[1] in SENDERS


def layering_violations(root=ROOT):
    """(file, path) pairs that break the rules: `shared/src/service/` imports no adapter, no
    sender, no wiring (delivery's messages, subscribers and retry rules are domain); `functions/`
    import no adapter or sender (they go through `compose`)."""
    broken = []
    for path in sorted((root / "shared" / "src" / "service").rglob("*.rs")):
        for parts in imported_paths(code_of(path), "crate"):
            if parts and (parts[0] in SERVICE_FORBIDDEN or is_sender(parts)):
                broken.append((str(path.relative_to(root)), "crate::" + "::".join(parts)))
    for path in sorted((root / "functions").rglob("*.rs")):
        for parts in imported_paths(code_of(path), "presence_autopilot"):
            if parts and (parts[0] in ADAPTERS or is_sender(parts)):
                broken.append((str(path.relative_to(root)), "presence_autopilot::" + "::".join(parts)))
    return broken


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--check", action="store_true", help="exit 1 on a cycle or a layering violation")
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
    broken = layering_violations()
    print(f"layering violations (service/ and functions/ import no adapter): {len(broken)}")
    for file, path in broken:
        print(f"  {file}: {path}")
    return 1 if args.check and (rings or broken) else 0


if __name__ == "__main__":
    sys.exit(main())
