"""`storyc.lock`: what was rendered from what, in a file meant for git.

Stage: execute (written after each finished scene) and plan (read to explain what
changed). In/out: `LockFile` ↔ TOML text. I/O: `load` reads the file, `save` writes it
atomically (temp + fsync + `os.replace`).

Paid renders and previews live side by side: `[scenes.<name>]` records what a paid
backend rendered (with the provider's task id, URL and the output's digest, everything
a teammate needs to fetch the clip again without paying), `[previews.<name>]` what the
free preview backend rendered. A preview build never touches a `[scenes.…]` table.

The writer is our own and deterministic: scenes sorted by name, one table per scene
with its sub-tables right after it, a blank line between scenes, keys in
a fixed order, multi-line prompts as TOML multi-line strings. Branches that touch
different scenes therefore change disjoint runs of lines and merge cleanly. Reading is
stdlib `tomllib`; a file that does not parse (a merge-conflict marker, a hand edit)
raises `LockFileError` naming the line. Never holds the API key or an absolute path:
inputs are recorded by project-relative path and content digest.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from storyc.base import warm
from storyc.base.fsio import atomic_write
from storyc.base.hashing import is_digest

LOCK_NAME = "storyc.lock"
PREVIEW = "preview"  # the backend whose entries live under [previews.…]
VERSION = 1
HEADER = "# storyc.lock: what was rendered from what. Written by storyc; commit it.\n"
_BARE = re.compile(r"[A-Za-z0-9_-]+")
_CONFLICT = re.compile(r"^(<{7}|={7}|>{7}|\|{7})( |$)")


class LockFileError(Exception):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"{LOCK_NAME}:{line}: {message}" if line else f"{LOCK_NAME}: {message}")
        self.line = line
        self.detail = message
        self.where: tuple[str, str] | None = None  # (table, scene) whose table is wrong


@dataclass
class TakeEntry:
    take: int
    key: str
    output: str | None = None  # digest of the output video
    task_id: str | None = None
    url: str | None = None
    duration: float | None = None
    cost: Decimal | None = None  # USD; 0 for a preview


@dataclass
class SceneEntry:
    name: str
    backend: str
    target: str
    schema: str
    app: str
    prompt: str
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # keys.key_inputs
    settings: dict[str, Any] = field(default_factory=dict)
    takes: list[TakeEntry] = field(default_factory=list)
    picked: int = 1
    provider: str | None = None  # the origin of a provider other than the default one

    def take(self, n: int) -> TakeEntry | None:
        return next((t for t in self.takes if t.take == n), None)

    def picked_take(self) -> TakeEntry | None:
        """The take the user picked, or None when the entry does not hold it: an entry
        written while a sibling take failed or is of unknown fate keeps the user's pick
        (`ProjectIO.record_takes`), and no other take may stand in for it (a film, or
        a scene that uses this one, would show or be paid for from a take nobody picked)."""
        return self.take(self.picked)


@dataclass
class LockFile:
    """The lock file's two tables. A lock kept by a long-lived process (storyc daemon),
    whose builds replace entries and never change one in place, writes each unchanged
    entry from the text it made of that very entry last time (`dumps`)."""

    scenes: dict[str, SceneEntry] = field(default_factory=dict)  # paid renders
    previews: dict[str, SceneEntry] = field(default_factory=dict)  # preview renders
    # id(entry) -> (entry, table, its text): only entries still in the tables are kept
    _text: dict[int, tuple[SceneEntry, str, str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def table(self, backend: str) -> dict[str, SceneEntry]:
        """The entries of `backend`: previews for the preview backend, else paid renders."""
        return self.previews if backend == PREVIEW else self.scenes

    @staticmethod
    def path_for(project_root: str | os.PathLike[str]) -> Path:
        return Path(project_root) / LOCK_NAME

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LockFile:
        """Read a lock file; a missing file is an empty lock."""
        try:
            text = Path(path).read_text("utf-8")
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError) as exc:
            raise LockFileError(f"cannot read: {exc}") from None
        return cls.loads(text)

    @classmethod
    def loads(cls, text: str) -> LockFile:
        conflict = _conflict_line(text)
        if conflict is not None:
            raise LockFileError(
                "unresolved merge conflict marker; keep each side's [scenes.…] table "
                "(or delete the conflicting scene's table: it is rebuilt or re-fetched)",
                conflict,
            )
        fast = _canonical(text)
        if fast is not None:
            return fast
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            marker = next(
                (i for i, line in enumerate(text.splitlines(), 1) if _CONFLICT.match(line)), None
            )
            if marker is not None:  # half a conflict (the rest was edited away)
                raise LockFileError("merge conflict marker; resolve the conflict", marker) from None
            m = re.search(r"line (\d+)", str(exc))
            raise LockFileError(f"not valid TOML: {exc}", int(m.group(1)) if m else None) from None
        try:
            return cls.from_data(raw)
        except LockFileError as exc:
            # Finding the line costs a parse per header: only for the error message.
            line = _header_lines(text).get(exc.where) if exc.where is not None else None
            raise LockFileError(exc.detail, line) from None

    @classmethod
    def from_data(cls, raw: Any) -> LockFile:
        """A lock file from its plain data (what TOML gives, or `to_data`), every field
        checked as when it is read from the file."""
        if not isinstance(raw, dict):
            raise LockFileError("not a table")
        version = raw.get("version", VERSION)
        if version != VERSION:
            raise LockFileError(f"written by another storyc (lock version {version!r})")
        lock = cls()
        for table in ("scenes", "previews"):
            entries = raw.get(table, {})
            if not isinstance(entries, dict):
                raise LockFileError(f"`{table}` must be a table")
            for name, data in entries.items():
                try:
                    entry = _scene(name, data)
                except LockFileError as exc:
                    exc.where = (table, name)
                    raise
                # a lock written before previews had their own tables kept them in scenes
                if table == "previews" or entry.backend == PREVIEW:
                    lock.previews.setdefault(name, entry)
                else:
                    lock.scenes[name] = entry
        return lock

    def to_data(self) -> dict[str, Any]:
        """Plain data (JSON-safe: costs as strings) that `from_data` reads back."""
        return {
            "version": VERSION,
            "scenes": _table_data(self.scenes),
            "previews": _table_data(self.previews),
        }

    def dumps(self) -> str:
        parts = [HEADER, f"version = {VERSION}\n"]
        paid = {n: e for n, e in self.scenes.items() if e.backend != PREVIEW}
        previews = dict(self.previews)
        for n, e in self.scenes.items():  # put there by hand: written where it belongs
            if e.backend == PREVIEW:
                previews.setdefault(n, e)
        # only a long-lived process keeps the text: there the lock is only ever changed
        # by the build, which replaces entries (storyc pick and tests change one in place)
        keep = warm.enabled()
        old, new = self._text if keep else {}, {}
        for table, entries in (("scenes", paid), ("previews", previews)):
            for name in sorted(entries):
                e = entries[name]
                hit = old.get(id(e))
                if hit is not None and hit[0] is e and hit[1] == table:
                    text = hit[2]
                else:
                    text = _dump_scene(e, table)
                if keep:
                    new[id(e)] = (e, table, text)
                parts.append("\n" + text)
        self._text = new
        return "".join(parts)

    def save(self, path: str | os.PathLike[str]) -> None:
        atomic_write(Path(path), self.dumps().encode("utf-8"))


# -- reading ------------------------------------------------------------------


def _conflict_line(text: str) -> int | None:
    """The line of the first `<<<<<<<` of a whole conflict (`<<<<<<<`, `=======`,
    `>>>>>>>` in that order), so a prompt that merely contains one such line is not one."""
    expect, first = 0, None
    for i, line in enumerate(text.splitlines(), 1):
        m = _CONFLICT.match(line)
        if m is None:
            continue
        kind = "<=>".index(m.group(1)[0]) if m.group(1)[0] in "<=>" else -1
        if kind == 0 and expect == 0:
            expect, first = 1, i
        elif kind == expect and expect > 0:
            expect += 1
            if expect == 3:
                return first
    return None


# -- reading what storyc wrote, fast ---------------------------------------------------------
# Python's TOML reader takes seconds for a 10,000-scene lock (6 MB), and a lock that changed
# under the build cache (a clone, a pull, a merge) is read whole. What storyc itself wrote has
# one layout (`dumps`): read that layout directly, then write the result again and accept it
# only if that gives the very same text — so what this returns is what the TOML reader would
# have read (`dumps` is one-to-one on what TOML can hold). Anything else — a hand edit, another
# writer's spacing, an error to report with its line — goes to the TOML reader.

_TABLE = re.compile(
    r"\[(scenes|previews)\.([A-Za-z0-9_-]+|\"(?:[^\"\\]|\\.)*\")(\.settings|\.inputs)?\]"
)
_TAKES = re.compile(r"\[\[(scenes|previews)\.([A-Za-z0-9_-]+|\"(?:[^\"\\]|\\.)*\")\.takes\]\]")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_DECODE = json.JSONDecoder(strict=True)
# `key = "text"` or `key = 12` on a line of its own (the string without raw control
# characters: JSON and TOML escape alike there)
_SIMPLE = re.compile(
    r"([A-Za-z0-9_-]+) = (?:(-?(?:0|[1-9][0-9]*))"
    r'|"([^"\\\x00-\x1f\x7f]*(?:\\.[^"\\\x00-\x1f\x7f]*)*)")\n'
)
# JSON's string reader: a basic TOML string as storyc writes it is a JSON string
_SCANSTRING: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


def _scan(text: str, pos: int) -> tuple[str, int]:
    return _SCANSTRING(text, pos, True)  # strict: no raw control character


class _NotCanonical(Exception):
    pass


def _canonical(text: str) -> LockFile | None:
    """The lock in `text` if storyc wrote it as it is (see above), else None."""
    try:
        raw = _canonical_data(text)
        lock = LockFile.from_data(raw)
    except (
        _NotCanonical,
        LockFileError,
        ValueError,
        IndexError,
        KeyError,
        TypeError,
        RecursionError,
    ):
        return None
    return lock if lock.dumps() == text else None


def _canonical_data(text: str) -> dict[str, Any]:
    if not text.startswith(HEADER):
        raise _NotCanonical
    pos = len(HEADER)
    head = f"version = {VERSION}\n"
    if not text.startswith(head, pos):
        raise _NotCanonical
    pos += len(head)
    tables: dict[str, dict[str, Any]] = {"scenes": {}, "previews": {}}
    current: dict[str, Any] = {}  # before any table: dropped, so the check below fails
    end = len(text)
    simple, decode = _SIMPLE.match, _DECODE.decode
    while pos < end:
        m = simple(text, pos)
        if m is not None:  # most lines: `key = "text"` or `key = 12`
            key, number, word = m.groups()
            if key in current:
                raise _NotCanonical
            if number is not None:
                current[key] = int(number)
            else:
                current[key] = word if "\\" not in word else decode(f'"{word}"')
            pos = m.end()
            continue
        ch = text[pos]
        if ch == "\n":
            pos += 1
            continue
        if ch == "[":
            if text.startswith("[[", pos):
                m = _TAKES.match(text, pos)
                if m is None:
                    raise _NotCanonical
                scene = tables[m.group(1)].setdefault(_key_of(m.group(2)), {})
                current = {}
                scene.setdefault("takes", []).append(current)
            else:
                m = _TABLE.match(text, pos)
                if m is None:
                    raise _NotCanonical
                scene = tables[m.group(1)].setdefault(_key_of(m.group(2)), {})
                current = scene if m.group(3) is None else scene.setdefault(m.group(3)[1:], {})
            pos = m.end()
        else:
            key, pos = _read_key(text, pos)
            if not text.startswith(" = ", pos):
                raise _NotCanonical
            value, pos = _read_value(text, pos + 3)
            if key in current:
                raise _NotCanonical
            current[key] = value
        if pos >= end or text[pos] != "\n":
            raise _NotCanonical
        pos += 1
    return {"version": VERSION, **tables}


def _key_of(written: str) -> str:
    return _DECODE.decode(written) if written.startswith('"') else written


def _read_key(text: str, pos: int) -> tuple[str, int]:
    if text.startswith('"', pos):
        value, end = _scan(text, pos + 1)
        return value, end
    m = _BARE.match(text, pos)
    if m is None:
        raise _NotCanonical
    return m.group(), m.end()


# a multi-line string's body as a JSON string's: escapes kept, bare quotes, line breaks
# and tabs escaped
_MULTI_BODY = re.compile(r'((?:[^"\\]|\\.|"(?!""))*)"""', re.S)
_MULTI_TO_JSON = re.compile(r'\\.|["\n\t]', re.S)
_JSON_ESCAPES = {'"': '\\"', "\n": "\\n", "\t": "\\t"}


