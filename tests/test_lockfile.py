"""storyc.lock: round trip, determinism, clean merges, clear errors."""

from __future__ import annotations

import json
import subprocess
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import GoldenCheck
from hypothesis import given, settings
from hypothesis import strategies as st

from storyc.state import lockfile as lockfile_mod
from storyc.state.lockfile import LockFile, LockFileError, SceneEntry, TakeEntry

GOLDEN = Path(__file__).resolve().parent / "golden"

D = ["sha256:" + c * 64 for c in "0123456789abcdef"]


def scene(name: str, prompt: str = "Mei walks.", n: int = 0) -> SceneEntry:
    return SceneEntry(
        name=name,
        backend="inference",
        target="inference/video-o1",
        schema="v2",
        app="klingai/video-o1",
        prompt=prompt,
        inputs={
            "image": {"path": "assets/mei.png", "digest": D[n]},
            "reference_images[0]": {
                "scene": "intro",
                "output": "frame",
                "at": 2.5,
                "upstream": D[n + 1],
            },
        },
        settings={"aspect_ratio": "16:9", "duration": 5, "watermark": False},
        takes=[
            TakeEntry(
                1, D[n + 2], D[n + 3], "task-1", "https://cdn.test/a.mp4", 5.0, Decimal("0.56")
            ),
            TakeEntry(2, D[n + 4]),
        ],
        picked=1,
    )


def test_round_trip_and_determinism(tmp_path: Path) -> None:
    lock = LockFile({"b": scene("b", 'She says "hi"\nthen\tleaves\\ "'), "a": scene("a")})
    text = lock.dumps()
    assert text.index("[scenes.a]") < text.index("[scenes.b]")
    back = LockFile.loads(text)
    assert back == LockFile({"a": scene("a"), "b": scene("b", 'She says "hi"\nthen\tleaves\\ "')})
    assert back.dumps() == text
    p = tmp_path / "storyc.lock"
    lock.save(p)
    assert p.read_text("utf-8") == text and LockFile.load(p) == back
    assert [f.name for f in tmp_path.iterdir()] == ["storyc.lock"]
    assert LockFile.load(tmp_path / "missing.lock") == LockFile()
    assert back.scenes["a"].picked_take() == back.scenes["a"].takes[0]


@settings(max_examples=150, deadline=None)
@given(prompt=st.text(st.characters(codec="utf-8")), name=st.text(min_size=1, max_size=12))
def test_any_prompt_and_name_round_trip(prompt: str, name: str) -> None:
    lock = LockFile({name: scene(name, prompt)})
    assert LockFile.loads(lock.dumps()).scenes[name].prompt == prompt


def test_conflict_marker_names_the_line() -> None:
    text = (
        LockFile({"a": scene("a")})
        .dumps()
        .replace("picked = 1", "<<<<<<< HEAD\npicked = 1\n=======\npicked = 2\n>>>>>>> theirs", 1)
    )
    with pytest.raises(LockFileError) as exc:
        LockFile.loads(text)
    assert exc.value.line == text.splitlines().index("<<<<<<< HEAD") + 1
    assert "merge conflict" in str(exc.value)
    # one marker-like line, or two out of order, is just text in a prompt
    for prompt in (
        "A title card:\n=======\nTHE END\n",
        "A diff on screen:\n<<<<<<< HEAD\nthe old line\n",
        "A diff on screen:\n<<<<<<< HEAD\nthe old line\n>>>>>>> theirs\n",
        "Credits\n>>>>>>> x\n=======\n<<<<<<< y\n",
    ):
        back = LockFile.loads(LockFile({"a": scene("a", prompt)}).dumps())
        assert back.scenes["a"].prompt == prompt


