"""The planner on real projects: statuses, reasons, reuse, costs.

Builds are simulated with the real store and lock file (the way the executor records
a finished render), so these tests need neither ffmpeg nor a provider.
"""

from __future__ import annotations

import re
import shutil
import time
from decimal import Decimal
from pathlib import Path

import pytest

from storyc.compiler import Compilation, compile_project
from storyc.plan.keys import key_inputs, scene_keys
from storyc.plan.planner import Plan, diff_plans, make_plan
from storyc.state.journal import Journal
from storyc.state.lockfile import LockFile, SceneEntry, TakeEntry
from storyc.state.store import RenderRecord, Store

ASSETS = Path(__file__).parent / "cases" / "payload" / "_assets"

STORY = """\
project "Plan" {
  aspect = "16:9"
}

image mei "assets/mei.png"

scene arrival {
  start    = mei
  prompt   = "Mei steps off the train"
  duration = 5
}

scene platform {
  start    = arrival.last_frame
  prompt   = "Passengers step down onto the platform"
  duration = 5
}

scene rooftop {
  prompt   = "Rooftops under the rain"
  duration = 10
  takes    = 2
}

scene snow {
  edit   = arrival
  prompt = "Make it snow"
}
"""


def project(tmp_path: Path, story: str = STORY) -> Path:
    root = tmp_path / "film"
    (root / "assets").mkdir(parents=True)
    for name in ("mei.png", "door.png"):
        shutil.copy(ASSETS / name, root / "assets" / name)
    (root / "main.story").write_text(story, "utf-8")
    return root


def compiled(root: Path) -> Compilation:
    comp = compile_project(root)
    assert not comp.has_errors, [d.message for d in comp.diagnostics if d.is_error]
    return comp


def plan(root: Path, backend: str = "preview", journal: Journal | None = None) -> Plan:
    comp = compile_project(root)
    with Store.for_project(root) as store:
        return make_plan(
            comp,
            lock=LockFile.load(root / "storyc.lock"),
            store=store,
            backend=backend,
            journal=journal,
        )


def build(root: Path, backend: str = "preview", *, url: bool = False) -> None:
    """Record a finished render of every scene exactly as the executor does."""
    comp = compiled(root)
    lock = LockFile.load(root / "storyc.lock")
    outputs: dict[str, str] = {}
    with Store.for_project(root) as store:
        for name in comp.order:
            req = comp.requests[name]
            up = {u: outputs[u] for u in req.upstream}
            takes = []
            for t, key in scene_keys(req, backend=backend, upstream=up).items():
                rec = store.lookup_render(key)
                out = rec.output if rec and store.has(rec.output) else store.put_bytes(key.encode())
                store.record_render(
                    RenderRecord(key, out, name, t, backend, None, None, 5.0, time.time())
                )
                takes.append(
                    TakeEntry(
                        t,
                        key,
                        out,
                        "task" if url else None,
                        f"https://cdn.test/{t}.mp4" if url else None,
                        5.0,
                        Decimal(0),
                    )
                )
            ki = key_inputs(req, up)
            lock.table(backend)[name] = SceneEntry(
                name,
                backend,
                req.target,
                req.schema,
                req.app,
                ki["prompt"],
                ki["inputs"],
                ki["settings"],
                takes,
                1,
            )
            outputs[name] = takes[0].output or ""
    lock.save(root / "storyc.lock")


def statuses(p: Plan) -> dict[str, str]:
    return {n: s.status for n, s in p.scenes.items()}


def edit(root: Path, old: str, new: str) -> None:
    path = root / "main.story"
    text = path.read_text("utf-8")
    assert old in text
    path.write_text(text.replace(old, new), "utf-8")


def test_fresh_project(tmp_path: Path) -> None:
    root = project(tmp_path)
    p = plan(root)
    assert statuses(p) == {
        "arrival": "render",
        "platform": "waiting",
        "rooftop": "render",
        "snow": "waiting",
    }
    assert p.scenes["rooftop"].render == (1, 2)
    assert p.scenes["platform"].waiting_on == ("arrival",) and not p.scenes["platform"].keys
    assert p.total_estimate == 0 and all(e.kind == "free" for e in p.estimates())
    paid = plan(root, "inference")
    # std by default: 5 s + 5 s + 2 × 10 s; the edit is as long as arrival (5 s, with video)
    assert paid.scenes["snow"].estimate.amount == Decimal("0.126") * 5
    assert paid.total_estimate == Decimal("0.084") * 30 + Decimal("0.126") * 5
    assert [r.kind for r in paid.scenes["arrival"].reasons] == ["new"]


def test_after_build_nothing_renders_and_reformatting_changes_nothing(tmp_path: Path) -> None:
    root = project(tmp_path)
    build(root)
    assert set(statuses(plan(root)).values()) == {"up-to-date"}
    text = (root / "main.story").read_text("utf-8")
    scenes = text.split("\nscene ")
    shuffled = scenes[0] + "\n# a comment\n" + "\nscene ".join(["", *reversed(scenes[1:])])
    (root / "main.story").write_text(shuffled.replace("  prompt", "\tprompt"), "utf-8")
    assert set(statuses(plan(root)).values()) == {"up-to-date"}


