#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Mutation testing of src/: one small bug at a time, each against the
tests named to catch it.

Each mutant in mutants.txt names a file, an exact snippet of it and its
replacement (or several such: each "file:" starts another), and a CTest
regex.  The tree is copied to a scratch directory, configured as
BUILD_DIR is and built whole; for each mutant the snippets are replaced (each must occur
exactly once, else the mutant is "stale": the code moved on and the list
must follow), the targets its tests run are rebuilt, its tests run
under a time limit (a hang counts as killed) and the files are restored.
A mutant whose tests all pass survived.

    mutate.py BUILD_DIR [--only ID,ID] [--list FILE] [--timeout S] [--keep]
    mutate.py --check     (lists stale mutants, builds nothing)

A mutant may carry "equivalent: REASON": no test can tell it from the
code (it changes nothing observable).  It is run all the same; if it
survives, the score is given both ways, strict and without it.

Exit status: 0 if every mutant was applied, built and killed (or
survived and is marked equivalent).
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CACHE_VARS = ("CMAKE_BUILD_TYPE", "CMAKE_C_COMPILER", "USMC_SANITIZE", "USMC_FUZZ",
              "USMC_KERNEL")


class Mutant:
    def __init__(self, ident, line):
        self.id = ident
        self.line = line
        self.tests = None
        self.what = ""
        self.equivalent = ""
        self.hunks = []  # [file, original lines, new lines]: one per "file:"

    @property
    def file(self):
        return ",".join(h[0] for h in self.hunks)

    def check(self):
        if not self.hunks or not self.tests or not all(h[1] for h in self.hunks):
            sys.exit("%s:%d: mutant %s needs file:, tests: and '-' lines"
                     % ("mutants", self.line, self.id))


def parse(path):
    """== ID, then file:, tests:, what:, equivalent:, '- ' original and '+ ' new lines."""
    mutants, cur = [], None
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if line.startswith("=="):
                cur = Mutant(line[2:].strip(), n)
                mutants.append(cur)
            elif cur is None or not line or line.startswith("#"):
                continue
            elif line.startswith("-") and cur.hunks:
                cur.hunks[-1][1].append(line[2:])
            elif line.startswith("+") and cur.hunks:
                cur.hunks[-1][2].append(line[2:])
            else:
                key, _, val = line.partition(":")
                if key == "file":
                    cur.hunks.append([val.strip(), [], []])
                elif key in ("tests", "what", "equivalent"):
                    setattr(cur, key, val.strip())
                else:
                    sys.exit("%s:%d: unknown field %r" % (path, n, key))
    ids = set()
    for m in mutants:
        m.check()
        if m.id in ids:
            sys.exit("%s: mutant %s listed twice" % (path, m.id))
        ids.add(m.id)
    return mutants


def snippet(lines):
    return "\n".join(lines) + ("\n" if lines else "")


def apply(tree, m):
    """Replaces the snippets; returns the original texts, or None if stale."""
    orig = {}
    for name, old, new in m.hunks:
        path = os.path.join(tree, name)
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            text = ""
        if text.count(snippet(old)) != 1:
            restore(tree, m, orig)
            return None
        orig.setdefault(name, text)
        write_newer(path, text.replace(snippet(old), snippet(new)))
    return orig


def write_newer(path, text):
    """Writes text, dated a second ahead: the kernel's file times are coarser
    than a build is quick, and an object made in the same tick as its
    source was written would pass for up to date, keeping the mutant
    before (or the code before the mutant)."""
    with open(path, "w") as f:
        f.write(text)
    later = time.time() + 1
    os.utime(path, (later, later))


def restore(tree, m, orig):
    for name, text in orig.items():
        write_newer(os.path.join(tree, name), text)


def run(cmd, timeout=None, **kw):
    """Runs cmd in a session of its own, killed whole at the timeout."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True, text=True, **kw)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return None, out


def copy_tree(dest):
    """The source tree as it is: git's files (tracked or new), else all but builds."""
    git = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                         capture_output=True)
    if git.returncode != 0:
        shutil.copytree(ROOT, dest, symlinks=True,
                        ignore=shutil.ignore_patterns("build*", ".git"))
        return
    for name in git.stdout.decode().split("\0"):
        src = os.path.join(ROOT, name)
        if name and os.path.isfile(src):
            os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, name))


