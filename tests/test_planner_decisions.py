"""The planner's decision per take, and the reasons and facts it gives, in process: a real
compilation, store, lock file and journal, each put in the state a decision depends on.

Builds reach these paths too, but only a test per decision says which fact decided it
(and runs in milliseconds: `tools/mutation.py planner` runs these for every mutant).
"""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from storyc.compiler import Compilation, compile_project
from storyc.plan import keys
from storyc.plan.planner import (
    Change,
    Planner,
    Sources,
    TakePlan,
    _describe,
    _input_change,
    _is_url,
    _picked,
    _show,
    base_duration,
    diff_plans,
    explain,
    make_plan,
    planner_for,
)
from storyc.state.journal import Journal
from storyc.state.lockfile import LockFile, SceneEntry, TakeEntry
from storyc.state.store import RenderRecord, Store

ASSETS = Path(__file__).parent / "cases" / "payload" / "_assets"
PAID = "inference"
URL = "https://cdn.test/a.mp4"

STORY = """\
project "Decide" { aspect = "16:9" }
video street "assets/street.mp4"
scene one { prompt = "A quiet street"  duration = 5 }
scene pair { prompt = "Two takes of the harbour"  duration = 10  takes = 2 }
scene after { start = one.last_frame  prompt = "Then the door opens"  duration = 5 }
scene snow { edit = one  prompt = "Make it snow" }
scene local { edit = street  prompt = "Make it rain" }
"""


class Team:
    """What the team store holds, by key (`storyc.remote.planning.RemoteView`'s one question)."""

    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs

    def output(self, key: str) -> str | None:
        return self.outputs.get(key)


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.comp: Compilation = compile_project(root)
        assert not self.comp.has_errors, [d.message for d in self.comp.diagnostics]
        self.store = Store.for_project(root)
        self.lock = LockFile()
        self.journal = Journal(root / ".storyc" / "journal.sqlite")

    def key(self, scene: str, take: int = 1, backend: str = PAID, **up: str) -> str:
        return keys.request_key(self.comp.requests[scene], backend=backend, take=take, upstream=up)

    def planner(self, backend: str = PAID, **kw: Any) -> Planner:
        kw.setdefault("file_duration", self.comp.media_duration)
        sources = Sources(
            lock=self.lock, store=self.store, backend=backend, journal=self.journal, **kw
        )
        return planner_for(self.comp, sources)

    def entry(self, scene: str, *takes: TakeEntry, backend: str = PAID, **up: str) -> SceneEntry:
        req = self.comp.requests[scene]
        ki = keys.key_inputs(req, up)
        e = SceneEntry(
            scene, backend, req.target, req.schema, req.app, ki["prompt"], ki["inputs"],
            ki["settings"], list(takes), 1,
        )  # fmt: skip
        self.lock.table(backend)[scene] = e
        return e

    def attempt(self, key: str, *states: str, task: str | None = None) -> int:
        j = self.journal
        a = j.begin(key, "one", 1, "inference/video-o1", PAID, Decimal("0.42"))
        for s in states:
            if s == "submitting":
                j.mark_submitting(a)
            elif s == "submitted":
                j.mark_submitted(a, task or "task-1")
            elif s == "unknown":
                j.mark_failed(a, "timeout")
        return a


def make_world(tmp_path: Path, story: str = STORY) -> World:
    root = tmp_path / "film"
    (root / "assets").mkdir(parents=True)
    shutil.copy(ASSETS / "street.mp4", root / "assets" / "street.mp4")
    (root / "main.story").write_text(story, "utf-8")
    return World(root)


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = make_world(tmp_path)
    yield w  # type: ignore[misc]
    w.journal.close()


def test_nothing_known_renders_and_is_priced(world: World) -> None:
    sp = world.planner().plan().scenes["one"]
    d = sp.decisions[1]
    assert (sp.name, sp.takes, sp.request) == ("one", 1, world.comp.requests["one"])
    assert (sp.status, sp.render, d.action, d.key) == ("render", (1,), "render", world.key("one"))
    assert d.take == 1
    assert d.price.amount == Decimal("0.084") * 5 and sp.estimate.amount == d.price.amount
    assert [(c.kind, c.message) for c in sp.reasons] == [
        ("new", "not in the lock file (never built)")
    ]
    assert sp.output is None and sp.duration == 5.0


def test_the_key_index_reuses_with_the_records_facts(world: World) -> None:
    k = world.key("one")
    out = world.store.put_bytes(b"one")
    world.store.record_render(RenderRecord(k, out, "one", 1, PAID, "task-9", URL, 5.04, 1e9))
    sp = world.planner().plan().scenes["one"]
    d = sp.decisions[1]
    assert (sp.status, sp.reuse, sp.output, sp.duration) == ("up-to-date", (1,), out, 5.04)
    assert (d.action, d.output, d.indexed, d.task_id, d.url, d.duration) == (
        "reuse", out, True, "task-9", URL, 5.04,
    )  # fmt: skip
    assert d.cost is None and sp.estimate.amount == 0 and sp.reasons == []
    # the record's object gone: the index says nothing, and the record's URL gives it again
    world.store.remove(out)
    d = world.planner().plan().scenes["one"].decisions[1]
    assert (d.action, d.url, d.output) == ("fetch", URL, out)


def test_a_completed_attempt_reuses_what_the_journal_knows(world: World) -> None:
    k = world.key("one")
    out = world.store.put_bytes(b"paid")
    a = world.attempt(k, "submitting", "submitted", task="task-7")
    world.journal.mark_completed(a, out, URL, Decimal("0.40"))
    d = world.planner().plan().scenes["one"].decisions[1]
    assert (d.action, d.output, d.indexed, d.task_id, d.url, d.cost, d.attempt) == (
        "reuse", out, False, "task-7", URL, Decimal("0.40"), None,
    )  # fmt: skip
    # billed unknown: the estimate is what it may have cost
    b = world.attempt(world.key("pair", 1), "submitting", "submitted", task="task-8")
    world.journal.mark_completed(b, world.store.put_bytes(b"pair"), URL, None)
    d = world.planner().plan().scenes["pair"].decisions[1]
    assert (d.action, d.cost, d.task_id) == ("reuse", Decimal("0.42"), "task-8")
    # an output that is not in the store is not reused: its URL gives it again
    world.store.remove(out)
    d = world.planner().plan().scenes["one"].decisions[1]
    assert (d.action, d.url, d.output) == ("fetch", URL, out)


