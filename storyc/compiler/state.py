"""The compiled state on disk: an incremental compiler's memory between two commands.

Stage: compiler (persistence of `storyc.compiler.incremental`). In: an `Engine` after an
update, and the project's `.storyc/` directory. Out: JSON files under
`.storyc/compiled/<key>/` (one key per project path and target override), and, read
back, either the last compilation itself when none of its inputs changed (`answer`) or
an engine that recompiles only what did (`restore`). I/O: reads and writes those files
(atomically, one per story file plus an index), stats and hashes what the compilation
read.

Plain data only: JSON, no pickle, no marshal, nothing on load that can run code. Every
record is checked field by field as it is read; a damaged, foreign or stale record is a
miss (the file it describes is compiled again), never an error. A request read back must
name only project-relative files with well-formed digests.

Layout (docs/build.md shows it), read lazily: a command reads only what it needs:
  index.json      format and versions; the inputs of the last compilation (each story
                  file's digest, each file it read with its digest); a few facts of its
                  result (found, project name, scene, error, warning and note counts)
  result.json     the rest of the result: diagnostics, order, blocked and broken scenes,
                  the project summary, which scenes have requests
  rendered.txt    its diagnostics (without notes) as commands print them
  f-<h>.json      one story file: its text, its declarations, one unit per scene declared
                  in it (what the scene consulted, its diagnostics)
  q-<h>.json      the requests of the scenes declared in that file, with fingerprints

A q- record is read only through a digest of its bytes kept where it is used (its file's
f- record, and result.json's list of records): records are named by story file, not by
content, so two commands saving at once (watch and a build, say) can leave one's q-
record beside the other's f- record or result. Without the tie, a scene would get the
request of another version of its story (a paid build would send a prompt the story no
longer says); with it, such a pair is a miss.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import os
import re
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyc import __version__
from storyc.base import warm
from storyc.base.diagnostics import Diagnostic, Severity, SourceMap, Span
from storyc.base.fsio import atomic_write, sig_of, stat_sig, where_value
from storyc.base.hashing import DigestCache, is_digest
from storyc.base.reading import read_regular, read_regular_stat
from storyc.compiler import Compilation, Summary, background
from storyc.lang.discovery import MAX_STORY_BYTES

# Answering from the state must stay light (no Lark, Jinja or pydantic): the engine and
# its parts are imported only when something has to be compiled.
if TYPE_CHECKING:
    from storyc.compiler.decls import FileDecls
    from storyc.compiler.incremental import Engine
    from storyc.compiler.units import Unit
    from storyc.lang.loader import ParseCache
    from storyc.targets.request import Request

FORMAT = 1
DIRNAME = "compiled"
KINDS = (
    "include",
    "project",
    "let",
    "image",
    "video",
    "element",
    "style",
    "scene",
    "defaults",
    "cut",
)
_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Damaged(ValueError):
    """A record that is not what this storyc writes: treated as absent."""


def _text_digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _story_value(path: str, text: str) -> str:
    """A story file's text, and where it really is when a link sends it elsewhere (a file
    swapped for a link to the same text outside the project is compiled again: E017)."""
    return _text_digest(text) + where_value(path)


def _bytes_digest(raw: bytes) -> str:
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def code_signature() -> str:
    """storyc's own modules and grammar (a new storyc compiles differently)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{__version__}|{FORMAT}".encode())
    for top in (_PKG, os.path.join(os.path.dirname(_PKG), "grammar")):
        for folder, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".py", ".lark")):
                    path = os.path.join(folder, name)
                    h.update(f"{path}|{stat_sig(path)}".encode())
    return h.hexdigest()


_MAX_RECORD = 1 << 32  # a record is read whole, and only if it is a regular file


def state_dir(root: Path, path: Path, target: str | None) -> Path:
    key = _text_digest(f"{os.path.realpath(path)}\0{target or ''}")[:16]
    return root / ".storyc" / DIRNAME / key


# -- checking what is read ---------------------------------------------------------------------
# Type checks are written out (`type(x) is str`): records hold thousands of diagnostics and
# spans, and a helper call per field would cost more than reading the JSON.

_SEVERITIES = frozenset(("error", "warning", "note"))
_LENGTHS = frozenset(("duration", "file", "scene", "unknown"))
_INT = {int}


def _bad(what: str) -> Damaged:
    return Damaged(what)


def _strs(v: Any) -> list[str]:
    if type(v) is not list or (v and set(map(type, v)) != {str}):
        raise _bad("not a list of strings")
    return v


def _str_map(v: Any) -> dict[str, str]:
    if type(v) is not dict or (v and set(map(type, v.values())) != {str}):
        raise _bad("not a map of strings")
    return v


def _check_span(s: Any, anchors: int) -> None:
    if s is None:
        return
    if type(s) is not list:
        raise _bad("not a span")
    if len(s) == 7:
        if set(map(type, s)) != _INT or not 0 <= s[0] < anchors:
            raise _bad("not a relative span")
    elif len(s) == 8:
        if s[0] != -1 or type(s[1]) is not str or set(map(type, s[2:])) != _INT:
            raise _bad("not a span")
    else:
        raise _bad("not a span")


