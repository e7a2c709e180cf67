"""Mutation testing of the modules where a bug costs money or shows the wrong video: each
module against its own fast, relevant tests, with mutmut 3 (`pip install -e '.[mutation]'`).
A nightly-style check, not part of CI (docs/testing.md says how to read it).

Stage: a script. In: this checkout. Out: per module, the kill rate and the survivors that
docs/testing.md does not explain as equivalent. I/O: keeps one work folder per module under
build/mutation/ (a copy of storyc/, tests/, the grammar, docs and examples, with a pyproject
whose [tool.mutmut] names that module and its tests); mutmut keeps its results there, so a
second run re-tests only what changed (the functions edited, the tests added).

mutmut runs each mutant's tests in a process forked from its own; tests that start a child
(`python -m storyc ...`) reach the mutant too, because PYTHONPATH points at the mutated copy
and the child inherits MUTANT_UNDER_TEST. Which tests run for a mutant is decided by which
tests called its function in mutmut's own process (its "stats" run): a function reached only
in a child has no tests of its own and counts as a survivor ("no tests").

Usage:
    python tools/mutation.py                 # every module (hours on 2 cores)
    python tools/mutation.py keys journal    # some modules
    python tools/mutation.py --list          # the modules, their files and tests
    python tools/mutation.py keys --survivors  # the survivors again, after new tests
    python tools/mutation.py keys --rerun    # run every mutant again, not only new ones
    python tools/mutation.py keys --report   # the last results, nothing run
    python tools/mutation.py executor --only '*__mutmut_*7'   # a sample: every tenth mutant
Exit code: 0 when every module reaches --goal (default 90 %) counting equivalents as killed.
"""

from __future__ import annotations

import argparse
import filecmp
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
WORK = HERE / "build" / "mutation"
DOCS = HERE / "docs" / "testing.md"


@dataclass(frozen=True)
class Module:
    files: tuple[str, ...]
    tests: tuple[str, ...]


# Each module with the tests that exercise it in-process and finish in seconds; mutmut
# narrows these further, per function, to the tests that called it. A whole build reaches
# every function of the lock file and the journal, so tests that build are left out there:
# each survivor would cost a minute of builds.
MODULES: dict[str, Module] = {
    "keys": Module(
        ("storyc/plan/keys.py",),
        ("tests/test_keys.py", "tests/test_build_staleness.py", "tests/test_takes.py"),
    ),
    # The planner and the store are reached by every build, so a survivor there would run
    # the builds of the money, takes and cache tests (minutes each): their own in-process
    # tests decide instead, each decision and record put in place directly.
    "planner": Module(
        ("storyc/plan/planner.py",),
        ("tests/test_planner_decisions.py", "tests/test_plan.py"),
    ),
    # The executor too: its builds (money, refusals, preview, inference, takes) run mostly in
    # `storyc build` children that mutmut cannot tie to a function, and each survivor would
    # cost minutes of them; its in-process tests run it against the real loopback provider
    # and the real preview backend, each decision in place, in about a second each.
    "executor": Module(
        ("storyc/build/executor.py",),
        ("tests/test_executor_decisions.py", "tests/test_executor_units.py"),
    ),
    "journal": Module(
        ("storyc/state/journal.py",),
        ("tests/test_journal.py", "tests/test_money_report.py"),
    ),
    "store": Module(("storyc/state/store.py",), ("tests/test_store.py",)),
    "lockfile": Module(
        ("storyc/state/lockfile.py",),
        ("tests/test_lockfile.py", "tests/test_cli_plan.py::test_errors_and_usage"),
    ),
    "fastpath": Module(
        ("storyc/build/fastpath.py",),
        ("tests/test_build_fastpath.py", "tests/test_build_staleness.py"),
    ),
    "taint": Module(
        ("storyc/check/taint.py",),
        ("tests/test_taint.py", "tests/test_compiler.py"),
    ),
    "targets": Module(
        (
            "storyc/targets/request.py",
            "storyc/targets/inference.py",
            "storyc/targets/inference_v2.py",
        ),
        ("tests/test_targets.py", "tests/test_payload_golden.py"),
    ),
    "rules": Module(
        ("storyc/check/rules.py",),
        ("tests/test_rules.py", "tests/test_diag_golden_rules.py"),
    ),
}

