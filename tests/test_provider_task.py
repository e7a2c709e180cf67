"""Task status normalization: both numberings, names in any form, and never an exception."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storyc.provider.task import TERMINAL, Status, Task, parse_status, video_url


@pytest.mark.parametrize(
    "value,legacy,expected",
    [
        (9, False, Status.UPLOADING),
        (9, True, Status.COMPLETED),
        (10, False, Status.COMPLETED),
        (10, True, Status.FAILED),
        (8, True, Status.UPLOADING),
        (13, False, Status.REJECTED),
        ("completed", True, Status.COMPLETED),
        ("COMPLETED", False, Status.COMPLETED),
        ("TASK_STATUS_RUNNING", False, Status.RUNNING),
        ("9", False, Status.UPLOADING),
        ("canceled", False, Status.CANCELLED),
        ("setting-up", False, Status.SETTING_UP),
        (None, False, Status.UNKNOWN),
        (True, False, Status.UNKNOWN),
        (99, False, Status.UNKNOWN),
        ("nonsense", False, Status.UNKNOWN),
    ],
)
def test_parse_status(value: Any, legacy: bool, expected: Status) -> None:
    assert parse_status(value, legacy=legacy) == expected


def test_uploading_is_not_terminal() -> None:
    assert Status.UPLOADING not in TERMINAL and Status.REJECTED in TERMINAL


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(json_values, st.booleans())
def test_parse_status_never_raises(value: Any, legacy: bool) -> None:
    assert isinstance(parse_status(value, legacy=legacy), Status)


@given(st.dictionaries(st.sampled_from(["id", "status", "output", "error", "x"]), json_values))
def test_task_from_any_json_never_raises(data: dict[str, Any]) -> None:
    task = Task.from_json(data)
    task.merge(data, list(data))
    assert isinstance(task.terminal, bool)
    assert task.video_url is None or isinstance(task.video_url, str)
    assert task.error is None or isinstance(task.error, str)


def test_video_url_forms() -> None:
    assert video_url({"video": "https://cdn.test/a.mp4"}) == "https://cdn.test/a.mp4"
    assert video_url({"video": {"uri": "https://cdn.test/b.mp4"}}) == "https://cdn.test/b.mp4"
    assert video_url({"video": {"url": "https://cdn.test/c.mp4"}}) == "https://cdn.test/c.mp4"
    assert video_url({"video": {}}) is None and video_url(None) is None
