"""Live face capture over the network (no bpy): protocol decoders, a UDP receiver, takes.

One module per protocol, each with ``NAME``, ``DEFAULT_PORT``, ``MAX_PACKET``, a ``Decoder``
(``feed(packet) -> LiveFrame | None``, raising ``PacketError`` for a packet to count and drop),
``decode(packet) -> LiveFrame | None`` (never raises) and ``encode(frame) -> list[bytes]``.
:class:`~engine.live.receiver.Receiver` runs a decoder on a background thread;
:mod:`engine.live.take` turns frames into a ``ParamSequence`` and back, so recording, mapping and
key writing go through the importers' own code.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import GaussianHeadsError
from .frame import LiveFrame, PacketError

# protocol name -> (module, label)
PROTOCOLS: dict[str, tuple[str, str]] = {
    "livelink": ("livelink", "Live Link Face"),
    "ifacialmocap": ("ifacialmocap", "iFacialMocap / FaceMotion3D"),
    "vmc": ("vmc", "VMC protocol (OSC)"),
}


def protocol(name: str) -> ModuleType:
    """The module of protocol ``name`` (one of ``PROTOCOLS``)."""
    if name not in PROTOCOLS:
        raise GaussianHeadsError(f"unknown live protocol {name!r}; expected one of {', '.join(PROTOCOLS)}")
    return importlib.import_module(f".{PROTOCOLS[name][0]}", __package__)


def default_port(name: str) -> int:
    return int(protocol(name).DEFAULT_PORT)


__all__ = ["PROTOCOLS", "LiveFrame", "PacketError", "protocol", "default_port"]
