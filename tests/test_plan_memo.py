"""The daemon's kept plan (storyc.plan.memo) equals a full plan after any edit sequence.

Random edits on a generated project with chains (a scene that starts where another ended,
a scene that edits another's video), against the paid backend's prices, after a real
preview build made part of it up to date: after every edit the memo's plan must be the
full planner's plan, scene by scene (status, decisions, keys, reasons, estimates,
outputs), and it must have re-planned exactly the scenes whose request changed and the
scenes downstream of them.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storyc.cli import main
from storyc.compiler.incremental import Engine
from storyc.media import ffmpeg as media
from storyc.plan.memo import RACY_NS, PlanMemo, racy, sources_state
from storyc.plan.planner import Plan, Sources, _file_durations, planner_for
from storyc.state.lockfile import LockFile
from storyc.state.store import Store

N = 8


def story(prompts: list[str], links: list[int | None], durations: list[int]) -> str:
    out = ['project "p" {\n  aspect = "16:9"\n}\nimage pic = "assets/pic.png"\n']
    for i in range(N):
        body = [f'  prompt = "{prompts[i]} @pic"', f"  duration = {durations[i]}"]
        up = links[i]
        if up is not None:
            body = [f'  prompt = "{prompts[i]}"', f"  start = s{up}.last_frame"]
        out.append(f"scene s{i} {{\n" + "\n".join(body) + "\n}\n")
    return "".join(out)


def plan_json(plan: Plan) -> dict[str, object]:
    doc = plan.to_json()
    for n, sp in plan.scenes.items():  # what to_json leaves out but the executor reads
        doc["scenes"][n]["_decisions"] = repr(sorted(sp.decisions.items()))  # type: ignore[index]
        doc["scenes"][n]["_output"] = sp.output  # type: ignore[index]
    return doc


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("memo")
    (root / "assets").mkdir()
    media.make_test_image(root / "assets" / "pic.png", 640, 360, seed=1)
    prompts = [f"shot {i}" for i in range(N)]
    links: list[int | None] = [None, 0, None, 2, 3, None, None, 6]
    (root / "main.story").write_text(story(prompts, links, [5] * N), "utf-8")
    assert main(["build", str(root), "--json"]) == 0  # a real preview build
    # the store's folders just changed: a plan made now would not be kept (racy); wait
    # until a change within the same clock tick can no longer hide
    time.sleep(RACY_NS / 1e9 + 0.2)
    return root


@settings(max_examples=12, deadline=None)
@given(st.randoms(use_true_random=False))
def test_memo_plan_equals_full_plan(built: Path, rnd: random.Random) -> None:
    root = built
    prompts = [f"shot {i}" for i in range(N)]
    links: list[int | None] = [None, 0, None, 2, 3, None, None, 6]
    durations = [5] * N
    (root / "main.story").write_text(story(prompts, links, durations), "utf-8")
    engine = Engine(root)
    store = Store.for_project(root)
    lock = LockFile.load(LockFile.path_for(root))
    memo = PlanMemo()
    before = engine.update()
    patched = 0
    for step in range(7):
        # the last edit is always a prompt's: a sequence of only "none" (or only edits
        # that reorder the scenes) must not make the last assertion fail by chance
        kind = (
            "prompt" if step == 6 else rnd.choice(["prompt", "duration", "link", "unlink", "none"])
        )
        i = rnd.randrange(N)
        if kind == "prompt":
            prompts[i] = f"shot {i} v{rnd.randrange(1000)}"
        elif kind == "duration":
            durations[i] = rnd.choice([5, 10])
        elif kind == "link" and i > 0:
            links[i] = rnd.randrange(i)  # only earlier scenes: never a cycle
        elif kind == "unlink":
            links[i] = None
        (root / "main.story").write_text(story(prompts, links, durations), "utf-8")
        comp = engine.update()
        sources = Sources(
            lock=lock, store=store, backend="inference", file_duration=_file_durations(comp)
        )
        state = sources_state(root, lock, False, store)
        got = memo.plan(comp, sources, state)
        full = planner_for(comp, sources).plan()
        assert plan_json(got) == plan_json(full)
        if memo.last is not None and not racy(state) and kind != "none":
            changed = {
                n
                for n, r in comp.requests.items()
                if before.requests.get(n) != r or n not in before.requests
            }
            down: set[str] = set(changed)
            grew = True
            while grew:
                grew = False
                for n, r in comp.requests.items():
                    if n not in down and any(u in down for u in r.upstream):
                        down.add(n)
                        grew = True
            if memo.replanned != len(comp.order):  # not a full plan
                assert memo.replanned == len(down)
                patched += 1
        before = comp
    assert patched or memo.state is None  # kept plans were used (unless racy throughout)


def test_a_change_to_the_sources_plans_everything(built: Path) -> None:
    root = built
    (root / "main.story").write_text(
        story([f"shot {i}" for i in range(N)], [None, 0, None, 2, 3, None, None, 6], [5] * N),
        "utf-8",
    )
    engine = Engine(root)
    store = Store.for_project(root)
    lock = LockFile.load(LockFile.path_for(root))
    memo = PlanMemo()
    comp = engine.update()

    def plan(state: object) -> Plan:
        sources = Sources(lock=lock, store=store, backend="preview")
        return memo.plan(comp, sources, state)

    plan(("a",))
    assert memo.replanned == N
    plan(("a",))
    assert memo.replanned == 0  # nothing changed, nothing planned
    plan(("b",))
    assert memo.replanned == N  # another lock file, journal or store: all again
    plan(None)
    assert memo.replanned == N  # no snapshot: never kept


def test_an_object_changed_in_place_is_noticed(built: Path) -> None:
    """A store object rewritten where it lies leaves its folder as it was: the kept plan
    must still see it (the full planner finds the damage and renders the scene again)."""
    root = built
    (root / "main.story").write_text(
        story([f"shot {i}" for i in range(N)], [None, 0, None, 2, 3, None, None, 6], [5] * N),
        "utf-8",
    )
    time.sleep(RACY_NS / 1e9 + 0.2)  # the other tests' edits are old enough to trust
    engine = Engine(root)
    store = Store.for_project(root)
    lock = LockFile.load(LockFile.path_for(root))
    comp = engine.update()
    memo = PlanMemo()

    def both() -> tuple[Plan, Plan]:
        sources = Sources(lock=lock, store=store, backend="preview")
        state = sources_state(root, lock, False, store)
        return memo.plan(comp, sources, state), planner_for(comp, sources).plan()

    got, full = both()
    assert plan_json(got) == plan_json(full)
    assert memo.state is not None  # kept: the next plan may reuse it
    output = full.scenes["s5"].output
    assert output is not None and full.scenes["s5"].status == "up-to-date"
    obj = store.object_path(output)
    obj.chmod(0o644)
    with open(obj, "ab") as f:
        f.write(b"\0")
    got, full = both()
    assert got.scenes["s5"].status == full.scenes["s5"].status == "render"
    assert plan_json(got) == plan_json(full)


def test_after_each_build_in_a_long_lived_process_the_kept_plan_is_the_full_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon's builds (storyc.build.session, warm): after a build the kept plans stand
    for what the build left (storyc.plan.memo.PlanMemo.rebase), so the next build plans
    again only the scenes the build touched, the edited ones and what is downstream — and
    its plan is still the full planner's, scene by scene."""
    from storyc import cli
    from storyc.base import warm
    from storyc.compiler import compile_project
    from storyc.plan.planner import Planner

    root = tmp_path
    (root / "assets").mkdir()
    media.make_test_image(root / "assets" / "pic.png", 640, 360, seed=2)
    prompts = [f"shot {i}" for i in range(N)]
    links: list[int | None] = [None, 0, None, 2, 3, None, None, 6]
    durations = [3] * N
    (root / "main.story").write_text(story(prompts, links, durations), "utf-8")
    rnd = random.Random(7)
    key = ("build-plan", str(root), "preview", None, False)  # backend, provider, unknown
    warm.enable()
    try:
        assert cli.run(["build", str(root), "--json"]) == 0
        patched = 0
        for step in range(5):
            i = rnd.randrange(N)
            prompts[i] = f"shot {i} v{step}"  # never seen before: it must render
            if step % 2:
                durations[i] = 8 - durations[i] + 3  # 3 <-> 8
            (root / "main.story").write_text(story(prompts, links, durations), "utf-8")
            memo = warm.peek(key)
            assert isinstance(memo, PlanMemo)
            assert memo.state is not None  # the build left a plan to build on
            comp = compile_project(root)
            store = Store.for_project(root)
            lock = LockFile.load(LockFile.path_for(root))
            sources = Sources(lock=lock, store=store, backend="preview")
            state = sources_state(root, lock, False, store)

            got = memo.plan(comp, sources, state, make=lambda c, s: Planner(c.requests, c.order, s))
            full = Planner(comp.requests, comp.order, sources).plan()
            assert plan_json(got) == plan_json(full)
            assert got.scenes[f"s{i}"].status == "render"
            if memo.replanned < N:
                patched += 1
            capsys.readouterr()
            assert cli.run(["build", str(root), "--json"]) == 0
            out = capsys.readouterr().out
            states = {
                e["scene"]: e["state"]
                for e in map(json.loads, out.splitlines())
                if e.get("event") == "scene"
            }
            assert states[f"s{i}"] == "done", states
        assert patched >= 3  # kept plans were used after builds, not thrown away
    finally:
        warm.disable()


def test_the_racy_window_follows_the_filesystems_clock() -> None:
    from storyc.plan.memo import COARSE_NS, FINE_NS, racy_for

    now = 1_800_000_000 * 10**9
    whole = ("objects", (10, now - 10**9, 1, now - 10**9))  # whole seconds: a coarse clock
    assert racy_for([whole], now) == COARSE_NS - 10**9
    assert racy_for([whole], now + COARSE_NS) == 0
    fine = ("objects", (10, now - 123_456, 1, now - 123_456))  # sub-second digits
    assert racy_for([fine], now) == FINE_NS - 123_456
    assert racy_for([fine, whole], now) == FINE_NS - 123_456  # one fine time shows the kind
    assert racy_for([fine], now + FINE_NS) == 0
    assert racy_for([("lock", None)], now) == 0  # no signature: nothing to be racy about
