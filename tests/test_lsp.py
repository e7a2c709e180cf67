"""`storyc lsp`, end to end: a real `storyc lsp` process driven over stdio by pytest-lsp.

One project (an entry file that includes a cast file, a real PNG asset) is opened as an
editor would: diagnostics for every file of the project (also files not open) with the
codes and spans of `storyc check`, and again after each edit; hover, definition,
references, rename across the include, completion, outline, formatting and quick fixes.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from storyc.compiler import compile_project
from storyc.media import ffmpeg as media

MAIN = """\
project "Editor" {
  aspect = "16:9"
}

include "cast.story"

image market "assets/market.png"

scene arrival {
  prompt   = "@ava walks through @market at dusk"
  duration = 5
}

scene lanterns {
  start    = arrival.last_frame
  prompt   = "@ava lifts a lantern"
  duration = 5
}

cut final = [arrival, lanterns]
"""
CAST = """\
element ava {
  frontal    = "assets/ava.png"
  descripton = "a woman in a yellow coat"
}
"""
FIXED_CAST = CAST.replace("descripton", "description")
# Diagnostics are awaited by looking at what the client has received, every POLL seconds,
# POLLS times at most (a minute: a bound for a stuck server, not a timing assertion).
# Not with wait_for(wait_for_notification()): the waiter registers only when its task
# first runs, so a publish read in between is missed, and cancelling it at the bound
# breaks pygls's client for every later test.
POLL, POLLS = 0.02, 3000


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lsp")
    (root / "assets").mkdir()
    media.make_test_image(root / "assets" / "market.png", 640, 480)
    media.make_test_image(root / "assets" / "ava.png", 480, 640)
    (root / "main.story").write_text(MAIN, "utf-8")
    (root / "cast.story").write_text(CAST, "utf-8")
    return root


def _publish_diagnostics(client: LanguageClient, params: lsp.PublishDiagnosticsParams) -> None:
    client.diagnostics[params.uri] = params.diagnostics
    client.__dict__.setdefault("_published", {})[params.uri] = params  # with its version


def _client() -> LanguageClient:
    """pytest-lsp's test client, also keeping the version each file's diagnostics were made from."""
    client = LanguageClient(converter_factory=default_converter)
    register_lsp_features(
        client,
        {**DEFAULT_CLIENT_FEATURES, lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS: _publish_diagnostics},
    )
    return client


@pytest_lsp.fixture(
    scope="module",
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "storyc", "lsp"], client_factory=_client
    ),
)
async def client(lsp_client: LanguageClient, project: Path):
    await lsp_client.initialize_session(
        lsp.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=project.as_uri(),
            workspace_folders=[lsp.WorkspaceFolder(uri=project.as_uri(), name="lsp")],
        )
    )
    yield
    await lsp_client.shutdown_session()


def _uri(project: Path, name: str) -> str:
    return (project / name).as_uri()


def _pos(text: str, needle: str, delta: int = 0) -> lsp.Position:
    at = text.index(needle) + delta
    line = text.count("\n", 0, at)
    return lsp.Position(line, at - (text.rfind("\n", 0, at) + 1))


def _doc(project: Path, name: str) -> lsp.TextDocumentIdentifier:
    return lsp.TextDocumentIdentifier(uri=_uri(project, name))


def _show(client: LanguageClient, uri: str, text: str) -> int:
    """Put `text` in the editor's buffer of `uri`, as an editor does: opened on first use, then
    changed whole. So each test sets the buffers it needs, whichever tests ran before it."""
    versions: dict[str, int] = client.__dict__.setdefault("_story_versions", {})
    if uri in versions:
        versions[uri] += 1
        client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                lsp.VersionedTextDocumentIdentifier(version=versions[uri], uri=uri),
                [lsp.TextDocumentContentChangeWholeDocument(text)],
            )
        )
    else:
        versions[uri] = 1
        client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(
                lsp.TextDocumentItem(uri=uri, language_id="story", version=1, text=text)
            )
        )
    return versions[uri]


async def _check(client: LanguageClient, project: Path, text: str) -> list[lsp.Diagnostic]:
    """Show `text` as main.story's buffer and wait for the check of exactly that version
    (diagnostics name the version they were made from): its diagnostics. One check publishes
    every file's diagnostics at once, and a request answered after them is a barrier, so the
    other files' diagnostics of that check have arrived too."""
    uri = _uri(project, "main.story")
    version = _show(client, uri, text)
    published: dict[str, lsp.PublishDiagnosticsParams] = client.__dict__.setdefault(
        "_published", {}
    )
    for _ in range(POLLS):
        got = published.get(uri)
        if got is not None and got.version == version:
            await client.text_document_document_symbol_async(
                lsp.DocumentSymbolParams(text_document=lsp.TextDocumentIdentifier(uri))
            )
            return list(got.diagnostics)
        await asyncio.sleep(POLL)
    raise AssertionError(f"no diagnostics for version {version} of {uri}")


