"""A render made by another provider never stands in for a render of the real one.

A project rehearsed against the loopback provider (or a staging server) and then
pointed at inference.sh must render for real: its rehearsal clips are not what the real
model makes. Every paid key therefore names the provider's origin when it is not the
default one (`storyc.plan.address.key_provider`); keys of the default provider are the
keys they always were (the pinned digests in test_keys.py)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from test_build_support import build, make_project, rendered

from storyc.cli import main
from storyc.plan import keys
from storyc.plan.address import (
    DEFAULT_BASE_URL,
    key_provider,
    origin,
    resolve_base_url,
)
from storyc.provider import loopback
from storyc.state.lockfile import LockFile, LockFileError
from storyc.targets.request import Request

STORY = 'project "Rehearsal" { quality = "std"  aspect = "16:9" }\nscene a { prompt = "Shot a"  duration = 5 }\n'
PAID = ("--backend", "inference", "--yes", "--jobs", "1")


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _use(monkeypatch: pytest.MonkeyPatch, server: loopback.LoopbackServer) -> None:
    for k, v in server.env.items():
        monkeypatch.setenv(k, v)


def test_a_rehearsal_is_rendered_again_by_another_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "p", STORY)
    with loopback.serve(fast_outputs=True) as rehearsal:
        _use(monkeypatch, rehearsal)
        code, events, err = build(root, *PAID)
        assert code == 0, err
        assert len(rehearsal.submissions) == 1
        entry = LockFile.load(LockFile.path_for(root)).scenes["a"]
        assert entry.provider == rehearsal.url  # the lock file says where the clip is from
        # the same provider again: up to date, nothing sent
        code, events, err = build(root, *PAID)
        assert code == 0, err
        assert rendered(events) == [] and len(rehearsal.submissions) == 1

    # pointed at the default provider: the plan prices a real render, and says why
    monkeypatch.delenv("INFERENCE_BASE_URL")
    code, out, err = _cli("plan", str(root), "--backend", "inference", "--json")
    plan = json.loads(out)
    assert plan["provider"] is None
    scene = plan["scenes"]["a"]
    assert scene["status"] == "render", scene
    assert [r["kind"] for r in scene["reasons"]] == ["provider"]
    assert scene["estimate"] is not None
    code, out, err = _cli("why", "a", str(root), "--backend", "inference")
    assert f"provider: {rehearsal.url} → the default provider" in out, out

    # another provider (the real one's stand-in here): it renders there, and is paid once
    with loopback.serve(fast_outputs=True) as real:
        _use(monkeypatch, real)
        code, events, err = build(root, *PAID)
        assert code == 0, err
        assert len(real.submissions) == 1
        assert rendered(events) == ["a"]
        entry = LockFile.load(LockFile.path_for(root)).scenes["a"]
        assert entry.provider == real.url


def test_the_environment_wins_over_the_projects_base_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As documented (provider.md): flag, then INFERENCE_BASE_URL, then `base_url`. The
    build used to hand the setting to the client as if it were the flag."""
    with loopback.serve(fast_outputs=True) as named, loopback.serve(fast_outputs=True) as env:
        story = STORY.replace('aspect = "16:9"', f'aspect = "16:9"  base_url = "{named.url}"')
        root = make_project(tmp_path / "p", story)
        _use(monkeypatch, env)
        code, events, err = build(root, *PAID)
        assert code == 0, err
        assert (len(env.submissions), len(named.submissions)) == (1, 0)
        code, out, err = _cli("plan", str(root), "--backend", "inference", "--json")
        assert json.loads(out)["scenes"]["a"]["status"] == "up-to-date", out
        monkeypatch.delenv("INFERENCE_BASE_URL")  # now the setting names the provider
        code, out, err = _cli("plan", str(root), "--backend", "inference", "--json")
        plan = json.loads(out)
        assert plan["provider"] == named.url
        assert plan["scenes"]["a"]["status"] == "render", out


