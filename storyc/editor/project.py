"""One project as the language server holds it: its caches and its last check.

Stage: editor (for the language server). In: nothing by itself (the server fills it).
Out: the state the server's handlers read. No I/O.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyc.base.hashing import DigestCache
from storyc.compiler import Compilation
from storyc.editor import index as index_mod
from storyc.editor.index import Index
from storyc.lang.loader import Loaded, ParseCache


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
    # the incremental compiler (storyc.compiler.incremental): each check costs the edit
    engine: Any = None

    def start_engine(self) -> Any:
        """The incremental compiler for this project, started from the compiled state
        that `storyc check`, `build` or watch left (`storyc.compiler.state`), if any, so
        opening a big project restores what was compiled rather than compiling it all
        again. The state of the project folder is this project's when the folder's entry
        is this entry (commands name the folder); otherwise the entry's own."""
        from storyc.base.diagnostics import Diagnostics
        from storyc.compiler import background
        from storyc.compiler.state import CompiledState
        from storyc.lang.loader import find_entry

        found = find_entry(self.root, Diagnostics())
        path = self.root if found is not None and found.resolve() == self.entry else self.entry
        state = CompiledState(self.root, path, None, self.digests)
        background.wait(state.dir)  # a state a command is making: start from it
        engine = state.engine()
        # restored from the folder's state, it still compiles this entry: the folder's
        # entry can change under the server (a second `project` block saved beside it)
        engine.path = self.entry
        engine.settle = True  # the server settles after each refresh
        return engine

    def label(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.root)).as_posix()

    def path(self, label: str) -> Path:
        return Path(os.path.normpath(self.root / label))
