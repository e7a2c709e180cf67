"""The hostile-input fuzzer: stories made by mutating every `.story` file in the repository
and by following the grammar, each compiled against properties that must hold for any
input whatsoever. (No tests in this file: `test_hostile_fuzz.py` runs it under hypothesis at
CI size; `tools/fuzz_hostile.py` runs the long version on several processes.)

An input is made from one `random.Random`, so hypothesis (`st.randoms()`) and the long run
(`Random(seed + i)`) drive the same generators, and a failure of the long run is replayed
from its number alone.

The properties (`check`), for every input:
  - compiling never raises and ends within the time limit (no hang);
  - every diagnostic has a documented code and a span inside its file (start <= end, lines
    and columns that exist);
  - rendering the diagnostics and the JSON document works, and neither holds a raw control
    character (nothing from a story may drive the terminal);
  - `compile --json` output is strict JSON (no NaN or Infinity);
  - no request names a file outside the project;
  - compiling twice gives byte-identical output (sometimes: it doubles the cost).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyc.resolve.values import (
    CUT_ENTRY_SETTINGS,
    ELEMENT_SETTINGS,
    PROJECT_SETTINGS,
    SCENE_SETTINGS,
)

ROOT = Path(__file__).resolve().parents[1]
MEDIA = re.compile(r"[\"']([^\"'\s]+\.(?:png|jpe?g|mp4|mov))[\"']", re.I)
FENCE = re.compile(r"^```story([^\n]*)\n(.*?)^```\s*$", re.M | re.S)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_DOCUMENTED = frozenset(
    re.findall(r"\b([EW][0-9]{3})\b", (ROOT / "docs" / "diagnostics.md").read_text("utf-8"))
)


# -- the corpus -------------------------------------------------------------------------


@dataclass
class Seed:
    name: str
    files: dict[str, str]  # project-relative path -> text; "main.story" is the entry


def seeds() -> list[Seed]:
    """Every story in the repository: the examples (with their includes), the test cases and
    the documentation's examples."""
    out: list[Seed] = []
    for main in sorted((ROOT / "examples").glob("*/main.story")):
        files = {
            p.relative_to(main.parent).as_posix(): p.read_text("utf-8")
            for p in main.parent.rglob("*.story")
        }
        out.append(Seed(f"examples/{main.parent.name}", files))
    for main in sorted((ROOT / "tests" / "cases").glob("*/*/main.story")):
        files = {
            p.relative_to(main.parent).as_posix(): p.read_text("utf-8")
            for p in main.parent.rglob("*.story")
        }
        out.append(Seed(main.parent.relative_to(ROOT).as_posix(), files))
    for doc in sorted((ROOT / "docs").glob("*.md")):
        extra: dict[str, str] = {}
        for i, m in enumerate(FENCE.finditer(doc.read_text("utf-8"))):
            attrs = dict(a.split("=", 1) for a in m.group(1).split() if "=" in a)
            if "file" in attrs:
                extra[attrs["file"]] = m.group(2)
                continue
            out.append(Seed(f"docs/{doc.name}#{i}", {**extra, "main.story": m.group(2)}))
    return out


# -- hostile pieces -----------------------------------------------------------------------

