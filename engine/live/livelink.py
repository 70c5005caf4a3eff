"""Live Link Face (Epic's iPhone app, Unreal LiveLink): binary UDP packets, default port 11111.

Layout (researched 2026-12 from open receivers; every integer and float big-endian, "network
order"):

    u8        packet version (6)
    u32 + n   device id: byte length, then UTF-8 bytes
    u32 + n   subject name: byte length, then UTF-8 bytes
    i32       frame number        } the frame time, an Unreal FQualifiedFrameTime:
    f32       sub-frame (0…1)     } (frame + sub-frame) · denominator / numerator seconds
    i32, i32  rate numerator, denominator
    u8        value count (61)
    f32 × count   52 ARKit weights in ``LIVE_LINK_BLENDSHAPES`` order (the CSV's column order),
                  then HeadYaw, HeadPitch, HeadRoll, Left/RightEye Yaw, Pitch, Roll

Rotations use the CSV importer's units and axes (``ROTATION_UNIT``: 1.0 = 90°). Open sources
disagree on whether JawLeft/JawRight (and MouthLeft/MouthRight) come in that order or swapped;
we use the order of the app's CSV takes (``names.LIVE_LINK_BLENDSHAPES``), as our CSV reader does.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction

import numpy as np

from ..animation.formats.livelink import ROTATION_UNIT
from ..animation.names import ARKIT_NAMES, LIVE_LINK_BLENDSHAPES
from ..animation.rotation import axis_angle_to_yaw_pitch_roll, yaw_pitch_roll_to_axis_angle
from .frame import LiveFrame, PacketError, check_value, check_vec

NAME = "livelink"
DEFAULT_PORT = 11111
VERSION = 6
COUNT = 61
MAX_PACKET = 2048
MAX_STRING = 256
_N_SHAPES = len(LIVE_LINK_BLENDSHAPES)


def _string(packet: bytes, pos: int, what: str) -> tuple[str, int]:
    if pos + 4 > len(packet):
        raise PacketError("malformed", f"truncated before the {what}")
    (n,) = struct.unpack_from(">I", packet, pos)
    pos += 4
    if n > MAX_STRING or pos + n > len(packet):
        raise PacketError("malformed", f"{what} length {n} runs past the packet")
    return packet[pos:pos + n].decode("utf-8", "replace"), pos + n


def _angles(values: np.ndarray) -> tuple[float, float, float]:
    aa = yaw_pitch_roll_to_axis_angle(*(values * ROTATION_UNIT))
    return tuple(float(x) for x in aa)  # type: ignore[return-value]


class Decoder:
    """Stateless: every packet is a whole frame."""

    def feed(self, packet: bytes) -> LiveFrame:
        """The frame in ``packet``; PacketError if it is not a valid Live Link Face packet."""
        if len(packet) > MAX_PACKET:
            raise PacketError("oversized", f"{len(packet)} bytes, more than {MAX_PACKET}")
        if len(packet) < 1:
            raise PacketError("malformed", "empty packet")
        if packet[0] != VERSION:
            raise PacketError("malformed", f"packet version {packet[0]}, expected {VERSION}")
        device, pos = _string(packet, 1, "device id")
        subject, pos = _string(packet, pos, "subject name")
        if pos + 17 > len(packet):
            raise PacketError("malformed", "truncated frame time")
        frame_no, sub, num, den, count = struct.unpack_from(">ifiiB", packet, pos)
        pos += 17
        if num <= 0 or den <= 0:
            raise PacketError("malformed", f"frame rate {num}/{den}")
        sub = check_value("sub-frame", sub)
        if count < 1 or count > COUNT or len(packet) - pos != 4 * count:
            raise PacketError("malformed", f"{count} values in {len(packet) - pos} bytes")
        with np.errstate(invalid="ignore"):  # a signalling NaN warns on the cast
            floats = np.frombuffer(packet, ">f4", count, pos).astype(np.float64)
        if not np.isfinite(floats).all():
            raise PacketError("nonfinite", "a value is NaN or infinite")
        for name, v in zip(ARKIT_NAMES, floats):
            check_value(name, v)
        rot = np.zeros(9)
        rot[: max(0, count - _N_SHAPES)] = floats[_N_SHAPES:]
        rate = num / den
        return LiveFrame(
            values={n: float(v) for n, v in zip(ARKIT_NAMES, floats[:_N_SHAPES])},
            head=_angles(rot[0:3]) if count > _N_SHAPES else None,
            eyes=(_angles(rot[3:6]), _angles(rot[6:9])) if count > _N_SHAPES + 3 else None,
            time=(frame_no + sub) / rate, rate=rate, subject=subject or device,
        )


def decode(packet: bytes) -> LiveFrame | None:
    """The frame in ``packet``, or None when it is malformed (never raises)."""
    try:
        return Decoder().feed(bytes(packet))
    except PacketError:
        return None


def _rate_fraction(rate: float) -> tuple[int, int]:
    f = Fraction(rate).limit_denominator(1001)
    return max(1, f.numerator), max(1, f.denominator)


def _to_units(aa) -> list[float]:
    yaw, pitch, roll = axis_angle_to_yaw_pitch_roll(np.asarray(aa, np.float64))
    return [float(yaw) / ROTATION_UNIT, float(pitch) / ROTATION_UNIT, float(roll) / ROTATION_UNIT]


def encode(frame: LiveFrame, *, device: str = "GaussianHeads", subject: str = "") -> list[bytes]:
    """``frame`` as one Live Link Face packet (61 values; channels it lacks are 0; names that are
    not ARKit blendshapes cannot be carried and are left out)."""
    rate = frame.rate or 60.0
    num, den = _rate_fraction(rate)
    t = frame.time or 0.0
    whole = math.floor(t * num / den + 1e-9)
    sub = min(max(t * num / den - whole, 0.0), 0.999999)
    values = [float(frame.values.get(n, 0.0)) for n in ARKIT_NAMES]
    values += _to_units(frame.head) if frame.head is not None else [0.0] * 3
    for eye in frame.eyes if frame.eyes is not None else ((0.0,) * 3, (0.0,) * 3):
        values += _to_units(check_vec("eye", eye))
    dev = device.encode("utf-8")[:MAX_STRING]
    sub_b = (subject or frame.subject or "GaussianHeads").encode("utf-8")[:MAX_STRING]
    head = struct.pack(f">BI{len(dev)}sI{len(sub_b)}s", VERSION, len(dev), dev, len(sub_b), sub_b)
    timing = struct.pack(">ifiiB", int(whole), sub, num, den, COUNT)
    return [head + timing + struct.pack(f">{COUNT}f", *values)]