def test_the_lock_files_digest_reuses_with_the_lock_files_facts(world: World) -> None:
    k = world.key("one")
    out = world.store.put_bytes(b"locked")
    world.entry("one", TakeEntry(1, k, out, "task-3", URL, 5.0, Decimal("0.42")))
    sp = world.planner().plan().scenes["one"]
    d = sp.decisions[1]
    assert (d.action, d.indexed, d.task_id, d.url, d.duration, d.cost) == (
        "reuse", False, "task-3", URL, 5.0, Decimal("0.42"),
    )  # fmt: skip
    assert sp.status == "up-to-date" and sp.reasons == []
    # the same lock on the free backend: a preview cost nothing
    world.entry("one", TakeEntry(1, world.key("one", backend="preview"), out), backend="preview")
    d = world.planner("preview").plan().scenes["one"].decisions[1]
    assert (d.action, d.cost) == ("reuse", Decimal(0))
    # a lock entry of another key is not this take's
    world.entry("one", TakeEntry(1, world.key("pair"), out, "task-3", URL, 5.0, Decimal(1)))
    assert world.planner().plan().scenes["one"].decisions[1].action == "render"


def test_a_lock_that_lacks_a_fact_is_completed_from_the_record_then_the_journal(
    world: World,
) -> None:
    k = world.key("one")
    out = world.store.put_bytes(b"out")
    world.entry("one", TakeEntry(1, k, out, None, None, None, None))
    world.store.record_render(RenderRecord(k, out, "one", 1, PAID, "task-r", URL, 4.9, 1e9))
    a = world.attempt(k, "submitting", "submitted", task="task-j")
    world.journal.mark_completed(a, out, "https://cdn.test/j.mp4", Decimal("0.41"))
    d = world.planner().plan().scenes["one"].decisions[1]
    assert (d.task_id, d.url, d.duration, d.cost, d.indexed) == (
        "task-r", URL, 4.9, Decimal("0.41"), True,
    )  # fmt: skip
    # a record of another output (not in the store) lends nothing: the journal's facts
    other = "sha256:" + "3" * 64
    world.store.record_render(RenderRecord(k, other, "one", 1, PAID, "t", URL, 1.0, 1e9))
    d = world.planner().plan().scenes["one"].decisions[1]
    assert (d.action, d.output, d.indexed) == ("reuse", out, False)
    assert (d.task_id, d.url, d.duration) == ("task-j", "https://cdn.test/j.mp4", None)


def test_the_team_store_is_pulled_not_paid(world: World) -> None:
    k = world.key("one")
    world.entry("one", TakeEntry(1, k, world.store.put_bytes(b"gone"), None, None, 5.2, None))
    world.store.remove(world.lock.scenes["one"].takes[0].output or "")
    team = Team({k: "sha256:" + "7" * 64})
    sp = world.planner(remote=team).plan().scenes["one"]
    d = sp.decisions[1]
    assert (d.take, d.key, d.action, d.output, d.duration, sp.pull, sp.status) == (
        1, k, "pull", "sha256:" + "7" * 64, 5.2, (1,), "up-to-date",
    )  # fmt: skip
    assert sp.reasons == [
        Change("remote", "take 1", message="take 1: in the team store; pulled, not paid")
    ]
    # without a lock entry: its length is not known yet
    del world.lock.scenes["one"]
    d = world.planner(remote=team).plan().scenes["one"].decisions[1]
    assert (d.action, d.duration) == ("pull", None)
    assert sp.estimate.amount == 0


def test_a_missing_output_is_fetched_from_a_url_that_still_works(world: World) -> None:
    k = world.key("one")
    gone = "sha256:" + "1" * 64
    world.entry("one", TakeEntry(1, k, gone, "task-1", URL, 5.1, Decimal("0.42")))
    sp = world.planner().plan().scenes["one"]
    d = sp.decisions[1]
    assert (d.take, d.key, d.action, d.output, d.url, d.task_id, d.duration, d.cost) == (
        1, k, "fetch", gone, URL, "task-1", 5.1, Decimal("0.42"),
    )  # fmt: skip
    assert sp.fetch == (1,) and sp.status == "up-to-date" and sp.output == gone
    assert sp.reasons == [
        Change(
            "missing",
            "take 1",
            message="take 1: output not in the store; fetched again from its recorded URL",
        )
    ]
    # the lock's URL known dead: the render record's
    world.store.mark_unfetchable(k, URL, "expired")
    rec_url = "https://cdn.test/rec.mp4"
    world.store.record_render(RenderRecord(k, gone, "one", 1, PAID, None, rec_url, 5.0, 1e9))
    assert world.planner().plan().scenes["one"].decisions[1].url == rec_url
    # neither the lock nor the record has a URL: the journal's
    world.entry("one", TakeEntry(1, k, gone, "task-1", None, 5.1, Decimal("0.42")))
    world.store.record_render(RenderRecord(k, gone, "one", 1, PAID, None, None, 5.0, 1e9))
    a = world.attempt(k, "submitting", "submitted")
    world.journal.mark_completed(a, gone, "https://cdn.test/j.mp4", None)
    assert world.planner().plan().scenes["one"].decisions[1].url == "https://cdn.test/j.mp4"
    world.store.mark_unfetchable(k, "https://cdn.test/j.mp4", "other bytes")
    sp = world.planner().plan().scenes["one"]
    assert sp.decisions[1].action == "render"
    assert [(c.kind, c.field, c.message) for c in sp.reasons] == [
        ("missing", "output", "output missing from the store, and no URL to fetch it again")
    ]