def test_bad_toml_and_bad_values() -> None:
    with pytest.raises(LockFileError, match=r"storyc.lock:3:"):
        LockFile.loads("version = 1\n\n[scenes.a\n")
    with pytest.raises(LockFileError, match="take"):
        LockFile.loads('version = 1\n[scenes.a]\n[[scenes.a.takes]]\ntake = 1\nkey = "nope"\n')
    with pytest.raises(LockFileError, match="version"):
        LockFile.loads("version = 99\n")
    with pytest.raises(LockFileError, match=r"storyc.lock:2: .*`takes`"):
        LockFile.loads("version = 1\n[scenes.a]\ntakes = 3\n")
    with pytest.raises(LockFileError, match=r"storyc.lock:2: .*`picked`"):
        LockFile.loads("version = 1\n[scenes.a]\npicked = true\n")
    for bad in ("0", "-1"):  # takes are numbered from 1
        with pytest.raises(LockFileError, match=r"storyc.lock:2: .*`picked`"):
            LockFile.loads(f"version = 1\n[scenes.a]\npicked = {bad}\n")
    assert LockFile.loads("version = 1\n[scenes.a]\npicked = 1\n").scenes["a"].picked == 1
    with pytest.raises(LockFileError, match="take"):
        LockFile.loads(f'version = 1\n[[scenes.a.takes]]\ntake = true\nkey = "sha256:{"0" * 64}"\n')


