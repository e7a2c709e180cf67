"""Incremental planning gives exactly the plan a full re-plan gives, re-planning less."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storyc.media import ffmpeg as media
from storyc.watch.session import NotBuilt, PlanView
from storyc.watch.wiring import make_wiring

STORY = """project "p" {
  aspect = "16:9"
}
image market = "assets/market.png"
scene arrival {
  prompt = "A night market @market"
  duration = 5
}
scene stall {
  prompt = "Close on a noodle stall"
  start = arrival.last_frame
}
scene alley {
  prompt = "An empty alley"
  duration = 10
}
"""


def fresh_view(root: Path, backend: str = "inference") -> PlanView:
    w = make_wiring(root, backend=backend, target=None, jobs=1, max_cost=None, yes=False)
    return w.plan(w.compile().comp)


def test_incremental_plan_matches_full_plan(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    media.make_test_image(tmp_path / "assets" / "market.png", 640, 480, seed=3)
    (tmp_path / "main.story").write_text(STORY, "utf-8")
    w = make_wiring(tmp_path, backend="inference", target=None, jobs=1, max_cost=None, yes=False)
    planner = w.pipeline._planner
    w.plan(w.compile().comp)
    assert planner.last_replanned == 3

    # An edit to one independent scene re-plans that scene only.
    (tmp_path / "main.story").write_text(STORY.replace("empty alley", "rainy alley"), "utf-8")
    view = w.plan(w.compile().comp)
    assert planner.last_replanned == 1
    assert view == fresh_view(tmp_path)

    # An edit upstream re-plans it and what uses it; a new asset digest counts as an edit.
    media.make_test_image(tmp_path / "assets" / "market.png", 640, 480, seed=4)
    view = w.plan(w.compile().comp)
    assert planner.last_replanned == 2
    assert view == fresh_view(tmp_path)

    # Nothing changed: nothing re-planned, same answer.
    assert w.plan(w.compile().comp) == view and planner.last_replanned == 0

    # A scene that takes another upstream in an edit that keeps the order: what uses a
    # scene is kept up to date scene by scene (never recomputed for the whole project)
    base = STORY.replace("A night market", "A dusk market")
    linked = base.replace('"An empty alley"', '"An empty alley"\n  start = arrival.last_frame')
    for text, replanned in (
        (base, 3),  # arrival and stall, which uses it; alley (rainy before)
        (linked, 1),  # alley now uses arrival
        (linked.replace("A dusk market", "A dawn market"), 3),  # arrival, stall and alley
        (base.replace("A dusk market", "A dawn market"), 1),  # alley no longer uses it
        (base, 2),  # arrival and stall only
        (base.replace("duration = 10", "duration = 5"), 1),  # alley costs less: the total too
    ):
        (tmp_path / "main.story").write_text(text, "utf-8")
        view = w.plan(w.compile().comp)
        fresh = fresh_view(tmp_path)
        assert view == fresh
        assert view.cost() == fresh.cost() > 0  # the total carried from view to view
        assert planner.last_replanned == replanned, text
    (tmp_path / "main.story").write_text(STORY, "utf-8")
    assert w.plan(w.compile().comp) == fresh_view(tmp_path)

    # A scene removed: a full plan.
    (tmp_path / "main.story").write_text(STORY.split("scene alley")[0], "utf-8")
    view = w.plan(w.compile().comp)
    assert planner.last_replanned == 2 and "alley" not in view.render
    assert view == fresh_view(tmp_path)


def test_damaged_lock_file_refuses_the_build_without_sending(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    media.make_test_image(tmp_path / "assets" / "market.png", 640, 480, seed=3)
    (tmp_path / "main.story").write_text(STORY, "utf-8")
    w = make_wiring(tmp_path, backend="preview", target=None, jobs=1, max_cost=None, yes=False)
    comp = w.compile().comp
    (tmp_path / "storyc.lock").write_text("this is [not toml", "utf-8")
    # NotBuilt, not any exception: the session keeps the scenes eligible for the next save
    with pytest.raises(NotBuilt, match="storyc.lock"):
        w.build(comp, ["alley"])
    assert not (tmp_path / "renders").exists()


def test_a_long_session_of_saves_never_chains_plan_views() -> None:
    """Each save's view is made from the last without copying its maps; after thousands
    of saves, reading a view's maps or a scene's cost must not walk back through every
    earlier view (a chain would also keep them all alive)."""
    base = PlanView(
        {"a": "k0", "b": "k0", "c": None},
        {"a": Decimal(1), "b": Decimal(2), "c": None},
        True,
        {"c": ("a",)},
        {"c": "{}"},
    )
    assert base.unknown() == ["c"]
    view = base
    for i in range(1, 3000):
        view = PlanView.patched(view, {"a": (f"k{i}", Decimal(i % 7), (), "")})
    assert view.cost_of("b") == Decimal(2) and view.cost_of("a") == Decimal(2999 % 7)
    assert view.render == {"a": "k2999", "b": "k0", "c": None}
    assert view.costs == {"a": Decimal(2999 % 7), "b": Decimal(2), "c": None}
    assert view.upstream == {"a": (), "c": ("a",)} and view.bodies == {"c": "{}"}
    assert view.cost() == Decimal(2999 % 7) + 2 and view.unknown() == ["c"]
    assert view.names() == ["a", "b", "c"]
    # the maps made, the next view starts from this one; the one before is not kept alive
    later = PlanView.patched(view, {"b": ("k1", Decimal(5), (), "")})
    assert later.same_scenes() is view
    assert later.render == {"a": "k2999", "b": "k1", "c": None}
    assert later.cost() == Decimal(2999 % 7) + 5


N = 7


def _story(prompts: list[str], links: list[tuple[str, int] | None], durations: list[int]) -> str:
    out = ['project "p" {\n  aspect = "16:9"\n}\nimage market = "assets/market.png"\n']
    for i in range(len(prompts)):
        body = [f'  prompt = "{prompts[i]} @market"', f"  duration = {durations[i]}"]
        link = links[i]
        if link is not None and link[0] == "start":
            body = [f'  prompt = "{prompts[i]}"', f"  start = s{link[1]}.last_frame"]
        elif link is not None:  # an edit of the other scene's video: its length prices it
            body = [f'  prompt = "{prompts[i]} of @s{link[1]}"', f"  edit = s{link[1]}"]
        out.append(f"scene s{i} {{\n" + "\n".join(body) + "\n}\n")
    return "".join(out)


@pytest.fixture(scope="module")
def half_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose first scenes were rendered for real (preview): up to date until an
    edit, up to date again when the edit is undone."""
    from storyc.cli import main

    root = tmp_path_factory.mktemp("watchplan")
    (root / "assets").mkdir()
    media.make_test_image(root / "assets" / "market.png", 640, 360, seed=1)
    prompts = [f"shot {i}" for i in range(N)]
    (root / "main.story").write_text(_story(prompts, [None] * N, [5] * N), "utf-8")
    assert main(["build", str(root), "--json", "--scene", "s0", "--scene", "s1"]) == 0
    return root


