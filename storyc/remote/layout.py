"""The team store's layout: object, record and claim names, and what a record holds.

Stage: remote. In: digests, render keys and the facts of a finished render. Out: object
names and JSON bytes; parsed, validated records and claims (a damaged one is None). Pure.

Under the remote's prefix:

    objects/ab/cdef…            an output, by the SHA-256 of its bytes (as in `.storyc/`)
    renders/<key hex>/<out hex> a finished render: key → output, with its facts (JSON)
    claims/<key hex>            a machine paying for this key right now (JSON)

A record's name holds both the key and the output digest, so one listing of `renders/`
answers "which of these keys does the team have, and with which output" for a thousand
keys per request, without reading a single record. Records hold no secrets: no API key,
no provider URL (such URLs may be signed), no absolute path.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from storyc.base.hashing import DIGEST_PREFIX, canonical_json, is_digest

LAYOUT = 1
OBJECTS = "objects/"
RENDERS = "renders/"
CLAIMS = "claims/"
_HEX = frozenset("0123456789abcdef")


def hex_of(digest: str) -> str:
    if not is_digest(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return digest[len(DIGEST_PREFIX) :]


def object_name(digest: str) -> str:
    h = hex_of(digest)
    return f"{OBJECTS}{h[:2]}/{h[2:]}"


def record_name(key: str, output: str) -> str:
    return f"{RENDERS}{hex_of(key)}/{hex_of(output)}"


def record_folder(key: str) -> str:
    return f"{RENDERS}{hex_of(key)}/"


def claim_name(key: str) -> str:
    return f"{CLAIMS}{hex_of(key)}"


def _is_hex(s: str) -> bool:
    return len(s) == 64 and _HEX.issuperset(s)


def parse_record_name(name: str) -> tuple[str, str] | None:
    """(key, output) from `renders/<key hex>/<out hex>`, or None for anything else."""
    if not name.startswith(RENDERS):
        return None
    parts = name[len(RENDERS) :].split("/")
    if len(parts) != 2 or not _is_hex(parts[0]) or not _is_hex(parts[1]):
        return None
    return DIGEST_PREFIX + parts[0], DIGEST_PREFIX + parts[1]


@dataclass(frozen=True)
class Record:
    """A finished render as the team store keeps it."""

    key: str
    output: str
    size: int  # bytes of the output object (-1: not known, the digest alone decides)
    scene: str
    take: int
    backend: str
    target: str | None = None
    task_id: str | None = None  # provider task ids are not secrets; they identify the work
    duration: float | None = None
    cost: str | None = None  # decimal USD as text; what the team paid for it
    created: float = 0.0

    def dumps(self) -> bytes:
        return canonical_json({"layout": LAYOUT, **asdict(self)})

    @property
    def cost_decimal(self) -> Decimal | None:
        if self.cost is None:
            return None
        try:
            return Decimal(self.cost)
        except InvalidOperation:
            return None


def parse_record(data: bytes, key: str, output: str) -> Record | None:
    """The record stored under (key, output), or None when it is damaged or lies."""
    try:
        raw = json.loads(data)
    except ValueError:
        return None
    if not isinstance(raw, dict) or raw.get("key") != key or raw.get("output") != output:
        return None
    try:
        rec = Record(
            key=key,
            output=output,
            size=_int(raw.get("size")),
            scene=_str(raw.get("scene")),
            take=_int(raw.get("take")),
            backend=_str(raw.get("backend")),
            target=_opt_str(raw.get("target")),
            task_id=_opt_str(raw.get("task_id")),
            duration=_opt_float(raw.get("duration")),
            cost=_opt_str(raw.get("cost")),
            created=float(_opt_float(raw.get("created")) or 0.0),
        )
    except (TypeError, ValueError):
        return None
    if rec.size < 0 or rec.take < 1:
        return None
    if rec.cost is not None and rec.cost_decimal is None:
        return None
    return rec


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError("not an integer")
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError("not a string")
    return v


def _opt_str(v: Any) -> str | None:
    return None if v is None else _str(v)


def _opt_float(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise TypeError("not a number")
    return float(v)