def _check_diags(recs: Any, anchors: int) -> list[Any]:
    """Encoded diagnostics (`storyc.compiler.units`), `anchors` > 0; with anchors == 0
    the spans are absolute (`[file, line, col, end_line, end_col, start, end]`)."""
    if type(recs) is not list:
        raise _bad("not a list of diagnostics")
    check = _check_span if anchors else _check_abs
    for r in recs:
        if type(r) is not list or len(r) != 6:
            raise _bad("not a diagnostic")
        code, sev, message, span, hint, notes = r
        if type(code) is not str or sev not in _SEVERITIES or type(message) is not str:
            raise _bad("not a diagnostic")
        if hint is not None and type(hint) is not str or type(notes) is not list:
            raise _bad("not a diagnostic")
        check(span, anchors)
        for note in notes:
            if type(note) is not list or len(note) != 2 or type(note[0]) is not str:
                raise _bad("not a note")
            check(note[1], anchors)
    return recs


def _check_abs(s: Any, _: int = 0) -> None:
    if s is None:
        return
    if type(s) is not list or len(s) != 7 or type(s[0]) is not str or set(map(type, s[1:])) != _INT:
        raise _bad("not a span")


def _abs(s: Any) -> Span | None:
    return None if s is None else Span(*s)


def _abs_out(s: Span | None) -> list[Any] | None:
    return None if s is None else [s.file, s.line, s.col, s.end_line, s.end_col, s.start, s.end]


def diag_out(d: Diagnostic) -> list[Any]:
    return [
        d.code,
        d.severity.value,
        d.message,
        _abs_out(d.span),
        d.hint,
        [[m, _abs_out(s)] for m, s in d.notes],
    ]


def _all_diags_in(recs: Any) -> list[Diagnostic]:
    if recs is None:
        raise Damaged("not kept: compile them again")  # `_part` falls back to the engine
    return diags_in(recs)


def _has_all(comp: Compilation) -> bool:
    """Whether the compilation has decoded every diagnostic already (cheap to keep)."""
    from storyc.compiler.assembly import EngineCompilation

    return not isinstance(comp, EngineCompilation) or comp.has_all()


def diags_in(recs: Any) -> list[Diagnostic]:
    _check_diags(recs, 0)
    return [
        Diagnostic(c, Severity(sev), m, _abs(sp), h, tuple((nm, _abs(ns)) for nm, ns in notes))
        for c, sev, m, sp, h, notes in recs
    ]


_SCENE_NAME = json.JSONEncoder(ensure_ascii=False)  # json.dumps makes one per call


def _requests_out(requests: list[Request]) -> bytes:
    """A q- record: scene -> [fingerprint, the request's canonical JSON], each request
    serialised once (its fingerprint is the digest of that very text)."""
    parts = []
    for req in requests:
        raw = req.canonical()
        if "fingerprint" not in req.__dict__:
            digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
            req.__dict__["fingerprint"] = "sha256:" + digest
        parts.append(f'{_SCENE_NAME.encode(req.scene)}:["{req.fingerprint}",{raw}]')
    return ("{" + ",".join(parts) + "}").encode("utf-8", "surrogatepass")


def _request_in(v: Any) -> Request:
    """A request read back: the fields `Request.canonical` writes, each checked, and
    markers that name only project-relative files with well-formed digests (a planted
    record cannot make a build send a file from outside the project)."""
    from storyc.targets.request import Request

    names = _request_fields()
    if type(v) is not list or len(v) != 2 or type(v[1]) is not list or len(v[1]) != len(names):
        raise _bad("not a request")
    fp, values = v
    data = dict(zip(names, values, strict=True))
    if not is_digest(fp) or set(data) != set(_REQUEST_CHECKS):
        raise _bad("not a request")  # a Request of another shape: written by another storyc
    for name, ok in _REQUEST_CHECKS.items():
        if not ok(data[name]):
            raise _bad(f"a request's {name}")
    data["upstream"] = tuple(data["upstream"])
    data["notes"] = tuple(data["notes"])
    data["fingerprint"] = fp  # Request.fingerprint, as computed when it was written
    # every field is checked above: fill the frozen dataclass without its __init__ (ten
    # thousand requests are read back at once)
    req = Request.__new__(Request)
    req.__dict__.update(data)
    return req


def _check_markers(values: list[Any]) -> None:
    """File markers name project-relative files with digests; scene markers name scenes
    (`_requests_in` checks the same on the text, which is faster; this is the reference)."""
    stack = list(values)
    while stack:
        v = stack.pop()
        if type(v) is dict:
            if "$file" in v:
                path = v["$file"]
                if (
                    type(path) is not str
                    or not _project_path(path)
                    or not is_digest(v.get("digest"))
                ):
                    raise _bad("a file outside the project, or without a digest")
            elif "$scene" in v:
                if type(v["$scene"]) is not str:
                    raise _bad("a scene marker without a scene")
            else:
                stack.extend(v.values())
        elif type(v) is list:
            stack.extend(v)


# A q- record as `_requests_out` writes it (json.dumps, ensure_ascii off): every file marker
# is exactly `"$file":"<path>","digest":"sha256:<hex>"` and every scene marker's value a
# string. Checked on the bytes before they are parsed: no \u escape (which could spell a
# key), and as many well-formed file markers as there are "$file" keys.
_FILE_KEY = b'"$file":'
_SCENE_KEY = b'"$scene":'
_FILE_MARKER = re.compile(rb'"\$file":"([^"\\]*)","digest":"sha256:[0-9a-f]{64}"')


