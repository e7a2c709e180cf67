"""`storyc board` in a real browser (Debian's headless Chromium, driven by Playwright), and
review mode against a real git history.

The page must open from file:// with no failed request and no console error, show every
card and every thumbnail decoded, play the assembled cut, show hostile prompts as text,
work from the keyboard and on a phone-sized screen. A screenshot is saved for inspection
(into $STORYC_TEST_ARTIFACTS when set, else the test's temporary folder).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
from pathlib import Path

import pytest
from test_build_support import build, make_project

from storyc.cli import main

CHROMIUM = "/usr/bin/chromium"
# As in the machine notes: without the background-networking flags Chromium tries to
# reach the network at every start, and this machine has none.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STORY = """\
project "Board <Test>" { quality = "std"  aspect = "16:9" }
image market "assets/market.png"
scene a { prompt = "@market at dusk, lanterns swaying"  duration = 5  takes = 2 }
scene b { start = a.last_frame  prompt = "A push in: <script>window.pwned = 1</script> \\"quoted\\" & <b>bold</b>"  duration = 5 }
scene c { prompt = "An unrelated wide shot of the harbour, café au lait, 夜市"  duration = 5 }
scene broken { start = "assets/missing.png"  prompt = "never"  duration = 5 }
cut final = [a, b]
"""
HOSTILE = 'A push in: <script>window.pwned = 1</script> "quoted" & <b>bold</b>'


def _board(root: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["board", str(root), *args])
    return code, out.getvalue(), err.getvalue()


def _artifact(tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("STORYC_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


@contextlib.contextmanager
def chromium():  # type: ignore[no-untyped-def]
    """Started after the builds: Playwright's sync API runs an event loop on this thread,
    and `storyc build` in this process needs its own."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is missing: apt-get install -y chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


def test_board_in_a_real_browser(tmp_path: Path) -> None:
    broken = 'scene broken { start = "assets/missing.png"  prompt = "never"  duration = 5 }\n'
    root = make_project(tmp_path / "p", STORY.replace(broken, ""))
    assert build(root)[0] == 0
    (root / "main.story").write_text(STORY)  # then a scene with an error is added
    assert (root / "renders" / "final.mp4").exists()  # `storyc build` assembled the cut
    code, out, err = _board(root)
    assert code == 1 and "renders/board.html: 4 scenes" in out, (out, err)
    page_file = root / "renders" / "board.html"
    html = page_file.read_text("utf-8")
    assert "http://" not in html.replace("http://'", "") and "https://" not in html

    with chromium() as browser:
        _look(browser, page_file, tmp_path)


def _look(browser, page_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    # A video with preload="metadata" is fetched until its header is read, then the rest
    # of the request is cancelled (net::ERR_ABORTED): that is no failure; any other is.
    page.on(
        "requestfailed",
        lambda r: None if r.failure == "net::ERR_ABORTED" else errors.append(f"failed: {r.url}"),
    )
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_file.as_uri())
    page.wait_for_load_state("load")
    page.wait_for_function(
        "document.querySelector('video.cut') && document.querySelector('video.cut').readyState >= 1",
        timeout=20_000,
    )
    assert errors == []
    assert all(u.startswith("file://") for u in requests), requests

    # every scene has a card, in cut order then the rest
    ids = page.eval_on_selector_all(".card", "els => els.map(e => e.id)")
    assert ids == ["scene-a", "scene-b", "scene-c", "scene-broken"]
    # every thumbnail is there and decoded
    imgs = page.eval_on_selector_all(
        "img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])"
    )
    assert len(imgs) >= 3 * 3 + 2 + 1  # frames of a, b, c; a's two takes; inputs
    assert all(done and width > 0 for _, done, width in imgs), imgs
    # the assembled cut plays: the browser read its duration (a and b, 5 s each)
    duration = page.eval_on_selector("video.cut", "v => v.duration")
    assert duration == pytest.approx(10.0, abs=0.1)
    # a prompt with markup is text, and nothing of it ran
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("document.scripts.length") == 1
    assert HOSTILE in page.inner_text("#scene-b .prompt")
    assert page.eval_on_selector_all("#scene-b .prompt b", "els => els.length") == 0
    # states: up to date, and blocked with the diagnostic
    assert page.inner_text("#scene-a .st") == "up to date"
    assert page.inner_text("#scene-broken .st") == "blocked"
    assert "E130" in page.inner_text("#scene-broken .diag")
    # takes side by side, the picked one marked; mentions highlighted
    assert page.eval_on_selector_all("#scene-a .take", "els => els.length") == 2
    assert page.eval_on_selector_all("#scene-a .take.picked", "els => els.length") == 1
    assert page.inner_text("#scene-a .prompt mark") == "@market"
    assert "@image_1" in page.inner_text("#scene-a .sent")
    # b starts from a's last frame, linked to a's card
    assert page.get_attribute("#scene-b .inputs a", "href") == "#scene-a"
    # keyboard: j goes to the next card, k back, / to the filter
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.id") == "scene-a"
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.id") == "scene-b"
    page.keyboard.press("k")
    assert page.evaluate("document.activeElement.id") == "scene-a"
    page.keyboard.press("/")
    page.keyboard.type("harbour")
    visible = page.eval_on_selector_all(".card", "els => els.filter(e => !e.hidden).length")
    assert visible == 1
    page.fill("#filter", "")
    shot = _artifact(tmp_path, "board.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.close()

    # a phone: one column, nothing wider than the screen
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.goto(page_file.as_uri())
    phone.wait_for_load_state("load")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(_artifact(tmp_path, "board-phone.png")))
    phone.close()