def test_a_url_must_be_http_and_come_with_its_digest() -> None:
    assert _is_url("https://x.test/a") and _is_url("http://x.test/a")
    assert not _is_url("ftp://x.test/a") and not _is_url("") and not _is_url(None)
    assert not _is_url("/local/path")


def test_what_the_journal_says_was_sent_is_followed_or_decided(world: World) -> None:
    k = world.key("one")
    world.attempt(k, "submitting", "submitted", task="task-5")
    sp = world.planner().plan().scenes["one"]
    d = sp.decisions[1]
    assert (d.take, d.key, d.action, d.task_id, sp.follow, sp.status) == (
        1, k, "follow", "task-5", (1,), "render",
    )  # fmt: skip
    assert d.attempt == world.journal.attempts(k)[0].id
    assert sp.reasons[-1] == Change(
        "journal",
        "take 1",
        message="take 1 was already sent (task task-5); it is followed, not sent again",
    )
    assert sp.estimate.amount == 0  # already paid for: never priced twice
    k2 = world.key("pair", 2)
    b = world.journal.begin(k2, "pair", 2, "inference/video-o1", PAID, None)
    world.journal.mark_submitting(b)
    # being sent by a build that runs now: followed, not sent again
    sp = world.planner(live_build=True).plan().scenes["pair"]
    assert (sp.decisions[2].action, sp.decisions[2].attempt) == ("follow", b)
    assert (sp.decisions[2].take, sp.decisions[2].key) == (2, k2)
    assert "take 2 is being sent by a build running now" in [c.message for c in sp.reasons]
    # nobody is sending it: its fate is unknown, and the user decides
    sp = world.planner().plan().scenes["pair"]
    assert (sp.decisions[2].action, sp.decisions[2].attempt, sp.unknown) == ("decide", b, (2,))
    assert (sp.decisions[2].take, sp.decisions[2].key) == (2, k2)
    assert (
        Change(
            "journal",
            "take 2",
            message="take 2: an earlier attempt's fate is unknown; needs your decision "
            "(storyc adopt or storyc forget)",
        )
        in sp.reasons
    )
    assert (
        "take 2: an earlier attempt's fate is unknown; needs your decision "
        "(storyc adopt or storyc forget)"
    ) in [c.message for c in sp.reasons]
    world.journal.mark_failed(b, "timeout")  # now `unknown`
    assert world.planner().plan().scenes["pair"].decisions[2].action == "decide"
    c = world.journal.begin(k2, "pair", 2, "inference/video-o1", PAID, None)
    world.journal.mark_submitting(c)
    world.journal.mark_failed(c, "timeout")
    d = world.planner(resubmit_unknown=True).plan().scenes["pair"].decisions[2]
    assert (d.take, d.key, d.action, d.resend) == (2, k2, "render", (b, c))


def test_attempts_that_failed_or_were_not_sent_render_again(world: World) -> None:
    k = world.key("one")
    a = world.attempt(k)
    world.journal.mark_not_sent(a, "stopped")
    b = world.attempt(k, "submitting", "submitted")
    world.journal.mark_failed(b, "the provider failed it")
    assert world.planner().plan().scenes["one"].decisions[1].action == "render"


def test_scenes_that_cannot_be_planned_say_why(world: World) -> None:
    p = Planner(
        world.comp.requests,
        world.comp.order,
        Sources(lock=world.lock, store=world.store, backend=PAID),
        broken={"one": "the prompt failed"},
        blocked={"ghost": "one"},
        extra=["ghost", "lost", "one"],
    )
    plan = p.plan()
    assert plan.order == [*world.comp.order, "ghost", "lost"]
    assert (plan.scenes["one"].status, plan.scenes["one"].blocked) == (
        "blocked",
        "the prompt failed",
    )
    assert plan.scenes["after"].blocked == "uses scene one, which is blocked"
    assert plan.scenes["ghost"].blocked == "uses scene one, which cannot be built"
    assert plan.scenes["lost"].blocked == "the scene has errors (see `storyc check`)"
    assert plan.by_status("blocked") == ["one", "after", "snow", "ghost", "lost"]
    assert [plan.scenes[n].name for n in plan.order] == plan.order
    after = plan.scenes["after"]
    assert (after.takes, after.request) == (1, world.comp.requests["after"])


def test_a_scene_planned_alone_uses_its_upstreams_recorded_output(world: World) -> None:
    p = world.planner()
    sp = p.plan(["after"]).scenes["after"]
    assert (sp.status, sp.blocked) == ("blocked", "uses scene one, which has no output yet")
    assert sp.takes == 1 and sp.request is world.comp.requests["after"]
    out = world.store.put_bytes(b"one's video")
    world.entry("one", TakeEntry(1, world.key("one"), out))
    sp = world.planner().plan(["after"]).scenes["after"]
    assert sp.status == "render" and sp.upstream == {"one": out}
    assert sp.keys[1] == world.key("after", one=out)
    world.store.remove(out)  # recorded, but the object is gone
    assert world.planner().plan(["after"]).scenes["after"].status == "blocked"


