"""storyc.base.memory: a compilation is kept out of the cyclic collector's walks, a long
session still frees its cyclic garbage, and a command run in-process leaves the
interpreter's collector as it found it."""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path

import pytest

from storyc.base.memory import Settler, settle, settling, unsettle
from storyc.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


@pytest.fixture(autouse=True)
def _clean_collector():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_settled_objects_are_not_collected_until_unsettled():
    node = Node()
    ref = weakref.ref(node)
    settle()
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()
    assert ref() is not None  # frozen: the collector does not look at it
    unsettle()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert ref() is None


def test_a_session_frees_its_cyclic_garbage_when_idle():
    settler = Settler(every=3)
    node = Node()
    ref = weakref.ref(node)
    settler.refreshed()  # the node was alive at this refresh: settled
    del node
    gc.collect()
    assert ref() is not None
    assert settler.idle() is False  # one refresh: no full collection yet
    settler.refreshed()
    assert settler.idle() is False
    settler.refreshed()
    assert settler.idle() is True  # the third: everything is looked at once
    assert ref() is None
    assert settler.collections == 1 and settler.since == 0
    assert gc.get_freeze_count() > 0  # and what is alive is settled again


@pytest.mark.parametrize("command", ["check", "plan", "build"])
def test_a_command_leaves_the_collector_as_it_found_it(tmp_path, command, capsys):
    project = tmp_path / "p"
    shutil.copytree(EXAMPLES / "night-market", project)
    assert gc.get_freeze_count() == 0
    code = main([command, str(project)] + (["--json"] if command == "build" else []))
    capsys.readouterr()
    assert code == 0
    assert gc.get_freeze_count() == 0


def test_a_long_lived_process_gives_freed_heap_back() -> None:
    """The daemon gives the C heap's free pages back between commands: with glibc (as on
    Debian, where CI runs), and nothing to do with another C library."""
    import platform

    from storyc.base.memory import give_back

    expected = platform.libc_ver()[0] == "glibc"
    assert give_back() is expected
    assert give_back() is expected  # and again: the function is looked up once


def test_what_is_made_while_settling_is_frozen_before_any_collection() -> None:
    """A command's compilation is made with the collector off and frozen before it is on
    again: no collection ever walks it (each would cost 0.2-0.3 s at 10,000 scenes)."""
    runs: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            runs.append(info["generation"])

    assert gc.isenabled()
    before = gc.get_freeze_count()
    gc.callbacks.append(count)
    try:
        with settling():
            assert not gc.isenabled()
            made = [[i] for i in range(5000)]  # far past the collector's threshold
        assert gc.isenabled()
        assert gc.get_freeze_count() >= before + len(made)
        assert runs == []
        with pytest.raises(RuntimeError), settling():  # a failed command: on again
            raise RuntimeError("boom")
        assert gc.isenabled()
    finally:
        gc.callbacks.remove(count)
        unsettle()