# What a test run needs beside the package: the grammar (storyc.grammar), the tests, and
# the docs and examples that some tests read.
COPIED = ("storyc", "grammar", "tests", "docs", "examples", "README.md")

KILLED = {1, 3, 37}  # a test failed, pytest crashed, the type checker refused
TIMEOUT = {-24, 24, 152, 255, 36}
NO_TESTS = {5, 33}


@dataclass
class Tally:
    killed: list[str] = field(default_factory=list)
    timeout: list[str] = field(default_factory=list)
    survived: list[str] = field(default_factory=list)
    no_tests: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # not run yet, interrupted, crashed

    @property
    def total(self) -> int:
        return sum(map(len, (self.killed, self.timeout, self.survived, self.no_tests, self.other)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("modules", nargs="*", help=f"some of: {', '.join(MODULES)} (default: all)")
    ap.add_argument("--list", action="store_true", help="print the modules and their tests")
    ap.add_argument("--report", action="store_true", help="report the last results; run nothing")
    ap.add_argument("--rerun", action="store_true", help="run every mutant again")
    ap.add_argument(
        "--survivors", action="store_true", help="run the survivors again (after new tests)"
    )
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only the mutants whose names match (fnmatch; repeatable), run and reported:\n"
        "a sample, e.g. '*__mutmut_*7' is every tenth mutant of every function",
    )
    ap.add_argument("--max-children", type=int, default=2, help="mutants run at once (2)")
    ap.add_argument("--goal", type=float, default=90.0, help="kill rate wanted, in %% (90)")
    args = ap.parse_args()
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        ap.error(f"unknown module(s): {', '.join(unknown)}; known: {', '.join(MODULES)}")
    names = args.modules or list(MODULES)
    if args.list:
        for name in names:
            m = MODULES[name]
            print(f"{name}: {' '.join(m.files)}\n    tests: {' '.join(m.tests)}")
        return 0
    equivalent = documented_equivalents()
    ok = True
    rows: list[str] = []
    for name in names:
        work = WORK / name
        if not args.report:
            t0 = time.monotonic()
            prepare(work, MODULES[name])
            code = run_mutmut(
                work, args.max_children, rerun=args.rerun, again=args.survivors, only=args.only
            )
            print(f"[{name}] mutmut exited {code} after {time.monotonic() - t0:.0f} s", flush=True)
        tally = results(work, args.only)
        if tally is None:
            rows.append(f"{name:10} not run")
            ok = False
            continue
        explained = [m for m in tally.survived + tally.no_tests if m in equivalent]
        unexplained = [m for m in tally.survived + tally.no_tests if m not in equivalent]
        dead = len(tally.killed) + len(tally.timeout)
        rate = 100.0 * dead / tally.total if tally.total else 100.0
        counted = 100.0 * (dead + len(explained)) / tally.total if tally.total else 100.0
        ok &= counted >= args.goal and not tally.other
        rows.append(
            f"{name:10} {tally.total:5} mutants  killed {dead:5} ({rate:5.1f} %)"
            f"  equivalent {len(explained):3}  -> {counted:5.1f} %"
            f"  survived {len(unexplained):3}"
            + (f"  NOT RUN {len(tally.other)}" if tally.other else "")
            + (f"  (sample: {' '.join(args.only)})" if args.only else "")
        )
        for mutant in unexplained:
            why = "no tests" if mutant in tally.no_tests else "survived"
            print(f"    {why}: {mutant}")
    print()
    print("module     mutants            killed              equivalent   counted    left")
    for row in rows:
        print(row)
    return 0 if ok else 1


def prepare(work: Path, module: Module) -> None:
    """Bring the work folder up to this checkout: changed files copied (mutmut then mutates
    them again), unchanged ones left with their times (so mutmut keeps their results)."""
    work.mkdir(parents=True, exist_ok=True)
    for rel in COPIED:
        sync(HERE / rel, work / rel)
    data = tomllib.loads((HERE / "pyproject.toml").read_text("utf-8"))
    base = dict(data.get("tool", {}).get("mutmut", {}))
    base["only_mutate"] = list(module.files)
    # a mutant that makes a test wait forever (a future never set) burns no CPU, so
    # mutmut's CPU limit never ends it: pytest-timeout does, and the mutant counts as killed
    base["pytest_add_cli_args"] = [*base.get("pytest_add_cli_args", []), "--timeout=90"]
    base["pytest_add_cli_args_test_selection"] = list(module.tests)
    text = (HERE / "pyproject.toml").read_text("utf-8")
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text)
    text += "\n[tool.mutmut]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in base.items())
    target = work / "pyproject.toml"
    if not target.exists() or target.read_text("utf-8") != text:
        target.write_text(text, "utf-8")