def _requests_in(raw: bytes) -> dict[str, Request]:
    """A q- record read back (`_request_in` for each entry), its markers checked first."""
    if b"\\u" in raw:
        raise _bad("an escape that could hide a marker")
    found = _FILE_MARKER.findall(raw)
    if len(found) != raw.count(_FILE_KEY) or raw.count(_SCENE_KEY) != raw.count(_SCENE_KEY + b'"'):
        raise _bad("a marker of another shape")
    for path in found:
        if not _project_path(path.decode("utf-8", "surrogateescape")):
            raise _bad("a file outside the project")
    doc = json.loads(raw)
    if type(doc) is not dict:
        raise _bad("not a request record")
    return {name: _request_in(v) for name, v in doc.items()}


def _project_path(path: str) -> bool:
    return (
        bool(path)
        and not path.startswith(("/", "\\"))
        and not os.path.isabs(path)
        and "\\" not in path
        and ".." not in path.split("/")
    )


@functools.cache
def _request_fields() -> tuple[str, ...]:
    from dataclasses import fields

    from storyc.targets.request import Request

    return tuple(f.name for f in fields(Request))


def _is_str(v: Any) -> bool:
    return type(v) is str


def _is_strs(v: Any) -> bool:
    return type(v) is list and all(type(x) is str for x in v)


_REQUEST_CHECKS: dict[str, Callable[[Any], bool]] = {
    "scene": _is_str,
    "target": _is_str,
    "schema": _is_str,
    "app": _is_str,
    "body": lambda v: type(v) is dict and type(v.get("input")) is dict,
    "takes": lambda v: type(v) is int and v >= 1,
    "upstream": _is_strs,
    "quality": lambda v: v in ("std", "pro"),
    "duration": lambda v: v is None or type(v) is int,
    "has_video_input": lambda v: type(v) is bool,
    "mode": _is_str,
    "base_video": lambda v: v is None or type(v) is dict,
    "notes": _is_strs,
    "prompt_as_written": _is_str,
}


def _unit_out(u: Unit) -> list[Any]:
    return [
        u.scene, u.fp, u.deps, u.anchors, u.res, u.used, u.edges, u.leaves, u.graph, u.media,
        u.low, u.ok, u.res_error, u.homes, u.length, u.aspect, u.low_rules, u.low_full,
    ]  # fmt: skip


def _unit_in(v: Any, label: str) -> Unit:
    from storyc.compiler.units import Unit

    if type(v) is not list or len(v) != 18:
        raise _bad("not a unit")
    scene, fp, deps, anchors, res, used, edges, leaves, graph, media, low, ok, res_error = v[:13]
    homes, length, aspect, low_rules, low_full = v[13:]
    if type(low_rules) is not int or type(low_full) is not bool:
        raise _bad("not a unit")
    if low_rules < 0 or low_rules > (len(low) if type(low) is list else 0):
        raise _bad("not a unit")
    if type(length) is not list or len(length) != 2 or length[0] not in _LENGTHS:
        raise _bad("not a length")
    if length[1] is not None and type(length[1]) not in (float, int, str):
        raise _bad("not a length")
    if aspect is not None and type(aspect) is not str:
        raise _bad("not an aspect")
    if type(scene) is not str or type(fp) is not str or type(ok) is not bool:
        raise _bad("not a unit")
    if type(res_error) is not bool or not _strs(anchors):
        raise _bad("not a unit")
    n = len(anchors)
    _str_map(deps)
    _strs(used)
    _check_diags(res, n)
    _check_diags(graph, n)
    if low is not None:
        _check_diags(low, n)
    if type(edges) is not list or type(leaves) is not list or type(media) is not list:
        raise _bad("not a unit")
    for e in edges:
        if type(e) is not list or len(e) != 4 or not all(type(x) is str for x in e[:3]):
            raise _bad("not an edge")
        _check_span(e[3], n)
    for leaf in leaves:
        if len(_strs(leaf)) != 2:
            raise _bad("not a leaf")
    for m in media:
        if type(m) is not list or len(m) != 2 or type(m[0]) is not str:
            raise _bad("not a media entry")
        _check_diags(m[1], n)
    return Unit(
        scene,
        label,
        fp,
        deps,
        anchors,
        res,
        used,
        edges,
        leaves,
        graph,
        media,
        low,
        ok,
        res_error,
        _strs(homes),
        length,
        aspect,
        low_rules,
        low_full,
    )


def _file_out(fd: FileDecls, units: list[Unit]) -> dict[str, Any]:
    assert fd.decls is not None
    return {
        "label": fd.label,
        "digest": _text_digest(fd.text),
        "text": fd.text,
        "starts": fd.starts,
        "lines": fd.lines,
        "cols": fd.cols,
        "decls": [
            [
                d.kind,
                d.name,
                d.fp,
                list(d.name_rel) if d.name_rel is not None else None,
                [d.info.start, d.info.kind, d.info.name, list(d.info.refs)],
            ]
            for d in fd.decls
        ],
        "units": [_unit_out(u) for u in units],
    }


