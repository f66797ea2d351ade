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

Plugins (base/plugin.h) are shared objects of their own, loaded at run time: libxoscar-<name>.so, built by the
CMake target xo_plugin_<name> from files of one layer (PLUGINS below) and base/plugin_side.c. Their objects are checked
apart from the library's: a plugin's undefined symbols must resolve inside the plugin itself or outside the tree
(the vendor's library, libc), never to an object of the core (a plugin reaches the core only through the host
table), and no object of the core may use a symbol that only a plugin defines (plugins are loaded, not linked).

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
# Each plugin, the layer its files belong to (besides base/plugin_side.c, which every plugin links).
PLUGINS = {
    "cuda": "gpu",
    "ucx": "transport",
    "nccl": "services/nccl",
}
PLUGIN_SIDE = "base/plugin_side.c"
TEST_PLUGIN_OBJ = re.compile(r"/CMakeFiles/xo_test_plugin_[A-Za-z0-9_]+\.dir/")
PLUGIN_OBJ = re.compile(r"/CMakeFiles/xo_plugin_([a-z0-9_]+)\.dir/")
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
    sources = {}  # rel source -> object, the library's
    plugins = {}  # plugin name -> {rel source: object}
    bad = []
    for e in entries:
        rel = os.path.relpath(os.path.join(e["directory"], e["file"]), root)
        if rel.startswith(OUTSIDE) or layer_of(rel) is None:
            continue
        obj = object_of(e)
        if not obj or not os.path.exists(obj):
            continue
        if TEST_PLUGIN_OBJ.search(obj):
            continue  # the loader's test plugins (tests/base): base/plugin_side.c built for the tests
        m = PLUGIN_OBJ.search(obj)
        if m:
            name = m.group(1)
            if name not in PLUGINS:
                bad.append(f"{rel}: in plugin {name}, which the PLUGINS table of scripts/check_layers.py lacks")
            elif rel != PLUGIN_SIDE and layer_of(rel) != PLUGINS[name]:
                bad.append(f"{rel} ({layer_of(rel)}) is in plugin {name}, whose files belong to {PLUGINS[name]}")
            plugins.setdefault(name, {})[rel] = obj
        elif rel == PLUGIN_SIDE:
            bad.append(f"{rel} is linked into the library: it belongs to the plugins only")
        else:
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
    plugin_only = {}  # symbol -> plugin, for symbols no library object defines
    for name, objs in sorted(plugins.items()):
        syms = {rel: nm_symbols(obj) for rel, obj in objs.items()}
        own = set().union(*(d for d, _ in syms.values()))
        for s in own:
            if s not in definer:
                plugin_only.setdefault(s, name)
        for rel, (_, undefined) in sorted(syms.items()):
            core = sorted(s for s in undefined - own if s in definer)
            if core:
                bad.append(f"{rel} (plugin {name}) calls the core directly: {', '.join(core)} (a plugin reaches the "
                           "core through its host table, base/plugin.h)")
    for rel, undefined in sorted(needs.items()):
        mine = layer_of(rel)
        allowed = set(LAYERS[mine]) | {mine}
        by_target = {}
        for s in undefined:
            other = definer.get(s)
            if other and layer_of(other) not in allowed:
                by_target.setdefault(other, []).append(s)
            elif not other and s in plugin_only:
                bad.append(f"{rel} ({mine}) links to {s} of plugin {plugin_only[s]} (plugins are loaded, not linked)")
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
    n_plugin = sum(len(o) for o in plugins.values())
    print(f"check_layers: {len(sources)} objects, {len(plugins)} plugins ({n_plugin} objects: "
          f"{', '.join(sorted(plugins)) or 'none built'}), {len(bad)} upward dependencies")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
