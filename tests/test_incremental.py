"""The incremental compiler gives exactly what a compile from scratch gives, edit after edit.

Hypothesis generates a project (includes, lets, defaults, assets with real media, some
missing, elements, styles inheriting from styles, scenes using each other, cuts) and a
sequence of edits: prompts, settings, lets, styles, scenes added, removed, renamed and
moved between files, names declared twice, syntax errors, blank lines and comments that
move everything below them, asset files replaced or deleted, unsaved editor buffers.
After every edit an `Engine` that saw every earlier state must agree with
`compile_project` on the files as they are now: the same diagnostics (spans, notes,
hints), the same payloads and order, the same blocked and broken scenes, the same keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storyc.base.fsio import COARSE_NS, FINE_NS, stat_sig
from storyc.base.hashing import DigestCache
from storyc.compiler import Compilation, compile_project, summary_of
from storyc.compiler.incremental import Engine, by_file
from storyc.compiler.state import CompiledState, compile_with_state
from storyc.media import ffmpeg as media
from storyc.plan import keys

SCENES = [f"s{i}" for i in range(8)]
STYLES = ["calm", "noir", "wet"]
LETS = ["city", "mood", "beats"]
ASSETS = ["plaza", "hero", "tiny", "ghost"]  # ghost's file never exists
ELEMENTS = ["mei", "kai"]
FILES = ["main.story", "cast.story", "parts/scenes.story"]

# Mostly valid stories, so that payloads are compared too; errors come from edits.
GOOD_PROMPTS = [
    "A wide shot of the plaza",
    "@plaza at night, {{ city }}",
    "@mei walks past @plaza, {{ mood }}",
    "{% for b in beats %}{{ b }} {% endfor %}@hero",
    "{{ city }} and {{ mood }}",
    '""" two\n  lines @hero """',
]
BAD_PROMPTS = ["Close on {{ nope }}", "@unknownthing waves", "", "@s1 again", "@kai and @mei argue"]
PROMPTS = GOOD_PROMPTS + BAD_PROMPTS
GOOD: dict[str, list[str]] = {
    "duration": ["5", "10"],
    "quality": ['"std"', '"pro"'],
    "aspect": ['"16:9"', '"9:16"'],
    "takes": ["1", "2"],
    "start": ["s0.last_frame", "plaza", '"img/hero.png"', "s1.frame(1.5)", "s3.first_frame"],
    "refs": ["[plaza, hero]", "[s2.last_frame]"],
    "target": ['"inference/video-o1@v1"', '"inference/video-o1"'],
    "elements": ["[mei]", "[kai, mei]"],
    "vars": ['{ mood = "tense" }', '{ city = "Oslo" }'],
}
BAD: dict[str, list[str]] = {
    "duration": ["7", "0", '"long"'],
    "quality": ['"ultra"'],
    "aspect": ['"4:3"'],
    "takes": ["0"],
    "start": ['"nothere.png"', "mei", "s2", "ghost", "tiny"],
    "refs": ["[mei]", "[]"],
    "target": ['"nope/x"'],
    "elements": ["[plaza]"],
    "vars": ["3"],
}
SETTING_VALUES = {k: GOOD[k] + BAD[k] for k in GOOD}


def pick(key: str, i: int) -> str:
    """Mostly a good value (i < 17 of 0..19), sometimes a bad one."""
    if i < 17:
        return GOOD[key][i % len(GOOD[key])]
    return BAD[key][i % len(BAD[key])]


@dataclasses.dataclass
class SceneSpec:
    name: str
    file: int  # index into FILES
    style: str | None = None
    prompt: str = "A shot"
    settings: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Spec:
    project: dict[str, str]
    defaults: dict[str, str]
    lets: dict[str, str]
    assets: dict[str, str]  # name -> path
    elements: dict[str, tuple[str, str]]  # name -> (frontal, description)
    styles: dict[str, tuple[str | None, dict[str, str]]]
    scenes: list[SceneSpec]
    cuts: dict[str, list[str]]
    nested: bool  # cast.story includes parts/scenes.story (else main.story does)


def render(spec: Spec) -> dict[str, str]:
    main = []
    if spec.project is not None:
        body = "  ".join(f"{k} = {v}" for k, v in spec.project.items())
        main.append(f'project "Test" {{ {body} }}')
    for name, value in spec.lets.items():
        main.append(f"let {name} = {value}")
    if spec.defaults:
        main.append(
            "defaults { " + "  ".join(f"{k} = {v}" for k, v in spec.defaults.items()) + " }"
        )
    for name, path in spec.assets.items():
        main.append(f'image {name} "{path}"')
    main.append('include "cast.story"')
    if not spec.nested:
        main.append('include "parts/scenes.story"')
    cast = []
    for name, (frontal, desc) in spec.elements.items():
        cast.append(f'element {name} {{ frontal = {frontal}  description = "{desc}" }}')
    for name, (parent, sets) in spec.styles.items():
        head = f"style {name}" + (f" : {parent}" if parent else "")
        cast.append(head + " { " + "  ".join(f"{k} = {v}" for k, v in sets.items()) + " }")
    if spec.nested:
        cast.append('include "parts/scenes.story"')
    out = {FILES[0]: main, FILES[1]: cast, FILES[2]: []}
    for sc in spec.scenes:
        head = f"scene {sc.name}" + (f" : {sc.style}" if sc.style else "")
        lines = [f"  prompt = {_quote(sc.prompt)}"] if sc.prompt is not None else []
        lines += [f"  {k} = {v}" for k, v in sc.settings.items()]
        out[FILES[sc.file]].append(head + " {\n" + "\n".join(lines) + "\n}")
    for name, items in spec.cuts.items():
        out[FILES[0]].append(f"cut {name} = [{', '.join(items)}]")
    return {f: "\n\n".join(parts) + "\n" for f, parts in out.items()}


def _quote(prompt: str) -> str:
    return prompt if prompt.startswith('"""') else f'"{prompt}"'


