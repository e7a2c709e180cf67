"""The compiled state on disk (`storyc.compiler.state`): the next command compiles only what
changed, an unchanged project is answered whole, and the state is plain data — damaged,
planted or stale records are misses, never errors, never code."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import pytest
from test_incremental import snapshot

from storyc.base.hashing import DigestCache
from storyc.cli import main
from storyc.compiler import compile_project
from storyc.compiler.state import CompiledState, StoredCompilation, compile_with_state
from storyc.media import ffmpeg as media

STORY = """\
project "State" { aspect = "16:9"  duration = 5 }
let city = "Lisbon"
image square "img/square.png"
include "more.story"
scene dawn { prompt = "@square at dawn, {{ city }}" }
scene noon { prompt = "The square at noon"  start = dawn.last_frame }
scene dusk { prompt = "Dusk over {{ city }}"  refs = [square] }
"""
MORE = """\
scene night { prompt = "Night falls"  duration = 10 }
scene late { prompt = "@nobody walks" }
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "img").mkdir()
    media.make_test_image(tmp_path / "img" / "square.png", 640, 480, seed=4)
    (tmp_path / "main.story").write_text(STORY, "utf-8")
    (tmp_path / "more.story").write_text(MORE, "utf-8")
    return tmp_path


def compiled(root: Path) -> tuple[object, CompiledState]:
    state = CompiledState(root, root, None, DigestCache())
    return compile_with_state(root), state


def test_unchanged_is_answered_whole(root: Path) -> None:
    first = compile_with_state(root)
    assert not isinstance(first, StoredCompilation)
    again = compile_with_state(root)
    assert isinstance(again, StoredCompilation)
    assert snapshot(again) == snapshot(compile_project(root)) == snapshot(first)
    assert again.rendered() == first.rendered() and again.counts() == first.counts()


def test_an_edit_recompiles_one_scene(root: Path) -> None:
    compile_with_state(root)
    text = (root / "more.story").read_text("utf-8").replace("Night falls", "Night falls fast")
    (root / "more.story").write_text(text, "utf-8")
    state = CompiledState(root, root, None, DigestCache())
    assert state.answer() is None
    engine = state.engine()
    comp = engine.update()
    assert engine.stats.resolved == ["night"] and engine.stats.shell_runs == 1
    assert engine.stats.regions_parsed == 1
    assert snapshot(comp) == snapshot(compile_project(root))
    state.save(engine, comp)
    assert snapshot(compile_with_state(root)) == snapshot(compile_project(root))


def test_what_was_read_is_watched(root: Path) -> None:
    compile_with_state(root)
    media.make_test_image(root / "img" / "square.png", 640, 480, seed=9)  # new bytes
    comp = compile_with_state(root)
    assert not isinstance(comp, StoredCompilation)
    assert snapshot(comp) == snapshot(compile_project(root))
    # an include that was missing appears
    (root / "main.story").write_text(STORY + 'include "later.story"\n', "utf-8")
    assert compile_with_state(root).has_errors  # E012: not found
    (root / "later.story").write_text('scene later { prompt = "Later"  duration = 5 }\n')
    comp = compile_with_state(root)
    assert "later" in comp.requests
    assert snapshot(comp) == snapshot(compile_project(root))


@pytest.mark.parametrize("victim", ["index.json", "result.json", "rendered.txt", "f-", "q-"])
def test_damaged_records_are_misses(root: Path, victim: str) -> None:
    compile_with_state(root)
    (root / "more.story").write_text(MORE.replace("Night falls", "Night"), "utf-8")
    compile_with_state(root)  # the state now holds records of both files
    folder = next((root / ".storyc" / "compiled").iterdir())
    for path in folder.iterdir():
        if path.name.startswith(victim) or path.name == victim:
            path.write_bytes(b'{"not": "what storyc wrote"' if path.suffix == ".json" else b"x")
    for _ in range(2):
        comp = compile_with_state(root)
        assert snapshot(comp) == snapshot(compile_project(root))


def test_a_planted_request_cannot_name_a_file_outside(root: Path, tmp_path: Path) -> None:
    compile_with_state(root)
    (root / "main.story").write_text(STORY.replace("at dawn", "at first light"), "utf-8")
    folder = next((root / ".storyc" / "compiled").iterdir())
    for path in folder.glob("q-*.json"):
        doc = json.loads(path.read_text("utf-8"))
        for req in doc.values():
            req[1][4]["input"]["image"] = {
                "$file": "../../etc/passwd",
                "digest": "sha256:" + "0" * 64,
            }
        path.write_text(json.dumps(doc), "utf-8")
        _tie(folder, path)  # planted with care: the digests that tie it say it belongs
    comp = compile_with_state(root)
    for req in comp.requests.values():
        assert "passwd" not in json.dumps(req.body)
    assert snapshot(comp) == snapshot(compile_project(root))


def _tie(folder: Path, q: Path) -> None:
    """Make the f- record and result.json name `q`'s bytes as their q- record."""
    digest = hashlib.blake2b(q.read_bytes(), digest_size=16).hexdigest()
    f = folder / ("f-" + q.name[2:])
    doc = json.loads(f.read_text("utf-8"))
    doc["q"] = digest
    f.write_text(json.dumps(doc), "utf-8")
    result = json.loads((folder / "result.json").read_text("utf-8"))
    result["records"] = [[n, digest if n == q.name else d] for n, d in result["records"]]
    (folder / "result.json").write_text(json.dumps(result), "utf-8")