@settings(max_examples=12, deadline=None)
@given(st.randoms(use_true_random=False), st.sampled_from(["preview", "inference"]))
def test_each_saves_view_is_a_fresh_plans_view(
    half_built: Path, rnd: random.Random, backend: str
) -> None:
    """Random saves (prompts edited and undone, lengths, scenes that start from or edit
    another, scenes added and removed), the views' maps read at random moments or not at
    all: after every save watch's view is the view a fresh plan gives, and so are the
    total, the scenes of unknown cost and the order it shows."""
    root = half_built
    prompts = [f"shot {i}" for i in range(N)]
    links: list[tuple[str, int] | None] = [None] * N
    durations = [5] * N
    (root / "main.story").write_text(_story(prompts, links, durations), "utf-8")
    w = make_wiring(root, backend=backend, target=None, jobs=1, max_cost=None, yes=False)
    w.plan(w.compile().comp)
    for _ in range(8):
        kind = rnd.choice(["prompt", "undo", "duration", "start", "edit", "unlink", "grow"])
        i = rnd.randrange(len(prompts))
        if kind == "prompt":
            prompts[i] = f"shot {i} v{rnd.randrange(1000)}"
        elif kind == "undo":
            prompts[i] = f"shot {i}"
        elif kind == "duration":
            durations[i] = rnd.choice([5, 10])
        elif kind in ("start", "edit") and i > 0:
            links[i] = (kind, rnd.randrange(i))  # only earlier scenes: never a cycle
        elif kind == "unlink":
            links[i] = None
        elif kind == "grow":
            if len(prompts) > N or rnd.random() < 0.5:
                if len(prompts) > 2:
                    del prompts[-1], links[-1], durations[-1]
            else:
                prompts.append(f"shot {len(prompts)}")
                links.append(None)
                durations.append(5)
        (root / "main.story").write_text(_story(prompts, links, durations), "utf-8")
        view = w.plan(w.compile().comp)
        fresh = fresh_view(root, backend)
        if rnd.random() < 0.5:  # the maps made now (else the next view patches this one)
            assert view == fresh, kind
        assert view.cost() == fresh.cost(), kind
        assert view.unknown() == fresh.unknown(), kind
        assert view.names() == fresh.names() == list(fresh.render), kind
        for name in fresh.render:
            assert view.cost_of(name) == fresh.cost_of(name), (kind, name)
    assert w.plan(w.compile().comp) == fresh_view(root, backend)
    w.close()