def test_waiting_scenes_are_priced_and_say_what_they_wait_for(world: World) -> None:
    plan = world.planner().plan()
    sp = plan.scenes["after"]
    assert (sp.name, sp.takes, sp.picked) == ("after", 1, 1)
    assert (sp.status, sp.waiting_on, sp.render, sp.keys) == ("waiting", ("one",), (1,), {})
    assert [(c.kind, c.field, c.message) for c in sp.reasons] == [
        ("upstream", "one", "waits for scene one to render"),
        ("new", "", "not in the lock file (never built)"),
    ]
    assert sp.decisions[1].price.amount == Decimal("0.084") * 5 == sp.estimate.amount
    assert sp.decisions == {1: TakePlan(1, "render", price=sp.decisions[1].price)}
    assert sp.request is world.comp.requests["after"] and sp.upstream == {}
    assert sp.duration == 5.0
    snow = plan.scenes["snow"]  # an edit as long as the scene it edits
    assert snow.status == "waiting" and snow.duration == 5.0
    assert snow.estimate.amount == Decimal("0.126") * 5 == snow.decisions[1].price.amount
    local = plan.scenes["local"]  # an edit of a local video: priced by its header
    length = world.comp.media_duration("assets/street.mp4")
    assert length and local.duration == length
    assert local.estimate.kind == "known" and local.estimate.seconds == length


def test_base_duration_of_an_edit(world: World) -> None:
    plan = world.planner().plan()
    assert base_duration(world.comp, world.comp.requests["snow"], plan.scenes) == 5.0
    assert base_duration(world.comp, world.comp.requests["snow"], {}) is None
    assert base_duration(world.comp, world.comp.requests["one"], plan.scenes) is None
    length = world.comp.media_duration("assets/street.mp4")
    assert base_duration(world.comp, world.comp.requests["local"], {}) == length
    # the edited scene's own planned length wins over its request's
    plan.scenes["one"].duration = 4.2
    assert base_duration(world.comp, world.comp.requests["snow"], plan.scenes) == 4.2
    plan.scenes["one"].duration = None
    assert base_duration(world.comp, world.comp.requests["snow"], plan.scenes) == 5.0


def test_the_picked_take_gives_the_scenes_output(world: World) -> None:
    k1, k2 = world.key("pair", 1), world.key("pair", 2)
    o1, o2 = world.store.put_bytes(b"take 1"), world.store.put_bytes(b"take 2")
    e = world.entry("pair", TakeEntry(1, k1, o1, duration=10.0), TakeEntry(2, k2, o2, duration=9.5))
    e.picked = 2
    sp = world.planner().plan().scenes["pair"]
    assert (sp.picked, sp.output, sp.duration) == (2, o2, 9.5)
    e.picked = 3  # more than the scene has now: the first
    sp = world.planner().plan().scenes["pair"]
    assert (sp.picked, sp.output) == (1, o1)
    assert _picked(None, 2) == 1 and _picked(e, 3) == 3 and _picked(e, 2) == 1
    e.picked = 0
    assert _picked(e, 2) == 1


def test_a_take_added_renders_only_that_take_and_says_so(world: World) -> None:
    k1 = world.key("pair", 1)
    world.entry("pair", TakeEntry(1, k1, world.store.put_bytes(b"t1")))
    sp = world.planner().plan().scenes["pair"]
    assert (sp.render, sp.reuse, sp.status) == ((2,), (1,), "render")
    assert [(c.kind, c.old, c.new, c.message) for c in sp.reasons] == [
        ("takes", 1, 2, "takes added: 2")
    ]
    assert sp.estimate.amount == Decimal("0.084") * 10


def test_a_key_that_changed_with_no_recorded_field_says_so(world: World) -> None:
    world.entry("one", TakeEntry(1, "sha256:" + "2" * 64, world.store.put_bytes(b"old")))
    sp = world.planner().plan().scenes["one"]
    assert [(c.kind, c.field, c.message) for c in sp.reasons] == [
        (
            "key",
            "key",
            "the key changed although no recorded field did (a new storyc version, or a lock "
            "file edited by hand)",
        )
    ]


def test_explain_names_each_field_that_changed(world: World) -> None:
    req = world.comp.requests["one"]
    e = world.entry("one")
    assert explain(e, req, PAID, {}) == []
    e.backend, e.target, e.schema, e.app = "preview", "inference/video-o1@v1", "v1", "old/app"
    e.prompt = "A loud street"
    e.settings = {**e.settings, "duration": 10, "gone": True, "quality": None}
    found = explain(e, req, PAID, {})
    assert [(c.kind, c.field, c.message) for c in found] == [
        ("backend", "backend", "backend: preview → inference"),
        ("target", "target", "target: inference/video-o1@v1 → inference/video-o1"),
        ("schema", "schema", "schema: v1 → v2"),
        ("app", "app", "app: old/app → klingai/video-o1"),
        ("prompt", "prompt", "prompt text changed"),
        ("setting", "duration", "duration: 10 → 5"),
        ("setting", "gone", "gone: true → (unset)"),
        *[
            (
                "setting",
                "quality",
                f"quality: (unset) → {_show(keys.key_inputs(req, {})['settings']['quality'])}",
            )
            for _ in [0]
            if "quality" in keys.key_inputs(req, {})["settings"]
        ],
    ]
    assert found[0].old == "preview" and found[0].new == PAID
    assert explain(None, req, PAID, {})[0].kind == "new"


def test_values_are_shown_as_the_story_writes_them() -> None:
    assert _show(None) == "(unset)" and _show("16:9") == "'16:9'"
    assert _show(True) == "true" and _show(False) == "false" and _show(5) == "5"
    assert _show(2.5) == "2.5" and _show(["Std"]) == "['Std']" and _show(Decimal("1E+1")) == "1E+1"