NUMBERS = [
    "9" * 4301,
    "1" + "0" * 309 + ".0",
    "-99999999999999999999",
    "100000000",
    "0",
    "-1",
    "12",
    "99999",
    "2.5",
    "0." + "1" * 500,
]
STRINGS = [
    '"../outside.png"',
    '"/etc/passwd"',
    '"https://[oops/a.png"',
    '"http://[1]"',
    '"https://x:99999/a.png"',
    '"https://a b/c.png"',
    '"assets"',
    '"."',
    '""',
    '"a\\"b"',
    '"\\u0000"',
    '"' + "w" * 3000 + '"',
    '"""\n  long\n    text\n  """',
    '"@mei @nobody @image_1 me@example.com"',
    '"{{ x }}"',
    '"{{ undefined_var }}"',
    '"{% for i in range(3) %}{{ i }}{% endfor %}"',
    '"{{ \\"x\\".ljust(1000000000) }}"',
    '"{{ \\"%1000000000d\\" % 1 }}"',
    '"{{ \\"{:>1000000000}\\".format(1) }}"',
    '"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"',
    '"{% set ns = namespace(s=\\"xx\\") %}{% for i in range(60) %}'
    '{% set ns.s = ns.s ~ ns.s %}{% endfor %}"',
    '"{{ \\"\\x1b]0;owned\\x07\\" }}"',
    '"{{ 9 ** 999999 }}"',
    '"{{ [1,2]|random }}"',
    '"{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"',
    '"{{ (((1"',
]
RAW = [
    "\x00",
    "\x1b]0;owned\x07",
    "\x9b",
    "\u202e",
    "\ufeff",
    "\r",
    "\t",
    "$",
    "`",
    "'",
    '"',
    '"""',
    "/*",
    "*/",
    "//",
    "#",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "=",
    ",",
    ";",
    ":",
    ".",
    "@",
    "[" * 70,
    "{" * 70,
    "a" * 20000 + '" 5',
    "x " * 300,
    "\n" * 50,
    "é漢字🎬",
    "scene",
    "include",
    "project",
    "let",
    "image",
    "video",
    "element",
    "style",
    "defaults",
    "cut",
]
# every setting the language has (so a new one is fuzzed too), and two misspellings
SETTINGS = [
    *dict.fromkeys(
        [*SCENE_SETTINGS, *ELEMENT_SETTINGS, *PROJECT_SETTINGS, *CUT_ENTRY_SETTINGS, "name"]
    ),
    "promt",
    "strat",
]
WORDS = ["a", "b", "mei", "market", "arrival", "intro", "x", "true", "false", "std", "pro"]
VALUES = [
    '"std"',
    '"pro"',
    '"16:9"',
    '"9:16"',
    '"1:1"',
    '"4:3"',
    '"preview"',
    '"inference"',
    '"inference/video-o1@v1"',
    "true",
    "false",
    "5",
    "10",
]


# -- mutation -----------------------------------------------------------------------------