def test_a_request_record_of_another_save_is_a_miss(root: Path, tmp_path: Path) -> None:
    # Records are named by story file, not by content: two commands saving at once (watch
    # and a build) can leave one's q- record beside the other's f- record and result. A
    # scene then got the request of another version of its story: the story says
    # "Night falls", the request said "Night" (a paid build would have sent it).
    compile_with_state(root)
    folder = next((root / ".storyc" / "compiled").iterdir())
    first = tmp_path / "first"
    shutil.copytree(folder, first)
    (root / "more.story").write_text(MORE.replace("Night falls", "Night"), "utf-8")
    compile_with_state(root)
    second = tmp_path / "second"
    shutil.copytree(folder, second)
    (root / "more.story").write_text(MORE, "utf-8")
    truth = snapshot(compile_project(root))
    for keep in ("result.json", "f-"):  # the whole answer; the engine's records alone
        shutil.rmtree(folder)
        shutil.copytree(first, folder)
        for q in second.glob("q-*.json"):
            shutil.copy(q, folder / q.name)
        if keep == "f-":
            (folder / "result.json").unlink()
        comp = compile_with_state(root)
        assert comp.requests["night"].prompt == "Night falls", keep
        assert snapshot(comp) == truth
        assert snapshot(compile_with_state(root)) == truth  # and the state it left


def test_check_twice_prints_the_same(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for _ in range(2):
        code = main(["check", str(root)])
        outputs.append((code, capsys.readouterr()))
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == 1 and "E123" in outputs[0][1].err  # @nobody
    for fmt in ("json",):
        docs = []
        for _ in range(2):
            main(["check", str(root), "--format", fmt])
            docs.append(capsys.readouterr().out)
        assert docs[0] == docs[1]


def test_planted_pickles_run_nothing(root: Path, tmp_path: Path) -> None:
    """Issue 8: a planted `.storyc/build-cache.pickle` ran code on `storyc build`. No
    cache file is unpickled any more (nor unmarshalled)."""
    proof = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[object, ...]:
            return (shutil.copyfile, (str(root / "main.story"), str(proof)))

    storyc_dir = root / ".storyc"
    storyc_dir.mkdir(exist_ok=True)
    blob = pickle.dumps({"format": None, "x": Payload()})
    for name in ("build-cache.pickle", "build-cache.json", "noop.marshal", "noop.json"):
        (storyc_dir / name).write_bytes(blob)
    (root / "more.story").write_text(MORE.replace("@nobody walks", "Someone walks"), "utf-8")
    assert main(["build", str(root), "--json"]) == 0
    assert main(["check", str(root)]) == 0
    assert not proof.exists()


@pytest.mark.parametrize(
    "marker",
    [
        '{"$file":"../secret.png","digest":"sha256:' + "0" * 64 + '"}',
        '{"$file":"/etc/passwd","digest":"sha256:' + "0" * 64 + '"}',
        '{"digest":"sha256:' + "0" * 64 + '","$file":"../x.png"}',  # another key order
        '{"\\u0024file":"../x.png","digest":"sha256:' + "0" * 64 + '"}',  # an escaped key
        '{"$file":"a\\\\..\\\\..\\\\x.png","digest":"sha256:' + "0" * 64 + '"}',
        '{"$scene":7,"output":"video"}',
    ],
)
def test_request_records_are_checked_before_they_are_read(marker: str) -> None:
    from storyc.compiler.state import Damaged, _requests_in

    good = '{"$file":"img/a.png","digest":"sha256:' + "0" * 64 + '"}'
    fields = (
        '["s","inference/video-o1","v2","klingai/video-o1",{"app":"klingai/video-o1",'
        '"input":{"prompt":"x","image":MARKER}},1,[],"std",5,false,"image-to-video",null,[],"x"]'
    )
    record = '{"s":["sha256:' + "1" * 64 + '",' + fields + "]}"
    assert _requests_in(record.replace("MARKER", good).encode())["s"].input["image"]["$file"]
    with pytest.raises(Damaged):
        _requests_in(record.replace("MARKER", marker).encode())


def test_a_long_lived_engine_writes_its_records_again_after_another_command_saved(
    root: Path,
) -> None:
    # watch and the daemon keep an engine and save after each refresh, writing only the
    # records of files whose scenes changed. A command in another terminal saving meanwhile
    # replaces those records with its own; the engine's next save must write them again
    # (it checks each q- record is still the one it wrote), or every later command would
    # find the result's digests disagreeing and compile again.
    state = CompiledState(root, root, None, DigestCache())
    engine = state.engine()
    state.save(engine, engine.update())
    (root / "more.story").write_text(MORE.replace("Night falls", "Night"), "utf-8")
    assert compile_with_state(root).requests["night"].prompt == "Night"  # the other command
    (root / "more.story").write_text(MORE, "utf-8")
    comp = engine.update()  # the same text as its last update: nothing compiled again
    state.save(engine, comp)
    answered = CompiledState(root, root, None, DigestCache()).answer()
    assert isinstance(answered, StoredCompilation)
    assert answered.requests["night"].prompt == "Night falls"
    assert answered._fresh is None  # read from the records, not compiled again
    assert snapshot(answered) == snapshot(compile_project(root))
