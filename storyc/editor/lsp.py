"""The language server: `storyc lsp`, the Language Server Protocol over stdio (pygls 2).

Stage: editor. In: LSP messages from an editor (open, change, hover, ...). Out: LSP
messages (diagnostics for every file of the project, answers to requests). I/O: reads
the project's story files (open documents are taken from the editor, unsaved), asset
headers, and the build state (storyc.lock, the store) for hovers; writes nothing.

Each story file belongs to a project: the nearest folder, from the file's own upwards,
whose entry file (`main.story`, or the one file with a `project` block) includes it; a
file no project includes is a project of its own. A project is compiled whole, with the
editor's buffers standing for the files on disk, by an incremental compiler held per
project (`storyc.compiler.incremental.Engine`: a keystroke recompiles the declaration it
changed and what depends on it), so the diagnostics are exactly `storyc check`'s (notes
aside, as there). Edits arriving
while a compile runs are folded into one next compile.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from storyc import __version__
from storyc.base.diagnostics import Diagnostic, Diagnostics, Severity, Span
from storyc.base.hashing import DigestCache
from storyc.base.memory import Settler
from storyc.editor import complete
from storyc.editor import hover as hover_mod
from storyc.editor import index as index_mod
from storyc.editor.fmt import format_text
from storyc.editor.index import Symbol, Use
from storyc.editor.positions import Lines, path_to_uri, uri_to_path
from storyc.editor.project import ProjectState
from storyc.lang import ast
from storyc.lang.loader import ENTRY_NAME, find_entry, load

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


# A pause in checks this long lets the collector look at everything (once in a while).
IDLE_SECONDS = 2.0

# -- projects -------------------------------------------------------------------------------


class StoryServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("storyc", __version__)
        self.projects: dict[Path, ProjectState] = {}
        self.owner: dict[Path, Path] = {}  # story file → the entry of its project
        # what a check builds stays out of the collector's walks; its cyclic garbage is
        # collected once in a while, after a pause in typing (storyc.base.memory)
        self.settler = Settler()
        self._idle_at: asyncio.TimerHandle | None = None

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
        """Check the project again and publish its diagnostics. A bug in storyc is
        logged to the editor, never a reason for the server to stop."""
        state.stale = False
        try:
            self._refresh(state)
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            self.window_log_message(
                lsp.LogMessageParams(
                    type=lsp.MessageType.Error,
                    message=f"storyc: internal error while checking: {type(exc).__name__}: {first}",
                )
            )
        self.settler.refreshed()
        with contextlib.suppress(RuntimeError):  # no loop: a check outside the server
            loop = asyncio.get_running_loop()
            if self._idle_at is not None:
                self._idle_at.cancel()
            self._idle_at = loop.call_later(IDLE_SECONDS, self._idle)

    def _idle(self) -> None:
        """A pause in typing: the collector's turn, if one is due and nothing waits."""
        self._idle_at = None
        if not any(s.stale for s in self.projects.values()):
            self.settler.idle()

    def _refresh(self, state: ProjectState) -> None:
        overlays = self.overlays()
        state.loaded = load(state.entry, cache=state.cache, overlays=overlays)
        if state.engine is None:
            state.engine = state.start_engine()
            # the first check takes files apart from the parses just made for the index
            # (nothing parsed twice); later ones parse only the declarations an edit touched
            state.engine.parsed = state.cache
        # every open document stands for its file: what changed since the last check is
        # recompiled, nothing else (the diagnostics are compile_project's all the same)
        try:
            state.comp = state.engine.update(overlays, replace=True)
        finally:
            state.engine.parsed = None
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
        for d in comp.shown():
            label = d.span.file if d.span is not None else entry_label
            by_file.setdefault(label, []).append(d)
        enc = self.encoding()
        out: set[str] = set()
        # An open file's diagnostics name the version of the buffer they were made from, so
        # an editor drops those of a version it has already moved past.
        open_docs = {uri: doc.version for uri, doc in self.workspace.text_documents.items()}
        for label, diags in by_file.items():
            uri = path_to_uri(state.path(label))
            items = []
            if diags:  # a file's line table only when something points into it
                lines = Lines(comp.sources.texts.get(label, ""), enc)
                items = [self._diagnostic(d, lines, state, enc) for d in diags]
            # An open file hears after every check, clean or not; a closed one only
            # when its diagnostics change to or from none.
            if items or uri in state.published or uri in open_docs:
                self.text_document_publish_diagnostics(
                    lsp.PublishDiagnosticsParams(
                        uri=uri, diagnostics=items, version=open_docs.get(uri)
                    )
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


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
@_answers
def hover(ls: StoryServer, params: lsp.HoverParams) -> lsp.Hover | None:
    state, label, offset, lines = ls.where(params.text_document.uri, params.position)
    hit = state.index.at(label, offset)
    text: list[str] = []
    span: Span | None = None
    if isinstance(hit, Symbol):
        text, span = hover_mod.symbol_hover(state, hit), hit.span
    elif isinstance(hit, Use):
        span = hit.span
        if hit.kind == "include":
            text = [f"includes `{hit.target or hit.name}`"]
        else:
            sym = state.index.symbol_of(hit)
            if sym is None:
                return None
            text = hover_mod.symbol_hover(state, sym)
            if hit.kind == "mention":
                text = hover_mod.mention_hover(state, hit) + [""] + text
    else:
        word = hover_mod.word_at(lines.text, offset)
        if word is not None and word[0] in complete.SETTING_DOCS:
            text = [f"**{word[0]}**: {complete.SETTING_DOCS[word[0]]}"]
            span = Span.from_offsets(label, lines.text, word[1], word[2])
    if not text or span is None:
        return None
    return lsp.Hover(
        contents=lsp.MarkupContent(lsp.MarkupKind.Markdown, "\n".join(text)),
        range=lines.range(span) if span.file == label else None,
    )


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
    sym = state.index.symbol_of(hit) if hit is not None else None
    return [ls.location(state, sym.span)] if sym is not None else None


def _occurrences(state: ProjectState, hit: Symbol | Use, declaration: bool) -> list[Span]:
    """Where the declaration `hit` stands for is named: a `let` and a scene of the same
    name are two declarations (their names are two sets)."""
    sym = state.index.symbol_of(hit)
    let = sym.kind == "let" if sym is not None else isinstance(hit, Use) and hit.kind == "template"
    spans = [u.span for u in state.index.uses_of(hit.name, let)]
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
    spans = _occurrences(state, hit, params.context.include_declaration)
    return [ls.location(state, s) for s in spans]


@server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
@_answers
def prepare_rename(ls: StoryServer, params: lsp.PrepareRenameParams) -> lsp.Range | None:
    found = _declared_at(ls, params.text_document.uri, params.position)
    return found[2].range(found[1].span) if found is not None else None


def _declared_at(
    ls: StoryServer, uri: str, pos: lsp.Position
) -> tuple[ProjectState, Symbol | Use, Lines] | None:
    """The declared name (its declaration or a use of it) at `pos`, if any."""
    state, label, offset, lines = ls.where(uri, pos)
    hit = state.index.at(label, offset)
    if hit is None or state.index.symbol_of(hit) is None:
        return None
    if isinstance(hit, Use) and hit.kind == "include":
        return None
    return state, hit, lines


@server.feature(lsp.TEXT_DOCUMENT_RENAME, lsp.RenameOptions(prepare_provider=True))
@_answers
def rename(ls: StoryServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit | None:
    found = _declared_at(ls, params.text_document.uri, params.position)
    if found is None:
        return None
    state, hit, _ = found
    new = params.new_name
    if not NAME_RE.match(new) or new in ("true", "false"):
        raise JsonRpcInvalidParams(
            f"`{new}` is not a name: letters, digits and _, not first a digit"
        )
    sym = state.index.symbol_of(hit)
    taken = state.index.lets if sym is not None and sym.kind == "let" else state.index.symbols
    if new != hit.name and new in taken and (taken is state.index.lets or taken[new].kind != "let"):
        raise JsonRpcInvalidParams(f"`{new}` is already declared")
    changes: dict[str, list[lsp.TextEdit]] = {}
    for span in _occurrences(state, hit, True):
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
    index = ls.project_for(uri_to_path(uri)).index if uri.startswith("file:") else None
    symbols = index.symbols if index is not None else {}
    lets = index.lets if index is not None else None
    start, found, more = complete.candidates(text, offset, symbols, lets)
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
