#!/usr/bin/env python3
"""Fails when a library object depends on a folder above its own.

usage: scripts/check_layers.py BUILD_DIR

Why symbols and not includes: a header can be included for a type alone, and a declaration can hide in a header of
the wrong folder; what ties two objects together is one calling or reading the other. So this reads every object of
the library (compile_commands.json says which source each one comes from), asks `nm` which symbols each defines and
which it leaves undefined, and resolves each undefined symbol to the object that defines it. An edge from a file in
folder A to a file in folder B is allowed when B is A itself or one of the folders A may use (LAYERS below, the
table docs/ARCHITECTURE.md draws). Includes are checked too, with the same table, so a file cannot reach up for a
macro or an inline function either.

Exit status: 0 when every edge points down, 1 with one line per offending edge (file, the file it uses, the
symbols or the header), 2 on a usage error.
"""
import json
import os
import re
import shlex
import subprocess
import sys

# Each folder and the folders below it that it may use. Siblings (transport, gpu, policies) do not use each other.
LAYERS = {
    "base": [],
    "transport": ["base"],
    "gpu": ["base"],
    "policies": ["base"],
    "runtime": ["base", "transport", "gpu", "policies"],
    "services/nccl": ["runtime", "base", "transport", "gpu", "policies"],
    "services/devbuf": ["services/nccl", "runtime", "base", "transport", "gpu", "policies"],
    "services/coll": ["services/devbuf", "services/nccl", "runtime", "base", "transport", "gpu", "policies"],
    "services": ["services/coll", "services/devbuf", "services/nccl", "runtime", "base", "transport", "gpu",
                 "policies"],
    "cluster": ["services", "services/coll", "services/devbuf", "services/nccl", "runtime", "base", "transport",
                "gpu", "policies"],
}
# Folders whose files are not part of the library (they use the public API only and are checked by the compiler).
OUTSIDE = ("include/", "tests/", "bench/", "examples/", "python/")


def layer_of(rel):
    """The layer of a source path relative to the tree's root: the longest LAYERS key that is a folder of it."""
    best = None
    for name in LAYERS:
        if rel.startswith(name + "/") and (best is None or len(name) > len(best)):
            best = name
    return best


def object_of(entry):
    out = entry.get("output")
    if out is None:
        args = shlex.split(entry["command"]) if "command" in entry else entry["arguments"]
        out = args[args.index("-o") + 1] if "-o" in args else None
    return None if out is None else os.path.join(entry["directory"], out)


def nm_symbols(obj):
    """(defined, undefined) global symbols of one object."""
    text = subprocess.run(["nm", "-g", obj], check=True, capture_output=True, text=True).stdout
    defined, undefined = set(), set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
        elif len(parts) == 3 and parts[1] not in ("U", "w", "v"):
            defined.add(parts[2])
    return defined, undefined


INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    build = os.path.abspath(sys.argv[1])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        entries = json.load(open(os.path.join(build, "compile_commands.json")))
    except OSError as e:
        print(f"check_layers: {e}: configure {build} first (CMAKE_EXPORT_COMPILE_COMMANDS is on)", file=sys.stderr)
        return 2
    sources = {}  # rel source -> object
    for e in entries:
        rel = os.path.relpath(os.path.join(e["directory"], e["file"]), root)
        if rel.startswith(OUTSIDE) or layer_of(rel) is None:
            continue
        obj = object_of(e)
        if obj and os.path.exists(obj):
            sources[rel] = obj
    if not sources:
        print(f"check_layers: no library objects found under {build}: build it first", file=sys.stderr)
        return 2
    definer, needs = {}, {}
    for rel, obj in sources.items():
        defined, undefined = nm_symbols(obj)
        for s in defined:
            definer.setdefault(s, rel)
        needs[rel] = undefined
    bad = []
    for rel, undefined in sorted(needs.items()):
        mine = layer_of(rel)
        allowed = set(LAYERS[mine]) | {mine}
        by_target = {}
        for s in undefined:
            other = definer.get(s)
            if other and layer_of(other) not in allowed:
                by_target.setdefault(other, []).append(s)
        for other, syms in sorted(by_target.items()):
            bad.append(f"{rel} ({mine}) calls up into {other} ({layer_of(other)}): {', '.join(sorted(syms))}")
    # Includes: every file of a layer, headers too.
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith((".c", ".h", ".S")):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), root)
            mine = layer_of(rel)
            if mine is None or rel.startswith(OUTSIDE):
                continue
            allowed = set(LAYERS[mine]) | {mine}
            for inc in INCLUDE.findall(open(os.path.join(dirpath, f), errors="replace").read()):
                theirs = layer_of(inc)
                if theirs is not None and theirs not in allowed:
                    bad.append(f"{rel} ({mine}) includes {inc} ({theirs})")
    for line in bad:
        print(line)
    print(f"check_layers: {len(sources)} objects, {len(bad)} upward dependencies")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
