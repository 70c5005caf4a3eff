"""Channel names: the ARKit-52 blendshapes, Live Link Face's columns, and name normalisation.

ARKit spells names camelCase (``eyeBlinkLeft``); Live Link Face writes them PascalCase
(``EyeBlinkLeft``). Matching is case-insensitive and ignores ``_``, ``-``, ``.`` and spaces, so
``EyeBlinkLeft``, ``eyeBlinkLeft`` and ``eye_blink_left`` are the same channel.
"""

from __future__ import annotations

import re

# The 52 blendshapes in the column order Live Link Face writes them.
LIVE_LINK_BLENDSHAPES: tuple[str, ...] = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
    "EyeSquintLeft", "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight",
    "EyeLookOutRight", "EyeLookUpRight", "EyeSquintRight", "EyeWideRight", "JawForward",
    "JawRight", "JawLeft", "JawOpen", "MouthClose", "MouthFunnel", "MouthPucker", "MouthRight",
    "MouthLeft", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
    "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft",
    "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft",
    "MouthUpperUpRight", "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft",
    "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft",
    "NoseSneerRight", "TongueOut",
)
# The 9 rotation columns that follow them (Live Link Face "BlendShapeCount" = 61 = 52 + 9).
LIVE_LINK_HEAD: tuple[str, ...] = ("HeadYaw", "HeadPitch", "HeadRoll")
LIVE_LINK_EYES: tuple[str, ...] = (
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)
LIVE_LINK_ROTATIONS: tuple[str, ...] = LIVE_LINK_HEAD + LIVE_LINK_EYES

# ARKit's own (camelCase) spelling, same order.
ARKIT_NAMES: tuple[str, ...] = tuple(n[0].lower() + n[1:] for n in LIVE_LINK_BLENDSHAPES)

_STRIP = re.compile(r"[\s_\-.]+")


def normalize_name(name: str) -> str:
    """The key two channel names are compared by: lower case without ``_ - .`` or spaces."""
    return _STRIP.sub("", str(name)).lower()


_ARKIT_KEYS = {normalize_name(n): n for n in ARKIT_NAMES}


def arkit_canonical(name: str) -> str | None:
    """The ARKit camelCase spelling of ``name``, or None when it is not one of the 52."""
    return _ARKIT_KEYS.get(normalize_name(name))


def looks_arkit(names) -> bool:
    """True when most of ``names`` (at least half, and at least one) are ARKit-52 blendshapes."""
    names = list(names)
    hits = sum(1 for n in names if arkit_canonical(n) is not None)
    return hits > 0 and hits * 2 >= len(names)


_FLAME_INDEX = re.compile(r"^(?:flame_)?(?:expr?|expression)_?(\d+)$", re.IGNORECASE)


def flame_expr_name(i: int) -> str:
    """The name our readers give FLAME expression coefficient ``i``: ``expr_000`` …"""
    return f"expr_{i:03d}"


def flame_index(name: str) -> int | None:
    """Index of a FLAME-style coefficient name (``expr_7``, ``exp007``, ``expression_7``), else None."""
    m = _FLAME_INDEX.match(str(name).strip())
    return int(m.group(1)) if m else None