def test_board_is_cached_by_content(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", STORY.replace("cut final = [a, b]\n", ""))
    build(root)
    code, out, _ = _board(root)
    assert "new thumbnails" in out
    first = (root / "renders" / "board.html").read_bytes()
    stamp = (root / "renders" / "board.html").stat().st_mtime_ns
    code, out, _ = _board(root)
    assert "new thumbnails" not in out  # a warm store: no ffmpeg at all
    assert (root / "renders" / "board.html").read_bytes() == first
    assert (root / "renders" / "board.html").stat().st_mtime_ns == stamp  # not rewritten
    files = sorted((root / "renders" / "board_files").iterdir())
    assert files and all(f.suffix == ".jpg" for f in files)
    # a thumbnail beside the page is the store's object (a hard link), not a copy
    assert all(f.stat().st_nlink >= 2 for f in files)


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def test_review_mode_since_a_revision(tmp_path: Path) -> None:
    story = STORY.replace(
        'scene broken { start = "assets/missing.png"  prompt = "never"  duration = 5 }\n', ""
    )
    root = make_project(tmp_path / "p", story)
    (root / ".gitignore").write_text(".storyc/\nrenders/\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    assert build(root)[0] == 0
    text = (root / "main.story").read_text()
    (root / "main.story").write_text(
        text.replace("An unrelated wide shot of the harbour", "A wide shot of the empty harbour")
    )
    assert build(root)[0] == 0
    code, out, err = _board(root, "--since", "HEAD")
    assert code == 0 and "1 changed since HEAD" in out, (out, err)
    html = (root / "renders" / "board.html").read_text("utf-8")
    card = html[html.index('id="scene-c"') :]
    card = card[: card.index("</article>")]
    assert "<del>An unrelated</del>" in card and "<ins>A</ins>" in card
    assert re.search(r"<ins>\s*empty\s*</ins>", card)
    # old and new thumbnails side by side: the old render is still in the store
    before, now = card.split("<h4>now</h4>")
    assert len(re.findall(r"<img ", before)) == 3 and len(re.findall(r"<img ", now)) >= 3
    assert 'class="card changed" id="scene-c"' in html
    for other in ("scene-a", "scene-b"):
        assert f'class="card" id="{other}"' in html  # unchanged scenes are not marked

    with chromium() as browser:
        page = browser.new_page()
        page.goto((root / "renders" / "board.html").as_uri())
        page.check("#changed")
        shown = page.eval_on_selector_all(
            ".card", "els => els.filter(e => !e.hidden).map(e => e.id)"
        )
        assert shown == ["scene-c"]
        page.screenshot(path=str(_artifact(tmp_path, "board-review.png")), full_page=True)
        page.close()

    code, _, err = _board(root, "--since", "no-such-branch")
    assert code == 2 and "unknown revision" in err
