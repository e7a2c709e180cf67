"""Import direction: the compiler core stays free of effects.

The core (parse, resolve, check, lower, key, price) may read story files and asset
headers, nothing more: no network, no subprocesses, no terminal UI, no databases, and
nothing from the layers above it. Foreign libraries stay behind the module that owns
them (Lark in the parser, Jinja in templating, httpx in the provider, watchfiles in the
watcher, ffmpeg in storyc.media.ffmpeg).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "storyc"

CORE = [
    "diagnostics",
    "model",
    "request",
    "ast",
    "parser",
    "loader",
    "resolve",
    "templating",
    "rules",
    "graph",
    "compiler",
    "taint",
    "keys",
    "pricing",
    "mediainfo",
    "hashing",
]
FORBIDDEN_IN_CORE = {
    "httpx",
    "watchfiles",
    "rich",
    "subprocess",
    "asyncio",
    "sqlite3",
    "socket",
    "storyc.provider",
    "storyc.build.executor",
    "storyc.backends",
    "storyc.cli",
    "storyc.media.ffmpeg",
    "storyc.watch.watcher",
    "storyc.state.journal",
    "storyc.state.store",
    "storyc.build.progress",
}
OWNERS = {
    "lark": ("storyc/lang/parser.py",),
    "jinja2": ("storyc/resolve/templating.py",),
    "watchfiles": ("storyc/watch",),
    "httpx": ("storyc/provider/",),
    "imageio_ffmpeg": ("storyc/media/ffmpeg.py",),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _core_files() -> list[Path]:
    files = []
    for name in CORE:
        files.extend(PKG.glob(f"{name}.py"))
        files.extend(PKG.glob(f"{name}_*.py"))
    files.extend((PKG / "targets").glob("*.py"))
    return sorted(set(files))


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: p.name)
def test_core_module_has_no_effects(path: Path) -> None:
    bad = {
        imp
        for imp in _imports(path)
        if any(imp == f or imp.startswith(f + ".") for f in FORBIDDEN_IN_CORE)
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_foreign_libraries_stay_behind_their_owner() -> None:
    root = PKG.parent
    for py in PKG.rglob("*.py"):
        rel = py.relative_to(root).as_posix()
        for imp in _imports(py):
            lib = imp.split(".")[0]
            owners = OWNERS.get(lib)
            if owners and not any(rel.startswith(o) for o in owners):
                # the loopback provider and tests may reach ffmpeg only through storyc.media.ffmpeg
                pytest.fail(f"{rel} imports {lib}; only {owners} may")