def _fragment(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.3:
        return rng.choice(RAW)
    if pick < 0.5:
        return rng.choice(STRINGS)
    if pick < 0.65:
        return rng.choice(NUMBERS)
    if pick < 0.8:
        return f"{rng.choice(SETTINGS)} = {_value(rng, 2)}"
    return _declaration(rng)


def mutate(text: str, rng: random.Random) -> str:
    """One to four edits of `text`: cut, repeat or move a piece, insert a hostile piece,
    swap a word, or flip a character."""
    for _ in range(rng.randint(1, 4)):
        n = len(text)
        a = rng.randint(0, n)
        b = min(n, a + rng.choice((1, 2, 5, 20, 80, 400)))
        kind = rng.randrange(9)
        if kind == 0:  # cut
            text = text[:a] + text[b:]
        elif kind == 1:  # repeat
            text = text[:b] + text[a:b] * rng.choice((2, 3, 50)) + text[b:]
        elif kind in (2, 3, 4):  # insert something hostile
            text = text[:a] + _fragment(rng) + text[a:]
        elif kind == 5:  # swap two lines
            lines = text.split("\n")
            if len(lines) > 2:
                i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif kind == 6:  # replace a word
            words = list(re.finditer(r"[A-Za-z_]\w*|\d+(?:\.\d+)?|\"[^\"\n]*\"", text))
            if words:
                m = rng.choice(words)
                new = rng.choice(WORDS + SETTINGS + NUMBERS[3:] + VALUES + STRINGS[:12])
                text = text[: m.start()] + new + text[m.end() :]
        elif kind == 7:  # flip a character
            if n:
                i = rng.randrange(n)
                text = (
                    text[:i]
                    + chr(rng.choice((0, 7, 27, 34, 92, 123, 125, 0x85, 0x2028)))
                    + text[i + 1 :]
                )
        else:  # truncate
            text = text[:a]
    return text


# -- grammar-shaped generation ------------------------------------------------------------


def _name(rng: random.Random) -> str:
    return rng.choice(WORDS[:7] + ["s1", "s2", "s3", "scene", "video", "_"])


def _value(rng: random.Random, depth: int) -> str:
    pick = rng.random()
    if pick < 0.25:
        return rng.choice(STRINGS + VALUES)
    if pick < 0.4:
        return rng.choice(NUMBERS)
    if pick < 0.6:
        name = _name(rng)
        tail = rng.choice(
            ["", ".last_frame", ".first_frame", ".frame(2.5)", ".frame(99999)", ".middle", ".frame"]
        )
        return name + tail
    if depth <= 0:
        return '"leaf"'
    if pick < 0.8:
        items = [_value(rng, depth - 1) for _ in range(rng.randint(0, 4))]
        return "[" + ", ".join(items) + rng.choice(["", ","]) + "]"
    settings = " ".join(
        f"{rng.choice(SETTINGS + WORDS)} = {_value(rng, depth - 1)}"
        for _ in range(rng.randint(0, 3))
    )
    return "{ " + settings + " }"


def _body(rng: random.Random) -> str:
    lines = [f"  {rng.choice(SETTINGS)} = {_value(rng, 3)}" for _ in range(rng.randint(0, 7))]
    return "{\n" + "\n".join(lines) + "\n}"


def _declaration(rng: random.Random) -> str:
    kind = rng.randrange(10)
    name = _name(rng)
    if kind == 0:
        return f'project "{name}" ' + _body(rng)
    if kind == 1:
        return f"let {name} = {_value(rng, 3)}"
    if kind == 2:
        path = rng.choice([*STRINGS, '"a.png"'])
        return f"{rng.choice(['image', 'video'])} {name} {path}"
    if kind == 3:
        return f"element {name} " + _body(rng)
    if kind == 4:
        return f"style {name}{rng.choice(['', ' : ' + _name(rng)])} " + _body(rng)
    if kind == 5:
        return "defaults " + _body(rng)
    if kind == 6:
        items = ", ".join(_name(rng) for _ in range(rng.randint(0, 5)))
        return f"cut {name} = [{items}]"
    if kind == 7:
        path = rng.choice(['"main.story"', '"other.story"', '"../x.story"', '""'])
        return f"include {path}"
    return f"scene {name}{rng.choice(['', ' : ' + _name(rng)])} " + _body(rng)


def generate(rng: random.Random) -> str:
    decls = [_declaration(rng) for _ in range(rng.randint(1, 8))]
    if rng.random() < 0.5:
        decls.insert(0, 'project "Fuzz" { aspect = "16:9" }')
    return "\n".join(decls) + "\n"


# -- one input ------------------------------------------------------------------------------


@dataclass
class Input:
    seed: str  # where it came from
    files: dict[str, str]


def structure(rng: random.Random) -> dict[str, str]:
    """Stories whose shape is the hostile part: long or deep chains of styles, scenes and
    includes (declared in either order, sometimes closed into a cycle), huge cuts."""
    n = rng.choice((10, 10, 70, 70, 500, 3000))  # big ones are slow: seldom
    kind = rng.randrange(4)
    head = 'project "Shape" { aspect = "16:9" }\n'
    order = list(range(n))
    if rng.random() < 0.5:
        order.reverse()
    if kind == 0:  # styles, each inheriting from the next
        body = "".join(f"style s{i} : s{i + 1} {{ takes = 1 }}\n" for i in order)
        end = f'style s{n} {{ quality = "std" }}\n' if rng.random() < 0.8 else ""
        return {"main.story": head + body + end + 'scene a : s0 { prompt = "x" }\n'}
    if kind == 1:  # scenes, each starting from the previous one's last frame
        first = f"c{n - 1}.last_frame" if rng.random() < 0.3 else '"a.png"'
        body = "".join(
            f"scene c{i} {{ start = {f'c{i - 1}.last_frame' if i else first} "
            f'prompt = "shot {i}" duration = 5 }}\n'
            for i in order
        )
        return {"main.story": head + body}
    if kind == 2:  # includes, each including the next
        m = min(n, 80)
        files = {"main.story": head + 'include "i0.story"\n'}
        for i in range(m):
            nxt = f'include "i{i + 1}.story"\n' if i + 1 < m else 'include "i0.story"\n'
            files[f"i{i}.story"] = nxt + f'scene k{i} {{ prompt = "x" duration = 5 }}\n'
        return files
    scenes = "".join(f'scene c{i} {{ prompt = "x" duration = 5 }}\n' for i in range(50))
    cut = ", ".join(f"c{rng.randrange(60)}" for _ in range(n))
    return {"main.story": head + scenes + f"cut all = [{cut}]\n"}


def make_input(rng: random.Random, corpus: list[Seed]) -> Input:
    """A mutated story from the corpus (most of the time), a grammar-shaped one, or one
    whose shape is hostile."""
    if rng.random() < 0.04:
        return Input("grammar", structure(rng))
    if rng.random() < 0.75:
        seed = rng.choice(corpus)
        files = dict(seed.files)
        target = "main.story" if rng.random() < 0.85 else rng.choice(sorted(files))
        files[target] = mutate(files[target], rng)
        return Input(seed.name, files)
    files = {"main.story": generate(rng)}
    if rng.random() < 0.3:
        files["other.story"] = generate(rng)
    return Input("grammar", files)


# -- the workspace -------------------------------------------------------------------------


class Workspace:
    """One project folder per seed, holding a valid small file for every media path the seed
    names (made once), into which each input's story files are written."""

    def __init__(self, base: Path, corpus: list[Seed]) -> None:
        from storyc.media import ffmpeg as media

        self.base = base
        samples = base / "_samples"
        samples.mkdir(parents=True, exist_ok=True)
        self.samples = {
            "png": samples / "s.png",
            "jpg": samples / "s.jpg",
            "mp4": samples / "s.mp4",
        }
        if not self.samples["png"].exists():
            media.make_test_image(self.samples["png"], 640, 480)
            media.make_test_image(self.samples["jpg"], 640, 480)
            media.make_test_video(self.samples["mp4"], width=1280, height=720, duration=5.0)
        self.folders: dict[str, Path] = {}
        for i, seed in enumerate(corpus):
            self.folders[seed.name] = self._prepare(base / f"p{i}", seed.files)
        self.folders["grammar"] = self._prepare(base / "grammar", {"main.story": ""})
        (self.folders["grammar"] / "a.png").write_bytes(self.samples["png"].read_bytes())
        outside = base / "outside.png"
        outside.write_bytes(self.samples["png"].read_bytes())

    def _prepare(self, folder: Path, files: dict[str, str]) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for rel, text in files.items():
            for path in MEDIA.findall(text):
                if "://" in path or path.startswith("/") or ".." in path:
                    continue
                target = folder / Path(rel).parent / path
                if target.exists():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                ext = target.suffix.lower().lstrip(".")
                sample = self.samples[
                    "mp4" if ext in ("mp4", "mov") else "jpg" if ext in ("jpg", "jpeg") else "png"
                ]
                shutil.copyfile(sample, target)
        return folder

    def write(self, inp: Input) -> Path:
        folder = self.folders.get(inp.seed, self.folders["grammar"])
        for old in folder.rglob("*.story"):
            old.unlink()
        for rel, text in inp.files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, "utf-8", errors="surrogatepass")
        return folder


