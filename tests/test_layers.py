"""The layout is the architecture: stage packages in one direction, no cycles, a pure core.

- Every package of `storyc/` has a place in LAYERS, and a module imports only from its
  own package or from packages earlier in the list (lazy imports and TYPE_CHECKING
  imports count: a cycle hidden in a function is still a cycle).
- No import cycle between modules anywhere in `storyc/`.
- The compiler core (parse, resolve, check, lower, key, price) may read story files and
  asset headers, nothing more: it imports only other core modules and no library with
  effects (network, subprocesses, terminal UI, databases).
- Foreign libraries stay behind the module that owns them (Lark in the parser, Jinja in
  templating, httpx in the provider, watchfiles in the watcher, ffmpeg in storyc.media).
- Every package says its stage in its `__init__` docstring, and pyproject lists every
  package.
"""

from __future__ import annotations

import ast
import shutil
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "storyc"

# Lowest first. A module may import from its own package and from any earlier one.
LAYERS = [
    "storyc",  # storyc/__init__.py: the version only
    "base",  # diagnostics, digests, atomic files, exit codes
    "media",  # header facts (pure) and ffmpeg (the only place that starts it)
    "lang",  # load: text → syntax trees
    "resolve",  # syntax trees → the project model
    "check",  # model rules, the dependency graph, taint
    "targets",  # lower: the model → provider requests
    "compiler",  # the façade over lang → resolve → check → targets
    "state",  # what is on disk: store, journal, lock file, project lock
    "plan",  # keys, prices, the planner
    "remote",  # the team store on S3-compatible object storage
    "provider",  # the inference.sh client and the loopback provider
    "backends",  # preview (ffmpeg) and inference (the provider)
    "film",  # cuts assembled into one video; export for editors
    "build",  # the executor and the build session
    "review",  # the storyboard and review page
    "watch",  # re-check and re-build on save
    "editor",  # the formatter and the language server
    "cli",  # the command line
    "__main__",
]

CORE = {
    "storyc",
    "storyc.base",
    "storyc.base.diagnostics",
    "storyc.base.hashing",
    "storyc.base.fsio",
    "storyc.base.reading",
    "storyc.base.exits",
    "storyc.media",
    "storyc.media.info",
    "storyc.lang",
    "storyc.resolve",
    "storyc.check",
    "storyc.targets",
    "storyc.compiler",
    "storyc.plan",
    "storyc.plan.keys",
    "storyc.plan.pricing",
}
CORE_PACKAGES = ("lang", "resolve", "check", "targets")
FORBIDDEN_IN_CORE = {
    "httpx", "watchfiles", "rich", "subprocess", "asyncio", "sqlite3", "socket",
    "imageio_ffmpeg", "pickle", "marshal",
}  # fmt: skip
OWNERS = {
    "lark": ("storyc/lang/parser.py",),
    "jinja2": ("storyc/resolve/templating.py",),
    "watchfiles": ("storyc/watch/",),
    "httpx": ("storyc/provider/",),
    "imageio_ffmpeg": ("storyc/media/ffmpeg.py",),
    "boto3": ("storyc/remote/client.py",),
    "botocore": ("storyc/remote/client.py",),
}


def _modname(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_modname(p): p for p in PKG.rglob("*.py")}


@cache
def _imports(path: Path) -> frozenset[str]:
    """Every module named by an import anywhere in the file (top level, functions,
    TYPE_CHECKING blocks); `from a import b` names `a.b` when that is a module."""
    mods = _modules()
    tree = ast.parse(path.read_text("utf-8"))
    names: set[str] = set()
    here = _modname(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.add(module)
            for a in node.names:
                if f"{module}.{a.name}" in mods:
                    names.add(f"{module}.{a.name}")
    return frozenset(names)


def _internal(path: Path) -> set[str]:
    mods = _modules()
    return {m for m in _imports(path) if m in mods and m != _modname(path)}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "storyc"


def test_every_package_has_a_layer() -> None:
    packages = {_package(m) for m in _modules()}
    assert packages <= set(LAYERS), f"no layer for {sorted(packages - set(LAYERS))}"


@pytest.mark.parametrize("module", sorted(_modules()), ids=str)
def test_no_upward_import(module: str) -> None:
    mine = LAYERS.index(_package(module))
    bad = sorted(m for m in _internal(_modules()[module]) if LAYERS.index(_package(m)) > mine)
    assert not bad, f"{module} ({LAYERS[mine]}) imports from a later stage: {bad}"


def test_no_import_cycles() -> None:
    graph = {m: _internal(p) for m, p in _modules().items()}
    # A package's __init__ is imported before any of its modules; an edge from a
    # submodule to its own package's __init__ is that, not a design dependency, only when
    # the __init__ imports nothing back. Tarjan's algorithm over the plain graph.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def _core_modules() -> list[str]:
    out = set(CORE)
    for m in _modules():
        if _package(m) in CORE_PACKAGES:
            out.add(m)
    return sorted(out)


@pytest.mark.parametrize("module", _core_modules(), ids=str)
def test_core_module_has_no_effects(module: str) -> None:
    path = _modules()[module]
    core = set(_core_modules())
    internal = _internal(path)
    assert not sorted(internal - core), f"{module} imports beyond the core: {internal - core}"
    bad = {i for i in _imports(path) if i.split(".")[0] in FORBIDDEN_IN_CORE}
    assert not bad, f"{module} imports {sorted(bad)}"


def test_foreign_libraries_stay_behind_their_owner() -> None:
    for py in PKG.rglob("*.py"):
        rel = py.relative_to(ROOT).as_posix()
        for imp in _imports(py):
            owners = OWNERS.get(imp.split(".")[0])
            if owners and not any(rel.startswith(o) for o in owners):
                pytest.fail(f"{rel} imports {imp}; only {owners} may")


def test_every_package_says_its_stage_and_is_installed() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    listed = set(pyproject["tool"]["setuptools"]["packages"]) - {"storyc.grammar"}
    found = {_modname(p) for p in PKG.rglob("__init__.py")}
    assert listed == found, f"pyproject lists {sorted(listed ^ found)} wrongly"
    for init in PKG.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text("utf-8"))) or ""
        if init.parent != PKG:
            assert "Stage:" in doc, f"{init.relative_to(ROOT)} does not say its stage"


def test_the_checks_see_a_violation(tmp_path: Path) -> None:
    # The parsing above must find a lazy, relative and TYPE_CHECKING import alike.
    src = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from storyc.build import executor\n"
        "def f():\n    from storyc.cli import lang\n"
    )
    # on a copy of the package: a file written into storyc/ itself would change storyc's
    # code under a daemon or a no-op build's record in another test running meanwhile
    global ROOT, PKG
    saved = ROOT, PKG
    ROOT, PKG = tmp_path, tmp_path / "storyc"
    shutil.copytree(saved[1], PKG, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    fake = PKG / "plan" / "_probe_for_test.py"
    try:
        fake.write_text(src, "utf-8")
        _modules.cache_clear()
        found = _internal(fake)
    finally:
        ROOT, PKG = saved
        _modules.cache_clear()
        _imports.cache_clear()
    assert {"storyc.build.executor", "storyc.cli.lang"} <= found