def _to_json(m: re.Match[str]) -> str:
    return _JSON_ESCAPES.get(m.group(), m.group())


def _after_comma(text: str, pos: int, more: bool) -> int:
    """Where the next item of an array or inline table starts: after `, ` but the first."""
    if not more:
        return pos
    if not text.startswith(", ", pos):
        raise _NotCanonical
    return pos + 2


def _read_value(text: str, pos: int) -> tuple[Any, int]:
    if text.startswith('"""\n', pos):
        m = _MULTI_BODY.match(text, pos + 4)  # escapes taken as pairs: `\\"` ends nothing
        if m is None:
            raise _NotCanonical
        body = _MULTI_TO_JSON.sub(_to_json, m.group(1))
        return _DECODE.decode('"' + body + '"'), m.end()
    ch = text[pos : pos + 1]
    if ch == '"':
        value, end = _scan(text, pos + 1)
        return value, end
    if ch == "[":
        items: list[Any] = []
        pos += 1
        while not text.startswith("]", pos):
            item, pos = _read_value(text, _after_comma(text, pos, bool(items)))
            items.append(item)
        return items, pos + 1
    if ch == "{":
        table: dict[str, Any] = {}
        pos += 1
        while not text.startswith("}", pos):
            key, pos = _read_key(text, _after_comma(text, pos, bool(table)))
            if not text.startswith(" = ", pos) or key in table:
                raise _NotCanonical
            table[key], pos = _read_value(text, pos + 3)
        return table, pos + 1
    if text.startswith("true", pos):
        return True, pos + 4
    if text.startswith("false", pos):
        return False, pos + 5
    m = _NUMBER.match(text, pos)
    if m is None:
        raise _NotCanonical
    word = m.group()
    return (float(word) if m.group(1) or m.group(2) else int(word)), m.end()


