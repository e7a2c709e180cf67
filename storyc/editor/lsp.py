"""The language server: `storyc lsp`, the Language Server Protocol over stdio (pygls 2).

Stage: editor. In: LSP messages from an editor (open, change, hover, ...). Out: LSP
messages (diagnostics for every file of the project, answers to requests). I/O: reads
the project's story files (open documents are taken from the editor, unsaved), asset
headers, and the build state (storyc.lock, the store) for hovers; writes nothing.

Each story file belongs to a project: the nearest folder, from the file's own upwards,
whose entry file (`main.story`, or the one file with a `project` block) includes it; a
file no project includes is a project of its own. A project is compiled whole, with the
editor's buffers standing for the files on disk (`compile_project(overlays=...)`), so
the diagnostics are exactly `storyc check`'s (notes aside, as there). Edits arriving
while a compile runs are folded into one next compile.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from storyc import __version__
from storyc.base.diagnostics import Diagnostic, Diagnostics, Severity, Span
from storyc.base.hashing import DigestCache
from storyc.compiler import Compilation, compile_project
from storyc.editor import complete
from storyc.editor import index as index_mod
from storyc.editor.fmt import format_text
from storyc.editor.index import Index, Symbol, Use
from storyc.editor.positions import Lines, path_to_uri, uri_to_path
from storyc.lang import ast
from storyc.lang.loader import ENTRY_NAME, Loaded, ParseCache, find_entry, load
from storyc.plan import pricing
from storyc.resolve.model import LocalFile, Project, RemoteFile

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
DID_YOU_MEAN = re.compile(r"did you mean `([^`]+)`\?")
SEVERITY = {
    Severity.ERROR: lsp.DiagnosticSeverity.Error,
    Severity.WARNING: lsp.DiagnosticSeverity.Warning,
}
SYMBOL_KINDS = {
    "image": lsp.SymbolKind.File,
    "video": lsp.SymbolKind.File,
    "element": lsp.SymbolKind.Class,
    "style": lsp.SymbolKind.Interface,
    "scene": lsp.SymbolKind.Event,
    "cut": lsp.SymbolKind.Array,
    "let": lsp.SymbolKind.Variable,
}
COMPLETION_KINDS = {
    "image": lsp.CompletionItemKind.File,
    "video": lsp.CompletionItemKind.File,
    "element": lsp.CompletionItemKind.Class,
    "style": lsp.CompletionItemKind.Interface,
    "scene": lsp.CompletionItemKind.Event,
    "cut": lsp.CompletionItemKind.Module,
    "let": lsp.CompletionItemKind.Variable,
    "keyword": lsp.CompletionItemKind.Keyword,
    "setting": lsp.CompletionItemKind.Property,
    "frame": lsp.CompletionItemKind.Field,
    "value": lsp.CompletionItemKind.EnumMember,
    "constant": lsp.CompletionItemKind.Constant,
}


# -- projects -------------------------------------------------------------------------------


@dataclass
class ProjectState:
    entry: Path
    root: Path
    cache: ParseCache = field(default_factory=ParseCache)
    digests: DigestCache = field(default_factory=DigestCache)
    comp: Compilation | None = None
    loaded: Loaded | None = None
    index: Index = field(default_factory=Index)
    memo: index_mod.Memo = field(default_factory=dict)
    published: set[str] = field(default_factory=set)  # uris with diagnostics out
    stale: bool = True
    task: asyncio.Task[None] | None = None
    # scene → its build plan, made for a hover and kept until the next check; the lock
    # file and store it was made from
    plans: dict[str, Any] = field(default_factory=dict)
    build_state: Any = None

    def label(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.root)).as_posix()

    def path(self, label: str) -> Path:
        return Path(os.path.normpath(self.root / label))


class StoryServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("storyc", __version__)
        self.projects: dict[Path, ProjectState] = {}
        self.owner: dict[Path, Path] = {}  # story file → the entry of its project

    # -- which project ---------------------------------------------------------------------
    def _entry_for(self, path: Path) -> Path:
        for folder in [path.parent, *path.parent.parents]:
            if (folder / ENTRY_NAME).is_file() or any(folder.glob("*.story")):
                entry = find_entry(folder, Diagnostics())
                if entry is not None:
                    return entry.resolve()
            if (folder / ".git").exists():
                break
        return path

    def project_for(self, path: Path) -> ProjectState:
        path = Path(os.path.normpath(path))
        entry = self.owner.get(path)
        if entry is None:
            entry = self._entry_for(path)
            state = self._state(entry)
            if state.comp is None or state.stale:
                self.refresh(state)
            if state.label(path) not in state.index.texts:
                entry = path  # no project includes it: a project of its own
                self.owner[path] = entry
                self.refresh(self._state(entry))
            self.owner[path] = entry
        return self._state(entry)

    def _state(self, entry: Path) -> ProjectState:
        state = self.projects.get(entry)
        if state is None:
            root = entry.parent
            digests = DigestCache(root / ".storyc" / "digests.json")
            state = ProjectState(entry, root, digests=digests)
            self.projects[entry] = state
        return state

    def overlays(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for uri, doc in self.workspace.text_documents.items():
            if uri.startswith("file:"):
                out[os.path.normpath(uri_to_path(uri))] = doc.source
        return out

    def encoding(self) -> str:
        enc = self.workspace.position_encoding
        return str(getattr(enc, "value", enc) or "utf-16")

    # -- compiling and diagnostics ---------------------------------------------------------
    def refresh(self, state: ProjectState) -> None:
        overlays = self.overlays()
        state.stale = False
        state.comp = compile_project(
            state.entry, parse_cache=state.cache, digests=state.digests, overlays=overlays
        )
        state.loaded = load(state.entry, cache=state.cache, overlays=overlays)
        state.index = index_mod.build(state.loaded, state.memo)
        state.plans = {}
        state.build_state = None
        for f in state.loaded.files:
            self.owner.setdefault(Path(os.path.normpath(f.abs_path)), state.entry)
        self.publish(state)

    def fresh(self, state: ProjectState) -> ProjectState:
        if state.stale:
            self.refresh(state)
        return state

    def publish(self, state: ProjectState) -> None:
        comp = state.comp
        if comp is None:
            return
        by_file: dict[str, list[Diagnostic]] = {label: [] for label in state.index.texts}
        entry_label = state.label(state.entry)
        for d in comp.diagnostics:
            if d.severity is Severity.NOTE:
                continue
            label = d.span.file if d.span is not None else entry_label
            by_file.setdefault(label, []).append(d)
        enc = self.encoding()
        out: set[str] = set()
        open_docs = set(self.workspace.text_documents)
        for label, diags in by_file.items():
            uri = path_to_uri(state.path(label))
            text = comp.sources.texts.get(label, "")
            lines = Lines(text, enc)
            items = [self._diagnostic(d, lines, state, enc) for d in diags]
            # An open file hears after every check, clean or not; a closed one only
            # when its diagnostics change to or from none.
            if items or uri in state.published or uri in open_docs:
                self.text_document_publish_diagnostics(
                    lsp.PublishDiagnosticsParams(uri=uri, diagnostics=items)
                )
            if items:
                out.add(uri)
        for uri in state.published - out - {path_to_uri(state.path(x)) for x in by_file}:
            self.text_document_publish_diagnostics(
                lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[])
            )
        state.published = out

    def _diagnostic(
        self, d: Diagnostic, lines: Lines, state: ProjectState, enc: str
    ) -> lsp.Diagnostic:
        rng = (
            lines.range(d.span)
            if d.span is not None
            else lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
        )
        related = []
        for text, span in d.notes:
            if span is None:
                continue
            other = Lines(state.comp.sources.texts.get(span.file, ""), enc) if state.comp else lines
            loc = lsp.Location(path_to_uri(state.path(span.file)), other.range(span))
            related.append(lsp.DiagnosticRelatedInformation(loc, text))
        message = d.message + (f"\nhint: {d.hint}" if d.hint else "")
        return lsp.Diagnostic(
            range=rng,
            message=message,
            severity=SEVERITY.get(d.severity, lsp.DiagnosticSeverity.Information),
            code=d.code,
            source="storyc",
            related_information=related or None,
            data={"hint": d.hint} if d.hint else None,
        )

    def schedule(self, uri: str) -> None:
        if not uri.startswith("file:"):
            return  # an untitled buffer belongs to no project (formatting still works)
        path = uri_to_path(uri)
        if Path(os.path.normpath(path)) not in self.owner:
            self.project_for(path)  # finding its project compiled it, with this text
            return
        self.recheck(self.project_for(path))

    def recheck(self, state: ProjectState) -> None:
        state.stale = True
        if state.task is None or state.task.done():
            state.task = asyncio.get_running_loop().create_task(self._compile_soon(state))

    async def _compile_soon(self, state: ProjectState) -> None:
        await asyncio.sleep(0)  # let edits already read join this compile
        while state.stale:
            self.refresh(state)
            await asyncio.sleep(0)

    # -- helpers for requests --------------------------------------------------------------
    def doc_text(self, uri: str) -> str:
        return self.workspace.get_text_document(uri).source

    def where(self, uri: str, pos: lsp.Position) -> tuple[ProjectState, str, int, Lines]:
        if not uri.startswith("file:"):
            raise _NoProject
        path = uri_to_path(uri)
        state = self.fresh(self.project_for(path))
        text = self.doc_text(uri)
        lines = Lines(text, self.encoding())
        return state, state.label(path), lines.offset(pos), lines

    def location(self, state: ProjectState, span: Span) -> lsp.Location:
        text = state.index.texts.get(span.file, "")
        return lsp.Location(
            path_to_uri(state.path(span.file)), Lines(text, self.encoding()).range(span)
        )


class _NoProject(Exception):
    """The document is not a file (an untitled buffer): nothing to look up."""


def _answers(f: Any) -> Any:
    """A request about a document outside any project answers None, not an error."""

    @functools.wraps(f)
    def wrapper(ls: StoryServer, params: Any) -> Any:
        try:
            return f(ls, params)
        except _NoProject:
            return None

    return wrapper


server = StoryServer()


# -- documents -----------------------------------------------------------------------------


def document_changed(ls: StoryServer, params: Any) -> None:
    """Opened, edited, saved or closed (the file on disk then stands for it again): the
    project is checked again."""
    ls.schedule(params.text_document.uri)


for _method in (
    lsp.TEXT_DOCUMENT_DID_OPEN,
    lsp.TEXT_DOCUMENT_DID_CHANGE,
    lsp.TEXT_DOCUMENT_DID_SAVE,
    lsp.TEXT_DOCUMENT_DID_CLOSE,
):
    server.feature(_method)(document_changed)


@server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_watched_files(ls: StoryServer, params: lsp.DidChangeWatchedFilesParams) -> None:
    # A story or an asset changed on disk (a save elsewhere, a checkout): check again.
    for state in list(ls.projects.values()):
        ls.recheck(state)


# -- hover ---------------------------------------------------------------------------------


def _asset_text(project: Project | None, name: str) -> list[str]:
    asset = project.assets.get(name) if project else None
    if asset is None:
        return []
    src = asset.source
    if isinstance(src, RemoteFile):
        return [f"`{src.url}` (fetched by the provider)"]
    assert isinstance(src, LocalFile)
    parts = [f"`{src.path}`", _size(src.size)]
    info = src.media
    if info is not None:
        parts.append(info.format)
        if info.width and info.height:
            parts.append(f"{info.width}×{info.height}")
        if info.duration is not None:
            parts.append(f"{info.duration:g} s")
        if info.fps:
            parts.append(f"{info.fps:g} fps")
        if info.has_audio is not None:
            parts.append("with sound" if info.has_audio else "no sound")
    return [" · ".join(parts)]


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _scene_plan(state: ProjectState, name: str) -> tuple[str, Any]:
    """(backend, the scene's plan) — up to date, will render and why, waiting, blocked —
    or (backend, why it cannot be told). Only the scene and the scenes it uses are
    planned (a scene's plan depends on nothing else); plans last until the next check."""
    comp = state.comp
    if comp is None or comp.project is None:
        return "preview", "unknown (the project does not compile)"
    setting = comp.project.settings.get("backend")
    backend = str(getattr(setting, "value", None) or "preview")
    hit = state.plans.get(name)
    if hit is not None:
        return backend, hit
    import dataclasses

    from storyc.plan.planner import make_plan
    from storyc.state.lockfile import LockFile, LockFileError
    from storyc.state.store import Store

    closure: set[str] = set()
    todo = [name]
    while todo:
        n = todo.pop()
        if n not in closure:
            closure.add(n)
            req = comp.requests.get(n)
            todo.extend(req.upstream if req is not None else ())
    order = [n for n in comp.order if n in closure]
    order += sorted(closure - set(order))
    try:
        if state.build_state is None:
            lock = LockFile.load(LockFile.path_for(state.root))
            state.build_state = (lock, Store.for_project(state.root))
        lock, store = state.build_state
        sub = dataclasses.replace(comp, order=order, selected=order)
        state.plans.update(make_plan(sub, lock=lock, store=store, backend=backend).scenes)
    except (LockFileError, OSError) as exc:
        return backend, f"unknown ({exc})"
    return backend, state.plans.get(name, "unknown")


def _scene_hover(state: ProjectState, name: str) -> list[str]:
    comp = state.comp
    if comp is None or comp.project is None or name not in comp.project.scenes:
        return []
    scene = comp.project.scenes[name]
    req = comp.requests.get(name)
    out = []
    if req is None:
        why = comp.broken.get(name) or (
            f"it uses scene `{comp.blocked[name]}`, which cannot be built"
            if name in comp.blocked
            else "see its errors"
        )
        out.append(f"not compiled: {why}")
        out += ["", "**prompt as written**", "```text", scene.prompt, "```"]
        return out
    dur = "length of the edited video" if req.duration is None else f"{req.duration} s"
    takes = f" · {req.takes} takes" if req.takes != 1 else ""
    out.append(f"{req.mode} · `{req.target}` ({req.schema}) · {req.quality} · {dur}{takes}")
    backend, sp = _scene_plan(state, name)
    # The paid price, whatever the project's backend (a preview is free); an edit is
    # priced by the length of the video it edits, as the planner prices it.
    from storyc.plan.planner import _base_duration

    base = _base_duration(comp, req, state.plans)
    paid = pricing.estimate(req, backend="inference", base_duration=base)
    out.append(f"estimated cost: {pricing.format_estimate(paid)} on inference ({paid.reason})")
    if isinstance(sp, str):
        out.append(f"build: {sp}")
    else:
        words = {
            "up-to-date": "up to date",
            "render": "will render",
            "waiting": "will render after " + ", ".join(sp.waiting_on),
            "blocked": f"blocked: {sp.blocked}",
        }
        why = "; ".join(c.message for c in sp.reasons[:2])
        out.append(
            f"build ({backend}): {words.get(sp.status, sp.status)}"
            + (f" — {why}" if why and sp.status != "up-to-date" else "")
        )
    out += ["", "**prompt as sent**", "```text", req.prompt, "```"]
    return out


def _mention_hover(state: ProjectState, use: Use) -> list[str]:
    comp = state.comp
    if comp is None or comp.project is None or use.scene is None:
        return []
    scene = comp.project.scenes.get(use.scene)
    req = comp.requests.get(use.scene)
    if scene is None or req is None:
        return []
    sent = _lowered_mentions(scene.prompt, [(m.start, m.end) for m in scene.mentions], req.prompt)
    for m, text in zip(scene.mentions, sent, strict=False):
        if m.name == use.name and text is not None:
            return [f"in scene `{use.scene}`, `@{use.name}` is sent as `{text}` (`{req.target}`)"]
    return []


def _lowered_mentions(prompt: str, spans: list[tuple[int, int]], sent: str) -> list[str | None]:
    """What each mention of `prompt` became in the lowered prompt `sent`: the text
    between the same literal pieces (None where that cannot be told)."""
    spans = sorted(spans)
    out: list[str | None] = []
    pos_in, pos_out = 0, 0
    for i, (a, b) in enumerate(spans):
        literal = prompt[pos_in:a]
        if not sent.startswith(literal, pos_out):
            return out + [None] * (len(spans) - i)
        pos_out += len(literal)
        nxt = prompt[b : spans[i + 1][0]] if i + 1 < len(spans) else prompt[b:]
        if i + 1 == len(spans):
            end = len(sent) - len(nxt) if sent.endswith(nxt) else -1
        else:
            end = sent.find(nxt, pos_out) if nxt else -1
        if end < pos_out:
            return out + [None] * (len(spans) - i)
        out.append(sent[pos_out:end])
        pos_in, pos_out = b, end
    return out


def _symbol_hover(state: ProjectState, sym: Symbol) -> list[str]:
    project = state.comp.project if state.comp else None
    head = f"**{sym.kind}** `{sym.name}`" + (
        f" — {sym.span.file}:{sym.span.line}" if sym.kind != "let" else ""
    )
    lines = [head]
    if sym.kind in ("image", "video"):
        lines += _asset_text(project, sym.name)
    elif sym.kind == "scene":
        lines += _scene_hover(state, sym.name)
    elif sym.kind == "element" and project and sym.name in project.elements:
        el = project.elements[sym.name]
        if el.description:
            lines.append(el.description)
        lines.append(f"{1 + len(el.refs)} image(s): frontal and {len(el.refs)} more")
    elif sym.kind == "let" and project and sym.name in project.variables:
        lines.append(f"`{project.variables[sym.name]!r}`")
    elif sym.kind == "cut" and project and sym.name in project.cuts:
        cut = project.cuts[sym.name]
        lines.append(" → ".join(n for n, _ in cut.scenes) or "(empty)")
    return lines


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
@_answers
def hover(ls: StoryServer, params: lsp.HoverParams) -> lsp.Hover | None:
    state, label, offset, lines = ls.where(params.text_document.uri, params.position)
    hit = state.index.at(label, offset)
    text: list[str] = []
    span: Span | None = None
    if isinstance(hit, Symbol):
        text, span = _symbol_hover(state, hit), hit.span
    elif isinstance(hit, Use):
        span = hit.span
        if hit.kind == "include":
            text = [f"includes `{hit.target or hit.name}`"]
        else:
            sym = state.index.symbols.get(hit.name)
            if sym is None:
                return None
            text = _symbol_hover(state, sym)
            if hit.kind == "mention":
                text = _mention_hover(state, hit) + [""] + text
    else:
        word = _word_at(lines.text, offset)
        if word is not None and word[0] in complete.SETTING_DOCS:
            text = [f"**{word[0]}**: {complete.SETTING_DOCS[word[0]]}"]
            span = Span.from_offsets(label, lines.text, word[1], word[2])
    if not text or span is None:
        return None
    return lsp.Hover(
        contents=lsp.MarkupContent(lsp.MarkupKind.Markdown, "\n".join(text)),
        range=lines.range(span) if span.file == label else None,
    )


def _word_at(text: str, offset: int) -> tuple[str, int, int] | None:
    a = offset
    while a > 0 and (text[a - 1].isalnum() or text[a - 1] == "_"):
        a -= 1
    b = offset
    while b < len(text) and (text[b].isalnum() or text[b] == "_"):
        b += 1
    return (text[a:b], a, b) if b > a else None


# -- definitions, references, rename -------------------------------------------------------


@server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
@_answers
def definition(ls: StoryServer, params: lsp.DefinitionParams) -> list[lsp.Location] | None:
    state, label, offset, _ = ls.where(params.text_document.uri, params.position)
    hit = state.index.at(label, offset)
    if isinstance(hit, Use) and hit.kind == "include":
        if hit.target is None:
            return None
        start = lsp.Position(0, 0)
        return [lsp.Location(path_to_uri(state.path(hit.target)), lsp.Range(start, start))]
    name = hit.name if hit is not None else None
    sym = state.index.symbols.get(name) if name else None
    return [ls.location(state, sym.span)] if sym is not None else None


def _occurrences(state: ProjectState, name: str, declaration: bool) -> list[Span]:
    spans = [u.span for u in state.index.uses_of(name)]
    sym = state.index.symbols.get(name)
    if declaration and sym is not None:
        spans.insert(0, sym.span)
    return spans


@server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
@_answers
def references(ls: StoryServer, params: lsp.ReferenceParams) -> list[lsp.Location] | None:
    state, label, offset, _ = ls.where(params.text_document.uri, params.position)
    hit = state.index.at(label, offset)
    if hit is None:
        return None
    if isinstance(hit, Use) and hit.kind == "include":
        # every `include` of the same file, in any file of the project
        spans = [
            u.span
            for uses in state.index.uses.values()
            for u in uses
            if u.kind == "include" and u.target is not None and u.target == hit.target
        ]
        return [ls.location(state, s) for s in spans]
    spans = _occurrences(state, hit.name, params.context.include_declaration)
    return [ls.location(state, s) for s in spans]


@server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
@_answers
def prepare_rename(ls: StoryServer, params: lsp.PrepareRenameParams) -> lsp.Range | None:
    state, label, offset, lines = ls.where(params.text_document.uri, params.position)
    hit = state.index.at(label, offset)
    if hit is None or (isinstance(hit, Use) and hit.kind == "include"):
        return None
    if hit.name not in state.index.symbols:
        return None
    return lines.range(hit.span)


@server.feature(lsp.TEXT_DOCUMENT_RENAME, lsp.RenameOptions(prepare_provider=True))
@_answers
def rename(ls: StoryServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit | None:
    state, label, offset, _ = ls.where(params.text_document.uri, params.position)
    hit = state.index.at(label, offset)
    if hit is None or (isinstance(hit, Use) and hit.kind == "include"):
        return None
    new = params.new_name
    if not NAME_RE.match(new) or new in ("true", "false"):
        raise JsonRpcInvalidParams(
            f"`{new}` is not a name: letters, digits and _, not first a digit"
        )
    if new in state.index.symbols and new != hit.name:
        raise JsonRpcInvalidParams(f"`{new}` is already declared")
    changes: dict[str, list[lsp.TextEdit]] = {}
    for span in _occurrences(state, hit.name, True):
        loc = ls.location(state, span)
        changes.setdefault(loc.uri, []).append(lsp.TextEdit(loc.range, new))
    return lsp.WorkspaceEdit(changes=changes)


# -- outline, formatting, quick fixes ------------------------------------------------------


def _decl_name(item: ast.Decl) -> tuple[str, str, Span] | None:
    if isinstance(item, ast.ProjectDecl):
        return item.title or "project", "project", item.span
    if isinstance(item, ast.DefaultsDecl):
        return "defaults", "defaults", item.span
    if isinstance(item, ast.Include):
        return f"include {item.path.value}", "include", item.path.span
    name = getattr(item, "name", None)
    span = getattr(item, "name_span", None)
    if name is None or span is None:
        return None
    kind = {
        ast.AssetDecl: getattr(item, "kind", "image"),
        ast.ElementDecl: "element",
        ast.StyleDecl: "style",
        ast.SceneDecl: "scene",
        ast.CutDecl: "cut",
        ast.Let: "let",
    }.get(type(item), "let")
    return name, kind, span


@server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
@_answers
def document_symbols(
    ls: StoryServer, params: lsp.DocumentSymbolParams
) -> list[lsp.DocumentSymbol] | None:
    if not params.text_document.uri.startswith("file:"):
        raise _NoProject
    path = uri_to_path(params.text_document.uri)
    state = ls.fresh(ls.project_for(path))
    label = state.label(path)
    lines = Lines(state.index.texts.get(label, ""), ls.encoding())
    out: list[lsp.DocumentSymbol] = []
    for item, extent in state.index.decls.get(label, []):
        named = _decl_name(item)
        if named is None:
            continue
        name, kind, span = named
        children = [
            lsp.DocumentSymbol(
                name=s.name,
                kind=lsp.SymbolKind.Property,
                range=lines.range(s.span),
                selection_range=lines.range(s.name_span),
            )
            for s in index_mod.settings_of(item)
        ]
        symkind = SYMBOL_KINDS.get(
            kind, lsp.SymbolKind.Module if kind == "include" else lsp.SymbolKind.Namespace
        )
        out.append(
            lsp.DocumentSymbol(
                name=name,
                kind=symkind,
                detail=kind,
                range=lines.range(extent),
                selection_range=lines.range(span),
                children=children or None,
            )
        )
    return out


@server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: StoryServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
    text = ls.doc_text(params.text_document.uri)
    result = format_text(text)
    if result.text is None or not result.changed:
        return [] if result.text is not None else None
    lines = Lines(text, ls.encoding())
    whole = lsp.Range(lsp.Position(0, 0), lines.position(len(text)))
    return [lsp.TextEdit(whole, result.text)]


@server.feature(
    lsp.TEXT_DOCUMENT_CODE_ACTION,
    lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]),
)
def code_actions(ls: StoryServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction] | None:
    uri = params.text_document.uri
    text = ls.doc_text(uri)
    lines = Lines(text, ls.encoding())
    out: list[lsp.CodeAction] = []
    for diag in params.context.diagnostics:
        if diag.source != "storyc":
            continue
        hint = (diag.data or {}).get("hint") if isinstance(diag.data, dict) else None
        m = DID_YOU_MEAN.search(hint or diag.message)
        if m is None:
            continue
        word = m.group(1)
        old = text[lines.offset(diag.range.start) : lines.offset(diag.range.end)]
        if old.startswith("@"):
            new = "@" + word
        elif old.startswith('"') and old.endswith('"') and len(old) >= 2:
            new = f'"{word}"'
        else:
            new = word
        if new == old:
            continue
        out.append(
            lsp.CodeAction(
                title=f"Change to `{new}`",
                kind=lsp.CodeActionKind.QuickFix,
                diagnostics=[diag],
                is_preferred=True,
                edit=lsp.WorkspaceEdit(changes={uri: [lsp.TextEdit(diag.range, new)]}),
            )
        )
    return out


@server.feature(
    lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=["@", ".", '"', "{"])
)
def completion(ls: StoryServer, params: lsp.CompletionParams) -> lsp.CompletionList:
    uri = params.text_document.uri
    text = ls.doc_text(uri)
    lines = Lines(text, ls.encoding())
    offset = lines.offset(params.position)
    # The last compile's names are good enough (no compile per keystroke here).
    symbols = ls.project_for(uri_to_path(uri)).index.symbols if uri.startswith("file:") else {}
    start, found, more = complete.candidates(text, offset, symbols)
    rng = lsp.Range(lines.position(start), lines.position(offset))
    items = [
        lsp.CompletionItem(
            label=label,
            kind=COMPLETION_KINDS.get(kind, lsp.CompletionItemKind.Text),
            detail=detail,
            text_edit=lsp.TextEdit(rng, insert),
        )
        for label, kind, detail, insert in found
    ]
    return lsp.CompletionList(is_incomplete=more, items=items)


def serve() -> None:
    """Run the server on stdin/stdout until the editor says exit."""
    with contextlib.suppress(KeyboardInterrupt):
        server.start_io()
