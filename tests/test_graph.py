"""Dependency graph: edges, deterministic order, whole-cycle errors, cuts, renderers."""

from __future__ import annotations

from test_rules import image, inp, make_element, make_project, make_scene, out

from storyc.base.diagnostics import Diagnostics
from storyc.check import graph
from storyc.resolve.model import Scene


def chain(*pairs: tuple[str, str | None]) -> list[Scene]:
    """Scenes (name, upstream-or-None) in declaration order; each starts from its upstream."""
    return [
        make_scene(name, first=inp(out(up), up) if up else None, line=10 * i + 1)
        for i, (name, up) in enumerate(pairs)
    ]


def test_order_is_topological_then_declaration() -> None:
    scenes = chain(("c", "b"), ("a", None), ("b", "a"), ("z", None))
    g = graph.build(make_project(*scenes))
    # `z` is ready from the start, but `b` (declared before `z`) becomes ready as soon as
    # `a` is done, and among ready scenes the earlier declaration goes first.
    assert g.order == ["a", "b", "c", "z"]
    assert g.upstream("c") == ["b"] and g.downstream("a") == ["b"]


def test_independent_scenes_keep_declaration_order() -> None:
    g = graph.build(make_project(*chain(("x", None), ("m", None), ("a", None))))
    assert g.order == ["x", "m", "a"]


def test_cycle_names_the_whole_cycle_at_a_span_in_it() -> None:
    scenes = chain(
        ("arrival", "rain"),
        ("lanterns", "arrival"),
        ("rain", "lanterns"),
        ("after", "rain"),
        ("free", None),
    )
    diags = Diagnostics()
    g = graph.build(make_project(*scenes), diags)
    [d] = diags.items
    assert d.code == "E240"
    assert d.message == "dependency cycle: arrival → lanterns → rain → arrival"
    assert d.span == scenes[1].first_frame.span  # type: ignore[union-attr]
    assert g.order == ["free"]
    assert g.cycles == [["arrival", "lanterns", "rain"]]


def test_self_cycle() -> None:
    diags = Diagnostics()
    graph.build(make_project(*chain(("loop", "loop"))), diags)
    assert [d.message for d in diags] == ["dependency cycle: loop → loop"]


def test_unknown_upstream_scene() -> None:
    diags = Diagnostics()
    g = graph.build(make_project(*chain(("a", "ghost"))), diags)
    assert [d.code for d in diags] == ["E241"] and g.order == ["a"]


def test_long_chain_is_fast_enough_and_not_recursive() -> None:
    n = 3000
    scenes = chain(*[(f"s{i}", f"s{i - 1}" if i else None) for i in range(n)])
    g = graph.build(make_project(*scenes))
    assert g.order == [f"s{i}" for i in range(n)] and g.cycles == []


def test_cuts() -> None:
    scenes = chain(("a", None), ("b", "a"), ("c", None), ("d", None))
    diags = Diagnostics()
    p = make_project(*scenes, cuts={"final": ["b", "c", "b"], "empty": [], "bad": ["nope"]})
    graph.check_cuts(p, graph.build(p), diags)
    found = sorted((d.code, d.message) for d in diags)
    assert [c for c, _ in found] == ["E244", "W242", "W243", "W245"]
    assert "`d` is in no cut" in found[-1][1]  # `a` is used by `b`, so it is not reported


def test_renderers() -> None:
    mei = make_element("mei", image("mei.png"))
    scenes = [
        make_scene(
            "arrival",
            prompt="@mei at @market",
            images=(inp(image("m.png"), "market"),),
            elements=("mei",),
        ),
        make_scene("lanterns", first=inp(out("arrival"), "arrival"), line=20),
        make_scene("rain", video_in=inp(out("lanterns", "video"), "lanterns"), line=40),
    ]
    g = graph.build(make_project(*scenes, elements=(mei,)))
    assert graph.render_text(g) == (
        "arrival\n└─ lanterns  (first frame ← last_frame)\n   └─ rain  (reference video ← video)\n"
    )
    text = graph.render_text(g, assets=True)
    assert "├─ · image market" in text and "· element mei" in text
    dot = graph.render_dot(g)
    assert (
        dot.startswith('digraph "storyc" {')
        and '"arrival" -> "lanterns" [label="first frame ← last_frame"];' in dot
    )
    mermaid = graph.render_mermaid(g, assets=True)
    assert mermaid.splitlines()[0] == "flowchart LR"
    assert 's0 -->|"first frame ← last_frame"| s1' in mermaid
    assert 'a0(["image market"])' in mermaid
