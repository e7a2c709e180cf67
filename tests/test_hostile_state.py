"""Damaged state and a hostile environment: caches that lie, records that were edited,
folders that are files, disks that refuse writes. Each is a miss or a one-line explanation,
never a wrong link, a paid render again, code that runs, or "internal error".
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_build_support import age, build, make_project

from storyc.base.hashing import DigestCache, digest_bytes, digest_file
from storyc.compiler import compile_project
from storyc.lang.loader import ParseCache
from storyc.resolve.model import LocalFile
from storyc.state.journal import Journal
from storyc.state.store import RenderRecord, Store

STORY = """\
project "State" { aspect = "16:9" }
image market "assets/market.png"
scene a { prompt = "A walk through @market"  duration = 5 }
scene b { prompt = "The harbour at night"  duration = 5 }
"""


def _market_digest(root: Path, digests: DigestCache) -> str:
    comp = compile_project(root, digests=digests, parse_cache=ParseCache())
    assert comp.project is not None
    src = comp.project.assets["market"].source
    assert isinstance(src, LocalFile)
    return src.digest


def test_a_flipped_hex_digit_in_digests_json_is_a_miss(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", STORY)
    cache_file = root / ".storyc" / "digests.json"
    real = digest_file(root / "assets" / "market.png")[0]
    os.utime(root / "assets" / "market.png", (1e9, 1e9))  # old enough to be remembered
    first = DigestCache(cache_file)
    assert _market_digest(root, first) == real
    first.save()
    raw = json.loads(cache_file.read_text())
    (path, entry), *_ = raw["entries"].items()
    dig = entry[4]
    flipped = dig[:-1] + ("0" if dig[-1] != "0" else "1")
    raw["entries"][path][4] = flipped
    cache_file.write_text(json.dumps(raw))
    again = DigestCache(cache_file)
    # the damaged file is not trusted: the asset is hashed again and the key stays the same
    assert _market_digest(root, again) == real
    assert again.files_hashed == 1


def test_render_and_derived_records_that_were_edited_are_misses(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    out_a = store.put_bytes(b"video of a")
    out_b = store.put_bytes(b"video of b")
    key_a = digest_bytes(b"key a")
    rec = RenderRecord(key_a, out_a, "a", 1, "preview", None, None, 5.0, 1.0)
    store.record_render(rec)
    assert store.lookup_render(key_a) == rec
    path = Path(store._record_path("renders", key_a))
    raw = json.loads(path.read_text())
    raw["output"] = out_b  # link another scene's video
    path.write_text(json.dumps(raw))
    assert store.lookup_render(key_a) is None
    path.write_text('{"key": "sha256:' + "0" * 64)  # cut short
    assert store.lookup_render(key_a) is None

    frame = store.put_bytes(b"a frame")
    other = store.put_bytes(b"another frame")
    store.record_derived(out_a, "last_frame", frame)
    assert store.lookup_derived(out_a, "last_frame") == frame
    dpath = Path(store._record_path("derived", store._derived_id(out_a, "last_frame")))
    raw = json.loads(dpath.read_text())
    raw["result"] = other
    dpath.write_text(json.dumps(raw))
    assert store.lookup_derived(out_a, "last_frame") is None


def test_a_damaged_estimate_in_the_journal_is_an_unknown_cost(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as j:
        j.spent()  # creates the schema
    con = sqlite3.connect(path)
    for estimate in ("not a number", "NaN", "Infinity", "1e999999"):
        con.execute(
            "INSERT INTO attempts (key, scene, take, target, backend, state, owner, estimate,"
            " created_at, updated_at) VALUES ('k', 's', 1, 't', 'inference', 'completed',"
            " 'o', ?, 0, 0)",
            (estimate,),
        )
    con.commit()
    con.close()
    with Journal(path) as j:
        spent = j.spent()
        assert spent.attempts == 4 and spent.billed == 0
        assert all(a.estimate is None for a in j.attempts("k"))


def _storyc(
    *args: str, cwd: Path | None = None, fast: bool = False
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if not fast:
        env["STORYC_NO_FASTPATH"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "storyc", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


@pytest.mark.parametrize("blocker", [".storyc", "renders"])
def test_a_file_where_storyc_needs_a_folder_is_explained_in_one_line(
    tmp_path: Path, blocker: str
) -> None:
    root = make_project(tmp_path / "p", STORY)
    (root / blocker).write_text("not a folder")
    proc = _storyc("build", str(root))
    assert proc.returncode == 3, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(("storyc: ", "error: ")) and blocker in line, proc.stderr
    assert (root / blocker).read_text() == "not a folder"


def test_a_full_disk_while_writing_is_explained_in_one_line(tmp_path: Path) -> None:
    # RLIMIT_FSIZE = 0 makes every write fail (EFBIG), as a full disk does (ENOSPC): the
    # first is the build lock's
    root = make_project(tmp_path / "p", STORY)
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))\n"
        "from storyc.cli import main\n"
        "sys.exit(main(['build', sys.argv[1]]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "STORYC_NO_FASTPATH": "1"},
    )
    assert proc.returncode == 3, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("storyc: cannot ")
    # nothing half-written under a real name: the lock file is whole or absent
    lock = root / "storyc.lock"
    if lock.exists():
        from storyc.state.lockfile import LockFile

        LockFile.load(lock)


def test_a_read_only_project_is_explained_in_one_line(tmp_path: Path) -> None:
    # a read-only bind mount inside a user namespace (util-linux's unshare, on every
    # machine the suite runs on: a missing one fails here rather than skipping)
    root = make_project(tmp_path / "p", STORY)
    cmd = (
        f'mount -o bind,ro "{root}" "{root}" && '
        f'"{sys.executable}" -m storyc build "{root}"; echo "exit=$?" >&2'
    )
    proc = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", cmd],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "STORYC_NO_FASTPATH": "1"},
    )
    assert "exit=3" in proc.stderr, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert "read-only" in proc.stderr


class _Plant:
    """Unpickling this writes a file: what a planted cache would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (os.system, (f"touch {self.marker}",))


