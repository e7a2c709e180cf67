"""Review of the provider identity change (5aa1f30): what it left or broke where features
meet."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from storyc.media import ffmpeg as media
from storyc.plan.memo import RACY_NS, PlanMemo

N = 4


def _story(prompts: list[str]) -> str:
    out = ['project "p" {\n  aspect = "16:9"\n}\nimage pic = "assets/pic.png"\n']
    for i, p in enumerate(prompts):
        out.append(f'scene s{i} {{\n  prompt = "{p} @pic"\n  duration = 3\n}}\n')
    return "".join(out)


def test_a_daemon_build_rebases_the_kept_plan_of_storyc_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon keeps `storyc plan`'s plan under ("plan", root, backend, provider); the
    build rebased ("plan", root, backend), which no longer exists, so after every build
    the next `storyc plan` in the daemon planned every scene again."""
    from storyc import cli
    from storyc.base import warm

    root = tmp_path
    (root / "assets").mkdir()
    media.make_test_image(root / "assets" / "pic.png", 640, 360, seed=3)
    prompts = [f"shot {i}" for i in range(N)]
    (root / "main.story").write_text(_story(prompts), "utf-8")
    warm.enable()
    try:
        assert cli.run(["build", str(root), "--json"]) == 0
        prompts[0] = "shot 0 again"
        (root / "main.story").write_text(_story(prompts), "utf-8")
        time.sleep(RACY_NS / 1e9 + 0.2)  # a plan kept now is not racy
        assert cli.run(["plan", str(root), "--json"]) == 0
        memo = warm.peek(("plan", str(root), "preview", None))
        assert isinstance(memo, PlanMemo) and memo.state is not None
        assert cli.run(["build", str(root), "--json"]) == 0
        capsys.readouterr()
        assert cli.run(["plan", str(root), "--json"]) == 0
        assert memo.replanned < N  # only what the build touched, not everything
    finally:
        warm.disable()


FILM = """\
project "Film" { aspect = "16:9" }
scene a { prompt = "A walk through the market at dusk"  duration = 5 }
scene c { prompt = "A wide shot of the harbour"  duration = 5 }
cut short = [c, a]
"""


def test_a_cut_never_plays_another_providers_clip_as_this_providers_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rehearse a film against one provider, then build one scene for real (another
    provider): the cut assembled after it took scene a's rehearsal clip from the lock file
    as a's paid render, with no warning, though the plan says a still needs rendering."""
    from test_build_support import build, make_project

    from storyc.plan import address
    from storyc.provider import loopback

    root = make_project(tmp_path / "p", FILM)
    with loopback.serve(fast_outputs=True) as rehearsal:
        for k, v in rehearsal.env.items():
            monkeypatch.setenv(k, v)
        code, events, err = build(root, "--backend", "inference", "--yes")
        assert code == 0, err
    with loopback.serve(fast_outputs=True) as real:
        # this loopback stands in for inference.sh: its origin is the default provider's
        monkeypatch.setattr(address, "_DEFAULT_ORIGIN", real.url)
        for k, v in real.env.items():
            monkeypatch.setenv(k, v)
        code, events, err = build(root, "--backend", "inference", "--yes", "--scene", "c")
        assert code == 0, err
        assert len(real.submissions) == 1
    cut = next(e for e in events if e["event"] == "cut" and e["cut"] == "short")
    assert cut["stand_ins"] == {"a": "slate"}, cut  # not the rehearsal's clip
    assert "warning[W381]: cut short: scene a is shown as a slate" in err


SECRET = "hunter2"


@pytest.mark.parametrize(
    "written",
    [
        f"https://user:{SECRET}@gateway.example:badport",  # a port that does not parse
        f"https://user:{SECRET}@gateway.example:99999/v1?token={SECRET}",  # out of range
        f"user:{SECRET}@gateway.example",  # no scheme
        f"https://gateway.example:x/v1?api_key={SECRET}#{SECRET}",
    ],
)
def test_no_credential_of_a_base_url_reaches_the_provider_a_key_names(written: str) -> None:
    """`origin` kept a URL it could not parse "as written": userinfo password, query
    token and all, which `storyc plan --json`, `why`, the board and the lock file show."""
    from storyc.plan.address import key_provider, origin

    named = key_provider("inference", written, None, env={})
    assert named is not None and SECRET not in named
    assert SECRET not in origin(written)


def test_plan_json_never_shows_a_password_of_the_base_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib
    import io
    import json

    from test_build_support import make_project

    from storyc.cli import main

    root = make_project(tmp_path / "p", FILM)
    monkeypatch.setenv("INFERENCE_BASE_URL", f"https://me:{SECRET}@gateway.example:port/v1")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["plan", str(root), "--backend", "inference", "--json"])
    assert code == 0, err.getvalue()
    assert json.loads(out.getvalue())["provider"] is not None
    assert SECRET not in out.getvalue() + err.getvalue()


