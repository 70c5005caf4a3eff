"""VMC protocol (Virtual Motion Capture; VTuber tools): OSC over UDP, through python-osc.

Ports: 39539 (a performer sends to a marionette, e.g. Blender) and 39540 (the other way). The
messages we read (protocol.vmc.info, read 2026-12)::

    /VMC/Ext/Blend/Val  s:name f:value     one per blendshape (VRM "perfect sync" uses ARKit names)
    /VMC/Ext/Blend/Apply                   the values so far form one frame
    /VMC/Ext/Bone/Pos   s:bone f:px py pz qx qy qz qw   Head, Neck, LeftEye, RightEye used
    /VMC/Ext/T          f:seconds          the sender's time (our capture timestamp)

Senders pack them into OSC bundles (usually one bundle per frame) or send single messages; the
decoder keeps the values between packets until ``Apply``. Other addresses (``/VMC/Ext/OK``,
``/VMC/Ext/Root/Pos``, other bones) are ignored. Bone rotations are Unity's (left-handed, +Y up,
+Z forward, +X the avatar's right): in our frame (+X the subject's left) the quaternion
(x, y, z, w) becomes (w, x, −y, −z). Blendshape names that are not ARKit (VRM presets such as
``A`` or ``Blink``) are counted as unknown and left out.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pythonosc
from pythonosc import osc_bundle_builder, osc_message_builder, osc_packet

from ..animation.rotation import axis_angle_to_quat, quat_to_axis_angle
from .frame import MAX_CHANNELS, LiveFrame, PacketError, check_value, collect

NAME = "vmc"
DEFAULT_PORT = 39539
MAX_PACKET = 32768
BLEND_VAL = "/VMC/Ext/Blend/Val"
BLEND_APPLY = "/VMC/Ext/Blend/Apply"
BONE_POS = "/VMC/Ext/Bone/Pos"
TIME = "/VMC/Ext/T"
OK = "/VMC/Ext/OK"
BONES = {"Head": "head", "Neck": "neck", "LeftEye": "left", "RightEye": "right"}


class _QuietOsc(logging.Filter):
    """python-osc logs a root-logger warning for each odd bundle element or type tag; a sender
    can produce thousands a second. We count such packets instead, so drop those records."""

    folder = os.path.dirname(pythonosc.__file__)

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.pathname.startswith(self.folder)


if not any(isinstance(f, _QuietOsc) for f in logging.getLogger().filters):
    logging.getLogger().addFilter(_QuietOsc())


def _unity_to_ours(q) -> tuple[float, float, float]:
    x, y, z, w = (check_value("bone rotation", v) for v in q)
    quat = np.array([w, x, -y, -z])
    norm = float(np.linalg.norm(quat))
    if not 0.5 < norm < 2.0:
        raise PacketError("malformed", f"bone quaternion of length {norm:.3g}")
    return tuple(float(v) for v in quat_to_axis_angle(quat / norm))  # type: ignore[return-value]


def _ours_to_unity(aa) -> list[float]:
    w, x, y, z = axis_angle_to_quat(np.asarray(aa, np.float64))
    return [float(x), float(-y), float(-z), float(w)]


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Decoder:
    """Keeps blendshape values and bones between packets until ``/VMC/Ext/Blend/Apply``."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.pairs: list[tuple[str, float]] = []
        self.bones: dict[str, tuple[float, float, float]] = {}
        self.time: float | None = None

    def feed(self, packet: bytes) -> LiveFrame | None:
        """The frame completed by ``packet`` (None while a frame is still being assembled);
        PacketError if the packet is not valid OSC or a VMC message in it is malformed."""
        if len(packet) > MAX_PACKET:
            raise PacketError("oversized", f"{len(packet)} bytes, more than {MAX_PACKET}")
        try:
            messages = [m.message for m in osc_packet.OscPacket(bytes(packet)).messages]
        except Exception as exc:  # python-osc raises ParseError, and on odd input also others
            raise PacketError("malformed", f"not OSC ({type(exc).__name__})") from None
        frame = None
        try:
            for msg in messages:
                frame = self._message(msg.address, list(msg.params)) or frame
        except PacketError:
            self._reset()
            raise
        return frame

    def _message(self, address: str, params: list) -> LiveFrame | None:
        if address == BLEND_VAL:
            if len(params) != 2 or not isinstance(params[0], str) or not _is_number(params[1]):
                raise PacketError("malformed", f"{BLEND_VAL} needs a name and a number")
            if len(self.pairs) >= MAX_CHANNELS:
                raise PacketError("oversized", f"more than {MAX_CHANNELS} blendshapes before Apply")
            self.pairs.append((params[0], check_value(params[0][:40], params[1])))
        elif address == BONE_POS:
            if len(params) != 8 or not isinstance(params[0], str) or not all(map(_is_number, params[1:])):
                raise PacketError("malformed", f"{BONE_POS} needs a bone name and 7 numbers")
            for v in params[1:4]:
                check_value("bone position", v)
            if params[0] in BONES:
                self.bones[BONES[params[0]]] = _unity_to_ours(params[4:8])
        elif address == TIME:
            if len(params) != 1 or not _is_number(params[0]):
                raise PacketError("malformed", f"{TIME} needs one number")
            self.time = check_value("time", params[0])
        elif address == BLEND_APPLY:
            return self._apply()
        return None

    def _apply(self) -> LiveFrame:
        try:
            values, unknown = collect(self.pairs, "blendshape")
            bones, t = self.bones, self.time
        finally:
            self._reset()
        if not values and "head" not in bones and unknown:
            raise PacketError("unknown", "no known blendshape")
        eyes = None
        if "left" in bones or "right" in bones:
            zero = (0.0, 0.0, 0.0)
            eyes = (bones.get("left", zero), bones.get("right", zero))
        return LiveFrame(values=values, head=bones.get("head"), eyes=eyes, time=t, unknown=unknown)


def decode(packet: bytes) -> LiveFrame | None:
    """The frame a single packet completes (a bundle ending in ``Apply``), or None when it is
    malformed or completes none (never raises)."""
    try:
        return Decoder().feed(packet)
    except PacketError:
        return None


def _msg(address: str, *args):
    b = osc_message_builder.OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a, "s" if isinstance(a, str) else ("i" if isinstance(a, int) else "f"))
    return b.build()


def encode(frame: LiveFrame) -> list[bytes]:
    """``frame`` as one OSC bundle: OK, T (when timed), a Blend/Val per channel, the Head and eye
    bones when the frame has them, then Apply."""
    bundle = osc_bundle_builder.OscBundleBuilder(osc_bundle_builder.IMMEDIATELY)
    bundle.add_content(_msg(OK, 1))
    if frame.time is not None:
        bundle.add_content(_msg(TIME, float(frame.time)))
    for name, value in frame.values.items():
        bundle.add_content(_msg(BLEND_VAL, name, float(value)))
    bones = []
    if frame.head is not None:
        bones.append(("Head", frame.head))
    if frame.eyes is not None:
        bones += [("LeftEye", frame.eyes[0]), ("RightEye", frame.eyes[1])]
    for bone, aa in bones:
        bundle.add_content(_msg(BONE_POS, bone, 0.0, 0.0, 0.0, *_ours_to_unity(aa)))
    bundle.add_content(_msg(BLEND_APPLY))
    return [bundle.build().dgram]