def test_input_changes_are_described_by_what_they_are() -> None:
    d1, d2 = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    f1 = {"path": "assets/a.png", "digest": d1}
    assert _input_change("image", f1, f1) == ""
    assert _input_change("image", None, f1) == "image: added assets/a.png (aaaaaaaaaaaa)"
    assert _input_change("image", f1, None) == "image: removed assets/a.png (aaaaaaaaaaaa)"
    renamed = {"path": "assets/b.png", "digest": d1}
    assert _input_change("image", f1, renamed) == ""  # same bytes: the key does not change
    assert _input_change("image", f1, {"path": "assets/a.png", "digest": d2}) == (
        "image: assets/a.png (aaaaaaaaaaaa) → assets/a.png (bbbbbbbbbbbb)"
    )
    waiting = {"scene": "one", "output": "last_frame"}
    done = {**waiting, "upstream": d1}
    assert _input_change("image", done, waiting) == "image: scene one renders first"
    assert _input_change("image", waiting, done) == "image: the output of scene one changed"
    assert _input_change("image", {**done, "upstream": d2}, done) == (
        "image: the output of scene one changed"
    )
    other = {"scene": "two", "output": "last_frame", "upstream": d1}
    assert _input_change("image", done, other) == (
        "image: last_frame of scene one → last_frame of scene two"
    )
    at = {"scene": "one", "output": "frame", "at": 2.5}
    assert _input_change("image", {**at, "at": 1.0}, at) == (
        "image: frame@1.0 of scene one → frame@2.5 of scene one"
    )
    assert _input_change("image", f1, {"url": "https://x.test/a.png"}) == (
        "image: assets/a.png (aaaaaaaaaaaa) → https://x.test/a.png"
    )
    same_time = {**at, "upstream": d1}
    assert _input_change("image", same_time, {**at, "upstream": d2}) == (
        "image: the output of scene one changed"
    )
    assert _input_change("image", {**at, "upstream": d1}, at) == "image: scene one renders first"
    assert _describe({"scene": "one"}) == "video of scene one"
    assert _describe({"path": "p", "digest": "md5:1"}) == "p (md5:1)"
    assert _describe({"other": 1}) == "{'other': 1}"


def test_an_upstream_change_is_an_upstream_reason(world: World) -> None:
    o1, o2 = world.store.put_bytes(b"v1"), world.store.put_bytes(b"v2")
    world.entry("one", TakeEntry(1, world.key("one"), o2))
    world.entry(
        "after", TakeEntry(1, world.key("after", one=o1), world.store.put_bytes(b"a")), one=o1
    )
    sp = world.planner().plan().scenes["after"]
    assert sp.status == "render"
    [c] = sp.reasons
    assert (c.kind, c.field, c.message) == (
        "upstream", "image", "image: the output of scene one changed",
    )  # fmt: skip


def test_plan_json_and_totals(world: World) -> None:
    k = world.key("one")
    world.entry("one", TakeEntry(1, k, world.store.put_bytes(b"one")))
    plan = world.planner().plan()
    doc = plan.to_json()
    assert doc["backend"] == PAID and doc["free"] is False
    assert list(doc["scenes"]) == plan.order
    one = doc["scenes"]["one"]
    assert one == {
        "status": "up-to-date", "takes": 1, "render": [], "fetch": [], "pull": [],
        "reuse": [1], "follow": [], "unknown": [], "keys": {"1": k}, "reasons": [],
        "estimate": None, "estimate_kind": None, "actions": {"1": "reuse"},
        "waiting_on": [], "blocked": None,
    }  # fmt: skip
    pair = doc["scenes"]["pair"]
    assert pair["render"] == [1, 2] and pair["actions"] == {"1": "render", "2": "render"}
    assert pair["estimate"] == str(Decimal("0.084") * 20) and pair["estimate_kind"] == "known"
    assert pair["reasons"] == [
        {"kind": "new", "field": "", "message": "not in the lock file (never built)"}
    ]
    assert doc["total"] == str(plan.total_estimate) and doc["unknown_prices"] == 0
    assert doc["known_total"] == doc["total"]
    free = world.planner("preview").plan().to_json()
    assert free["free"] is True and free["total"] == "0"
    # an edit of a scene whose length is unknown has an unknown price
    world.comp.requests["one"]  # noqa: B018 - the scene exists
    plan.scenes["snow"].estimate = plan.scenes["snow"].estimate.__class__("unknown", None, 1)
    assert plan.unknown_count == 1 and plan.total_estimate is None
    assert plan.to_json()["total"] is None
    assert plan.to_json()["scenes"]["snow"]["estimate"] is None
    assert plan.known_total == sum(
        (s.estimate.amount for s in plan.scenes.values() if s.will_render and s.estimate.amount),
        Decimal(0),
    )


def test_diff_of_two_plans(world: World) -> None:
    before = world.planner().plan()
    world.entry("one", TakeEntry(1, world.key("one"), world.store.put_bytes(b"one")))
    after = world.planner().plan()
    d = diff_plans(before, after)
    assert d.no_longer_rendering == ["one"] and d.newly_rendering == []
    assert d.status_changes == {
        "one": ("render", "up-to-date"),
        "after": ("waiting", "render"),
        "snow": ("waiting", "render"),
    }
    assert d.cost_delta == (after.total_estimate or 0) - (before.total_estimate or 0)
    first = diff_plans(None, before)
    assert first.newly_rendering == [n for n in before.order if before.scenes[n].will_render]
    assert first.cost_delta == before.total_estimate


def test_make_plan_is_the_planner_of_a_compilation(world: World) -> None:
    plan = make_plan(
        world.comp, lock=world.lock, store=world.store, backend=PAID, journal=world.journal
    )
    assert plan.order == world.comp.order and plan.backend == PAID
    assert plan.scenes["local"].duration == world.comp.media_duration("assets/street.mp4")


def test_a_waiting_scene_explains_itself_against_its_lock_entry(world: World) -> None:
    e = world.entry("after", TakeEntry(1, "sha256:" + "4" * 64, None), one="sha256:" + "5" * 64)
    e.prompt = "Then the window opens"
    sp = world.planner().plan().scenes["after"]
    assert sp.status == "waiting"
    assert [(c.kind, c.message) for c in sp.reasons] == [
        ("upstream", "waits for scene one to render"),
        ("prompt", "prompt text changed"),
    ]


