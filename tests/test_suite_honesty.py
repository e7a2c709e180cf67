"""The suite keeps itself honest: every wait on a child process has a deadline, no skip turns
a regression into a quiet "s", and no assertion holds whatever the code does.

Read from the tests' syntax trees (this file's own included), so a new test that breaks a
rule fails here, naming its file and line. docs/testing.md explains each rule.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# the one place that reads a child's pipes (by threads, each wait with a deadline)
PIPE_READER = "procs.py"

SUBPROCESS_WAITS = {"run", "call", "check_call", "check_output"}
SKIPS = {"skip", "skipif", "importorskip", "xfail"}

Rule = Callable[[str, ast.AST], list[str]]


def waits_without_timeout(name: str, tree: ast.AST) -> list[str]:
    bad: list[str] = []
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
            continue
        f, owner = call.func, call.func.value
        timed = any(k.arg == "timeout" for k in call.keywords)
        if isinstance(owner, ast.Name) and owner.id == "subprocess" and f.attr in SUBPROCESS_WAITS:
            if not timed:
                bad.append(f"{name}:{call.lineno} subprocess.{f.attr} without timeout=")
        # Popen.wait(), Popen.communicate(), Event.wait(), Thread.join() block for ever
        # without an argument ("".join(...) has one)
        elif f.attr in ("wait", "communicate", "join") and not call.args and not timed:
            bad.append(f"{name}:{call.lineno} .{f.attr}() without a timeout")
    return bad


def pipe_reads(name: str, tree: ast.AST) -> list[str]:
    """`for line in proc.stdout` or `proc.stdout.readline()` blocks for ever on a child
    that hangs without closing its output: tests read children through procs.Child."""
    if name == PIPE_READER:
        return []
    bad: list[str] = []
    for node in ast.walk(tree):
        stream: ast.expr | None = None
        if isinstance(node, ast.For | ast.comprehension):
            stream = node.iter
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("read", "readline", "readlines")
        ):
            stream = node.func.value
        if (
            isinstance(stream, ast.Attribute)
            and stream.attr in ("stdout", "stderr")
            and not (isinstance(stream.value, ast.Name) and stream.value.id == "sys")
        ):
            bad.append(f"{name}:{stream.lineno} reads a child's {stream.attr} with no deadline")
    return bad


def skips(name: str, tree: ast.AST) -> list[str]:
    """Everything the suite needs is installed by the test command (pyproject's extras, the
    machine's git, Node.js and Chromium): a missing piece fails, it never skips."""
    bad: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in SKIPS:
            v = node.value
            if (isinstance(v, ast.Name) and v.id == "pytest") or (
                isinstance(v, ast.Attribute) and v.attr == "mark"
            ):
                bad.append(f"{name}:{node.lineno} pytest {node.attr}")
    return bad


def _always_true(test: ast.expr) -> bool:
    if isinstance(test, ast.Constant):
        return bool(test.value)
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or):
        return any(_always_true(v) for v in test.values)
    if isinstance(test, ast.IfExp):
        return _always_true(test.body) or _always_true(test.orelse)
    return False


def tautologies(name: str, tree: ast.AST) -> list[str]:
    """An assertion that holds whatever its operands: `x or True`, `a if c else True`."""
    return [
        f"{name}:{node.lineno} an assertion that cannot fail"
        for node in ast.walk(tree)
        if isinstance(node, ast.Assert) and _always_true(node.test)
    ]


RULES: list[Rule] = [waits_without_timeout, pipe_reads, skips, tautologies]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_the_suite_keeps_the_rule(rule: Rule) -> None:
    bad = []
    for path in sorted(TESTS.glob("*.py")):
        bad += rule(path.name, ast.parse(path.read_text("utf-8")))
    assert not bad, "\n".join(bad)


# Each rule, fed what it forbids, finds it; fed the honest form, finds nothing.
SAMPLES: list[tuple[Rule, str, str]] = [
    (waits_without_timeout, "subprocess.run(['x'])", "subprocess.run(['x'], timeout=9)"),
    (waits_without_timeout, "p.communicate()", "p.communicate(timeout=9)"),
    (waits_without_timeout, "p.wait()", "p.wait(9)"),
    (waits_without_timeout, "t.join()", "', '.join(xs)"),
    (pipe_reads, "for line in proc.stdout: pass", "for line in child.lines(): pass"),
    (pipe_reads, "proc.stdout.readline()", "child.readline(timeout=9)"),
    (pipe_reads, "x = [l for l in p.stderr]", "sys.stdout.read()"),
    (
        skips,
        "@pytest.mark.skipif(True, reason='')\ndef f(): pass",
        "@pytest.mark.slow\ndef f(): pass",
    ),
    (skips, "pytest.importorskip('x')", "import x"),
    (skips, "pytest.skip('later')", "pytest.fail('now')"),
    (tautologies, "assert a or True", "assert a or b"),
    (tautologies, "assert x if c else True", "assert x if c else y"),
]


@pytest.mark.parametrize("rule,bad,good", SAMPLES)
def test_each_rule_sees_what_it_forbids(rule: Rule, bad: str, good: str) -> None:
    assert rule("sample.py", ast.parse(bad)), bad
    assert not rule("sample.py", ast.parse(good)), good