def _file_in(v: Any) -> tuple[FileDecls, list[Any]]:
    from storyc.check.taint import DeclInfo
    from storyc.compiler.decls import Decl, FileDecls

    if type(v) is not dict:
        raise _bad("not a file record")
    label, text, digest = v.get("label"), v.get("text"), v.get("digest")
    if type(label) is not str or type(text) is not str or digest != _text_digest(text):
        raise _bad("text and digest differ")
    starts: list[int] = v.get("starts")  # type: ignore[assignment]
    lines: list[int] = v.get("lines")  # type: ignore[assignment]
    cols: list[int] = v.get("cols")  # type: ignore[assignment]
    raw: list[Any] = v.get("decls")  # type: ignore[assignment]
    for col in (starts, lines, cols, raw):
        if type(col) is not list or len(col) != len(raw or ()):
            raise _bad("declaration tables differ")
    for col in (starts, lines, cols):
        if col and set(map(type, col)) != _INT:
            raise _bad("not a position")
    decls: list[Decl] = []
    prev = -1
    for start, r in zip(starts, raw, strict=True):
        if type(r) is not list or len(r) != 5 or r[0] not in KINDS:
            raise _bad("not a declaration")
        kind, name, fp, name_rel, info = r
        if type(name) is not str or type(fp) is not str or start <= prev:
            raise _bad("not a declaration")
        if not text.startswith(kind, start):
            raise _bad("a declaration out of place")
        if name_rel is not None and (
            type(name_rel) is not list or len(name_rel) != 6 or set(map(type, name_rel)) != _INT
        ):
            raise _bad("not a span")
        if type(info) is not list or len(info) != 4 or type(info[0]) is not int:
            raise _bad("not a declaration")
        if type(info[1]) is not str or type(info[2]) is not str:
            raise _bad("not a declaration")
        rel: Any = tuple(name_rel) if name_rel is not None else None
        info_ = DeclInfo(info[0], info[1], info[2], tuple(_strs(info[3])))
        decls.append(Decl(kind, name, fp, rel, info_))
        prev = start
    units = v.get("units")
    if type(units) is not list:
        raise _bad("not a file record")
    return FileDecls(label, text, decls, starts, lines, cols), units


# -- the inputs of a compilation ------------------------------------------------------------------


def _discovery(path: Path) -> list[Any]:
    """What finding the entry file looked at (storyc.lang.loader.find_entry)."""
    if path.is_file():
        return ["file"]
    if not path.is_dir():
        return ["none"]
    if (path / "main.story").is_file():
        return ["main"]
    out: list[Any] = ["dir"]
    for p in sorted(path.glob("*.story")):
        try:
            out.append([p.name, _text_digest(p.read_text("utf-8", errors="replace"))])
        except OSError:
            out.append([p.name, None])
    return out


def file_value(path: str, digests: DigestCache, folders: dict[str, str] | None = None) -> str:
    """What a file is for a compilation: its size and digest, or that it is not there
    (the same spelling as the engine's dependencies `f:PATH`). `folders`: see
    `where_value`."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return "-"
    if not stat.S_ISREG(st.st_mode):
        return "not-a-file"
    try:
        return f"{st.st_size}:{digests.digest(path, st)}{where_value(path, folders)}"
    except (OSError, ValueError):
        return "unreadable"


@dataclass
class Inputs:
    """Everything a compilation was made from, besides storyc itself."""

    path: str
    target: str | None
    code: str
    discovery: list[Any]
    reads: dict[str, bool]  # story files the loader tried, and whether it could read them
    texts: dict[str, str]  # story file -> fingerprint of its text
    files: dict[str, str]  # every other file it read -> `file_value`


def _inputs_in(v: Any) -> Inputs:
    if type(v) is not dict:
        raise _bad("not inputs")
    reads = v.get("reads")
    if type(reads) is not dict or (reads and set(map(type, reads.values())) != {bool}):
        raise _bad("not inputs")
    path, target, code, discovery = (
        v.get("path"),
        v.get("target"),
        v.get("code"),
        v.get("discovery"),
    )
    if type(path) is not str or type(code) is not str or type(discovery) is not list:
        raise _bad("not inputs")
    if target is not None and type(target) is not str:
        raise _bad("not inputs")
    return Inputs(
        path, target, code, discovery, reads, _str_map(v.get("texts")), _str_map(v.get("files"))
    )


def _current_texts(inputs: Inputs) -> dict[str, str] | None:
    """The story files' texts now, if each is as the inputs say; else None."""
    texts: dict[str, str] = {}
    for path, ok in inputs.reads.items():
        if not ok:
            if os.path.exists(path):
                return None  # a file that could not be read is there now
            continue
        try:
            text = read_regular(path, MAX_STORY_BYTES).decode("utf-8").removeprefix("\ufeff")
        except (OSError, UnicodeDecodeError):
            return None
        if _story_value(path, text) != inputs.texts.get(path):
            return None
        texts[path] = text
    return texts


# -- a compilation read back ------------------------------------------------------------------

_UNSET: Any = object()