def test_no_cache_under_dot_storyc_can_run_code(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", STORY)
    code, _, err = build(root)
    assert code == 0, err
    marker = tmp_path / "pwned"
    state = root / ".storyc"
    planted = pickle.dumps({"format": None, "x": _Plant(marker)})
    for name in (
        "build-cache.pickle",
        "noop.marshal",
        "noop.json",
        "digests.json",
        "verified.json",
    ):
        (state / name).write_bytes(planted)
    for rec in (state / "renders").rglob("*"):
        if rec.is_file():
            rec.write_bytes(planted)
    proc = _storyc("build", str(root), fast=True)
    assert not marker.exists(), "a file under .storyc/ ran code"
    assert proc.returncode == 0, proc.stderr
    assert "internal error" not in proc.stderr


def test_no_module_loads_state_with_a_code_running_loader() -> None:
    # pickle, marshal and eval-like loaders may run or build code from bytes: nothing in
    # storyc may use them to read what is under .storyc/ (or anywhere else). An unpickler
    # is allowed only with `find_class` overridden to a list of plain data types.
    src = Path(__file__).resolve().parents[1] / "storyc"
    bad = []
    needles = ("pickle.load(", "pickle.loads(", "marshal.load", "yaml.load(", "shelve.")
    for py in src.rglob("*.py"):
        text = py.read_text("utf-8")
        for needle in (*needles, "eval(", "exec("):
            if needle in text:
                bad.append(f"{py.relative_to(src.parent)}: {needle}")
        if "Unpickler" in text and "def find_class" not in text:
            bad.append(f"{py.relative_to(src.parent)}: an unrestricted Unpickler")
    assert not bad, bad


def test_caches_of_the_wrong_shape_are_misses(tmp_path: Path) -> None:
    from storyc import __version__
    from storyc.build import cache as build_cache

    root = make_project(tmp_path / "p", STORY)
    code, _, err = build(root)
    assert code == 0, err
    state = root / ".storyc"
    fmt = (build_cache.FORMAT, __version__)
    shapes = [
        {"format": fmt, "compile": {"arg": 5}, "lock": {"sig": 1}, "keys": 3, "renders": []},
        {"format": fmt, "compile": {"arg": (), "paths": ["x"], "sig": (), "input": "x"}},
        {"format": fmt, "renders": {"sha256:" + "0" * 64: "sha256:" + "1" * 64}},
        ["not", "a", "dict"],
    ]
    for shape in shapes:
        (state / build_cache.CACHE_NAME).write_bytes(pickle.dumps(shape))
        (state / "noop.json").write_text(json.dumps({"stats": 5, "options": shape}))
        for fast in (False, True):
            proc = _storyc("build", str(root), fast=fast)
            assert proc.returncode == 0, proc.stderr
            assert "internal error" not in proc.stderr


# -- damaged state, generated -----------------------------------------------------------

DAMAGES = ("truncate", "flip", "garbage", "empty-json", "wrong-json", "delete", "folder")


def _damage(path: Path, how: str, where: int) -> None:
    data = path.read_bytes() if path.is_file() else b""
    if how == "truncate":
        path.write_bytes(data[: where % (len(data) + 1)])
    elif how == "flip" and data:
        i = where % len(data)
        path.write_bytes(data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :])
    elif how == "garbage":
        path.write_bytes(bytes((where * 7 + i) % 256 for i in range(64)))
    elif how == "empty-json":
        path.write_text("{}")
    elif how == "wrong-json":
        path.write_text('{"version": 3, "sum": 1, "entries": [1], "key": 5, "output": null}')
    elif how == "delete":
        path.unlink()
    elif how == "folder":
        path.unlink()
        path.mkdir()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("built") / "p", STORY)
    code, _, err = build(root)
    assert code == 0, err
    return root