# -- the properties -----------------------------------------------------------------------


class Hang(Exception):
    """The input ran past the per-input time limit."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def ring(signum: int, frame: Any) -> None:
        raise Hang(f"over {seconds:g} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Result:
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def signature(self) -> str:
        """What makes two failures the same defect: the first problem's first line, with
        numbers and names taken out."""
        first = self.problems[0].splitlines()[0] if self.problems else ""
        return re.sub(r"\d+|`[^`]*`|'[^']*'", "#", first)[:160]


def _no_raw_controls(text: str, what: str, problems: list[str]) -> None:
    m = _CONTROL.search(text)
    if m:
        problems.append(f"raw control character U+{ord(m.group()):04X} in {what}")


def _strict_json(text: str) -> Any:
    def bad(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=bad)


def check(folder: Path, inp: Input, *, seconds: float, twice: bool, digests: Any = None) -> Result:
    """Compile the input in `folder` and check every property."""
    from storyc.base.diagnostics import json_safe, render_all
    from storyc.compiler import compile_project

    res = Result()
    try:
        with time_limit(seconds):
            comp = compile_project(folder, digests=digests)
            text = render_all(comp.diagnostics, comp.sources)
            doc = json_safe(comp.dumps_lines())
            again = compile_project(folder, digests=digests).dumps_lines() if twice else None
    except Hang as exc:
        res.problems.append(f"hang: compiling ran {exc}")
        return res
    except RecursionError:
        res.problems.append("crash: RecursionError")
        return res
    except Exception as exc:  # the property: nothing escapes
        tb = traceback.extract_tb(exc.__traceback__)
        where = next(
            (f"{Path(f.filename).name}:{f.name}" for f in reversed(tb) if "storyc" in f.filename),
            "?",
        )
        res.problems.append(f"crash: {type(exc).__name__} in {where}: {exc}"[:400])
        return res
    texts = comp.sources.texts
    for d in comp.diagnostics:
        if d.code not in _DOCUMENTED:
            res.problems.append(f"undocumented code {d.code}")
        s = d.span
        if s is None:
            continue
        src = texts.get(s.file)
        if src is None:
            res.problems.append(f"span in unknown file {s.file!r} ({d.code})")
            continue
        lines = src.count("\n") + 1
        if not (0 <= s.start <= s.end <= len(src)):
            res.problems.append(f"span offsets out of the file ({d.code} {s})")
        if not (1 <= s.line <= s.end_line <= lines) or (s.line, s.col) > (s.end_line, s.end_col):
            res.problems.append(f"span lines out of order ({d.code} {s})")
        if s.col < 1:
            res.problems.append(f"span column below 1 ({d.code} {s})")
    _no_raw_controls(text, "the rendered diagnostics", res.problems)
    _no_raw_controls(doc, "the JSON document", res.problems)
    try:
        parsed = _strict_json(doc)
    except ValueError as exc:
        res.problems.append(f"compile --json is not strict JSON: {exc}"[:200])
        parsed = {}
    if "shared_folders" not in "".join(inp.files.values()):
        for scene in parsed.get("scenes", {}).values():
            for path in re.findall(r'"\$file": "([^"]*)"', json.dumps(scene)):
                real = os.path.realpath(folder / path)
                if not real.startswith(os.path.realpath(folder) + os.sep):
                    res.problems.append(f"a request names a file outside the project: {path}")
    if again is not None and again != comp.dumps_lines():
        res.problems.append("compiling twice gave different output")
    return res


def run_one(
    index: int,
    base_seed: int,
    corpus: list[Seed],
    ws: Workspace,
    *,
    seconds: float,
    digests: Any = None,
) -> tuple[Input, Result]:
    rng = random.Random(base_seed * 1_000_003 + index)
    inp = make_input(rng, corpus)
    folder = ws.write(inp)
    return inp, check(folder, inp, seconds=seconds, twice=rng.random() < 0.1, digests=digests)


def save_reproducer(out: Path, index: int, inp: Input, res: Result) -> Path:
    """Write a failing input where a person can run `storyc check` on it."""
    folder = out / f"{index:07d}"
    folder.mkdir(parents=True, exist_ok=True)
    for rel, text in inp.files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8", errors="surrogatepass")
    (folder / "PROBLEMS.txt").write_text(f"seed: {inp.seed}\n" + "\n".join(res.problems) + "\n")
    return folder


Run = Callable[[int], tuple[Input, Result]]