class StoredCompilation(Compilation):
    """The last compilation, read back because nothing it was made from changed. Its parts
    are read when first asked for: `storyc check` needs the printed text and the counts,
    not ten thousand requests."""

    def __init__(
        self,
        sources: SourceMap,
        facts: dict[str, Any],
        rendered: str | None,
        read: Callable[[str], Any],
        make_model: Callable[[], Any],
        recompile: Callable[[], Compilation],
        folder: Path,
    ) -> None:
        self._facts = facts
        self._read = read
        self._dir = folder
        self._make_model = make_model
        self._recompile = recompile
        self._fresh: Compilation | None = None
        self._parts: dict[str, Any] = {}
        if rendered is not None:
            self.__dict__["_rendered"] = {False: rendered}
        # Compilation.__init__ would set every field: these are read on demand instead
        self.sources = sources
        self.found = bool(facts["found"])

    def __copy__(self) -> StoredCompilation:
        new = StoredCompilation.__new__(StoredCompilation)
        new.__dict__.update(self.__dict__)
        new._parts = dict(self._parts)  # a narrowed copy must not change this one
        return new

    def _result(self) -> dict[str, Any]:
        if "result" not in self._parts:
            doc = self._read("result.json")
            if type(doc) is not dict or doc.get("id") != self._facts["id"]:
                raise Damaged("the result is gone")
            self._parts["result"] = doc
        return self._parts["result"]  # type: ignore[no-any-return]

    def _part(self, name: str, parse: Callable[[Any], Any]) -> Any:
        if name not in self._parts:
            try:
                self._parts[name] = parse(self._result()[_RESULT_KEYS.get(name, name)])
            except (Damaged, KeyError, TypeError, ValueError):
                # a record damaged (or replaced) since `answer` read the index: a miss
                again = getattr(self._again(), name)
                self._parts[name] = again() if callable(again) else again
        return self._parts[name]

    def _again(self) -> Compilation:
        if self._fresh is None:
            self._fresh = self._recompile()
        return self._fresh

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self._part("diagnostics", _all_diags_in)  # type: ignore[no-any-return]

    @diagnostics.setter
    def diagnostics(self, value: list[Diagnostic]) -> None:
        self._parts["diagnostics"] = value

    @property
    def order(self) -> list[str]:
        return self._part("order", _strs)  # type: ignore[no-any-return]

    @order.setter
    def order(self, value: list[str]) -> None:
        self._parts["order"] = value

    @property
    def selected(self) -> list[str]:
        return self._part("selected", _strs)  # type: ignore[no-any-return]

    @selected.setter
    def selected(self, value: list[str]) -> None:
        self._parts["selected"] = value

    @property
    def blocked(self) -> dict[str, str]:
        return self._part("blocked", _str_map)  # type: ignore[no-any-return]

    @blocked.setter
    def blocked(self, value: dict[str, str]) -> None:
        self._parts["blocked"] = value

    @property
    def broken(self) -> dict[str, str]:
        return self._part("broken", _str_map)  # type: ignore[no-any-return]

    @broken.setter
    def broken(self, value: dict[str, str]) -> None:
        self._parts["broken"] = value

    @property
    def requests(self) -> dict[str, Request]:
        return self._part("requests", lambda _: self._requests())  # type: ignore[no-any-return]

    @requests.setter
    def requests(self, value: dict[str, Request]) -> None:
        self._parts["requests"] = value

    def _requests(self) -> dict[str, Request]:
        names = _strs(self._result()["requests"])
        found: dict[str, Request] = {}
        records = self._result()["records"]
        if type(records) is not list:
            raise _bad("not a list of records")
        for entry in records:
            if type(entry) is not list or len(entry) != 2 or not all(map(_is_str, entry)):
                raise _bad("not a record")
            try:
                raw = read_regular(self._dir / _record_file(entry[0]), _MAX_RECORD)
            except (OSError, RecursionError) as exc:
                raise Damaged("a request record is gone") from exc
            if _bytes_digest(raw) != entry[1]:
                raise Damaged("a request record of another compilation")
            found.update(_requests_in(raw))
        if not set(names) <= set(found):
            raise Damaged("a request record is gone")
        return {n: found[n] for n in names}

    @property
    def project(self) -> Any:
        if "project" not in self._parts:
            self._parts["project"] = self._make_model()
        return self._parts["project"]

    @project.setter
    def project(self, value: Any) -> None:
        self._parts["project"] = value

    @property
    def graph(self) -> Any:
        from storyc.check import graph as graph_mod

        project = self.project
        return graph_mod.build(project) if project is not None else None

    @graph.setter
    def graph(self, value: Any) -> None:
        self._parts["graph"] = value

    @property
    def summary(self) -> Summary | None:
        if "summary" not in self._parts:
            self._parts["summary"] = _summary_in(self._facts["summary"])
        return self._parts["summary"]  # type: ignore[no-any-return]

    def ready(self) -> int:
        return int(self._facts["ready"])

    def cut_facts(self) -> dict[str, dict[str, Any]]:
        return self._part("cut_facts", _cut_facts_in)  # type: ignore[no-any-return]

    def shown(self) -> list[Diagnostic]:
        if "diagnostics" in self._parts:
            return [d for d in self.diagnostics if d.severity is not Severity.NOTE]
        return self._part("shown", diags_in)  # type: ignore[no-any-return]

    @property
    def has_errors(self) -> bool:
        return int(self._facts["errors"]) > 0

    def counts(self) -> tuple[int, int, int]:
        f = self._facts
        return int(f["errors"]), int(f["warnings"]), int(f["notes"])


