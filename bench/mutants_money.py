"""Apply, one at a time, the deliberate bugs that the suite used to let through (issue 16's
named survivors: money and recovery, the render key and the fast path, taint, rules, file
kinds, the lock file), and run the test written to catch each: every one must fail on its
mutant. A nightly-style check, not part of CI; docs/testing.md has the table.

Stage: a script. In: this checkout. Out: one line per mutant (KILLED or SURVIVED, the
test, the seconds it took) and the kill rate. I/O: copies the checkout (without .git
and .venv) to a temporary folder, edits one file there per mutant, runs pytest there.

First, as a control, the same tests run on the unmutated copy and must all pass (a test
that fails for another reason would "kill" every mutant).

Usage: python bench/mutants_money.py [--only NAME,...]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

_ALIVE = """

def _alive(owner: str) -> bool:  # the mutant: liveness judged by the pid
    try:
        os.kill(int(owner.split(":")[0]), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True
"""

# name: (file, text, replacement, appended to the file, test that must fail)
MUTANTS: dict[str, tuple[str, str, str, str, str]] = {
    "project max_cost ignored": (
        "storyc/build/session.py",
        'args.max_cost if args.max_cost is not None else _dec(_setting(project, "max_cost"))',
        "args.max_cost",
        "",
        "tests/test_money_budget.py::test_project_max_cost_is_the_budget",
    ),
    "a scene of unknown cost passes the budget": (
        "storyc/build/budget.py",
        "        if amount is None:\n            why",
        "        if amount is None:\n            return Decimal(0)\n            why",
        "",
        "tests/test_money_budget.py::test_unknown_cost_never_fits_a_budget",
    ),
    "no refund after a send known not to have left": (
        "storyc/build/executor.py",
        "                    claimed.not_sent = True\n                self._give_back(reserved)\n"
        "                if attempt is not None and exc.answered:",
        "                    claimed.not_sent = True\n"
        "                if attempt is not None and exc.answered:",
        "",
        "tests/test_money_budget.py::test_reservation_comes_back_when_the_send_created_nothing",
    ),
    "a balance refusal does not halt the build": (
        "storyc/build/executor.py",
        "                if exc.stop_all:\n                    self._halt(str(exc), sends_too=True)",
        "                if exc.stop_all:\n                    pass",
        "",
        "tests/test_money_budget.py::test_balance_refusal_halts_the_rest_of_the_build",
    ),
    "a completed attempt missing from the key index is paid again": (
        "storyc/plan/planner.py",
        "        if done is not None and done.output is not None and src.has(done.output):",
        "        if False:",
        "",
        "tests/test_money_recovery.py::"
        "test_a_completed_attempt_missing_from_the_key_index_is_not_paid_again",
    ),
    "a re-fetched output is adopted without its digest": (
        "storyc/backends/inference.py",
        "return self.store.put_file(tmp, expected=expected)",
        "return self.store.put_file(tmp)",
        "",
        "tests/test_money_recovery.py::test_refetched_output_is_verified_against_its_digest",
    ),
    "pid reuse in journal recovery (liveness by pid)": (
        "storyc/state/journal.py",
        'if row["owner"] == self.owner:',
        'if row["owner"] == self.owner or _alive(row["owner"]):',
        _ALIVE,
        "tests/test_journal.py::test_recover_does_not_trust_a_living_pid",
    ),
    "the fast path ignores --target": (
        "storyc/build/fastpath.py",
        "        args.target,\n",
        "",
        "",
        "tests/test_build_staleness.py::test_another_target_is_not_answered_by_the_fast_path",
    ),
    "the fast path ignores ctime": (
        "storyc/build/fastpath.py",
        "                or st.st_ctime_ns != ctime\n",
        "",
        "",
        "tests/test_build_staleness.py::test_a_file_rewritten_with_its_old_size_and_time_is_seen",
    ),
    "taint: an error inside an element or style blocks nothing": (
        "storyc/check/taint.py",
        'elif owner is not None and kind in ("asset", "element", "style"):',
        'elif owner is not None and kind in ("asset",):',
        "",
        "tests/test_taint.py::test_elements_and_styles_carry_the_taint",
    ),
    "taint: elements and styles naming a broken name are not broken": (
        "storyc/check/taint.py",
        "    changed = True\n    while changed:",
        "    changed = False\n    while changed:",
        "",
        "tests/test_taint.py::test_elements_and_styles_carry_the_taint",
    ),
    "taint: a scene's parent style is not followed": (
        "storyc/check/taint.py",
        "        if decl.parent is not None:\n            names.add(decl.parent.name)\n",
        "",
        "",
        "tests/test_taint.py::test_elements_and_styles_carry_the_taint",
    ),
    "E220 off by one (three extra angles refused)": (
        "storyc/check/rules.py",
        "len(element.refs) > MAX_ELEMENT_REFS",
        "len(element.refs) >= MAX_ELEMENT_REFS",
        "",
        "tests/test_rules.py::test_element_with_too_many_angles",
    ),
    "a local file's extension compared case-sensitively": (
        "storyc/resolve/files.py",
        "suffix = Path(abs_path).suffix.lower()",
        "suffix = Path(abs_path).suffix",
        "",
        "tests/test_resolve.py::test_extensions_are_matched_whatever_their_case",
    ),
    "a URL's extension compared case-sensitively": (
        "storyc/resolve/files.py",
        "suffix = Path(parts.path).suffix.lower()",
        "suffix = Path(parts.path).suffix",
        "",
        "tests/test_resolve.py::test_extensions_are_matched_whatever_their_case",
    ),
    "a lone <<<<<<< line in a prompt makes storyc.lock unreadable": (
        "storyc/state/lockfile.py",
        "            expect, first = 1, i",
        "            return i",
        "",
        "tests/test_lockfile.py::test_conflict_marker_names_the_line",
    ),
    "picked = 0 accepted": (
        "storyc/state/lockfile.py",
        "picked < 1",
        "picked < 0",
        "",
        "tests/test_lockfile.py::test_bad_toml_and_bad_values",
    ),
    "the frame time is left out of the render key": (
        "storyc/plan/keys.py",
        '                out["at"] = value["at"]',
        "                pass",
        "",
        "tests/test_build_staleness.py::test_the_frame_time_is_part_of_the_key",
    ),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", default="", help="comma-separated mutant names (substrings)")
    args = ap.parse_args()
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    killed = total = 0
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        copy = Path(tmp) / "tree"
        shutil.copytree(HERE, copy, ignore=_ignore)
        tests = sorted(
            {m[4] for n, m in MUTANTS.items() if not wanted or any(w in n for w in wanted)}
        )
        control = _pytest(copy, tmp, tests)
        print(f"control (no mutant): {'all pass' if control.returncode == 0 else 'FAILED'}")
        if control.returncode != 0:
            print(control.stdout[-3000:])
            return 2
        for name, (rel, old, new, extra, test) in MUTANTS.items():
            if wanted and not any(w in name for w in wanted):
                continue
            path = copy / rel
            original = path.read_text("utf-8")
            if original.count(old) != 1:
                # the code moved on: the mutant must be written again, so this run fails
                print(f"STALE     {name}: the code to mutate is not there exactly once")
                total += 1
                continue
            path.write_text(original.replace(old, new) + extra, "utf-8")
            t0 = time.monotonic()
            try:
                p = _pytest(copy, tmp, [test])
            finally:
                path.write_text(original, "utf-8")
            total += 1
            dead = p.returncode != 0
            killed += dead
            verdict = "KILLED  " if dead else "SURVIVED"
            print(f"{verdict}  {name}  by {test}  ({time.monotonic() - t0:.0f} s)", flush=True)
    print(f"killed {killed} of {total}")
    return 0 if killed == total else 1


def _ignore(folder: str, names: list[str]) -> set[str]:
    skipped = {".git", ".venv", "__pycache__", ".hypothesis"}
    if Path(folder) == HERE:
        skipped.add("build")  # tools/mutation.py's work folders, not the storyc.build package
    return skipped & set(names)


def _pytest(copy: Path, tmp: str, tests: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
        cwd=copy,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(copy), "HOME": tmp},
        capture_output=True,
        text=True,
        timeout=1800,
    )


if __name__ == "__main__":
    sys.exit(main())
