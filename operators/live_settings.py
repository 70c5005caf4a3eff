"""Live capture settings, on ``scene.gaussian_heads_live`` (registered by ``operators.live``)."""

from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       StringProperty)

from ..engine.live import PROTOCOLS, default_port

PROTOCOL_ITEMS = [(name.upper(), label, f"Receive {label} packets") for name, (_, label) in PROTOCOLS.items()]


def _protocol_changed(self, context):
    self.port = default_port(self.protocol.lower())


class GaussianHeadsLiveChannel(bpy.types.PropertyGroup):
    """Calibration of one avatar channel (``name``): value = gain · (mapped − neutral)."""

    neutral: FloatProperty(name="Neutral", default=0.0, options=set())
    gain: FloatProperty(name="Gain", default=1.0, soft_min=0.0, soft_max=3.0, options=set())


class GaussianHeadsLiveSettings(bpy.types.PropertyGroup):
    protocol: EnumProperty(name="Protocol", items=PROTOCOL_ITEMS, default='LIVELINK',
                           update=_protocol_changed, description="What the capture app sends")
    host: StringProperty(
        name="Listen On", default="0.0.0.0",
        description="Interface to listen on: 0.0.0.0 every network interface (a phone on the Wi-Fi), "
                    "127.0.0.1 this computer only, or one interface's address")
    port: IntProperty(name="Port", default=11111, min=0, max=65535,
                      description="UDP port (Live Link Face 11111, iFacialMocap 49983, VMC 39539; 0: any free port)")
    target: StringProperty(name="Avatar", default="", description="Avatar to drive (empty: the active object)")
    smoothing: FloatProperty(name="Smoothing", default=0.0, min=0.0, max=0.95,
                             description="Exponential smoothing of the live values (0: none)")
    gain: FloatProperty(name="Gain", default=1.0, soft_min=0.0, soft_max=3.0,
                        description="Multiplies every expression value (after the neutral is taken off)")
    calibration: CollectionProperty(type=GaussianHeadsLiveChannel, name="Calibration",
                                    description="Per-channel neutral and gain, set by Set Neutral")
    neutral_head: bpy.props.FloatVectorProperty(name="Neutral Head", size=3, default=(0.0, 0.0, 0.0), options=set())
    # Shown by the panel while a session runs (written by the operators and the timer).
    running: BoolProperty(name="Running", default=False, options={'SKIP_SAVE'})
    recording: BoolProperty(name="Recording", default=False, options={'SKIP_SAVE'})
    status: StringProperty(name="Status", default="", options={'SKIP_SAVE'})
    phone_address: StringProperty(name="Send To", default="", options={'SKIP_SAVE'},
                                  description="The address and port to type into the capture app")


classes = (GaussianHeadsLiveChannel, GaussianHeadsLiveSettings)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register():
    _register()
    bpy.types.Scene.gaussian_heads_live = bpy.props.PointerProperty(type=GaussianHeadsLiveSettings)


def unregister():
    del bpy.types.Scene.gaussian_heads_live
    _unregister()
