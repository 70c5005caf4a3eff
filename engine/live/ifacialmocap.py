"""iFacialMocap / FaceMotion3D: ASCII UDP packets, port 49983.

Layout (the app's developer page, ifacialmocap.com/for-developer, read 2026-12)::

    name-value|name-value|…|=head#rx,ry,rz,px,py,pz|rightEye#rx,ry,rz|leftEye#rx,ry,rz|

Names are ARKit's with ``_L``/``_R`` for Left/Right (``eyeBlink_L``); values are 0…100 (the app
sends integers; we read any decimal number); ``name--5`` is -5. Angles are Euler degrees about
X (pitch), Y (yaw) and Z (roll), composed like our Live Link reading
(R = R_y(yaw)·R_x(pitch)·R_z(roll)), signs as sent; the three numbers after the head angles are
its position, taken as metres. Older versions write ``head#`` without ``=``; the TCP variant
appends ``___iFacialMocap``; both are accepted. The phone starts streaming after it receives the
text ``iFacialMocap_sahuasouryya9218sauhuiayeta91555dy3719`` (``START_MESSAGE``) on its port 49983.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..animation.rotation import axis_angle_to_yaw_pitch_roll, yaw_pitch_roll_to_axis_angle
from .frame import LiveFrame, PacketError, check_vec, collect

NAME = "ifacialmocap"
DEFAULT_PORT = 49983
MAX_PACKET = 8192
START_MESSAGE = b"iFacialMocap_sahuasouryya9218sauhuiayeta91555dy3719"
TCP_SUFFIX = "___iFacialMocap"
SCALE = 100.0
_SIDE = re.compile(r"_([LR])$")
_ARKIT_SIDE = re.compile(r"(Left|Right)$")


def to_arkit(name: str) -> str:
    """``eyeBlink_L`` -> ``eyeBlinkLeft`` (other names unchanged)."""
    return _SIDE.sub(lambda m: "Left" if m.group(1) == "L" else "Right", name)


def from_arkit(name: str) -> str:
    """``eyeBlinkLeft`` -> ``eyeBlink_L`` (the app's spelling)."""
    return _ARKIT_SIDE.sub(lambda m: "_L" if m.group(1) == "Left" else "_R", name)


def _euler(values) -> tuple[float, float, float]:
    pitch, yaw, roll = (math.radians(v) for v in values)
    return tuple(float(x) for x in yaw_pitch_roll_to_axis_angle(yaw, pitch, roll))  # type: ignore[return-value]


def _numbers(key: str, text: str, counts: tuple[int, ...]) -> list[float]:
    try:
        vals = [float(t) for t in text.split(",")]
    except ValueError:
        raise PacketError("malformed", f"{key} has non-numeric fields") from None
    if len(vals) not in counts:
        raise PacketError("malformed", f"{key} has {len(vals)} numbers, expected {counts}")
    check_vec(key, vals[:3])
    return vals


class Decoder:
    """Stateless: every packet is a whole frame."""

    def feed(self, packet: bytes) -> LiveFrame:
        if len(packet) > MAX_PACKET:
            raise PacketError("oversized", f"{len(packet)} bytes, more than {MAX_PACKET}")
        try:
            text = bytes(packet).decode("ascii").strip()
        except UnicodeDecodeError:
            raise PacketError("malformed", "not ASCII text") from None
        if text.endswith(TCP_SUFFIX):
            text = text[: -len(TCP_SUFFIX)]
        pairs, head, eyes, pos = [], None, [None, None], None
        for item in text.split("|"):
            if not item:
                continue
            if "#" in item:
                key, _, rest = item.partition("#")
                key = key.lstrip("=").lower()
                if key == "head":
                    vals = _numbers("head", rest, (3, 6))
                    if head is not None:
                        raise PacketError("malformed", "head appears twice")
                    head = _euler(vals[:3])
                    pos = check_vec("head position", vals[3:]) if len(vals) == 6 else None
                elif key in ("lefteye", "righteye"):
                    side = 0 if key == "lefteye" else 1
                    if eyes[side] is not None:
                        raise PacketError("malformed", f"{key} appears twice")
                    eyes[side] = _euler(_numbers(key, rest, (3,)))
                else:
                    raise PacketError("malformed", f"unknown field {key[:20]!r}")
                continue
            name, sep, value = item.partition("-")
            if not sep or not name:
                raise PacketError("malformed", f"item {item[:30]!r} is not name-value")
            try:
                v = float(value)
            except ValueError:
                raise PacketError("malformed", f"{name[:30]} has the value {value[:20]!r}") from None
            pairs.append((to_arkit(name), v / SCALE if math.isfinite(v) else v))
        values, unknown = collect(pairs)
        if not values and head is None and eyes == [None, None]:
            raise PacketError("unknown" if unknown else "malformed",
                              "no known channel" if unknown else "empty packet")
        both = None
        if eyes != [None, None]:
            both = tuple(e if e is not None else (0.0, 0.0, 0.0) for e in eyes)
        return LiveFrame(values=values, head=head, eyes=both, translation=pos, unknown=unknown)


def decode(packet: bytes) -> LiveFrame | None:
    """The frame in ``packet``, or None when it is malformed (never raises)."""
    try:
        return Decoder().feed(packet)
    except PacketError:
        return None


def _fmt(v: float) -> str:
    return f"{v:.9g}"


def _degrees(aa) -> list[str]:
    yaw, pitch, roll = axis_angle_to_yaw_pitch_roll(np.asarray(aa, np.float64))
    return [_fmt(math.degrees(float(a))) for a in (pitch, yaw, roll)]


def encode(frame: LiveFrame) -> list[bytes]:
    """``frame`` as one iFacialMocap packet (head, position and eyes when the frame has them)."""
    items = [f"{from_arkit(n)}-{_fmt(v * SCALE)}" for n, v in frame.values.items()]
    if frame.head is not None or frame.translation is not None:
        head = _degrees(frame.head if frame.head is not None else (0.0, 0.0, 0.0))
        head += [_fmt(v) for v in (frame.translation or (0.0, 0.0, 0.0))]
        items.append("=head#" + ",".join(head))
    if frame.eyes is not None:
        items.append("rightEye#" + ",".join(_degrees(frame.eyes[1])))
        items.append("leftEye#" + ",".join(_degrees(frame.eyes[0])))
    return [("|".join(items) + "|").encode("ascii")]