def _save_cast(client: LanguageClient, project: Path, text: str = FIXED_CAST) -> None:
    """Save cast.story (the file is not open) and tell the server, as an editor does. Each test
    saves the cast it needs, whichever tests ran before it."""
    (project / "cast.story").write_text(text, "utf-8")
    client.diagnostics.pop(_uri(project, "cast.story"), None)
    client.workspace_did_change_watched_files(
        lsp.DidChangeWatchedFilesParams(
            changes=[
                lsp.FileEvent(uri=_uri(project, "cast.story"), type=lsp.FileChangeType.Changed)
            ]
        )
    )


async def _diagnostics(client: LanguageClient, uri: str) -> list[lsp.Diagnostic]:
    for _ in range(POLLS):
        if uri in client.diagnostics:
            return list(client.diagnostics[uri])
        await asyncio.sleep(POLL)
    raise AssertionError(f"no diagnostics for {uri}")


@pytest.mark.asyncio(loop_scope="module")
async def test_diagnostics_for_every_file_match_check(client: LanguageClient, project: Path):
    _save_cast(client, project, CAST)
    await _check(client, project, MAIN)
    cast = client.diagnostics[_uri(project, "cast.story")]  # not open, still checked
    expected = [d for d in compile_project(project).diagnostics if d.severity.value != "note"]
    assert [d.code for d in cast] == [d.code for d in expected if d.span.file == "cast.story"]
    (e102,) = [d for d in cast if d.code == "E102"]
    ref = next(d for d in expected if d.code == "E102")
    assert e102.range.start == lsp.Position(ref.span.line - 1, ref.span.col - 1)
    assert e102.range.end == lsp.Position(ref.span.end_line - 1, ref.span.end_col - 1)
    assert e102.severity == lsp.DiagnosticSeverity.Error and "description" in e102.message

    # An edit in the open buffer (not saved) is checked at once.
    broken = MAIN.replace("= arrival.last_frame", "= arival.last_frame")
    main = await _check(client, project, broken)
    assert any(
        d.severity == lsp.DiagnosticSeverity.Error
        and d.range.start == _pos(broken, "arival")
        and "did you mean `arrival`?" in d.message
        for d in main
    ), main
    assert await _check(client, project, MAIN) == []


@pytest.mark.asyncio(loop_scope="module")
async def test_quick_fix_from_did_you_mean(client: LanguageClient, project: Path):
    _save_cast(client, project, CAST)
    await _check(client, project, MAIN)  # a project is checked once a file of it is open
    diags = client.diagnostics[_uri(project, "cast.story")]
    e102 = next(d for d in diags if d.code == "E102")
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=_doc(project, "cast.story"),
            range=e102.range,
            context=lsp.CodeActionContext(diagnostics=[e102]),
        )
    )
    assert actions and actions[0].edit is not None
    (edit,) = actions[0].edit.changes[_uri(project, "cast.story")]
    assert edit.new_text == "description" and edit.range == e102.range

    # The fix saved to disk (the file is not open): the editor reports the change.
    _save_cast(client, project)
    assert await _diagnostics(client, _uri(project, "cast.story")) == []