def test_diff_of_plans_of_different_scenes_and_unknown_totals(world: World) -> None:
    few = world.planner().plan(["one", "pair"])
    every = world.planner().plan()
    d = diff_plans(few, every)
    assert d.status_changes == {
        "after": (None, "waiting"), "snow": (None, "waiting"), "local": (None, "render"),
    }  # fmt: skip
    assert diff_plans(every, few).status_changes == {
        n: (s, None) for n, (_, s) in d.status_changes.items()
    }
    unknown = world.planner(file_duration=lambda path: None).plan()
    assert unknown.total_estimate is None
    assert diff_plans(every, unknown).cost_delta is None
    assert diff_plans(unknown, every).cost_delta is None
    assert diff_plans(every, every).cost_delta == 0


def test_a_waiting_scene_keeps_the_picked_take(tmp_path: Path) -> None:
    w = make_world(
        tmp_path,
        'project "P" { aspect = "16:9" }\n'
        'scene one { prompt = "A street"  duration = 5 }\n'
        'scene twice { start = one.last_frame  prompt = "Then"  duration = 5  takes = 2 }\n',
    )
    e = w.entry("twice")
    e.picked = 2
    sp = w.planner().plan().scenes["twice"]
    assert (sp.status, sp.takes, sp.picked, sp.render) == ("waiting", 2, 2, (1, 2))
    assert [d.take for d in sp.decisions.values()] == [1, 2]
    w.journal.close()


# the lock's facts (task, url, duration, cost) -> what the reuse decision records
@pytest.mark.parametrize(
    "lock,expected",
    [
        (("T", "U", 5.0, "0.4"), ("T", "U", 5.0, "0.4")),
        (("T", "U", None, "0.4"), ("T", "U", None, "0.4")),  # the lock knows it all
        ((None, "U", 5.0, "0.4"), ("task-r", "U", 5.0, "0.4")),
        (("T", None, 5.0, "0.4"), ("T", "R", 5.0, "0.4")),
        (("T", None, None, "0.4"), ("T", "R", 4.0, "0.4")),
        (("T", "U", 5.0, None), ("T", "U", 5.0, "0.5")),
        ((None, None, None, None), ("task-r", "R", 4.0, "0.5")),
        (("T", "U", None, None), ("T", "U", 4.0, "0.5")),
    ],
)
def test_reuse_completes_the_lock_from_the_record_then_the_journal(
    world: World, lock: tuple[Any, ...], expected: tuple[Any, ...]
) -> None:
    k = world.key("one")
    out = world.store.put_bytes(b"out")
    task, url, duration, cost = lock
    world.entry("one", TakeEntry(1, k, out, task, url, duration, cost and Decimal(cost)))
    world.store.record_render(RenderRecord(k, out, "one", 1, PAID, "task-r", "R", 4.0, 1e9))
    a = world.attempt(k, "submitting", "submitted", task="task-j")
    world.journal.mark_completed(a, out, "J", Decimal("0.5"))
    d = world.planner().plan().scenes["one"].decisions[1]
    assert (d.take, d.action, d.key, d.output, d.indexed) == (1, "reuse", k, out, True)
    task, url, duration, cost = expected
    assert (d.task_id, d.url, d.duration, d.cost) == (task, url, duration, Decimal(cost))


def test_a_preview_reuse_takes_the_lock_as_it_is(world: World) -> None:
    k = world.key("one", backend="preview")
    out = world.store.put_bytes(b"out")
    world.entry("one", TakeEntry(1, k, out), backend="preview")
    world.store.record_render(RenderRecord(k, out, "one", 1, "preview", "t", "R", 4.0, 1e9))
    d = world.planner("preview").plan().scenes["one"].decisions[1]
    assert (d.take, d.key, d.task_id, d.url, d.duration, d.cost) == (1, k, None, None, None, 0)
    # not in the lock: the record's facts, and a preview's cost is nothing
    del world.lock.previews["one"]
    d = world.planner("preview").plan().scenes["one"].decisions[1]
    assert (d.take, d.key, d.task_id, d.url, d.duration, d.cost) == (1, k, "t", "R", 4.0, 0)


def test_reuse_takes_its_facts_from_the_attempt_that_made_that_output(world: World) -> None:
    k = world.key("one")
    out = world.store.put_bytes(b"out")
    world.entry("one", TakeEntry(1, k, out))
    a = world.attempt(k, "submitting", "submitted", task="task-1")
    world.journal.mark_completed(a, out, "https://cdn.test/1.mp4", Decimal("0.4"))
    b = world.attempt(k, "submitting", "submitted", task="task-2")
    world.journal.mark_completed(b, "sha256:" + "6" * 64, "https://cdn.test/2.mp4", Decimal("0.3"))
    d = world.planner().plan().scenes["one"].decisions[1]
    assert (d.action, d.output, d.task_id, d.url, d.cost) == (
        "reuse", out, "task-1", "https://cdn.test/1.mp4", Decimal("0.4"),
    )  # fmt: skip


def test_make_plan_passes_on_the_live_build_and_the_team_store(world: World) -> None:
    k = world.key("one")
    a = world.attempt(k, "submitting")
    kw: dict[str, Any] = dict(
        lock=world.lock, store=world.store, backend=PAID, journal=world.journal
    )
    assert make_plan(world.comp, **kw).scenes["one"].decisions[1].action == "decide"
    live = make_plan(world.comp, **kw, live_build=True).scenes["one"].decisions[1]
    assert (live.action, live.attempt) == ("follow", a)
    kp = world.key("pair", 1)
    team = Team({kp: "sha256:" + "8" * 64})
    assert make_plan(world.comp, **kw, remote=team).scenes["pair"].decisions[1].action == "pull"


