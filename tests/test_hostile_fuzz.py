"""Hostile-input fuzzing at CI size: hypothesis drives the mutation of every `.story` file in
the repository and grammar-shaped generation (tests/hostile_fuzz.py), and every input must
satisfy the properties listed there, within a per-input time limit.

CI runs `STORYC_FUZZ_EXAMPLES` inputs (default 2,500, about half a minute); the long run is
`python tools/fuzz_hostile.py --inputs 100000` (docs: tools/fuzz_hostile.py). A failure here
prints the input's files; hypothesis shrinks it first.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from hostile_fuzz import Seed, Workspace, check, make_input, seeds, time_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_incremental import snapshot

from storyc.base.hashing import DigestCache
from storyc.compiler import compile_project
from storyc.compiler.incremental import Engine
from storyc.compiler.state import compile_with_state

EXAMPLES = int(os.environ.get("STORYC_FUZZ_EXAMPLES", "2500"))
SECONDS = 20.0  # per input; an honest compile takes milliseconds


@pytest.fixture(scope="module")
def corpus() -> list[Seed]:
    found = seeds()
    assert len(found) >= 50, "the corpus is every story in the repository"
    return found


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, corpus: list[Seed]) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("fuzz"), corpus)


@pytest.fixture(scope="module")
def digests() -> DigestCache:
    return DigestCache()  # the media never change: hash them once


def _report(inp: object, problems: list[str]) -> str:
    files = getattr(inp, "files", {})
    shown = "\n".join(f"--- {name}\n{text[:2000]!r}" for name, text in files.items())
    return "\n".join(problems) + "\n" + shown


@pytest.mark.timeout(900)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(rng=st.randoms(use_true_random=False))
def test_hostile_stories_never_crash_hang_or_leak(
    rng: random.Random, corpus: list[Seed], workspace: Workspace, digests: DigestCache
) -> None:
    inp = make_input(rng, corpus)
    folder = workspace.write(inp)
    res = check(folder, inp, seconds=SECONDS, twice=rng.random() < 0.1, digests=digests)
    assert res.ok, _report(inp, res.problems)


def test_the_properties_catch_what_they_look_for(
    tmp_path: Path, corpus: list[Seed], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the oracle is not vacuous: a crash, a hang, a raw escape and a non-JSON number each
    # fail it (as they did before issue 8)
    import time

    from hostile_fuzz import Input

    import storyc.compiler as compiler

    ws = Workspace(tmp_path, corpus[:1])
    inp = Input("grammar", {"main.story": 'scene a { prompt = "x" duration = 5 aspect = "1:1" }\n'})
    folder = ws.write(inp)
    assert check(folder, inp, seconds=SECONDS, twice=True).ok
    real = compiler.compile_project

    def crash(*a: object, **k: object) -> object:
        raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")

    def hang(*a: object, **k: object) -> object:
        time.sleep(5)
        return real(*a, **k)

    def escape(*a: object, **k: object) -> object:
        comp = real(*a, **k)
        comp.project.name = "\x1b]0;owned\x07"  # type: ignore[union-attr]
        comp.requests["a"].body["input"]["duration"] = float("inf")
        return comp

    for fake, seconds, expect in (
        (crash, SECONDS, "crash"),
        (hang, 0.5, "hang"),
        (escape, SECONDS, ""),
    ):
        monkeypatch.setattr(compiler, "compile_project", fake)
        res = check(folder, inp, seconds=seconds, twice=False)
        assert not res.ok and res.problems[0].startswith(expect), res.problems


ENGINE_EXAMPLES = int(os.environ.get("STORYC_FUZZ_ENGINE_EXAMPLES", "300"))


@pytest.mark.timeout(900)
@settings(
    max_examples=ENGINE_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(rng=st.randoms(use_true_random=False))
def test_hostile_edits_through_the_engine_equal_a_compile_from_scratch(
    rng: random.Random, corpus: list[Seed], workspace: Workspace, digests: DigestCache
) -> None:
    """What `check`, `watch` and the editor answer goes through the incremental engine:
    a story edited from a clean file of the corpus into a hostile one (and back, and as an
    editor's unsaved buffer, and through the compiled state as commands use it) must get
    exactly a from-scratch compile's answer. Found this way: a control character in a
    comment above the first declaration was reported by a whole compile (E001) and not
    after an edit; a template nested near the recursion limit failed in one and not the
    other."""
    inp = make_input(rng, corpus)
    seed = next((s for s in corpus if s.name == inp.seed), None)
    if seed is None or sum(map(len, inp.files.values())) > 100_000:
        return  # grammar-shaped (no clean version to edit from), or too big to be quick
    clean = type(inp)(inp.seed, dict(seed.files))

    def scratch(folder: Path) -> dict[str, object]:
        return snapshot(compile_project(folder, digests=digests))

    with time_limit(SECONDS):
        folder = workspace.write(clean)
        engine = Engine(folder, digests=digests)
        engine.update()
        workspace.write(inp)
        assert snapshot(engine.update()) == scratch(folder), _report(inp, ["after the edit"])
        workspace.write(clean)
        assert snapshot(engine.update()) == scratch(folder), _report(inp, ["edited back"])
        unsaved = {str(folder / k): v for k, v in inp.files.items() if v != seed.files.get(k)}
        workspace.write(inp)
        assert snapshot(engine.update(unsaved)) == scratch(folder), _report(inp, ["unsaved"])
        # as commands do: the compiled state of the clean story on disk, an engine restored
        # from it after the edit, then the answer read back whole
        workspace.write(clean)
        shutil.rmtree(folder / ".storyc" / "compiled", ignore_errors=True)
        compile_with_state(folder, digests=digests)
        workspace.write(inp)
        for step in ("restored", "answered"):
            got = snapshot(compile_with_state(folder, digests=digests))
            assert got == scratch(folder), _report(inp, [step])