names = st.sampled_from


def values(keys: list[str], max_size: int) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(names(keys), st.integers(0, 19), max_size=max_size).map(
        lambda d: {k: pick(k, i) for k, i in d.items()}
    )


scene_spec = st.builds(
    SceneSpec,
    name=names(SCENES),
    file=st.integers(0, 2),
    style=st.none() | names(STYLES),
    prompt=st.integers(0, 19).map(
        lambda i: GOOD_PROMPTS[i % 6] if i < 17 else BAD_PROMPTS[i % len(BAD_PROMPTS)]
    ),
    settings=values(list(GOOD), 3),
)
specs = st.builds(
    Spec,
    project=st.just({"aspect": '"16:9"', "duration": "5"})
    | values(["aspect", "duration", "quality"], 2),
    defaults=values(["duration", "quality"], 1),
    lets=st.fixed_dictionaries(
        {"city": names(['"Lisbon"', '"Rome"']), "mood": names(['"calm"', "3"])},
        optional={"beats": names(['["in", "out"]', '["a"]'])},
    ),
    assets=st.fixed_dictionaries(
        {"plaza": st.just("img/plaza.png"), "hero": st.just("img/hero.png")},
        optional={"tiny": st.just("img/tiny.png"), "ghost": st.just("img/ghost.png")},
    ),
    elements=st.fixed_dictionaries(
        {"mei": st.tuples(names(["hero", '"img/plaza.png"']), names(["a", "b"]))},
        optional={"kai": st.tuples(names(["hero", "ghost", "tiny"]), names(["a", "b"]))},
    ),
    styles=st.dictionaries(
        names(STYLES),
        st.tuples(st.none() | names(STYLES), values(["duration", "quality", "aspect", "vars", "start"], 2)),
        max_size=3,
    ),
    scenes=st.lists(scene_spec, min_size=1, max_size=7, unique_by=lambda s: s.name),
    cuts=st.dictionaries(names(["final"]), st.lists(names(SCENES), max_size=4), max_size=1),
    nested=st.booleans(),
)  # fmt: skip

