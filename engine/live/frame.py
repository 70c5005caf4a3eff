"""LiveFrame: one face-capture sample as a protocol decoder delivers it, and the naming rules.

Units are ours, whatever the wire used: expression values 0…1 (ARKit weights), rotations as
axis-angle vectors in the model frame (+Y up, +Z forward, +X the subject's left; radians),
translation in metres. Channel names are canonical: ARKit-52 blendshapes in ARKit's camelCase
(``jawOpen``), FLAME coefficients as ``expr_###``. Any other name is *unknown*: the decoder leaves
it out and lists it in ``unknown`` so the receiver can count it. Mapping onto an avatar's channels
is not done here: :mod:`engine.live.take` hands frames to the importers' own mapping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping

from ..animation.names import arkit_canonical, flame_expr_name, flame_index

Vec3 = tuple[float, float, float]
# Largest magnitude a decoded value may have; beyond it a packet is garbage (slider hard limit 10).
MAX_ABS_VALUE = 1.0e4
MAX_CHANNELS = 512  # names one frame may carry


class PacketError(ValueError):
    """A packet the receiver counts and drops. ``kind``: "malformed", "oversized", "nonfinite"
    or "unknown" (no name in it is one of our channels)."""

    def __init__(self, kind: str, problem: str):
        super().__init__(problem)
        self.kind = kind


@dataclass(frozen=True, eq=False)
class LiveFrame:
    """One capture sample.

    values:      canonical channel name -> value (0…1 for ARKit weights)
    head:        head axis-angle [3] or None when the packet carries none
    eyes:        (left [3], right [3]) axis-angles or None
    translation: head position [3] in metres or None
    time:        capture timestamp in seconds on the sender's clock, or None (then the receive
                 time stands in)
    rate:        the sender's frame rate when the packet states it (Live Link), else None
    subject:     the sender's subject/device name when the packet has one
    unknown:     names in the packet that are not our channels (left out of ``values``)
    received:    ``time.perf_counter()`` when the receiver got the packet (0 before)
    """

    values: Mapping[str, float]
    head: Vec3 | None = None
    eyes: tuple[Vec3, Vec3] | None = None
    translation: Vec3 | None = None
    time: float | None = None
    rate: float | None = None
    subject: str = ""
    unknown: tuple[str, ...] = ()
    received: float = field(default=0.0)

    def stamped(self, received: float) -> "LiveFrame":
        return replace(self, received=float(received))


def canonical_name(name: str) -> str | None:
    """Our channel name for ``name`` (ARKit camelCase, or ``expr_###``), None if it is not one."""
    arkit = arkit_canonical(name)
    if arkit is not None:
        return arkit
    idx = flame_index(name)
    return flame_expr_name(idx) if idx is not None and idx < 1000 else None


def check_value(name: str, value: float) -> float:
    """``value`` as a float; PacketError when it is not finite or absurdly large."""
    v = float(value)
    if not math.isfinite(v):
        raise PacketError("nonfinite", f"{name} is {v}")
    if abs(v) > MAX_ABS_VALUE:
        raise PacketError("malformed", f"{name} is {v:g}, beyond ±{MAX_ABS_VALUE:g}")
    return v


def check_vec(name: str, values) -> Vec3:
    vals = tuple(check_value(name, v) for v in values)
    if len(vals) != 3:
        raise PacketError("malformed", f"{name} has {len(vals)} components, expected 3")
    return vals  # type: ignore[return-value]


def collect(pairs, what: str = "channel") -> tuple[dict[str, float], tuple[str, ...]]:
    """``(name, value)`` pairs -> (canonical values, unknown names). PacketError on duplicates,
    bad values or more than ``MAX_CHANNELS`` names."""
    values: dict[str, float] = {}
    unknown: list[str] = []
    n = 0
    for name, value in pairs:
        n += 1
        if n > MAX_CHANNELS:
            raise PacketError("oversized", f"more than {MAX_CHANNELS} {what}s")
        key = canonical_name(name)
        v = check_value(str(name)[:40], value)
        if key is None:
            unknown.append(str(name)[:64])
            continue
        if key in values:
            raise PacketError("malformed", f"{what} {name!r} appears twice")
        values[key] = v
    return values, tuple(unknown)