_RESULT_KEYS = {"cut_facts": "cuts"}  # a part's key in result.json, when not its name
_NUMBER = (int, float)


def _cut_facts_in(v: Any) -> dict[str, dict[str, Any]]:
    if type(v) is not dict:
        raise _bad("not cuts")
    for fact in v.values():
        if type(fact) is not dict or type(fact.get("clips")) is not list:
            raise _bad("not a cut")
        for c in fact["clips"]:
            if type(c) is not list or len(c) != 5 or type(c[0]) is not str:
                raise _bad("not a clip")
            if not all(x is None or type(x) in _NUMBER for x in c[1:]) or c[3] is None:
                raise _bad("not a clip")
        aspect, ext = fact.get("aspect"), fact.get("extent")
        if aspect is not None and type(aspect) is not str:
            raise _bad("not a cut")
        if ext is not None and (
            type(ext) is not list
            or len(ext) != 3
            or type(ext[0]) is not str
            or set(map(type, ext[1:])) != _INT
        ):
            raise _bad("not a cut")
    return v


def _summary_out(s: Summary | None) -> Any:
    if s is None:
        return None
    return [s.name, s.root, s.entry, list(s.files), list(s.scenes), s.settings, list(s.local_files)]


def _summary_in(v: Any) -> Summary | None:
    if v is None:
        return None
    if type(v) is not list or len(v) != 7:
        raise _bad("not a summary")
    name, root, entry, files, scenes, settings, local = v
    if type(name) is not str or type(root) is not str or type(entry) is not str:
        raise _bad("not a summary")
    if type(settings) is not dict or not all(
        x is None or type(x) in (str, int, float, bool) for x in settings.values()
    ):
        raise _bad("a setting that is not a plain value")
    return Summary(
        name, root, entry, tuple(_strs(files)), tuple(_strs(scenes)), settings, tuple(_strs(local))
    )


# -- the state directory ---------------------------------------------------------------------