@pytest.mark.asyncio(loop_scope="module")
async def test_hover_scene_asset_and_mention(client: LanguageClient, project: Path):
    main = _doc(project, "main.story")
    _save_cast(client, project)
    h = await client.text_document_hover_async(
        lsp.HoverParams(text_document=main, position=_pos(MAIN, "arrival {", 2))
    )
    text = h.contents.value
    assert "**scene** `arrival`" in text and "`inference/video-o1` (v2)" in text
    assert "5 s" in text and "estimated cost: $" in text and "build (preview): will render" in text
    assert "prompt as sent" in text and "@image_" in text  # placeholders, as sent

    h = await client.text_document_hover_async(
        lsp.HoverParams(text_document=main, position=_pos(MAIN, "market ", 2))
    )
    assert "**image** `market`" in h.contents.value and "640×480" in h.contents.value

    h = await client.text_document_hover_async(
        lsp.HoverParams(text_document=main, position=_pos(MAIN, "@market", 3))
    )
    assert "is sent as `@image_" in h.contents.value


@pytest.mark.asyncio(loop_scope="module")
async def test_definition_and_references(client: LanguageClient, project: Path):
    main = _doc(project, "main.story")
    (loc,) = await client.text_document_definition_async(
        lsp.DefinitionParams(text_document=main, position=_pos(MAIN, "arrival.last_frame", 3))
    )
    assert loc.uri == main.uri and loc.range.start == _pos(MAIN, "arrival {")
    (loc,) = await client.text_document_definition_async(
        lsp.DefinitionParams(text_document=main, position=_pos(MAIN, "@ava walks", 2))
    )
    assert loc.uri == _uri(project, "cast.story") and loc.range.start == _pos(CAST, "ava")
    (loc,) = await client.text_document_definition_async(
        lsp.DefinitionParams(text_document=main, position=_pos(MAIN, "cast.story", 1))
    )
    assert loc.uri == _uri(project, "cast.story")

    refs = await client.text_document_references_async(
        lsp.ReferenceParams(
            text_document=main,
            position=_pos(MAIN, "arrival {"),
            context=lsp.ReferenceContext(include_declaration=True),
        )
    )
    (inc,) = await client.text_document_references_async(
        lsp.ReferenceParams(
            text_document=main,
            position=_pos(MAIN, "cast.story", 2),
            context=lsp.ReferenceContext(include_declaration=True),
        )
    )
    assert inc.uri == main.uri and inc.range.start == _pos(MAIN, "cast.story")
    lines = sorted(r.range.start.line for r in refs)
    assert lines == sorted(
        [_pos(MAIN, "arrival {").line, _pos(MAIN, "arrival.last").line, _pos(MAIN, "[arrival").line]
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_rename_across_the_include(client: LanguageClient, project: Path):
    main = _doc(project, "main.story")
    rng = await client.text_document_prepare_rename_async(
        lsp.PrepareRenameParams(text_document=main, position=_pos(MAIN, "@ava walks", 2))
    )
    assert rng is not None
    edit = await client.text_document_rename_async(
        lsp.RenameParams(text_document=main, position=_pos(MAIN, "@ava walks", 2), new_name="mei")
    )
    changes = edit.changes
    assert {e.new_text for es in changes.values() for e in es} == {"mei"}
    assert len(changes[main.uri]) == 2 and len(changes[_uri(project, "cast.story")]) == 1
    with pytest.raises(Exception, match="not a name"):
        await client.text_document_rename_async(
            lsp.RenameParams(
                text_document=main, position=_pos(MAIN, "@ava walks", 2), new_name="2bad"
            )
        )


@pytest.mark.asyncio(loop_scope="module")
async def test_completion(client: LanguageClient, project: Path):
    uri = _uri(project, "scratch.story")
    text = (
        'include "cast.story"\nimage market "assets/market.png"\n'
        'scene a {\n  prompt = "@"\n  duration = 5\n  \n  quality = \n}\n'
        "scene b {\n  start = a.\n  refs = [\n}\n"
    )
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(uri=uri, language_id="story", version=1, text=text)
        )
    )
    doc = lsp.TextDocumentIdentifier(uri)

    async def labels(pos: lsp.Position) -> set[str]:
        result = await client.text_document_completion_async(
            lsp.CompletionParams(text_document=doc, position=pos)
        )
        return {i.label for i in result.items}

    assert {"ava", "market", "a", "b"} <= await labels(_pos(text, '@"', 1))
    assert {"std", "pro"} <= await labels(_pos(text, "quality = ", 10))
    settings = await labels(_pos(text, "  \n  quality", 2))
    assert {"prompt", "duration", "refs", "elements"} <= settings and "frontal" not in settings
    assert {"last_frame", "first_frame", "frame"} == await labels(_pos(text, "a.\n", 2))
    assert {"market", "a", "b"} <= await labels(_pos(text, "[\n", 1))
    assert {"scene", "image", "cut"} <= await labels(lsp.Position(text.count("\n"), 0))