def test_a_flag_names_the_provider_of_the_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with loopback.serve(fast_outputs=True) as server:
        monkeypatch.setenv("INFERENCE_API_KEY", server.api_key)
        monkeypatch.delenv("INFERENCE_BASE_URL", raising=False)
        root = make_project(tmp_path / "p", STORY)
        code, events, err = build(root, *PAID, "--base-url", server.url + "/")
        assert code == 0, err
        assert len(server.submissions) == 1
        assert LockFile.load(LockFile.path_for(root)).scenes["a"].provider == server.url
        code, events, err = build(root, *PAID, "--base-url", server.url)
        assert code == 0, err
        assert rendered(events) == [] and len(server.submissions) == 1


def _request() -> Request:
    return Request(
        scene="a",
        target="inference/video-o1",
        schema="v2",
        app="klingai/video-o1",
        body={"app": "klingai/video-o1", "input": {"prompt": "x"}},
        takes=1,
        upstream=(),
        quality="std",
        duration=5,
        has_video_input=False,
        mode="text-to-video",
        prompt_as_written="x",
    )


def test_only_another_paid_provider_changes_a_key() -> None:
    req = _request()
    plain = keys.key_material(req, backend="inference", take=1, upstream={})
    assert "provider" not in plain
    assert keys.key_material(req, backend="inference", take=1, upstream={}, provider=None) == plain
    other = keys.key_material(
        req, backend="inference", take=1, upstream={}, provider="http://127.0.0.1:8765"
    )
    assert other == {**plain, "provider": "http://127.0.0.1:8765"}
    # a preview talks to no provider: the same key wherever the paid one would go
    assert keys.request_key(
        req, backend="preview", take=1, upstream={}, provider="http://127.0.0.1:8765"
    ) == keys.request_key(req, backend="preview", take=1, upstream={})


@pytest.mark.parametrize(
    ("written", "named"),
    [
        (DEFAULT_BASE_URL, None),
        ("https://api.inference.sh/", None),
        ("HTTPS://API.Inference.sh:443", None),
        ("http://api.inference.sh", "http://api.inference.sh"),  # not the same origin
        ("http://127.0.0.1:8765/", "http://127.0.0.1:8765"),
        ("http://LOCALHOST:80", "http://localhost"),
        ("https://gateway.example/inference/", "https://gateway.example/inference"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_the_provider_a_key_names(written: str, named: str | None) -> None:
    assert key_provider("inference", written, None, env={}) == named
    assert key_provider("preview", written, None, env={}) is None


def test_the_provider_follows_flag_then_environment_then_setting() -> None:
    env = {"INFERENCE_BASE_URL": "http://127.0.0.1:2"}
    assert key_provider("inference", "http://127.0.0.1:1", "http://127.0.0.1:3", env) == (
        "http://127.0.0.1:1"
    )
    assert key_provider("inference", None, "http://127.0.0.1:3", env) == "http://127.0.0.1:2"
    assert key_provider("inference", None, "http://127.0.0.1:3", {}) == "http://127.0.0.1:3"
    assert key_provider("inference", None, None, {}) is None
    assert resolve_base_url(None, "http://127.0.0.1:3", {}) == "http://127.0.0.1:3"
    assert origin("not a url") == "not a url"


def test_the_lock_file_keeps_the_provider() -> None:
    text = (
        "version = 1\n"
        "[scenes.a]\n"
        'backend = "inference"\n'
        'target = "inference-v2"\n'
        'schema = "v2"\n'
        'app = "klingai/video-o1"\n'
        'provider = "http://127.0.0.1:8765"\n'
        'prompt = "x"\n'
        "[[scenes.a.takes]]\n"
        "take = 1\n"
        f'key = "sha256:{"0" * 64}"\n'
    )
    lock = LockFile.loads(text)
    assert lock.scenes["a"].provider == "http://127.0.0.1:8765"
    again = LockFile.loads(lock.dumps())
    assert again.scenes["a"] == lock.scenes["a"]
    assert LockFile.from_data(lock.to_data()).scenes["a"] == lock.scenes["a"]
    with pytest.raises(LockFileError, match="provider"):
        LockFile.loads(text.replace('provider = "http://127.0.0.1:8765"', "provider = 3"))