# One edit: (kind, a few small integers to pick what and how).
edits = st.lists(
    st.tuples(
        names(
            ["prompt", "setting", "style", "let", "style_setting", "asset_file", "add", "remove",
             "rename", "move", "twice", "syntax", "blank", "comment", "cut", "element", "overlay",
             "unoverlay", "project"]
        ),
        st.integers(0, 1000),
        st.integers(0, 1000),
    ),
    min_size=1,
    max_size=7,
)  # fmt: skip


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("media")
    out = {}
    for name, (w, h, seed) in {
        "a": (640, 480, 1),
        "b": (640, 480, 2),
        "small": (200, 120, 3),
    }.items():
        media.make_test_image(d / f"{name}.png", w, h, seed=seed)
        out[name] = (d / f"{name}.png").read_bytes()
    return out


class World:
    """A project directory, its spec, its texts, and unsaved buffers."""

    def __init__(self, root: Path, spec: Spec, images: dict[str, bytes]) -> None:
        self.root = root
        self.spec = spec
        self.images = images
        self.overlays: dict[str, str] = {}
        (root / "img").mkdir(parents=True)
        (root / "parts").mkdir()
        (root / "img" / "plaza.png").write_bytes(images["a"])
        (root / "img" / "hero.png").write_bytes(images["b"])
        (root / "img" / "tiny.png").write_bytes(images["small"])
        self.texts = render(spec)
        self.write()

    def write(self) -> None:
        for f, text in self.texts.items():
            p = self.root / f
            if not p.exists() or p.read_text("utf-8") != text:
                p.write_text(text, "utf-8")

    def read(self, abs_path: str) -> bytes:
        text = self.overlays.get(abs_path)
        return text.encode("utf-8") if text is not None else Path(abs_path).read_bytes()

    def rerender(self) -> None:
        self.texts = render(self.spec)

    def apply(self, kind: str, a: int, b: int) -> dict[str, str | None]:
        """Apply one edit; returns the overlay changes to hand to the engine."""
        spec = self.spec
        sc = spec.scenes[a % len(spec.scenes)] if spec.scenes else None
        changes: dict[str, str | None] = {}
        if kind == "prompt" and sc:
            sc.prompt = PROMPTS[b % len(PROMPTS)] if b % 3 == 0 else GOOD_PROMPTS[b % 6]
        elif kind == "setting" and sc:
            key = list(GOOD)[b % len(GOOD)]
            if key in sc.settings and b % 3 == 0:
                del sc.settings[key]
            else:
                sc.settings[key] = pick(key, a % 20)
        elif kind == "style" and sc:
            sc.style = None if b % 4 == 0 else STYLES[b % len(STYLES)]
        elif kind == "let":
            name = LETS[a % len(LETS)]
            if name in spec.lets and b % 4 == 0:
                del spec.lets[name]
            else:
                spec.lets[name] = ['"Lisbon"', '"Oslo"', "5", '["x", "y"]'][b % 4]
        elif kind == "style_setting":
            name = STYLES[a % len(STYLES)]
            parent, sets = spec.styles.get(name, (None, {}))
            key = ["duration", "quality", "aspect", "vars", "start"][b % 5]
            sets = {**sets, key: pick(key, a % 20)}
            if b % 7 == 0:
                parent = STYLES[(a + 1) % len(STYLES)]
            spec.styles[name] = (parent, sets)
        elif kind == "asset_file":
            path = self.root / "img" / ["plaza.png", "hero.png", "tiny.png"][a % 3]
            if b % 3 == 0:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(self.images[["a", "b", "small"][b % 3]])
            return changes
        elif kind == "add":
            free = [n for n in SCENES if n not in {s.name for s in spec.scenes}]
            if free:
                spec.scenes.insert(
                    a % (len(spec.scenes) + 1), SceneSpec(free[0], b % 3, prompt=PROMPTS[b % 11])
                )
        elif kind == "remove" and len(spec.scenes) > 1:
            spec.scenes.remove(sc)  # type: ignore[arg-type]
        elif kind == "rename" and sc:
            free = [n for n in SCENES if n not in {s.name for s in spec.scenes}]
            if free:
                sc.name = free[b % len(free)]
        elif kind == "move" and sc:
            sc.file = b % 3
        elif kind == "twice" and sc:
            spec.scenes.append(SceneSpec(sc.name, b % 3))
        elif kind == "cut":
            spec.cuts = {"final": [SCENES[(a + i) % len(SCENES)] for i in range(b % 4)]}
        elif kind == "element":
            name = ELEMENTS[a % 2]
            spec.elements[name] = (["hero", '"img/plaza.png"', "ghost", "tiny"][b % 4], "ab"[b % 2])
        elif kind == "project":
            spec.project = {"aspect": pick("aspect", b % 20), "duration": "5"} if b % 3 else {}
        if kind in ("syntax", "blank", "comment"):
            f = FILES[a % 3]
            text = self.texts[f]
            at = b % (len(text) + 1)
            piece = {"syntax": "}", "blank": "\n\n", "comment": "# a note\n"}[kind]
            if kind != "syntax":
                at = text.rfind("\n", 0, at) + 1  # at a line start, between declarations or not
            self.texts[f] = text[:at] + piece + text[at:]
        elif kind == "overlay":
            f = FILES[a % 3]
            text = self.texts[f]
            at = text.rfind("\n", 0, b % (len(text) + 1)) + 1
            self.overlays[str(self.root / f)] = text[:at] + "\n# unsaved\n" + text[at:]
            return {str(self.root / f): self.overlays[str(self.root / f)]}
        elif kind == "unoverlay":
            for p in list(self.overlays):
                changes[p] = None
            self.overlays.clear()
            return changes
        else:
            self.rerender()
        self.write()
        return changes