def test_a_two_take_scene_blocked_keeps_its_takes(tmp_path: Path) -> None:
    w = make_world(
        tmp_path,
        'project "P" { aspect = "16:9" }\n'
        'scene one { prompt = "A street"  duration = 5 }\n'
        'scene twice { start = one.last_frame  prompt = "Then"  duration = 5  takes = 2 }\n',
    )
    sp = w.planner().plan(["twice"]).scenes["twice"]
    assert (sp.name, sp.status, sp.takes, sp.request) == (
        "twice", "blocked", 2, w.comp.requests["twice"],
    )  # fmt: skip
    p = Planner(
        w.comp.requests, w.comp.order, Sources(lock=w.lock, store=w.store, backend=PAID),
        broken={"one": "bad"},
    )  # fmt: skip
    sp = p.plan().scenes["twice"]
    assert (sp.name, sp.status, sp.takes, sp.request) == (
        "twice", "blocked", 2, w.comp.requests["twice"],
    )  # fmt: skip
    w.journal.close()


def _cycle_project(root: Path) -> Path:
    """A project of one free scene and two that start from each other's last frame."""
    root.mkdir()
    (root / "main.story").write_text(
        'project "P" { aspect = "16:9" }\n'
        'scene free { prompt = "A street"  duration = 5 }\n'
        'scene x { start = y.last_frame  prompt = "X"  duration = 5 }\n'
        'scene y { start = x.last_frame  prompt = "Y"  duration = 5 }\n',
        "utf-8",
    )
    return root


def test_scenes_in_a_cycle_and_scenes_asked_for_are_in_the_plan(tmp_path: Path) -> None:
    root = _cycle_project(tmp_path / "cycle")
    comp = compile_project(root)
    assert comp.order == ["free"]
    plan = make_plan(comp, lock=LockFile(), store=Store.for_project(root), backend=PAID)
    assert plan.order == ["free", "x", "y"]
    assert plan.scenes["x"].status == plan.scenes["y"].status == "blocked"
    one = compile_project(root, scenes=["x"])
    plan = make_plan(one, lock=LockFile(), store=Store.for_project(root), backend=PAID)
    assert plan.order == ["x"] and plan.scenes["x"].status == "blocked"
    (root / "main.story").write_text("scene {{{ broken", "utf-8")
    broken = compile_project(root)
    assert (
        make_plan(broken, lock=LockFile(), store=Store.for_project(root), backend=PAID).order == []
    )


def test_explain_reports_inputs_added_and_removed_with_their_values(world: World) -> None:
    req = world.comp.requests["after"]
    d1 = "sha256:" + "a" * 64
    e = world.entry("after", one=d1)
    now = keys.key_inputs(req, {"one": d1})["inputs"]
    [(path, value)] = now.items()
    e.inputs = {"old_slot": {"path": "assets/x.png", "digest": d1}}
    found = explain(e, req, PAID, {"one": d1})
    assert [(c.kind, c.field, c.old, c.new) for c in found] == [
        ("upstream", path, None, value),
        ("input", "old_slot", {"path": "assets/x.png", "digest": d1}, None),
    ]
    assert found[0].message == f"{path}: added last_frame of scene one"
    e.inputs = dict(now)
    e.settings = {**e.settings, "duration": 10}
    [c] = explain(e, req, PAID, {"one": d1})
    assert (c.kind, c.field, c.old, c.new) == ("setting", "duration", 10, 5)


def test_explain_lists_every_take_added() -> None:
    from dataclasses import replace

    from storyc.targets.request import Request

    req = Request(
        "s", "inference/video-o1", "v2", "klingai/video-o1", {"app": "a", "input": {"prompt": "p"}},
        3, (), "std", 5, False, "text-to-video",
    )  # fmt: skip
    ki = keys.key_inputs(req, {})
    entry = SceneEntry(
        "s", PAID, req.target, req.schema, req.app, ki["prompt"], ki["inputs"], ki["settings"],
        [TakeEntry(1, "k1")], 1,
    )  # fmt: skip
    [c] = explain(entry, req, PAID, {})
    assert (c.kind, c.field, c.old, c.new, c.message) == (
        "takes",
        "takes",
        1,
        3,
        "takes added: 2, 3",
    )
    entry.takes = [TakeEntry(2, "k2")]  # take 1 failed while take 2 was paid
    [c] = explain(entry, replace(req, takes=2), PAID, {})
    assert c.message == "take 1 not in storyc.lock"
    [c] = explain(entry, replace(req, takes=4), PAID, {})
    assert c.message == "take 1 not in storyc.lock; takes added: 3, 4"
    entry.takes = []
    assert explain(entry, req, PAID, {}) == []  # nothing locked: not "takes added"


def test_memoised_keys_and_lookups_are_used_as_given(world: World) -> None:
    calls: list[tuple[Any, ...]] = []
    out = world.store.put_bytes(b"memo")

    def key(req: Any, take: int, upstream: Any) -> str:
        calls.append((req.scene, take, dict(upstream)))
        return "sha256:" + f"{take:064x}"

    def lookup(k: str) -> str | None:
        calls.append(("lookup", k))
        return out if k.endswith("1") else None

    s = Sources(lock=world.lock, store=world.store, backend=PAID, key=key, lookup=lookup)
    sp = planner_for(world.comp, s).plan(["pair"]).scenes["pair"]
    assert sp.keys == {1: "sha256:" + f"{1:064x}", 2: "sha256:" + f"{2:064x}"}
    assert ("pair", 1, {}) in calls and ("pair", 2, {}) in calls
    assert ("lookup", "sha256:" + f"{1:064x}") in calls
    assert (sp.decisions[1].action, sp.decisions[2].action) == ("reuse", "render")
    assert s.lock is world.lock


def test_without_file_lengths_an_edit_of_a_local_video_has_an_unknown_price(world: World) -> None:
    s = Sources(lock=world.lock, store=world.store, backend=PAID)
    sp = planner_for(world.comp, s).plan().scenes["local"]
    assert sp.estimate.kind == "unknown" and sp.estimate.amount is None
    assert sp.duration is None


