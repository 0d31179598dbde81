#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The library's call graph, as gcc sees it, for layers.sh.

Each object of the library is compiled again from its entry in the
build's compile_commands.json, with gcc -fcallgraph-info, into a scratch
directory.  gcc writes each translation unit's calls as a VCG graph
(.ci): a node per function, with the place of its definition, and an
edge per call.  A static inline function of a header is a node of every
unit that calls it, placed in the header, so its calls are its header's
and not those of the file it is compiled into.  A function declared but
not defined in a unit is placed where another unit defines it.

One line per call from a function of the tree to another:

    UNIT CALLER_FILE CALLER CALLEE_FILE CALLEE

(files relative to the source tree, UNIT the .c compiled).  Calls to
the system and through pointers are left out.

The build's flags are kept but for these: -O0, so that no function is
inlined, cloned or renamed and each call is where the source makes it;
no -Werror (warnings are the build's business); no sanitizer, whose
calls are not the program's; no output or dependency files.  A build
made by another compiler (clang) is compiled with gcc from PATH.

    layers_callgraph.py COMPILE_COMMANDS SOURCE_DIR 'OBJ;OBJ;...'

Exit status 0, 1 on an error, 3 if no gcc can make call graphs (the
caller then falls back to its nm check).
"""
import concurrent.futures
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

NO_GCC = 3

# Flags of the build that are not passed on (see above); VALUED ones take
# the next argument with them.
VALUED = {"-o", "-c", "-MF", "-MT", "-MQ"}
DROPPED = re.compile(r"^(-O.*|-Werror|-fsanitize.*|-fno-sanitize.*|-MD|-MMD|-MP)$")

NODE = re.compile(r'^node: \{ title: "([^"]*)" label: "([^"\\]*)\\n([^"]*?)(?::\d+:\d+)?"'
                  r'( shape : ellipse)?')
EDGE = re.compile(r'^edge: \{ sourcename: "([^"]*)" targetname: "([^"]*)"')


def die(msg, status=1):
    print("layers_callgraph: " + msg, file=sys.stderr)
    sys.exit(status)


def makes_callgraph(cc, tmp):
    """Whether cc understands -fcallgraph-info (gcc 10 and later)."""
    out = os.path.join(tmp, "probe.o")
    try:
        r = subprocess.run([cc, "-fcallgraph-info", "-x", "c", "-c", "-o", out, "-"],
                           input=b"int f(void); int g(void) { return f(); }\n",
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return False
    return r.returncode == 0 and os.path.exists(os.path.join(tmp, "probe.ci"))


def commands(path, objects):
    """For each object, (directory, argv, source) of the compile that makes it."""
    try:
        with open(path) as f:
            entries = json.load(f)
    except (OSError, ValueError) as e:
        die("%s: %s (the build sets CMAKE_EXPORT_COMPILE_COMMANDS)" % (path, e))
    by_output = {}
    for e in entries:
        argv = e["arguments"] if "arguments" in e else shlex.split(e["command"])
        out = e.get("output")
        if out is None and "-o" in argv:
            out = argv[argv.index("-o") + 1]
        if out is not None:
            by_output[os.path.normpath(os.path.join(e["directory"], out))] = (
                e["directory"], argv, os.path.join(e["directory"], e["file"]))
    found = []
    for o in objects:
        c = by_output.get(os.path.normpath(o))
        if c is None:
            die("%s: no compile command in %s" % (o, path))
        found.append(c)
    return found


def compile_ci(job):
    """Compile one unit with -fcallgraph-info; the path of its .ci."""
    n, (directory, argv, src), cc, tmp = job
    args, skip = [cc], False
    for a in argv[1:]:
        if skip:
            skip = False
        elif a in VALUED:
            skip = True
        elif not DROPPED.match(a):
            args.append(a)
    obj = os.path.join(tmp, "%d.o" % n)
    args += ["-O0", "-fcallgraph-info", "-c", src, "-o", obj]
    r = subprocess.run(args, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        die("%s failed:\n%s\n%s" % (src, shlex.join(args), r.stdout.decode(errors="replace")))
    return src, obj[:-2] + ".ci"


def parse(ci):
    """Nodes {title: (name, file, defined here)} and edges [(from, to)] of one .ci."""
    nodes, edges = {}, []
    with open(ci) as f:
        for line in f:
            m = NODE.match(line)
            if m:
                nodes[m.group(1)] = (m.group(2), m.group(3), m.group(4) is None)
                continue
            m = EDGE.match(line)
            if m:
                edges.append((m.group(1), m.group(2)))
    return nodes, edges


def main():
    if len(sys.argv) != 4:
        die("usage: layers_callgraph.py COMPILE_COMMANDS SOURCE_DIR 'OBJ;OBJ;...'")
    cc_json, srcdir, objs = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3]
    units = commands(cc_json, [o for o in objs.split(";") if o])

    def tree(path):
        """path relative to the source tree, None if outside it (the system)."""
        p = os.path.realpath(path)
        return os.path.relpath(p, srcdir) if p.startswith(srcdir + os.sep) else None

    with tempfile.TemporaryDirectory() as tmp:
        cc = units[0][1][0]
        if not makes_callgraph(cc, tmp):
            gcc = shutil.which("gcc")
            if not gcc or not makes_callgraph(gcc, tmp):
                die("neither %s nor a gcc on PATH makes call graphs" % cc, NO_GCC)
            print("layers_callgraph: %s makes no call graph: compiled with %s" % (cc, gcc),
                  file=sys.stderr)
            cc = gcc
        jobs = [(n, u, cc, tmp) for n, u in enumerate(units)]
        with concurrent.futures.ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as ex:
            graphs = [(src, parse(ci)) for src, ci in ex.map(compile_ci, jobs)]

    # Where each function with external linkage is defined.
    defined = {}
    for _, (nodes, _) in graphs:
        for title, (name, where, here) in nodes.items():
            if here and title == name:
                defined[name] = where
    lines = set()
    for src, (nodes, edges) in graphs:
        unit = tree(src)
        for a, b in edges:
            caller, callee = nodes.get(a), nodes.get(b)
            if caller is None or callee is None or not caller[2]:
                continue
            where = callee[1] if callee[2] else defined.get(callee[0])
            if where is None:
                continue  # the system's, or a call through a pointer
            cfile, efile = tree(caller[1]), tree(where)
            if cfile and efile:
                lines.add("%s %s %s %s %s" % (unit, cfile, caller[0], efile, callee[0]))
    for line in sorted(lines):
        print(line)


if __name__ == "__main__":
    main()