def test_one_prompt_edit_renders_exactly_that_scene(tmp_path: Path) -> None:
    root = project(tmp_path)
    build(root, "inference")
    assert set(statuses(plan(root, "preview")).values()) == {"render", "waiting"}
    edit(root, "Rooftops under the rain", "Rooftops under the snow")
    p = plan(root, "inference")
    assert p.total_estimate == Decimal("0.084") * 20
    assert statuses(p) == {
        "arrival": "up-to-date",
        "platform": "up-to-date",
        "rooftop": "render",
        "snow": "up-to-date",
    }
    changes = p.scenes["rooftop"].reasons
    assert [(c.kind, c.old, c.new) for c in changes if c.kind == "prompt"] == [
        ("prompt", "Rooftops under the rain", "Rooftops under the snow")
    ]


def test_upstream_edit_makes_dependents_wait(tmp_path: Path) -> None:
    root = project(tmp_path)
    build(root)
    edit(root, "Mei steps off the train", "Mei steps off the night train")
    p = plan(root)
    assert statuses(p) == {
        "arrival": "render",
        "platform": "waiting",
        "rooftop": "up-to-date",
        "snow": "waiting",
    }
    old = plan(root)
    build(root)
    new = plan(root)
    assert set(statuses(new).values()) == {"up-to-date"}
    d = diff_plans(old, new)
    assert d.no_longer_rendering == ["arrival", "platform", "snow"] and d.cost_delta == 0


def test_revert_reuses_the_old_output(tmp_path: Path) -> None:
    root = project(tmp_path)
    build(root)
    edit(root, "Rooftops under the rain", "Rooftops at dawn")
    build(root)
    edit(root, "Rooftops at dawn", "Rooftops under the rain")
    p = plan(root)
    assert p.scenes["rooftop"].status == "up-to-date" and p.scenes["rooftop"].reuse == (1, 2)


def test_asset_bytes_change_but_rename_does_not(tmp_path: Path) -> None:
    root = project(tmp_path)
    build(root)
    (root / "assets" / "mei.png").rename(root / "assets" / "mei2.png")
    edit(root, "assets/mei.png", "assets/mei2.png")
    assert set(statuses(plan(root)).values()) == {"up-to-date"}
    shutil.copy(ASSETS / "kai.png", root / "assets" / "mei2.png")
    p = plan(root)
    assert p.scenes["arrival"].status == "render"
    inputs = [c for c in p.scenes["arrival"].reasons if c.kind == "input"]
    assert (
        len(inputs) == 1 and inputs[0].field == "image" and "assets/mei2.png" in inputs[0].message
    )


def test_more_takes_render_only_the_new_ones(tmp_path: Path) -> None:
    root = project(tmp_path)
    build(root, "inference")
    edit(root, "takes    = 2", "takes    = 3")
    p = plan(root, "inference")
    sp = p.scenes["rooftop"]
    assert sp.render == (3,) and sp.reuse == (1, 2)
    assert sp.estimate.amount == Decimal("0.084") * 10
    assert any(c.kind == "takes" for c in sp.reasons)


def test_missing_output_is_fetched_or_rendered(tmp_path: Path) -> None:
    root = project(tmp_path)
    build(root, url=True)
    shutil.rmtree(root / ".storyc")
    p = plan(root)
    assert p.scenes["rooftop"].status == "up-to-date" and p.scenes["rooftop"].fetch == (1, 2)
    assert [c.message for c in p.scenes["rooftop"].reasons] == [
        f"take {t}: output not in the store; fetched again from its recorded URL" for t in (1, 2)
    ]
    lock = LockFile.load(root / "storyc.lock")
    for e in lock.previews.values():
        for t in e.takes:
            t.url = None
    lock.save(root / "storyc.lock")
    p = plan(root)
    assert p.scenes["rooftop"].status == "render"
    assert [c.kind for c in p.scenes["rooftop"].reasons] == ["missing"]


def test_journal_attempts_are_not_priced_twice(tmp_path: Path) -> None:
    root = project(tmp_path)
    first = plan(root, "inference")
    key1, key2 = first.scenes["rooftop"].keys[1], first.scenes["rooftop"].keys[2]
    with Journal(root / ".storyc" / "journal.sqlite") as j:
        a = j.begin(key1, "rooftop", 1, "t", "inference", Decimal("0.84"))
        j.mark_submitting(a)
        j.mark_submitted(a, "task-1")
        b = j.begin(key2, "rooftop", 2, "t", "inference", Decimal("0.84"))
        j.mark_submitting(b)
        j.mark_failed(b, "timeout")
        sp = plan(root, "inference", j).scenes["rooftop"]
    assert sp.follow == (1,) and sp.unknown == (2,) and sp.render == ()
    assert sp.estimate.amount == 0