def test_each_take_is_priced_alone_on_its_backend(world: World) -> None:
    pair = world.planner().plan().scenes["pair"]
    assert (pair.name, pair.takes) == ("pair", 2)
    assert [pair.decisions[t].price.amount for t in (1, 2)] == [Decimal("0.084") * 10] * 2
    free = world.planner("preview").plan().scenes["pair"]
    assert free.decisions[1].price.kind == "free" and free.decisions[1].price.amount == 0
    # an edit decided once its upstream is known is priced by that upstream's length
    out = world.store.put_bytes(b"one")
    world.entry("one", TakeEntry(1, world.key("one"), out, duration=5.0))
    snow = world.planner().plan().scenes["snow"]
    assert snow.status == "render" and snow.decisions[1].price.amount == Decimal("0.126") * 5
    assert (snow.name, snow.takes) == ("snow", 1)


def test_a_reused_output_without_a_length_takes_the_scenes(world: World) -> None:
    out = world.store.put_bytes(b"one")
    world.entry("one", TakeEntry(1, world.key("one"), out))
    sp = world.planner().plan().scenes["one"]
    assert (sp.status, sp.duration) == ("up-to-date", 5.0)
    snow_out = world.store.put_bytes(b"snow")
    world.entry("snow", TakeEntry(1, world.key("snow", one=out), snow_out), one=out)
    sp = world.planner().plan().scenes["snow"]
    assert (sp.status, sp.duration) == ("up-to-date", 5.0)  # as long as what it edits


def test_reuse_found_in_the_journal_keeps_the_lock_and_its_own_attempt(world: World) -> None:
    k = world.key("one")
    out = world.store.put_bytes(b"out")
    a = world.attempt(k, "submitting", "submitted", task="task-j")
    world.journal.mark_completed(a, out, "J", Decimal("0.5"))
    d = world.planner().plan().scenes["one"].decisions[1]  # no lock, no record: the journal's
    assert (d.take, d.key, d.task_id, d.url, d.cost, d.indexed) == (
        1,
        k,
        "task-j",
        "J",
        Decimal("0.5"),
        False,
    )
    world.entry("one", TakeEntry(1, k, out, "T", "U", 5.0, Decimal("0.4")))
    d = world.planner().plan().scenes["one"].decisions[1]  # the lock knows it all
    assert (d.take, d.task_id, d.url, d.duration, d.cost) == (1, "T", "U", 5.0, Decimal("0.4"))
    # the lock lacks the URL and no record has one: the journal's, and the lock's cost stays
    world.entry("one", TakeEntry(1, k, out, "T", None, 5.0, Decimal("0.4")))
    d = world.planner().plan().scenes["one"].decisions[1]
    assert (d.task_id, d.url, d.duration, d.cost) == ("T", "J", 5.0, Decimal("0.4"))


def test_a_reuse_from_the_lock_alone_is_that_take(world: World) -> None:
    k = world.key("pair", 2)
    out = world.store.put_bytes(b"t2")
    world.entry("pair", TakeEntry(2, k, out, "T", "U", 10.0, Decimal(1)))
    d = world.planner().plan().scenes["pair"].decisions[2]
    assert (d.take, d.key, d.action, d.indexed) == (2, k, "reuse", False)


def test_edits_of_edits_and_scenes_with_two_upstreams(tmp_path: Path) -> None:
    w = make_world(
        tmp_path,
        'project "P" { aspect = "16:9" }\n'
        'video street "assets/street.mp4"\n'
        'scene rain { edit = street  prompt = "Rain" }\n'
        'scene again { edit = rain  prompt = "Snow too" }\n'
        'scene one { prompt = "A street"  duration = 5 }\n'
        'scene two { prompt = "A door"  duration = 5 }\n'
        'scene both { start = one.last_frame  end = two.last_frame  prompt = "x"  duration = 5 }\n',
    )
    # the edited video's length unknown: so is the edit's, and the edit of that edit
    s = Sources(lock=w.lock, store=w.store, backend=PAID)
    plan = planner_for(w.comp, s).plan()
    assert plan.scenes["rain"].duration is None and plan.scenes["again"].duration is None
    assert plan.scenes["again"].estimate.amount is None
    out = w.store.put_bytes(b"one")
    w.entry("one", TakeEntry(1, w.key("one"), out))
    sp = w.planner().plan().scenes["both"]
    assert (sp.status, sp.waiting_on, sp.upstream) == ("waiting", ("two",), {"one": out})
    w.journal.close()


def test_a_compilation_without_a_selection_plans_every_scene(tmp_path: Path) -> None:
    from dataclasses import replace

    root = _cycle_project(tmp_path / "p")
    comp = replace(compile_project(root), selected=[])  # as a compilation read back has it
    plan = make_plan(comp, lock=LockFile(), store=Store.for_project(root), backend=PAID)
    assert plan.order == ["free", "x", "y"]


def test_every_dead_url_of_an_output_stays_dead(world: World) -> None:
    # the lock file and the render record hold two URLs for one output, both dead: marking
    # the second used to forget the first, and the next plan offered to fetch it again
    k = world.key("one")
    gone = "sha256:" + "1" * 64
    rec_url = "https://cdn.test/rec.mp4"
    world.entry("one", TakeEntry(1, k, gone, "task-1", URL, 5.1, Decimal("0.42")))
    world.store.record_render(RenderRecord(k, gone, "one", 1, PAID, None, rec_url, 5.0, 1e9))
    world.store.mark_unfetchable(k, URL, "expired (HTTP 404)")
    assert world.planner().plan().scenes["one"].decisions[1].url == rec_url
    world.store.mark_unfetchable(k, rec_url, "other bytes")
    assert world.store.unfetchable(k, URL) == "expired (HTTP 404)"
    assert world.store.unfetchable(k, rec_url) == "other bytes"
    d = world.planner().plan().scenes["one"].decisions[1]
    assert (d.action, d.url) == ("render", None)
