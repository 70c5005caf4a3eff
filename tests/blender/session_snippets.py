"""Code run at the start of fresh bpy sessions (``bpy_runner.run_bpy``) by the library-link and
render-farm tests: each session is a new Blender, as on another machine or a farm node.

``PROLOGUE`` enables the add-on (the dev checkout, as ``conftest.enable_addon`` does) and defines:
``H`` (tests/blender/conftest.py), ``storage``, ``new_avatar(identity, name)``,
``animate(obj)`` (jawOpen and jaw keyed over FRAMES), ``render_stills(prefix)`` (F12 per frame:
``scene.frame_set(f)`` then ``render(write_still=True)``) and ``render_animation()``
(``render(animation=True)``, what ``blender -b file.blend -a`` runs).
"""

from __future__ import annotations

import numpy as np

from tests.blender.bpy_runner import REPO_ROOT

FRAMES = (1, 2, 3)
SIZE = 96
GAUSSIANS = 2000

PROLOGUE = f"""
import os, sys
sys.path.insert(0, {str(REPO_ROOT)!r})
import numpy as np
from tests.blender import conftest as H

FRAMES = {FRAMES!r}
bpy.ops.wm.read_factory_settings(use_empty=True)
H.enable_addon()
storage = H.addon("operators.storage")

def new_avatar(identity, name):
    obj = H.add_avatar(identity, name=name)
    return obj

def animate(obj):
    props = obj.gaussian_heads
    jaw_open = [c.name for c in props.expr].index("jawOpen")
    for frame, value in zip(FRAMES, (0.0, 0.6, 1.0)):
        props.expr[jaw_open].value = value
        props.expr[jaw_open].keyframe_insert("value", frame=frame)
        props.jaw = (0.25 * value, 0.0, 0.0)
        obj.keyframe_insert("gaussian_heads.jaw", index=0, frame=frame)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = FRAMES[0], FRAMES[-1]

def render_stills(prefix):
    scene = bpy.context.scene
    for f in FRAMES:
        scene.frame_set(f)
        scene.render.filepath = f"{{prefix}}{{f:04d}}.png"
        assert bpy.ops.render.render(write_still=True) == {{'FINISHED'}}

def render_animation():
    assert bpy.ops.render.render(animation=True) == {{'FINISHED'}}
"""


def read_frames(prefix) -> list[np.ndarray]:
    """The PNGs ``<prefix>0001.png`` ... for FRAMES, as int arrays [H, W, C]."""
    from tests.blender.conftest import read_png

    return [read_png(f"{prefix}{f:04d}.png").astype(int) for f in FRAMES]


def assert_same_frames(got_prefix, want_prefix) -> None:
    """Every frame matches within 8-bit rounding (1/255), shows a head, and the frames differ
    from each other (the keyframed sliders were evaluated)."""
    got, want = read_frames(got_prefix), read_frames(want_prefix)
    for f, a, b in zip(FRAMES, got, want):
        assert a.shape == b.shape == (SIZE, SIZE, 4), f
        assert (b[..., 3] > 0).sum() > 500, f"frame {f}: no head in the reference"
        diff = np.abs(a - b).max()
        assert diff <= 1, f"frame {f}: max difference {diff} (8-bit levels)"
    assert np.abs(want[0] - want[2]).mean() > 0.05, "the animation did not change the head"