def test_branches_editing_different_scenes_merge_cleanly(tmp_path: Path) -> None:
    names = ["alley", "arrival", "market", "rain"]
    base = LockFile({n: scene(n, f"{n} prompt\nline two", i) for i, n in enumerate(names)})
    ours = LockFile({n: scene(n, f"{n} prompt\nline two", i) for i, n in enumerate(names)})
    theirs = LockFile({n: scene(n, f"{n} prompt\nline two", i) for i, n in enumerate(names)})
    ours.scenes["arrival"] = scene("arrival", "a new arrival prompt\nline two", 9)
    theirs.scenes["market"] = scene("market", "a new market prompt", 5)
    theirs.scenes["rain"].picked = 2
    for name, lock in (("base", base), ("ours", ours), ("theirs", theirs)):
        (tmp_path / name).write_text(lock.dumps(), "utf-8")
    r = subprocess.run(
        [
            "git",
            "merge-file",
            "-p",
            str(tmp_path / "ours"),
            str(tmp_path / "base"),
            str(tmp_path / "theirs"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout
    merged = LockFile.loads(r.stdout)
    assert merged.scenes["arrival"] == ours.scenes["arrival"]
    assert merged.scenes["market"] == theirs.scenes["market"]
    assert merged.scenes["rain"].picked == 2
    assert merged.dumps() == r.stdout


_SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=20),
    st.floats(allow_nan=False, allow_infinity=False),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(values=st.dictionaries(st.text(min_size=1, max_size=10), _VALUES, max_size=5))
def test_any_settings_round_trip(values: dict[str, object]) -> None:
    s = scene("a")
    s.settings = values
    assert LockFile.loads(LockFile({"a": s}).dumps()).scenes["a"].settings == values


def preview(name: str, prompt: str = "Mei walks.") -> SceneEntry:
    e = scene(name, prompt)
    e.backend, e.takes = "preview", [TakeEntry(1, D[9], D[10], cost=Decimal(0))]
    return e


def test_previews_live_beside_paid_renders() -> None:
    lock = LockFile({"a": scene("a")}, {"a": preview("a", "Mei runs.")})
    assert lock.table("preview") is lock.previews and lock.table("inference") is lock.scenes
    text = lock.dumps()
    assert text.index("[scenes.a]") < text.index("[previews.a]")
    assert LockFile.loads(text) == lock
    # a preview entry kept with the paid ones (as locks did before previews had tables of
    # their own) is read, and written, as a preview
    legacy = LockFile({"b": preview("b")}).dumps()
    assert "[previews.b]" in legacy and "[scenes.b]" not in legacy
    old = legacy.replace("[previews.b", "[scenes.b")
    assert LockFile.loads(old) == LockFile(previews={"b": preview("b")})
    # the previews table wins over a stray preview among the paid ones, written once
    both = LockFile({"b": preview("b", "stray")}, {"b": preview("b")}).dumps()
    assert both.count("[previews.b]") == 1 and "stray" not in both


def test_errors_name_the_header_of_the_table_they_are_in() -> None:
    good = LockFile({"a": scene("a")}, {"p": preview("p")}).dumps()
    for table, name, backend in (("scenes", "a", "inference"), ("previews", "p", "preview")):
        head = f"[{table}.{name}]"
        text = good.replace(
            f'{head}\nbackend = "{backend}"', f"{head}  # edited by hand\nbackend = 3", 1
        )
        with pytest.raises(LockFileError) as exc:
            LockFile.loads(text)
        line = text.splitlines().index(f"{head}  # edited by hand") + 1
        assert str(exc.value) == f"storyc.lock:{line}: scene {name!r}: `backend` must be a string"
    # an error that is about no line says so without a number
    with pytest.raises(LockFileError) as exc:
        LockFile.loads("version = 99\n")
    assert str(exc.value) == "storyc.lock: written by another storyc (lock version 99)"
    assert exc.value.line is None


def test_picked_take_is_the_picked_one_or_none() -> None:
    e = scene("a")
    e.takes = [TakeEntry(2, D[2]), TakeEntry(3, D[3])]
    e.picked = 3
    assert e.picked_take() == e.takes[1] and e.take(3) == e.takes[1]
    e.picked = 7  # a take not in the lock (a partial entry's): no other stands in for it
    assert e.take(7) is None and e.picked_take() is None
    e.takes = []
    assert e.picked_take() is None


def test_an_unreadable_lock_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    p = tmp_path / "storyc.lock"
    p.write_bytes(b"version = 1\n\xff\xfe\n")
    with pytest.raises(LockFileError, match=r"^storyc.lock: cannot read: .*utf-8"):
        LockFile.load(p)
    LockFile({"a": scene("a", "Mei says «hello» 雨")}).save(p)
    assert p.read_bytes().decode("utf-8") == LockFile.load(p).dumps()


def test_the_written_form_is_pinned(golden: GoldenCheck) -> None:
    """The lock is committed: a change to how it is written shows in every project's diff,
    so the exact text is a golden file (tabs kept in multi-line prompts and escaped in
    one-line strings, quotes escaped only where TOML needs it, None settings left out)."""
    e = scene("a", 'She says "hi"\n\tthen leaves \\ "')
    e.settings = {"aspect_ratio": "16:9", "note": "tab\there", "duration": 5, "ratio": 0.5}
    e.settings |= {"watermark": False, "none": None}
    e.takes = e.takes[:1]
    lock = LockFile({"a": e}, {"b": preview("b", 'one line, control \x01 and \x7f, "quoted"')})
    text = lock.dumps()
    # values no story makes, written all the same: floats TOML readers disagree on, a
    # type of its own, quotes in a row inside a multi-line prompt
    odd = scene("c", 'He said ""hush"" and "go"\nthen ""')
    odd.settings = {"big": float("inf"), "small": float("-inf"), "odd": float("nan")}
    odd.settings |= {"where": Path("x/y"), "list": [1, None, "two"], "empty": {}}
    odd.settings |= {"price": Decimal("0.5"), "new\nline": "cr\r"}
    odd.takes[0].url = "https://cdn.test/a.mp4?x=\r\n"
    golden(GOLDEN / "lockfile" / "pinned.lock", text + "\n" + LockFile({"c": odd}).dumps())
    e.settings.pop("none")
    assert LockFile.loads(text) == lock
    assert LockFile.loads(LockFile({"c": odd}).dumps()).scenes["c"].prompt == odd.prompt


def test_fields_of_the_wrong_type_are_dropped_not_kept() -> None:
    text = LockFile({"a": scene("a")}).dumps().replace('task_id = "task-1"', "task_id = 5")
    assert LockFile.loads(text).scenes["a"].takes[0].task_id is None


def test_a_conflict_inside_a_multi_line_prompt_is_still_a_conflict() -> None:
    """TOML would read these markers as a prompt's text; the lock refuses them instead."""
    base = LockFile({"a": scene("a", "one\ntwo\n")}).dumps()
    for middle in ("=======", "||||||| base\nzero\n======="):
        text = base.replace("one\n", f"<<<<<<< HEAD\none\n{middle}\nuno\n>>>>>>> theirs\n", 1)
        with pytest.raises(LockFileError) as exc:
            LockFile.loads(text)
        assert exc.value.line == text.splitlines().index("<<<<<<< HEAD") + 1
        assert exc.value.detail == (
            "unresolved merge conflict marker; keep each side's [scenes.…] table "
            "(or delete the conflicting scene's table: it is rebuilt or re-fetched)"
        )
    # a half conflict (the rest edited away) breaks the TOML: named all the same
    half = base.replace("[scenes.a]", "<<<<<<< HEAD\n[scenes.a]", 1)
    with pytest.raises(LockFileError) as exc:
        LockFile.loads(half)
    assert exc.value.line == 4 and exc.value.detail == "merge conflict marker; resolve the conflict"
    # marker-like lines that do not make a whole conflict, in order, are a prompt's text
    for text in (
        "<<<<<<< a\n||||||| b\n>>>>>>> c\n",  # no =======
        "<<<<<<< a\nx\n=======\ny\n",  # no >>>>>>>
        "=======\n=======\n>>>>>>> c\n",  # no <<<<<<<
    ):
        back = LockFile.loads(LockFile({"a": scene("a", text)}).dumps())
        assert back.scenes["a"].prompt == text
    # a second <<<<<<< inside a conflict does not move the line named
    text = base.replace("one\n", "<<<<<<< a\n<<<<<<< b\n=======\n>>>>>>> c\n", 1)
    with pytest.raises(LockFileError) as exc:
        LockFile.loads(text)
    assert exc.value.line == text.splitlines().index("<<<<<<< a") + 1


BAD = f'key = "sha256:{"0" * 64}"'


@pytest.mark.parametrize(
    "body,message",
    [
        ("scenes = 3", "`scenes` must be a table"),
        ("[scenes]\na = 3", "scene 'a': must be a table"),
        ("[scenes.a]\ninputs = 3", "scene 'a': `inputs` must be a table of tables"),
        ("[scenes.a]\ninputs = {x = 1}", "scene 'a': `inputs` must be a table of tables"),
        ("[scenes.a]\nsettings = 3", "scene 'a': `settings` must be a table"),
        ("[scenes.a]\npicked = 0", "scene 'a': `picked` must be a take number"),
        (
            "[scenes.a]\ntakes = 3",
            "scene 'a': `takes` must be an array of tables ([[scenes.<name>.takes]])",
        ),
        (
            "[[scenes.a.takes]]\ntake = 1",
            "scene 'a': each take needs `take` (a number) and `key` (a digest)",
        ),
        (
            f'[[scenes.a.takes]]\ntake = 2\n{BAD}\ncost = "a lot"',
            "scene 'a': take 2: `cost` is not a number",
        ),
        (
            f'[[scenes.a.takes]]\ntake = 3\n{BAD}\noutput = "clip.mp4"',
            "scene 'a': take 3: `output` is not a digest",
        ),
        # a NaN would poison every sum it joins; TOML spells it, and Decimal reads it
        (
            f'[[scenes.a.takes]]\ntake = 4\n{BAD}\ncost = "NaN"',
            "scene 'a': take 4: `cost` is not an amount of money",
        ),
        (
            f'[[scenes.a.takes]]\ntake = 4\n{BAD}\ncost = "-Infinity"',
            "scene 'a': take 4: `cost` is not an amount of money",
        ),
        (
            f'[[scenes.a.takes]]\ntake = 4\n{BAD}\ncost = "-0.42"',
            "scene 'a': take 4: `cost` is not an amount of money",
        ),
        (
            f"[[scenes.a.takes]]\ntake = 5\n{BAD}\nduration = nan",
            "scene 'a': take 5: `duration` is not a number of seconds",
        ),
        (
            f"[[scenes.a.takes]]\ntake = 5\n{BAD}\nduration = -inf",
            "scene 'a': take 5: `duration` is not a number of seconds",
        ),
        (
            f"[[scenes.a.takes]]\ntake = 5\n{BAD}\nduration = -5",
            "scene 'a': take 5: `duration` is not a number of seconds",
        ),
        (
            f"[[scenes.a.takes]]\ntake = 5\n{BAD}\nduration = true",
            "scene 'a': take 5: `duration` is not a number of seconds",
        ),
    ],
)
def test_each_refusal_says_what_is_wrong(body: str, message: str) -> None:
    with pytest.raises(LockFileError) as exc:
        LockFile.loads(f"version = 1\n{body}\n")
    assert exc.value.detail == message


def test_a_duration_that_is_not_a_number_is_written_as_unknown() -> None:
    # what a provider or a header reader may hand over; the lock stays readable
    for bad in (float("nan"), float("inf")):
        take = TakeEntry(1, f"sha256:{'1' * 64}", duration=bad)
        entry = SceneEntry("a", "inference", "t", "v1", "app", "p", takes=[take])
        back = LockFile.loads(LockFile({"a": entry}).dumps())
        assert back.scenes["a"].takes[0].duration is None
        # and in the plain data the build cache keeps (it is read back with the same checks)
        data = LockFile({"a": entry}).to_data()
        assert LockFile.from_data(data).scenes["a"].takes[0].duration is None


def test_what_a_lock_may_leave_out() -> None:
    # no version line: this version; a scene with no fields: empty strings, take 1 picked
    lock = LockFile.loads("[scenes.a]\n")
    a = lock.scenes["a"]
    assert (a.backend, a.target, a.schema, a.app, a.prompt) == ("", "", "", "", "")
    assert a.picked == 1 and a.takes == [] and a.inputs == {} and a.settings == {}
    # an entry under [previews.…] is a preview whatever backend it names
    lock = LockFile.loads('[previews.p]\nbackend = "inference"\n')
    assert set(lock.previews) == {"p"} and not lock.scenes
    # TOML that breaks at the very end has no line to name
    with pytest.raises(LockFileError) as exc:
        LockFile.loads("version =")
    assert exc.value.line is None and exc.value.detail.startswith("not valid TOML: ")


# -- the fast reader of what storyc wrote ------------------------------------------------------


def _by_toml(text: str) -> LockFile:
    return LockFile.from_data(tomllib.loads(text))


@settings(max_examples=200, deadline=None)
@given(
    prompt=st.text(st.characters(codec="utf-8")),
    name=st.text(min_size=1, max_size=12),
    values=st.dictionaries(st.text(min_size=1, max_size=10), _VALUES, max_size=4),
    duration=st.none() | st.floats(0, 1e6, allow_nan=False),
    cost=st.none() | st.decimals(0, 100, places=4),
)
def test_the_fast_reader_reads_what_storyc_wrote_as_toml_does(
    prompt: str, name: str, values: dict[str, object], duration: float | None, cost: Decimal | None
) -> None:
    s = scene(name, prompt, n=2)
    s.settings = values
    s.takes[0].duration, s.takes[0].cost = duration, cost
    text = LockFile({name: s}, {"p": preview("p", prompt)}).dumps()
    fast = lockfile_mod._canonical(text)
    assert fast is not None  # storyc's own layout: read without the TOML reader
    want = _by_toml(text)
    assert (fast.scenes, fast.previews) == (want.scenes, want.previews)


def test_the_fast_reader_steps_aside_for_any_other_layout() -> None:
    lock = LockFile({"a": scene("a", "one two", n=2), "b c": scene("b c", "three\nfour")})
    text = lock.dumps()
    assert lockfile_mod._canonical(text) is not None
    edits = [
        text.replace("picked = 1", "picked = 1  # chosen by hand", 1),  # a comment
        text.replace("picked = 1", "picked=1", 1),  # other spacing
        text.replace('backend = "inference"', "backend = 'inference'", 1),  # literal string
        text.replace("[scenes.a]", '[scenes."a"]', 1),  # a key quoted that need not be
        text.replace(lockfile_mod.HEADER, "", 1),  # no header
        text + "\n[scenes.z]\n",  # a table storyc would have written whole
        text.replace('"one two"', '"""\none two"""', 1),  # the other string form
        text.replace('"""\nthree', '"""three', 1),  # no line break after the opening
    ]
    for edited in edits:
        assert edited != text
        assert lockfile_mod._canonical(edited) is None, edited
        want = _by_toml(edited)
        got = LockFile.loads(edited)  # the TOML reader, with its line numbers for errors
        assert (got.scenes, got.previews) == (want.scenes, want.previews)
    # what the TOML reader refuses is refused with the same message, through either path
    for broken in (text.replace('key = "', 'key = "x', 1), text.replace("\n[", "\n[[", 1)):
        assert lockfile_mod._canonical(broken) is None
        with pytest.raises(LockFileError):
            LockFile.loads(broken)


@pytest.mark.parametrize(
    "value", ['"\n', 'x\\"y\n"', 'tab\tq"\n\\', "a\\\nb", 'q""\n"', '\n\\"""\\']
)
def test_the_fast_reader_reads_multi_line_strings_with_quotes_and_escapes(value: str) -> None:
    # found by the property test: a bare quote, and an escaped quote before the end
    s = scene("a", "", n=2)
    s.settings = {"k": value}
    text = LockFile({"a": s}).dumps()
    fast = lockfile_mod._canonical(text)
    assert fast is not None and fast.scenes == _by_toml(text).scenes


def test_the_plain_data_the_build_cache_keeps_reads_back_whole() -> None:
    # BuildCache keeps `to_data()` as JSON and reads it with `from_data`: every field of
    # every take, in both tables, must come back as it was
    def entry(name: str, backend: str, n: int) -> SceneEntry:
        takes = [
            TakeEntry(
                t,
                f"sha256:{str(t) * 64}",
                f"sha256:{'a' * 63}{t}",
                f"task-{t}",
                f"https://cdn.test/{name}/{t}.mp4",
                5.0 + t,
                Decimal(f"0.4{t}"),
            )  # fmt: skip
            for t in range(1, n + 1)
        ]
        return SceneEntry(
            name, backend, "inference/video-o1", "v2", "klingai/video-o1", f"prompt of {name}",
            {"image": {"$file": "a.png", "digest": f"sha256:{'c' * 64}"}},
            {"duration": 5, "aspect_ratio": "16:9"}, takes, n,
        )  # fmt: skip

    lock = LockFile({"a": entry("a", "inference", 2)}, {"b": entry("b", "preview", 1)})
    lock.scenes["a"].takes[1].cost = None  # an unknown cost stays unknown
    data = json.loads(json.dumps(lock.to_data()))
    assert LockFile.from_data(data) == lock
    assert data["scenes"]["a"]["takes"][0]["cost"] == "0.41"


def test_a_hand_ordered_lock_with_storyc_s_header_is_read() -> None:
    # the header and version line of a file storyc wrote, then tables in another order:
    # not the fast reader's form, read as TOML all the same
    key = f"sha256:{'1' * 64}"
    text = (
        f"{lockfile_mod.HEADER}version = 1\n\n"
        f'[[scenes.a.takes]]\ntake = 1\nkey = "{key}"\nduration = 0.0\n\n'
        '[scenes.a]\nbackend = "inference"\n'
    )
    lock = LockFile.loads(text)
    (take,) = lock.scenes["a"].takes
    assert (take.key, take.duration) == (key, 0.0)  # a length of 0 s is a length
    assert lock.scenes["a"].backend == "inference"


def test_plain_data_that_is_not_a_table_is_refused() -> None:
    for raw in ([], "version = 1", None):
        with pytest.raises(LockFileError) as exc:
            LockFile.from_data(raw)
        assert exc.value.detail == "not a table"


def test_a_kept_lock_writes_each_entry_as_a_fresh_one_would() -> None:
    """A long-lived process keeps its lock and writes unchanged entries from the text it
    made of them last time: what it writes is always what a lock read anew writes —
    after an entry is replaced, moved between tables, removed or added."""
    import dataclasses

    from storyc.base import warm

    warm.enable()
    try:
        _kept_lock_writes_as_fresh(dataclasses)
    finally:
        warm.disable()
    # in a one-shot process an entry changed in place is written as it is now
    lock = LockFile(scenes={"a": scene("a")})
    lock.dumps()
    lock.scenes["a"].picked = 2
    assert "picked = 2" in lock.dumps()


def _kept_lock_writes_as_fresh(dataclasses: Any) -> None:
    lock = LockFile(scenes={"a": scene("a"), "b": scene("b", n=1)}, previews={"c": preview("c")})

    def fresh() -> str:
        return LockFile.from_data(lock.to_data()).dumps()

    assert lock.dumps() == fresh()
    lock.scenes["a"] = dataclasses.replace(lock.scenes["a"], picked=2)
    assert "picked = 2" in lock.dumps()
    assert lock.dumps() == fresh()
    lock.previews["b"] = dataclasses.replace(lock.scenes.pop("b"), backend="preview")
    assert lock.dumps() == fresh()
    del lock.previews["c"]
    lock.scenes["d"] = scene("d", "Mei runs.", n=2)
    assert lock.dumps() == fresh()
    assert "[scenes.d]" in lock.dumps() and "[previews.c]" not in lock.dumps()