def snapshot(c: Compilation) -> dict[str, Any]:
    def fake(scene: str) -> str:  # a stand-in for the output of an upstream scene
        return "sha256:" + hashlib.sha256(scene.encode()).hexdigest()

    summary = c.summary if c.found and c.diagnostics is not None else None
    # counts and what commands print first: an engine's compilation works them out
    # without decoding the notes, which `diagnostics` then does
    counted = c.counts()
    printed = c.rendered()
    return {
        "counts": counted,
        "printed": printed,
        "with notes": c.rendered(notes=True),
        "json": c.dumps(),
        "diagnostics": [
            (d.code, d.severity, d.message, d.span, d.hint, d.notes) for d in c.diagnostics
        ],
        "order": c.order,
        # the graph the board, `why` and the editor read (the engine's is built lazily
        # from spans captured at the update: they must be where the text is then)
        "graph": None
        if c.graph is None
        else (
            c.graph.scenes,
            sorted((e.src, e.dst, e.part, e.role, e.span) for e in c.graph.edges),
            c.graph.order,
            c.graph.cycles,
            c.graph.leaves,
        ),
        "blocked": c.blocked,
        "broken": c.broken,
        "selected": c.selected,
        "found": c.found,
        "keys": {
            n: keys.scene_keys(r, backend="preview", upstream={u: fake(u) for u in r.upstream})
            for n, r in c.requests.items()
        },
        "cuts": c.cut_facts() if c.found else None,
        "summary": None
        if summary is None
        else dataclasses.replace(summary, local_files=tuple(sorted(summary.local_files))),
    }


