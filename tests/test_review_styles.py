"""Review of d71ee6b: styles are made parents first, so how deep a chain is does not
depend on the order styles are declared in."""

from __future__ import annotations

import random
from pathlib import Path

from storyc.compiler import compile_project


def _errors(root: Path, text: str) -> tuple[tuple[str, str], ...]:
    root.mkdir(parents=True)
    (root / "main.story").write_text('project "P" { aspect = "16:9" }\n' + text, "utf-8")
    comp = compile_project(root)
    return tuple(sorted((d.code, d.message) for d in comp.diagnostics if d.is_error))


def test_parents_first_follows_use_as_the_chain_does(tmp_path: Path) -> None:
    """A style that names its parent twice (`: s0` and `use = s6`, E103) inherits from
    the one `use` names; ordered by the other, a chain of 71 declared child first was
    followed by recursion and E145 blamed `s7`, a style 8 deep ("more than 64 deep"),
    while declared parent first it blamed `s64`."""
    decls = ["style s0 { duration = 5 }\n"] + [
        f"style s{i + 1} : s0 {{ use = s{i} }}\n" for i in range(70)
    ]
    seen = set()
    for order in range(3):
        styles = list(decls)
        if order == 1:
            styles.reverse()
        elif order == 2:
            random.Random(order).shuffle(styles)
        errors = _errors(tmp_path / str(order), "".join(styles) + 'scene x : s0 { prompt = "x" }\n')
        seen.add(tuple(e for e in errors if e[0] != "E103"))
    assert seen == {
        (("E145", "styles inherit from each other more than 64 deep (`s64` -> `s63` -> ...)"),)
    }


def test_a_cycle_longer_than_64_styles_is_a_cycle(tmp_path: Path) -> None:
    """70 styles inheriting from each other in a circle were reported as E145, 'more than
    64 deep ... flatten the chain', at a style that depended on the order of the
    declarations; a cycle of 5 is E113. A cycle is a cycle, however long."""
    n = 70
    decls = [f"style c{i} : c{(i + 1) % n} {{ duration = 5 }}\n" for i in range(n)]
    for order in range(3):
        styles = list(decls)
        if order == 1:
            styles.reverse()
        elif order == 2:
            random.Random(order).shuffle(styles)
        errors = _errors(tmp_path / str(order), "".join(styles) + 'scene x : c0 { prompt = "x" }\n')
        assert [code for code, _ in errors] == ["E113"], errors
        members = errors[0][1].split(": ", 1)[1].split(" -> ")
        assert len(members) == n + 1 and set(members) == {f"c{i}" for i in range(n)}