@pytest.mark.parametrize(
    "written",
    ["https://api.inference.sh.", "https://API.inference.sh.:443/", "https://api.inference.sh./"],
)
def test_the_default_provider_written_as_a_fully_qualified_name_is_the_default(
    written: str,
) -> None:
    """`api.inference.sh.` is the same host as `api.inference.sh` (DNS's root dot): its
    renders were keyed as another provider's, so the lock's real renders were paid again."""
    from storyc.plan.address import key_provider

    assert key_provider("inference", written, None, env={}) is None
    assert key_provider("inference", "http://LOCALHOST.:8765", None, env={}) == (
        "http://localhost:8765"
    )


def test_a_rehearsal_never_replaces_the_lock_files_record_of_a_real_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before 5aa1f30 a rehearsal after real renders found them up to date and left the
    lock alone; now it renders every scene again on the loopback and used to write its own
    entries over the real ones (task ids, URLs: what a teammate fetches the paid clips
    with). Committed, the teammate's build then paid for every scene again."""
    import contextlib
    import io
    import json
    import shutil

    from test_build_support import build, make_project

    from storyc.cli import main
    from storyc.plan import address
    from storyc.provider import loopback
    from storyc.state.lockfile import LockFile

    root = make_project(tmp_path / "p", FILM.replace("cut short = [c, a]\n", ""))
    with loopback.serve(fast_outputs=True) as real:
        # the loopback stands in for inference.sh: its origin is the default provider's
        monkeypatch.setattr(address, "_DEFAULT_ORIGIN", real.url)
        for k, v in real.env.items():
            monkeypatch.setenv(k, v)
        code, events, err = build(root, "--backend", "inference", "--yes")
        assert code == 0, err
        paid = LockFile.load(LockFile.path_for(root)).scenes
        assert paid["a"].provider is None and paid["a"].takes[0].url

        with loopback.serve(fast_outputs=True) as rehearsal:
            for k, v in rehearsal.env.items():
                monkeypatch.setenv(k, v)
            code, events, err = build(root, "--backend", "inference", "--yes")
            assert code == 0, err
            assert len(rehearsal.submissions) == 2  # rendered again there (free)
        assert LockFile.load(LockFile.path_for(root)).scenes == paid  # the record is kept

        # a teammate's clone (storyc.lock committed, no .storyc): fetched, not paid again
        shutil.rmtree(root / ".storyc")
        shutil.rmtree(root / "renders")
        for k, v in real.env.items():
            monkeypatch.setenv(k, v)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            assert main(["plan", str(root), "--backend", "inference", "--json"]) == 0
        plan = json.loads(out.getvalue())
        assert {n: s["status"] for n, s in plan["scenes"].items()} == {
            "a": "up-to-date",
            "c": "up-to-date",
        }
        assert plan["scenes"]["a"]["fetch"] == [1]


@pytest.mark.parametrize(
    ("provider", "local"),
    [
        (None, False),
        ("http://127.0.0.1:8765", True),
        ("http://127.1.2.3:80", True),
        ("http://[::1]:9000", True),
        ("http://localhost:8765", True),
        ("https://gateway.example/inference", False),  # a gateway keeps its own record
        ("https://api.inference.sh", False),
    ],
)
def test_which_providers_are_rehearsals(provider: str | None, local: bool) -> None:
    from storyc.plan.address import is_local

    assert is_local(provider) is local


def test_plan_and_why_answer_for_the_provider_a_build_flag_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`storyc build --base-url URL` keys its renders for URL's provider, but `plan` and
    `why` had no such flag: after a flagged rehearsal they could only say every scene
    renders (for another provider), while the same build again sends nothing."""
    import contextlib
    import io
    import json

    from test_build_support import build, make_project

    from storyc.cli import main
    from storyc.provider import loopback

    root = make_project(tmp_path / "p", FILM)
    with loopback.serve(fast_outputs=True) as server:
        monkeypatch.setenv("INFERENCE_API_KEY", server.api_key)
        monkeypatch.delenv("INFERENCE_BASE_URL", raising=False)
        code, events, err = build(root, "--backend", "inference", "--yes", "--base-url", server.url)
        assert code == 0, err
    out, err_ = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err_):
        code = main(
            ["plan", str(root), "--backend", "inference", "--base-url", server.url, "--json"]
        )
    assert code == 0, err_.getvalue()
    plan = json.loads(out.getvalue())
    assert plan["provider"] == server.url
    assert {s["status"] for s in plan["scenes"].values()} == {"up-to-date"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["why", "a", str(root), "--backend", "inference", "--base-url", server.url])
    assert code == 0 and "a: up to date" in out.getvalue(), out.getvalue()