@pytest.mark.asyncio(loop_scope="module")
async def test_outline_and_formatting(client: LanguageClient, project: Path):
    main = _doc(project, "main.story")
    _show(client, main.uri, MAIN)
    symbols = await client.text_document_document_symbol_async(
        lsp.DocumentSymbolParams(text_document=main)
    )
    names = [s.name for s in symbols]
    assert names == ["Editor", "include cast.story", "market", "arrival", "lanterns", "final"]
    arrival = symbols[3]
    assert arrival.range.start.line == _pos(MAIN, "scene arrival").line
    assert arrival.range.end.line == _pos(MAIN, "}\n\nscene lanterns").line
    assert [c.name for c in arrival.children] == ["prompt", "duration"]

    messy = MAIN.replace("  aspect = ", "aspect=")
    _show(client, main.uri, messy)
    edits = await client.text_document_formatting_async(
        lsp.DocumentFormattingParams(
            text_document=main, options=lsp.FormattingOptions(tab_size=2, insert_spaces=True)
        )
    )
    assert len(edits) == 1 and edits[0].new_text == MAIN


@pytest.mark.asyncio(loop_scope="module")
async def test_an_untitled_buffer_is_formatted_and_otherwise_left_alone(client: LanguageClient):
    uri = "untitled:Untitled-1"
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(uri=uri, language_id="story", version=1, text="scene a{}\n")
        )
    )
    doc = lsp.TextDocumentIdentifier(uri)
    hover = await client.text_document_hover_async(
        lsp.HoverParams(text_document=doc, position=lsp.Position(0, 6))
    )
    assert hover is None
    edits = await client.text_document_formatting_async(
        lsp.DocumentFormattingParams(
            text_document=doc, options=lsp.FormattingOptions(tab_size=2, insert_spaces=True)
        )
    )
    assert [e.new_text for e in edits] == ["scene a {}\n"]


@pytest.mark.asyncio(loop_scope="module")
async def test_hover_reads_the_build_state(client: LanguageClient, project: Path):
    import subprocess

    _save_cast(client, project)
    r = subprocess.run(
        [sys.executable, "-m", "storyc", "build", str(project), "--yes"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    client.workspace_did_change_watched_files(
        lsp.DidChangeWatchedFilesParams(
            changes=[
                lsp.FileEvent(uri=_uri(project, "storyc.lock"), type=lsp.FileChangeType.Changed)
            ]
        )
    )
    main = _doc(project, "main.story")
    h = await client.text_document_hover_async(
        lsp.HoverParams(text_document=main, position=_pos(MAIN, "lanterns {", 2))
    )
    assert "build (preview): up to date" in h.contents.value

    # The build's outputs removed again (the project is shared with the other tests of this
    # file): the hover says so at once.
    (project / "storyc.lock").unlink()
    shutil.rmtree(project / ".storyc")
    client.workspace_did_change_watched_files(
        lsp.DidChangeWatchedFilesParams(
            changes=[
                lsp.FileEvent(uri=_uri(project, "storyc.lock"), type=lsp.FileChangeType.Deleted)
            ]
        )
    )
    h = await client.text_document_hover_async(
        lsp.HoverParams(text_document=main, position=_pos(MAIN, "lanterns {", 2))
    )
    assert "build (preview): will render" in h.contents.value