def _header_lines(text: str) -> dict[tuple[str, str], int]:
    """(table, scene name) → line of its `[scenes.<name>]` or `[previews.<name>]`
    header, for error messages."""
    out: dict[tuple[str, str], int] = {}
    for i, line in enumerate(text.splitlines(), 1):
        for table in ("scenes", "previews"):
            # a hand-edited header may carry a comment: TOML decides what the line names
            if line.startswith(f"[{table}."):
                try:
                    names = list(tomllib.loads(f"{line.strip()}\n")[table])
                except (tomllib.TOMLDecodeError, KeyError):
                    continue
                if len(names) == 1:
                    out.setdefault((table, names[0]), i)
    return out


def _scene(name: str, data: Any) -> SceneEntry:
    def bad(what: str) -> LockFileError:
        return LockFileError(f"scene {name!r}: {what}")

    if not isinstance(data, dict):
        raise bad("must be a table")
    strs = {}
    for k in ("backend", "target", "schema", "app", "prompt"):
        v = data.get(k, "")
        if not isinstance(v, str):
            raise bad(f"`{k}` must be a string")
        strs[k] = v
    inputs = data.get("inputs", {})
    settings = data.get("settings", {})
    if not isinstance(inputs, dict) or not all(isinstance(v, dict) for v in inputs.values()):
        raise bad("`inputs` must be a table of tables")
    if not isinstance(settings, dict):
        raise bad("`settings` must be a table")
    picked = data.get("picked", 1)
    if not _is_int(picked) or picked < 1:
        raise bad("`picked` must be a take number")
    provider = data.get("provider")
    if provider is not None and (not isinstance(provider, str) or not provider):
        raise bad("`provider` must be a provider's address")
    raw_takes = data.get("takes", [])
    if not isinstance(raw_takes, list):
        raise bad("`takes` must be an array of tables ([[scenes.<name>.takes]])")
    takes = []
    for t in raw_takes:
        if not isinstance(t, dict) or not _is_int(t.get("take")) or not is_digest(t.get("key")):
            raise bad("each take needs `take` (a number) and `key` (a digest)")
        try:
            cost = None if t.get("cost") is None else Decimal(str(t["cost"]))
        except InvalidOperation:
            raise bad(f"take {t['take']}: `cost` is not a number") from None
        if cost is not None and not (cost.is_finite() and cost >= 0):
            # a NaN would poison every sum it joins (and refuse every comparison)
            raise bad(f"take {t['take']}: `cost` is not an amount of money")
        output = t.get("output")
        if output is not None and not is_digest(output):
            raise bad(f"take {t['take']}: `output` is not a digest")
        dur = t.get("duration")
        if dur is not None and (
            isinstance(dur, bool)
            or not isinstance(dur, int | float)
            or not (math.isfinite(dur) and dur >= 0)
        ):
            raise bad(f"take {t['take']}: `duration` is not a number of seconds")
        takes.append(
            TakeEntry(
                t["take"],
                t["key"],
                output,
                _opt_str(t.get("task_id")),
                _opt_str(t.get("url")),
                None if dur is None else float(dur),
                cost,
            )
        )
    takes.sort(key=lambda t: t.take)
    return SceneEntry(
        name,
        **strs,
        inputs=inputs,
        settings=settings,
        takes=takes,
        picked=picked,
        provider=provider,
    )