class CompiledState:
    """One project's compiled state (for one project path and target override)."""

    def __init__(self, root: Path, path: Path, target: str | None, digests: DigestCache) -> None:
        self.root = root
        self.path = path
        self.target = target
        self.digests = digests
        self.dir = state_dir(root, path, target)
        self._index: dict[str, Any] | None = None
        self._code: str | None = None

    def _code_sig(self) -> str:
        if self._code is None:
            self._code = code_signature()
        return self._code

    def _read(self, name: str) -> Any:
        try:
            # never blocking on a FIFO planted there (as `background.wait`)
            return json.loads(read_regular(self.dir / name, _MAX_RECORD))
        except (OSError, ValueError, RecursionError):
            return None

    def _write(self, name: str, doc: Any) -> None:
        data = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )
        atomic_write(self.dir / name, data, durable=False)

    def _index_doc(self) -> dict[str, Any] | None:
        """index.json if this storyc wrote it, for this path and target."""
        if self._index is None:
            d = self._read("index.json")
            try:
                if (
                    type(d) is not dict
                    or d.get("format") != FORMAT
                    or d.get("storyc") != __version__
                ):
                    return None
                inputs = _inputs_in(d.get("inputs"))
                if (
                    inputs.path != os.path.realpath(self.path)
                    or inputs.target != self.target
                    or inputs.code != self._code_sig()
                ):
                    return None
                d["inputs"] = inputs
                _str_map(d.get("labels"))
                self._index = d
            except Damaged:
                return None
        return self._index

    # -- the last compilation, when nothing changed ----------------------------------------

    def answer(self) -> Compilation | None:
        """The last compilation, if every input is as it was then; else None."""
        d = self._index_doc()
        if d is None or type(d.get("facts")) is not dict or d.get("builtin_targets") is not True:
            return None
        inputs: Inputs = d["inputs"]
        # a caller that registered targets of its own compiles differently (storyc's own
        # are its code, which the code signature covers)
        if "storyc.targets" in sys.modules and _extra_targets():
            return None
        if _discovery(self.path) != inputs.discovery:
            return None
        texts = _current_texts(inputs)
        if texts is None:
            return None
        folders: dict[str, str] = {}
        for path, value in inputs.files.items():
            if file_value(path, self.digests, folders) != value:
                return None
        facts = d["facts"]
        if not all(type(facts.get(k)) is int for k in ("errors", "warnings", "notes", "ready")):
            return None
        labels: dict[str, str] = d["labels"]
        rendered = None
        try:
            raw = read_regular(self.dir / "rendered.txt", _MAX_RECORD).decode("utf-8")
            head, _, rest = raw.partition("\n")
            rendered = rest if head == facts.get("id") else None
        except (OSError, UnicodeDecodeError):
            pass
        sources = SourceMap({labels[p]: t for p, t in texts.items() if p in labels})
        comp = StoredCompilation(
            sources, facts, rendered, self._read, self._model(texts), self._recompile, self.dir
        )
        try:  # what every command reads; the rest waits until asked for
            _ = comp.summary
        except (Damaged, KeyError, TypeError, ValueError):
            return None
        return comp

    def _recompile(self) -> Compilation:
        """The same compilation, from the stored units (or compiled whole if need be)."""
        return self.engine().update()

    def _model(self, texts: dict[str, str]) -> Callable[[], Any]:
        path, digests = self.path, self.digests

        def make() -> Any:
            from storyc.compiler import frontend

            return frontend(path, digests=digests, overlays=texts)[0]

        return make

    # -- an engine that remembers ------------------------------------------------------------

    def cold(self) -> bool:
        """Whether there is no state to start from (an engine would compile everything)."""
        return self._index_doc() is None

    def engine(self) -> Engine:
        """An engine holding the stored declarations and scenes (a fresh one without)."""
        from storyc.compiler.incremental import Engine

        engine = Engine(self.path, target=self.target, digests=self.digests)
        d = self._index_doc()
        if d is None or d.get("registry") != engine.registry:
            return engine
        inputs: Inputs = d["inputs"]
        labels: dict[str, str] = d["labels"]
        values: dict[str, str] = {}
        q_digests: dict[str, Any] = {}
        for path, ok in inputs.reads.items():
            label = labels.get(path)
            if not ok or label is None:
                continue
            try:
                doc = self._read(_record_name(path, "f"))
                fd, raw_units = _file_in(doc)
                if fd.label != label:
                    continue
                units = [_unit_in(u, label) for u in raw_units]
                q_digest, q_sig = doc.get("q"), None
                try:
                    raw, st = read_regular_stat(self.dir / _record_name(path, "q"), _MAX_RECORD)
                    q_sig = sig_of(st)
                    # another save's q- record beside this f- record: lowered again
                    requests = _requests_in(raw) if _bytes_digest(raw) == q_digest else {}
                except (OSError, ValueError, RecursionError):
                    requests = {}
                for u in units:
                    u._req = requests.get(u.scene)
            except (Damaged, KeyError, TypeError, ValueError, IndexError):
                continue  # this file is parsed and compiled again
            engine.files[path] = fd
            q_digests[path] = (q_digest, q_sig)
            for u in units:
                if u.low is not None and u.ok and u._req is None:
                    continue  # its request went missing: lower it again
                # units that disagree on what something was cannot both be current
                if any(values.get(k, v) != v for k, v in u.deps.items()):
                    continue
                values.update(u.deps)
                engine.keep(u)
        by_label = self._by_label(engine)
        engine.saved = {
            p: (self._signature(engine, p, by_label), *q_digests[p]) for p in engine.files
        }
        return engine

    @staticmethod
    def _by_label(engine: Engine) -> dict[str, list[Unit]]:
        """Each file's units, by label: one pass over the units (a pass per file was 20
        passes over 10,000 units)."""
        out: dict[str, list[Unit]] = {}
        for u in engine.units.values():
            out.setdefault(u.label, []).append(u)
        return out

    @staticmethod
    def _signature(engine: Engine, path: str, by_label: dict[str, list[Unit]]) -> Any:
        fd = engine.files.get(path)
        if fd is None:
            return None
        return (id(fd), tuple(sorted((u.scene, u.version) for u in by_label.get(fd.label, ()))))

    def save(self, engine: Engine, comp: Compilation, *, result: bool = True) -> None:
        """Write what changed since the engine was restored or last saved. Best effort: a
        state that cannot be written only makes the next command slower."""
        if engine.overlays or engine.index is None or not comp.found:
            return
        was_enabled = gc.isenabled()
        gc.disable()  # many small objects, no cycles (as in compile_project)
        try:
            with contextlib.suppress(OSError, TypeError, ValueError):
                self._save(engine, comp, result)
        finally:
            if was_enabled:
                gc.enable()

    def _save(self, engine: Engine, comp: Compilation, result: bool) -> None:
        index = engine.index
        assert index is not None
        by_label = self._by_label(engine)
        records: list[list[str]] = []  # [q- record, digest of its bytes]
        for path in index.files:
            fd = engine.files[path]
            if fd.decls is None:
                continue
            sig = self._signature(engine, path, by_label)
            prior = engine.saved.get(path)
            q_path = self.dir / _record_name(path, "q")
            # written already, and still the q- record written then (another command
            # saving meanwhile replaces both records: they are written again)
            if (
                prior is not None
                and prior[0] == sig
                and type(prior[1]) is str
                and prior[2] is not None
                and stat_sig(q_path) == prior[2]
            ):
                records.append([q_path.name, prior[1]])
                continue
            units = by_label.get(fd.label, [])
            reqs = [r for u in units if (r := u.req()) is not None]
            raw = _requests_out(reqs)
            q_digest = _bytes_digest(raw)
            self._write(_record_name(path, "f"), {**_file_out(fd, units), "q": q_digest})
            atomic_write(q_path, raw, durable=False)
            engine.saved[path] = (sig, q_digest, stat_sig(q_path))
            records.append([q_path.name, q_digest])
        files = {d[2:]: v for d, v in engine.values.items() if d.startswith("f:")}
        if engine.shell is not None:
            files.update({d[2:]: v for d, v in engine.shell.deps.items() if d.startswith("f:")})
        texts = {p: _story_value(p, engine.files[p].text) for p, ok in engine.reads.items() if ok}
        doc: dict[str, Any] = {
            "format": FORMAT,
            "storyc": __version__,
            "registry": engine.registry,
            "builtin_targets": _builtin_targets(),
            "inputs": vars(
                Inputs(
                    os.path.realpath(self.path),
                    self.target,
                    self._code_sig(),
                    _discovery(self.path),
                    dict(engine.reads),
                    texts,
                    files,
                )
            ),
            "labels": {p: engine.files[p].label for p in index.files},
            "facts": None,
        }
        if result:
            ident = os.urandom(8).hex()  # ties result.json and rendered.txt to this index
            errors, warnings, notes = comp.counts()
            self._write(
                "result.json",
                {
                    "id": ident,
                    # every diagnostic only when this command had them all anyway: what
                    # commands print (`shown`) is enough to answer them next time, and
                    # decoding a note per scene is what an edit must not cost
                    "diagnostics": (
                        [diag_out(x) for x in comp.diagnostics] if _has_all(comp) else None
                    ),
                    "shown": [diag_out(x) for x in comp.shown()],
                    "order": comp.order,
                    "selected": comp.selected,
                    "blocked": comp.blocked,
                    "broken": comp.broken,
                    "requests": list(comp.requests),
                    "cuts": comp.cut_facts(),
                    "records": records,
                },
            )
            atomic_write(
                self.dir / "rendered.txt",
                f"{ident}\n{comp.rendered(notes=False)}".encode("utf-8", "surrogatepass"),
                durable=False,
            )
            doc["facts"] = {
                "summary": _summary_out(comp.summary),
                "ready": len(comp.requests),
                "id": ident,
                "found": comp.found,
                "errors": errors,
                "warnings": warnings,
                "notes": notes,
            }
        self._write("index.json", doc)
        self._index = None


