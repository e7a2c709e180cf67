"""The price table and estimates: free, known, unknown — never unknown as $0."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from storyc.plan.pricing import (
    PRICE_PER_SECOND,
    estimate,
    format_estimate,
    format_usd,
    output_seconds,
    total,
)
from storyc.targets.request import Request


def req(**kw: Any) -> Request:
    base: dict[str, Any] = dict(
        scene="s",
        target="inference/video-o1",
        schema="v1",
        app="klingai/video-o1",
        body={"app": "klingai/video-o1", "input": {"prompt": "p"}},
        takes=1,
        upstream=(),
        quality="pro",
        duration=5,
        has_video_input=False,
        mode="text-to-video",
    )
    base.update(kw)
    return Request(**base)


@pytest.mark.parametrize(
    "quality,video,price",
    [
        ("std", False, "0.084"),
        ("std", True, "0.126"),
        ("pro", False, "0.112"),
        ("pro", True, "0.168"),
    ],
)
def test_table(quality: str, video: bool, price: str) -> None:
    assert PRICE_PER_SECOND[(quality, video)] == Decimal(price)


def test_five_second_pro() -> None:
    e = estimate(req(), backend="inference")
    assert e.kind == "known" and e.amount == Decimal("0.560")
    assert format_estimate(e) == "$0.56"


def test_takes_and_reference_video() -> None:
    e = estimate(
        req(quality="std", has_video_input=True, duration=10, takes=3), backend="inference"
    )
    assert e.amount == Decimal("0.126") * 10 * 3
    assert e.times(1).amount == Decimal("0.126") * 10


def test_preview_is_free_not_unknown() -> None:
    e = estimate(req(), backend="preview")
    assert e.kind == "free" and e.amount == 0 and format_estimate(e) == "free"


def test_base_edit_uses_input_length() -> None:
    r = req(duration=None, has_video_input=True, mode="edit")
    assert estimate(r, backend="inference").kind == "unknown"
    assert format_estimate(estimate(r, backend="inference")) == "unknown"
    e = estimate(r, backend="inference", base_duration=6.2)
    assert e.seconds == 7 and e.amount == Decimal("0.168") * 7
    assert output_seconds(r, 5.0) == 5


def test_total_counts_unknown() -> None:
    known, unknown = total(
        [estimate(req(), backend="inference"), estimate(req(duration=None), backend="inference")]
    )
    assert known == Decimal("0.560") and unknown == 1
    assert format_usd(None) == "unknown" and format_usd(Decimal(0), free=True) == "free"