def reference(world: World) -> Compilation:
    return compile_project(world.root, read=world.read)


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="storyc-inc-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@settings(
    max_examples=int(os.environ.get("STORYC_INCREMENTAL_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(spec=specs, steps=edits)
def test_incremental_equals_from_scratch(
    spec: Spec, steps: list[tuple[str, int, int]], images: dict[str, bytes], workdir: Path
) -> None:
    root = workdir / f"p{len(list(workdir.iterdir()))}"
    world = World(root, spec, images)
    engine = Engine(root)
    first = prev = engine.update()
    assert snapshot(first) == snapshot(reference(world))
    for i, (kind, a, b) in enumerate(steps):
        changes = world.apply(kind, a, b)
        got = engine.update(changes)
        want = snapshot(reference(world))
        assert snapshot(got) == want, (kind, a, b)
        # what the engine says changed since an earlier update of its own (planners
        # re-plan only those): never less than what did
        for earlier in (prev, first):
            said = got.changed_since(earlier)
            if said is not None:
                differ = {
                    n
                    for n in got.requests.keys() | earlier.requests.keys()
                    if got.requests.get(n) != earlier.requests.get(n)
                }
                assert differ <= said, (kind, a, b, differ - said)
        prev = got
        if world.overlays:
            continue
        # The same through the compiled state on disk: an engine restored from what the
        # last command saved, and, when nothing changed since, the saved answer itself.
        state = CompiledState(root, root, None, DigestCache())
        if i % 2:
            restored = state.engine()
            comp = restored.update()
            assert snapshot(comp) == want, ("restored", kind, a, b)
            state.save(restored, comp)
            answered = CompiledState(root, root, None, DigestCache()).answer()
            assert answered is None or snapshot(answered) == want, ("answered", kind, a, b)
        else:
            assert snapshot(compile_with_state(root)) == want, ("state", kind, a, b)


def test_an_edit_costs_one_scene(tmp_path: Path) -> None:
    """A prompt edited near the top of a file with many scenes: one region parsed, one
    scene resolved and lowered; every scene below moved, none was compiled again."""
    body = "\n".join(
        f'scene s{i} {{\n  prompt = "shot {i}"\n  duration = 5\n}}\n' for i in range(60)
    )
    (tmp_path / "main.story").write_text('project "p" { aspect = "16:9" }\n' + body, "utf-8")
    engine = Engine(tmp_path)
    first = engine.update()
    assert len(engine.stats.resolved) == 60 and not first.has_errors
    text = (tmp_path / "main.story").read_text("utf-8").replace('"shot 1"', '"shot one, longer"')
    comp = engine.update({str(tmp_path / "main.story"): text})
    assert engine.stats.regions_parsed == 1
    assert engine.stats.resolved == ["s1"] and engine.stats.lowered == ["s1"]
    assert engine.stats.shell_runs == 0
    assert comp.requests["s1"].prompt == "shot one, longer"
    assert comp.requests["s2"] is first.requests["s2"]  # untouched, not rebuilt
    unchanged = engine.update()
    assert engine.stats.resolved == [] and engine.stats.regions_parsed == 0
    assert unchanged.dumps() == comp.dumps()


def _differ(a: Compilation, b: Compilation) -> set[str]:
    return {
        n for n in a.requests.keys() | b.requests.keys() if a.requests.get(n) != b.requests.get(n)
    }


def test_the_engine_says_which_requests_its_updates_replaced(tmp_path: Path) -> None:
    """Planners re-plan what `changed_since` names instead of comparing every request:
    it must name every scene whose request changed (over several updates too), and say
    it does not know rather than guess."""
    body = "\n".join(
        f'scene s{i} {{\n  prompt = "shot {i}"\n  duration = 5\n}}\n' for i in range(40)
    )
    main = tmp_path / "main.story"
    text = 'project "p" { aspect = "16:9" }\n' + body
    main.write_text(text, "utf-8")
    engine = Engine(tmp_path)
    c0 = engine.update()
    text = text.replace('"shot 3"', '"shot three"')
    c1 = engine.update({str(main): text})
    assert c1.changed_since(c0) == {"s3"} == _differ(c1, c0)
    assert (
        c1.changed_since(c1) == set()
        and engine.update({str(main): text}).changed_since(c1) == set()
    )
    text = text.replace('"shot 7"', '"shot seven"')
    c2 = engine.update({str(main): text})
    assert c2.changed_since(c1) == {"s7"} and c2.changed_since(c0) == {"s3", "s7"}
    assert c1.changed_since(c2) is None  # not the other way round
    # an error blocks a scene: the engine recomputed which scenes have requests, and says
    # it does not know which changed, since then or since before
    broken = text.replace('"shot 9"', '"shot {{ nowhere }}"')
    c3 = engine.update({str(main): broken})
    assert "s9" not in c3.requests
    said = c3.changed_since(c2)
    assert said is None or _differ(c3, c2) <= said
    c4 = engine.update({str(main): text})
    for earlier in (c3, c2):
        said = c4.changed_since(earlier)
        assert said is None or _differ(c4, earlier) <= said
    text = text.replace('"shot 11"', '"shot eleven"')
    c5 = engine.update({str(main): text})
    assert c5.changed_since(c4) == {"s11"}
    # a narrowed compilation (watch plans a few scenes) and another engine's: not known
    assert c5.narrowed(["s1"], {"s1": c5.requests["s1"]}).changed_since(c4) is None
    assert Engine(tmp_path).update({str(main): text}).changed_since(c4) is None
    assert compile_project(tmp_path).changed_since(c4) is None


def _settle(path: Path) -> None:
    """Wait until the files' last changes are settled (storyc.base.fsio.settled_sig): a
    moment where times have sub-second digits, two seconds where they are whole."""
    sig = stat_sig(path)
    fine = sig is not None and (sig[1] % 1_000_000_000 or sig[3] % 1_000_000_000)
    time.sleep((FINE_NS if fine else COARSE_NS) / 1e9 + 0.03)


def _same_as_from_scratch(comp: Compilation, root: Path) -> None:
    want = compile_project(root)
    assert comp.dumps() == want.dumps()
    assert [(d.code, d.message, d.span) for d in comp.diagnostics] == [
        (d.code, d.message, d.span) for d in want.diagnostics
    ]


def test_an_update_reads_again_only_the_story_files_that_changed(tmp_path: Path) -> None:
    """Each story file's signature is kept with the text read under it: an update reads
    and parses only the files whose signature moved, or whose last change was too recent
    to trust (a change within the same clock tick would not show)."""
    parts = tmp_path / "parts"
    parts.mkdir()
    main = tmp_path / "main.story"
    main.write_text(
        'project "p" { aspect = "16:9" }\ninclude "parts/a.story"\ninclude "parts/b.story"\n',
        "utf-8",
    )
    for name in ("a", "b"):
        (parts / f"{name}.story").write_text(
            "".join(
                f'scene {name}{i} {{ prompt = "{name} {i}"  duration = 5 }}\n' for i in range(3)
            ),
            "utf-8",
        )
    engine = Engine(tmp_path)
    engine.update()
    assert not engine.stats.reloaded
    _settle(main)
    engine.update()  # every file read before its times settled: read again, now kept
    _settle(main)
    engine.update()
    assert engine.stats.reloaded and engine.stats.files_read == 0
    b = parts / "b.story"
    b.write_text(b.read_text("utf-8").replace('"b 1"', '"b one"'), "utf-8")
    comp = engine.update()  # b changed a moment ago: read, but not trusted yet
    assert engine.stats.reloaded and engine.stats.files_read == 1
    assert comp.requests["b1"].prompt == "b one"
    _same_as_from_scratch(comp, tmp_path)
    engine.update()
    assert engine.stats.files_read == 1  # b again: its last change was too recent to trust
    _settle(main)
    engine.update()
    engine.update()
    assert engine.stats.reloaded and engine.stats.files_read == 0
    # what a file-by-file update cannot decide goes to a whole load, which reports
    cases = [
        (b, b.read_text("utf-8") + 'include "a.story"\n'),  # an include added
        (main, main.read_text("utf-8") + "\n"),  # the entry file itself
        (b, 'scene b0 { prompt = "unfinished"\n'),  # a syntax error
    ]
    for path, text in cases:
        path.write_text(text, "utf-8")
        _settle(main)
        comp = engine.update()
        assert not engine.stats.reloaded, text
        _same_as_from_scratch(comp, tmp_path)
    b.unlink()
    comp = engine.update()
    assert "E012" in [d.code for d in comp.diagnostics]
    _same_as_from_scratch(comp, tmp_path)


def test_a_folder_swapped_for_a_link_outside_is_refused_after_a_kept_load(tmp_path: Path) -> None:
    """A kept load must not read an included file through a folder that now leads out of
    the project (E017), even though the file's own name did not change."""
    root, outside = tmp_path / "film", tmp_path / "elsewhere"
    (root / "parts").mkdir(parents=True)
    (outside / "parts").mkdir(parents=True)
    main = root / "main.story"
    main.write_text('project "p" { aspect = "16:9" }\ninclude "parts/a.story"\n', "utf-8")
    (root / "parts" / "a.story").write_text(
        'scene a { prompt = "inside"  duration = 5 }\n', "utf-8"
    )
    (outside / "parts" / "a.story").write_text(
        'scene a { prompt = "secret"  duration = 5 }\n', "utf-8"
    )
    engine = Engine(root)
    engine.update()
    _settle(main)
    engine.update()
    shutil.rmtree(root / "parts")
    (root / "parts").symlink_to(outside / "parts")
    comp = engine.update()
    assert "E017" in [d.code for d in comp.diagnostics]
    assert "secret" not in comp.dumps()
    _same_as_from_scratch(comp, root)


def test_a_graph_and_notes_asked_for_after_the_engine_moved_on_have_that_updates_spans(
    tmp_path: Path,
) -> None:
    """The graph's edges (with their spans) are made when asked for, from where the
    declarations were at that compilation's update: asked after later edits moved every
    declaration, they are still that text's, as compile_project gives them for it."""
    body = "".join(
        f'scene s{i} {{\n  prompt = "shot {i}"\n  duration = 5\n'
        + (f"  start = s{i - 1}.last_frame\n" if i else "")
        + "}\n"
        for i in range(12)
    )
    main = tmp_path / "main.story"
    text = 'project "p" { aspect = "16:9" }\n' + body
    engine = Engine(tmp_path)

    def edges(c: Compilation) -> list[tuple[str, str, str, str, Any]]:
        assert c.graph is not None
        return sorted((e.src, e.dst, e.part, e.role, e.span) for e in c.graph.edges)

    main.write_text(text, "utf-8")
    first = engine.update()
    reference = compile_project(tmp_path)
    want = edges(reference)
    want_notes = [(d.code, d.message, d.span) for d in reference.diagnostics]
    later = text.replace('project "p"', '# a comment\n\n\nproject "p"').replace(
        '"shot 3"', '"shot three, longer"'
    )
    engine.update({str(main): later})
    engine.update({str(main): later.replace('"shot 7"', '"shot seven"')})
    assert edges(first) == want and len(want) == 11
    # and its diagnostics, notes too, placed only now: where that update's text had them
    assert [(d.code, d.message, d.span) for d in first.diagnostics] == want_notes
    assert any(d.severity.value == "note" for d in first.diagnostics)
    main.write_text(later, "utf-8")
    now = engine.update({str(main): None})  # the buffer closed: the file on disk again
    assert edges(now) == edges(compile_project(tmp_path)) != want


def test_a_note_into_another_files_declaration_follows_an_edit_inside_it(tmp_path: Path) -> None:
    """Scenes whose notes point into a declaration of another file (W210: the aspect ratio
    "was written here", in the project block): an edit inside that declaration which keeps
    what it says (spaces before `aspect`) moves the note's place within it, so those scenes
    are placed again, their notes where compile_project puts them."""
    main = tmp_path / "main.story"
    main.write_text('project "p" { aspect = "16:9" }\ninclude "scenes.story"\n', "utf-8")
    (tmp_path / "scenes.story").write_text(
        "".join(f'scene s{i} {{\n  prompt = "shot {i}"\n  duration = 5\n}}\n' for i in range(3)),
        "utf-8",
    )
    engine = Engine(tmp_path)

    def notes(c: Compilation) -> list[Any]:
        return [(d.code, d.span, d.notes) for d in c.diagnostics if d.code == "W210"]

    assert len(notes(engine.update())) == 3
    for pad in ("  ", "    "):
        main.write_text(f'project "p" {{{pad}aspect = "16:9" }}\ninclude "scenes.story"\n', "utf-8")
        comp = engine.update()
        assert notes(comp) == notes(compile_project(tmp_path)), pad
        assert sorted(engine.stats.resolved) == ["s0", "s1", "s2"]


def test_a_let_recompiles_the_scenes_that_use_it(tmp_path: Path) -> None:
    story = (
        'project "p" { aspect = "16:9"  duration = 5 }\nlet city = "Rome"\nlet mood = "calm"\n'
        'scene a { prompt = "{{ city }} at dawn" }\nscene b { prompt = "{{ mood }} sea" }\n'
        'scene c { prompt = "no template" }\n'
    )
    (tmp_path / "main.story").write_text(story, "utf-8")
    engine = Engine(tmp_path)
    engine.update()
    comp = engine.update({str(tmp_path / "main.story"): story.replace('"Rome"', '"Oslo"')})
    assert engine.stats.resolved == ["a"]
    assert comp.requests["a"].prompt == "Oslo at dawn"


def test_by_file_lists_every_story_file(tmp_path: Path) -> None:
    (tmp_path / "main.story").write_text('include "b.story"\nscene a { prompt = "@nobody" }\n')
    (tmp_path / "b.story").write_text(
        'scene b { prompt = "fine"  duration = 5  aspect = "16:9" }\n'
    )
    engine = Engine(tmp_path)
    found = by_file(engine.update())
    assert set(found) >= {"main.story", "b.story"}
    assert found["b.story"] == [] and any(d.code == "E123" for d in found["main.story"])
    assert engine.path_of("b.story") == str(tmp_path / "b.story")


def test_the_model_is_built_only_when_asked_for(tmp_path: Path) -> None:
    (tmp_path / "main.story").write_text(
        'scene a { prompt = "x"  duration = 5  aspect = "16:9" }\n'
    )
    comp = Engine(tmp_path).update()
    assert comp.summary is not None and comp.summary.scenes == ("a",)
    assert comp.project is not None and list(comp.project.scenes) == ["a"]
    assert summary_of(comp.project) == comp.summary


@pytest.mark.parametrize("char", ["\x1b]0;owned\x07", "\x85", "\u202e"])
def test_a_control_character_above_the_first_declaration_is_reported_after_an_edit(
    tmp_path: Path, char: str
) -> None:
    # The text before a file's first declaration is in no declaration's region: after an
    # edit there, the engine parsed nothing and missed what a whole compile reports (E001,
    # a control character in a comment), so `storyc check` said ok. Found by running the
    # hostile fuzzer's inputs through the engine (test_hostile_fuzz.py).
    story = (
        '# A night market.\nproject "p" { aspect = "16:9" }\n'
        'scene a { prompt = "x"  duration = 5 }\n'
    )
    (tmp_path / "main.story").write_text(story, "utf-8")
    engine = Engine(tmp_path)
    assert not [d for d in engine.update().diagnostics if d.is_error]
    for text in (
        story.replace("night", f"night{char}"),  # inside the comment
        f"# {char}\n",  # every declaration gone, only the comment left
        story,
    ):
        (tmp_path / "main.story").write_text(text, "utf-8")
        got = engine.update()
        assert snapshot(got) == snapshot(compile_project(tmp_path)), repr(text)
        assert [d.code for d in got.diagnostics if d.is_error] == (
            ["E001"] * (text.count(char[0]) + text.count("\x07")) if text != story else []
        )


@pytest.mark.parametrize("order", ["root last", "root first", "no root"])
def test_a_chain_of_thousands_of_styles_costs_its_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    # Each style's reach, and each style's chain of settings, used to be worked out alone:
    # quadratic in a chain's length (14-40 s for 3,000 hostile styles in the engine, which
    # check, watch and the editor use, where a compile from scratch takes 0.3 s). Counted
    # here, not timed: declarations looked at, and settings turned into values.
    from storyc.compiler import decls, incremental

    n = 2000
    names = list(range(n)) if order != "root last" else list(reversed(range(n)))
    body = "".join(f"style s{i} : s{i + 1} {{ takes = 1 }}\n" for i in names)
    root = "" if order == "no root" else f'style s{n} {{ quality = "std" }}\n'
    (tmp_path / "main.story").write_text(
        'project "Shape" { aspect = "16:9" }\n' + body + root + 'scene a : s0 { prompt = "x" }\n',
        "utf-8",
    )
    counts = {"node": 0, "plain": 0}
    real_node, real_plain = decls.FileDecls.node, incremental.plain

    def node(self: Any, i: int) -> Any:
        counts["node"] += 1
        return real_node(self, i)

    def plain(v: Any) -> Any:
        counts["plain"] += 1
        return real_plain(v)

    monkeypatch.setattr(decls.FileDecls, "node", node)
    monkeypatch.setattr(incremental, "plain", plain)
    got = Engine(tmp_path).update()
    assert counts["node"] < 5 * n and counts["plain"] < 5 * n, counts
    monkeypatch.undo()
    assert snapshot(got) == snapshot(compile_project(tmp_path))