def test_errors_block_the_scene_and_its_dependents(tmp_path: Path) -> None:
    root = project(tmp_path, STORY.replace("start    = mei\n", "start    = nobody\n"))
    p = plan(root)
    assert p.scenes["arrival"].status == "blocked"
    assert p.scenes["platform"].status == "blocked" and "arrival" in (
        p.scenes["platform"].blocked or ""
    )
    assert p.scenes["rooftop"].status == "render"


EXAMPLES = sorted(p for p in (Path(__file__).parent.parent / "examples").glob("*") if p.is_dir())
MEDIA = re.compile(r"[\"']([^\"'\s]+\.(png|jpe?g|mp4|mov))[\"']", re.I)
STAND_INS = {
    "png": "mei.png",
    "jpg": "market.jpg",
    "jpeg": "market.jpg",
    "mp4": "street.mp4",
    "mov": "street.mp4",
}


def example_copy(src: Path, tmp_path: Path) -> Path:
    root = tmp_path / src.name
    shutil.copytree(src, root)
    for story in root.rglob("*.story"):
        for rel, ext in MEDIA.findall(story.read_text("utf-8")):
            target = root / rel
            if not target.exists() and not rel.startswith("http"):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ASSETS / STAND_INS[ext.lower()], target)
    return root


def dependents(comp: Compilation, scene: str) -> set[str]:
    out = {scene}
    for name in comp.order:
        if set(comp.requests[name].upstream) & out:
            out.add(name)
    return out


def edit_prompt(root: Path, scene: str) -> None:
    for story in root.rglob("*.story"):
        text = story.read_text("utf-8")
        m = re.search(rf"(?m)^scene {scene}\b[^{{]*\{{", text)
        if m is None:
            continue
        p = re.compile(r'prompt\s*=\s*("""|")').search(text, m.end())
        assert p is not None
        story.write_text(text[: p.end()] + "Suddenly, " + text[p.end() :], "utf-8")
        return
    raise AssertionError(f"scene {scene} not found")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_edit_one_prompt(example: Path, tmp_path: Path) -> None:
    root = example_copy(example, tmp_path)
    comp = compiled(root)
    build(root)
    assert set(statuses(plan(root)).values()) == {"up-to-date"}
    for story in root.rglob("*.story"):  # comments, blank lines, indentation: no change
        text = story.read_text("utf-8")
        story.write_text("// reformatted\n\n" + text.replace("\n  ", "\n    "), "utf-8")
    assert set(statuses(plan(root)).values()) == {"up-to-date"}
    # the scene with the most dependents
    scene = max(comp.order, key=lambda s: (len(dependents(comp, s)), -comp.order.index(s)))
    edit_prompt(root, scene)
    changed = {n for n, s in statuses(plan(root)).items() if s != "up-to-date"}
    assert changed == dependents(comp, scene)
    assert statuses(plan(root))[scene] == "render"


def test_a_missing_asset_blocks_only_the_scenes_that_use_it(tmp_path: Path) -> None:
    story = STORY.replace(
        'image mei "assets/mei.png"', 'image mei "assets/mei.png"\nimage gone "assets/gone.png"'
    )
    story = story.replace(
        'prompt   = "Rooftops under the rain"', 'prompt   = "Rooftops under the rain, nothing gone"'
    )
    story = story.replace("start    = mei\n", "start    = mei\n  refs     = [gone]\n")
    root = project(tmp_path, story)
    p = plan(root)
    assert p.scenes["arrival"].status == "blocked" and "gone" in (p.scenes["arrival"].blocked or "")
    assert p.scenes["platform"].status == "blocked" and p.scenes["snow"].status == "blocked"
    assert p.scenes["rooftop"].status == "render"  # the word "gone" in a prompt is no use
    broken = STORY.replace('project "Plan" {', 'project "Plan" {\n  quality = "ultra"')
    p = plan(project(tmp_path / "b", broken))
    assert {s.status for s in p.scenes.values()} == {"blocked"}


def test_editing_a_local_video_is_priced_by_its_real_length(tmp_path: Path) -> None:
    story = (
        'project "Edit" {\n  quality = "pro"\n}\n\nvideo street "assets/street.mp4"\n\n'
        'scene snow {\n  edit   = street\n  prompt = "Make it snow on @street"\n}\n'
    )
    root = project(tmp_path, story)
    shutil.copy(ASSETS / "street.mp4", root / "assets" / "street.mp4")
    comp = compiled(root)
    media = comp.project.assets["street"].source.media  # type: ignore[union-attr]
    assert media is not None and media.duration == 3.0
    sp = plan(root, "inference").scenes["snow"]
    assert sp.estimate.kind == "known" and sp.estimate.seconds == 3
    assert sp.estimate.amount == Decimal("0.168") * 3