def sync(src: Path, dst: Path) -> None:
    if src.is_file():
        if not dst.exists() or not filecmp.cmp(src, dst, shallow=False):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)  # a new time: newer than mutmut's copy, so mutated anew
        return
    if not src.is_dir():
        return
    dst.mkdir(parents=True, exist_ok=True)
    for child in src.iterdir():
        if child.name in ("__pycache__", ".hypothesis", ".pytest_cache"):
            continue
        sync(child, dst / child.name)
    for child in dst.iterdir():
        if not (src / child.name).exists() and child.name != "__pycache__":
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def run_mutmut(work: Path, max_children: int, *, rerun: bool, again: bool, only: list[str]) -> int:
    mutmut = Path(sys.executable).with_name("mutmut")
    if not mutmut.exists():
        sys.exit("mutmut is not installed: pip install -e '.[mutation]'")
    # made before mutmut starts: Python remembers a PYTHONPATH folder missing at start-up as
    # "nothing here" for the life of the process, and would import the unmutated package
    (work / "mutants").mkdir(exist_ok=True)
    env = {
        **os.environ,
        # children started by the tests import the mutated copy, as the tests do
        "PYTHONPATH": str(work / "mutants"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    names: list[str] = list(only)
    if (rerun or again) and (tally := results(work, only)) is not None:
        names = tally.survived + tally.no_tests
        if rerun:
            names += tally.killed + tally.timeout + tally.other
        if not names:
            return 0  # nothing to run again (mutmut would run every mutant)
    cmd = [str(mutmut), "run", "--max-children", str(max_children), *names]
    return subprocess.run(cmd, cwd=work, env=env, check=False).returncode


def results(work: Path, only: list[str] | None = None) -> Tally | None:
    """The verdicts mutmut keeps in the work folder (with `only`, of the matching mutants)."""
    metas = sorted((work / "mutants").rglob("*.py.meta"))
    if not metas:
        return None
    tally = Tally()
    for meta in metas:
        codes: dict[str, int | None] = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
        for name, code in sorted(codes.items()):
            if only and not any(fnmatch.fnmatchcase(name, p) for p in only):
                continue
            if code in KILLED:
                tally.killed.append(name)
            elif code in TIMEOUT:
                tally.timeout.append(name)
            elif code == 0:
                tally.survived.append(name)
            elif code in NO_TESTS:
                tally.no_tests.append(name)
            else:
                tally.other.append(name)
    return tally


def documented_equivalents() -> set[str]:
    """The mutants docs/testing.md explains as equivalent: the first column of the rows of
    its table under "Equivalent mutants", each a mutmut name in backquotes."""
    if not DOCS.exists():
        return set()
    text = DOCS.read_text("utf-8")
    section = text.split("## Equivalent mutants", 1)[-1].split("\n## ", 1)[0]
    return set(re.findall(r"^\|\s*`([\w.ǁ]+__mutmut_\d+)`", section, re.M))


if __name__ == "__main__":
    sys.exit(main())