def _record_name(abs_path: str, kind: str) -> str:
    return f"{kind}-{_text_digest(abs_path)[:20]}.json"


_RECORD = re.compile(r"q-[0-9a-f]{20}\.json")


def _record_file(name: str) -> str:
    """A q- record's name as result.json lists it, checked (never a path elsewhere)."""
    if not _RECORD.fullmatch(name):
        raise _bad("not a record name")
    return name


def _builtin_targets() -> bool:
    return not _extra_targets()


def _extra_targets() -> list[str]:
    from storyc import targets

    return targets.extras()


def _engine_keeps(answer: Compilation, parses: ParseCache) -> bool:
    """Whether an engine would save a state of this compilation: a story it takes apart
    (`Engine._update`: every file found and parsed without an error, no name declared
    twice). Else a state builder would work for nothing, and every next command would
    wait for it before compiling from scratch again."""
    from storyc.compiler.decls import NAMED, kind_of
    from storyc.lang.loader import INCOMPLETE

    if not answer.found or any(d.code in INCOMPLETE for d in answer.diagnostics):
        return False
    names: set[str] = set()
    for result in parses.results():
        if not result.ok or not result.file.complete:
            return False
        for item in result.file.items:
            if kind_of(item) in NAMED:
                name = str(getattr(item, "name", ""))
                if name in names:
                    return False
                names.add(name)
    return True


def compile_with_state(
    path: str | os.PathLike[str],
    *,
    target: str | None = None,
    scenes: list[str] | None = None,
    digests: DigestCache | None = None,
) -> Compilation:
    """`compile_project`, answered from the project's compiled state when nothing changed,
    else recompiling only what did; the state then keeps the result for the next command."""
    from storyc.compiler import compile_project

    p = Path(path).resolve()
    root = p if p.is_dir() else p.parent
    digests = digests if digests is not None else DigestCache()
    if not p.exists() or not (p.is_file() or any(root.glob("*.story"))):
        return compile_project(path, target=target, scenes=scenes, digests=digests)
    was_enabled = gc.isenabled()
    gc.disable()  # reading and writing the state makes many small objects, no cycles
    try:
        state = CompiledState(root, Path(path), target, digests)
        background.wait(state.dir)  # a state another command is making: wait for it
        if warm.enabled():
            # a long-lived process (storyc daemon): the engine of the last command, which
            # reads every story file and stats every asset again on update; the state on
            # disk is brought up to date once the answer is out
            engine = warm.held(
                ("engine", str(root), str(p), target),
                state.engine,
                lambda e: e.digests is digests,
            )
            engine.settle = True  # the daemon settles after each command
            comp = engine.update(scenes=scenes)
            warm.later(
                lambda: state.save(engine, comp, result=scenes is None),
                ("compiled-state", str(root), str(p), target),
            )
            return comp
        if scenes is None:
            hit = state.answer()
            if hit is not None:
                return hit
        if (
            scenes is None
            and state.cold()
            and background.possible()
            and background.story_bytes(root) >= background.MIN_BYTES
        ):
            # answered by the whole-program compiler; the state made by a builder from
            # its parses (storyc.compiler.background)
            from storyc.lang.loader import ParseCache

            parses = ParseCache()
            answer = compile_project(path, target=target, digests=digests, parse_cache=parses)
            if not _engine_keeps(answer, parses):
                return answer  # nothing a builder could save: no state, as an engine's

            def build() -> None:
                engine = state.engine()
                engine.parsed = parses
                state.save(engine, engine.update(), result=True)

            forked = background.fork_builder(state.dir, build)
            if forked is False:
                build()  # no fork here: made in the command
            return answer
        engine = state.engine()
        comp = engine.update(scenes=scenes)
        state.save(engine, comp, result=scenes is None)
        return comp
    finally:
        if was_enabled:
            gc.enable()