def _is_int(v: Any) -> bool:
    # TOML `true` reads as a Python bool, an int subclass; written back it would be
    # `True`, which no TOML reader accepts.
    return isinstance(v, int) and not isinstance(v, bool)


def _opt_str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


# -- writing ------------------------------------------------------------------


def _key(k: str) -> str:
    return k if _BARE.fullmatch(k) else _basic(k)


# What a basic string must escape (`_escape` says how), and what a multi-line one must: a
# quote only where it would end the string (before another quote, or last). Escaping by
# pattern, not character by character: a 10,000-scene lock is 3 million characters.
_ESC_BASIC = re.compile(r'[\\"\x00-\x1f\x7f]')
_ESC_MULTI = re.compile(r'[\\\x00-\x08\x0b-\x1f\x7f]|"(?="|\Z)')


def _basic(s: str) -> str:
    return '"' + _ESC_BASIC.sub(_escape_match, s) + '"'


def _escape_match(m: re.Match[str]) -> str:
    return _escape(m.group())


def _escape_multi(m: re.Match[str]) -> str:
    ch = m.group()
    return '\\"' if ch == '"' else _escape(ch, multiline=True)


def _escape(ch: str, *, multiline: bool = False) -> str:
    if ch == "\\":
        return "\\\\"
    if ch == '"' and not multiline:
        return '\\"'
    if ch == "\n" and multiline:
        return ch
    if ch == "\t":
        return "\\t" if not multiline else ch
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"\\u{ord(ch):04x}"
    return ch