def kill_session(sid):
    """Kills every process of the session ctest led, tests in groups of their own included.

    Again until a look finds none: a process forked while /proc was read
    (ctest starting its next test, a test its child) escapes one look."""
    for _ in range(100):
        found = 0
        for pid in os.listdir("/proc"):
            try:
                with open("/proc/%s/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[3]) == sid and fields[0] != "Z":
                    os.kill(int(pid), signal.SIGKILL)
                    found += 1
            except (OSError, ValueError, IndexError):
                pass
        if not found:
            return
        time.sleep(0.01)


def run_tests(build, regex, timeout):
    """Runs the tests; stops at the first failure.  Returns (status, detail)."""
    p = subprocess.Popen(["ctest", "-j2", "-R", regex], cwd=build, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True, text=True)
    deadline = time.time() + timeout
    timer = threading.Timer(timeout, kill_session, (p.pid,))
    timer.start()
    failed, passed, skipped = None, 0, 0
    try:
        for line in p.stdout:
            # A skipped test (exit 77) checked nothing: it kills no mutant.
            if re.search(r"Test +#\d+: \S+ \.*\s*\*\*\*Skipped", line):
                skipped += 1
                continue
            m = re.search(r"Test +#\d+: (\S+) \.*\s*(\*\*\*|Exception|Failed|Not Run)", line)
            if m:
                failed = m.group(1)
                break
            if re.search(r"Test +#\d+: \S+ \.*\s*Passed", line):
                passed += 1
    finally:
        timer.cancel()
        kill_session(p.pid)
        p.stdout.close()
        p.wait()
    if failed:
        return "killed", "by " + failed
    if time.time() >= deadline:
        return "killed", "hung past %d s" % timeout
    if p.returncode != 0:
        return "killed", "ctest exited %d" % p.returncode
    return "survived", "%d test(s) passed" % passed + (", %d skipped" % skipped if skipped else "")


def cache_args(build_dir):
    args = []
    with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
        for line in f:
            m = re.match(r"([A-Z_]+):[A-Z]+=(.*)$", line.strip())
            if m and m.group(1) in CACHE_VARS:
                args.append("-D%s=%s" % (m.group(1), m.group(2)))
    return args


def test_targets(build, regex):
    """Tests matching regex, and the targets (executables of this build) they run."""
    rc, out = run(["ctest", "-N", "-V", "-R", regex], cwd=build)
    names = re.findall(r"^\s*Test\s+#\d+: (\S+)", out, re.M)
    targets = set()
    for cmd in re.findall(r"Test command: (.*)$", out, re.M):
        for word in cmd.split():
            word = word.strip('"')
            if word == build:
                return names, None  # a test that takes the whole build
            if not word.startswith(build + "/"):
                continue
            obj = re.search(r"/CMakeFiles/([^/]+)\.dir/", word)
            if obj:
                targets.add(obj.group(1))  # objects: their target
            elif os.path.isfile(word) and not os.access(word, os.X_OK):
                continue  # written by the configure (compile_commands.json)
            else:
                name = re.sub(r"^lib|\.so[.0-9]*$|\.a$", "", os.path.basename(word))
                targets.add(name)
    # usmc-run runs its program with the preload library, which no test names.
    if "usmc-run" in targets:
        targets.add("usmc-preload")
    return names, targets


def build(build_dir, targets):
    """Builds the targets, or everything if some are no target's name."""
    cmd = ["nice", "cmake", "--build", build_dir, "-j2"]
    if targets:
        rc, out = run(cmd + ["--target"] + sorted(targets))
        if rc == 0:
            return 0, out
    return run(cmd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build_dir", nargs="?")
    ap.add_argument("--check", action="store_true",
                    help="only check that each snippet is found exactly once")
    ap.add_argument("--list", default=os.path.join(HERE, "mutants.txt"))
    ap.add_argument("--only", help="comma-separated mutant ids")
    ap.add_argument("--timeout", type=int, default=180,
                    help="seconds for one mutant's tests; a hang counts as killed")
    ap.add_argument("--keep", action="store_true", help="keep the scratch tree")
    a = ap.parse_args()

    mutants = parse(a.list)
    if a.only:
        want = a.only.split(",")
        unknown = set(want) - {m.id for m in mutants}
        if unknown:
            sys.exit("unknown mutant(s): " + ", ".join(sorted(unknown)))
        mutants = [m for m in mutants if m.id in want]
    if a.check:
        stale = 0
        for m in mutants:
            for name, old, _ in m.hunks:
                path = os.path.join(ROOT, name)
                text = open(path).read() if os.path.exists(path) else ""
                n = text.count(snippet(old))
                if n != 1:
                    stale += 1
                    print("stale: %s (%s): snippet found %d times" % (m.id, name, n))
                    break
        print("%d mutants, %d stale" % (len(mutants), stale))
        return 1 if stale else 0
    if not a.build_dir:
        ap.error("BUILD_DIR is needed")
    build_dir = os.path.abspath(a.build_dir)
    scratch = tempfile.mkdtemp(prefix="usmc-mutate.")
    tree, bdir = os.path.join(scratch, "src"), os.path.join(scratch, "build")
    start = time.time()
    try:
        copy_tree(tree)
        rc, out = run(["cmake", "-S", tree, "-B", bdir] + cache_args(build_dir))
        if rc != 0:
            sys.exit("configure failed:\n" + out)
        # Built whole first: ctest names a test's executable only once it
        # exists, and a test run through usmc-run needs the preload, which
        # its command does not name.
        rc, out = build(bdir, None)
        if rc != 0:
            sys.exit("the unmutated tree does not build:\n" + out[-3000:])
        plan, every = [], set()
        for m in mutants:
            names, targets = test_targets(bdir, m.tests)
            plan.append((m, names, targets))
            every = None if every is None or targets is None else every | targets
        print("mutating %d: tree in %s, built in %.0f s" % (len(mutants), scratch,
                                                         time.time() - start), flush=True)
        results = {"killed": [], "survived": [], "stale": [], "no-build": [], "no-tests": []}
        for m, names, targets in plan:
            t0 = time.time()
            if not names:
                status, detail = "no-tests", m.tests
            else:
                orig = apply(tree, m)
                if orig is None:
                    status, detail = "stale", "snippet not found exactly once in " + m.file
                else:
                    try:
                        rc, out = build(bdir, targets)
                        if rc != 0:
                            errors = [l for l in out.splitlines() if "error" in l]
                            status, detail = "no-build", (errors or ["?"])[0].strip()
                        else:
                            status, detail = run_tests(bdir, m.tests, a.timeout)
                    finally:
                        restore(tree, m, orig)
            results[status].append(m)
            print("%-9s %-28s %4.0f s  %s" % (status, m.id, time.time() - t0, detail),
                  flush=True)
        # Leave the scratch build as the unmutated tree.
        build(bdir, every)
        killed, survived = len(results["killed"]), len(results["survived"])
        scored = killed + survived
        equivalent = sum(1 for m in results["survived"] if m.equivalent)
        print("\nscore: %d of %d killed (%.1f%%); %d stale, %d not built, %d without tests; "
              "%.0f s" % (killed, scored, 100.0 * killed / scored if scored else 0.0,
                          len(results["stale"]), len(results["no-build"]),
                          len(results["no-tests"]), time.time() - start))
        if equivalent:
            rest = scored - equivalent
            print("without the %d surviving mutant(s) marked equivalent: %d of %d killed (%.1f%%)"
                  % (equivalent, killed, rest, 100.0 * killed / rest if rest else 0.0))
        for status in ("survived", "stale", "no-build", "no-tests"):
            for m in results[status]:
                print("%s: %s (%s): %s" % (status, m.id, m.file, m.what))
                if status == "survived" and m.equivalent:
                    print("    equivalent: " + m.equivalent)
        return 0 if killed + equivalent == len(mutants) else 1
    finally:
        if a.keep:
            print("kept " + scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