@settings(
    max_examples=int(os.environ.get("STORYC_DAMAGE_EXAMPLES", "12")), deadline=None, database=None
)
@given(data=st.data())
def test_damaged_state_is_a_miss_never_a_crash_or_a_wrong_video(
    data: st.DataObject, built: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("damaged") / "p"
    shutil.copytree(built, root, symlinks=True)
    files = sorted(
        p for p in (root / ".storyc").rglob("*") if p.is_file() and p.name != "build.lock"
    )
    victim = data.draw(st.sampled_from(files), label="file")
    how = data.draw(st.sampled_from(DAMAGES), label="damage")
    _damage(victim, how, data.draw(st.integers(0, 10_000), label="where"))
    code, _, err = build(root)
    assert code in (0, 1, 3), err
    assert "internal error" not in err and "Traceback" not in err, err
    # every scene's video is the one its lock entry names, and that object is whole
    from storyc.state.lockfile import LockFile

    lock = LockFile.load(root / "storyc.lock")
    store = Store(root / ".storyc")
    for name, entry in lock.scenes.items():
        take = entry.take(entry.picked)
        assert take is not None and take.output is not None
        link = root / "renders" / f"{name}.mp4"
        if code == 0:
            assert store.get(take.output) is not None
            assert digest_file(link.resolve())[0] == take.output


def test_files_storyc_writes_follow_the_umask(tmp_path: Path) -> None:
    # storyc.lock is committed and shared: it used to come out 0600 (the atomic writer's
    # temp file mode), unreadable to the rest of a team and to CI users
    old = os.umask(0o022)
    try:
        root = make_project(tmp_path / "p", STORY)
        age(root)  # a file changed within the last second is not remembered in digests.json
        code, _, err = build(root)
        assert code == 0, err
        for path in (root / "storyc.lock", root / ".storyc" / "digests.json"):
            assert path.stat().st_mode & 0o777 == 0o644, path
        os.umask(0o002)
        (root / "main.story").write_text(STORY.replace("at night", "at dawn"))
        code, _, err = build(root)
        assert code == 0, err
        assert (root / "storyc.lock").stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(old)