def _string(s: str) -> str:
    if "\n" not in s:
        return _basic(s)
    # never two quotes in a row, never a quote before the end
    return '"""\n' + _ESC_MULTI.sub(_escape_multi, s) + '"""'


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if v == v and v not in (float("inf"), float("-inf")) else '"nan"'
    if isinstance(v, Decimal):
        return _basic(str(v))
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        items = [f"{_key(str(k))} = {_value(x)}" for k, x in sorted(v.items()) if x is not None]
        return "{" + ", ".join(items) + "}" if items else "{}"
    return _basic(str(v))


def _known(duration: float | None) -> float | None:
    """A take's length as written: a length that is not a number (from a damaged header,
    say) is written as unknown, in the file and in its plain data alike."""
    return float(duration) if duration is not None and math.isfinite(duration) else None


def _dump_scene(s: SceneEntry, table: str) -> str:
    head = f"{table}.{_key(s.name)}"
    lines = [f"[{head}]"]
    for k in ("backend", "target", "schema", "app"):
        lines.append(f"{k} = {_basic(getattr(s, k))}")
    if s.provider is not None:
        lines.append(f"provider = {_basic(s.provider)}")
    lines.append(f"picked = {s.picked}")
    lines.append(f"prompt = {_string(s.prompt)}")
    if s.settings:
        lines.append(f"[{head}.settings]")
        lines += [
            f"{_key(k)} = {_value(v)}" for k, v in sorted(s.settings.items()) if v is not None
        ]
    if s.inputs:
        lines.append(f"[{head}.inputs]")
        lines += [f"{_key(k)} = {_value(v)}" for k, v in sorted(s.inputs.items())]
    for t in sorted(s.takes, key=lambda t: t.take):
        lines.append(f"[[{head}.takes]]")
        lines.append(f"take = {t.take}")
        lines.append(f"key = {_basic(t.key)}")
        for k in ("output", "task_id", "url"):
            v = getattr(t, k)
            if v is not None:
                lines.append(f"{k} = {_basic(v)}")
        duration = _known(t.duration)
        if duration is not None:
            lines.append(f"duration = {_value(duration)}")
        if t.cost is not None:
            lines.append(f"cost = {_basic(str(t.cost))}")
    return "\n".join(lines) + "\n"


def _table_data(entries: dict[str, SceneEntry]) -> dict[str, Any]:
    return {
        name: {
            "backend": e.backend,
            "target": e.target,
            "schema": e.schema,
            "app": e.app,
            "provider": e.provider,
            "prompt": e.prompt,
            "inputs": e.inputs,
            "settings": e.settings,
            "picked": e.picked,
            "takes": [
                {
                    "take": t.take,
                    "key": t.key,
                    "output": t.output,
                    "task_id": t.task_id,
                    "url": t.url,
                    "duration": _known(t.duration),
                    "cost": None if t.cost is None else str(t.cost),
                }
                for t in e.takes
            ],
        }
        for name, e in entries.items()
    }
