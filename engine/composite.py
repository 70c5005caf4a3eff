"""Compositing our layer with Cycles/EEVEE on Blender 4.2–5.2: the Blender-free parts.

The Blender side (``operators/composite.py``, ``operators/composite_nodes.py``) adds a companion
scene that Gaussian Heads renders with the main scene's camera, and compositor nodes in the main
scene that Z-combine the two layers. What lives here, testable without Blender:

* which engines and Blender versions offer the composite (:func:`composite_offer`);
* the render settings copied from the main scene to its companion (:data:`SYNCED_RENDER`);
* the record of everything the set-up changed, kept on the main scene as JSON so that removal
  restores exactly that (:class:`CompositeRecord`), and refused with one clear error when damaged;
* the pixel maths Blender's Z Combine node performs with "Use Alpha" (:func:`z_combine`), which the
  tests compare with real renders. It mixes the *straight* colour of the nearer layer by its alpha,
  so our premultiplied layer goes through an Alpha Convert (to straight) node first: then
  ``back·(1 − a) + (P / a)·a = P + (1 − a)·back`` is the premultiplied "over".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import numpy as np

from .errors import GaussianHeadsError

#: Render engines whose renders the composite combines with ours.
CYCLES, WORKBENCH = "CYCLES", "BLENDER_WORKBENCH"
EEVEE_IDS = ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT")   # 5.0+, 4.2–4.5
COMPOSITE_ENGINES = (CYCLES, *EEVEE_IDS, WORKBENCH)

#: Object ray-visibility flags (Cycles and EEVEE honour them, also in the rendered viewport; our
#: engine and Workbench ignore them). Turning them all off keeps avatars out of the main scene's
#: own render, reflections and shadows.
RAY_VISIBILITY = ("visible_camera", "visible_diffuse", "visible_glossy", "visible_transmission",
                  "visible_volume_scatter", "visible_shadow")

#: The scene ID property a per-scene ``hide_render`` driver reads through the active scene (a
#: Python-free 'CONTEXT_PROP' variable): 1 on a composited main scene, 0 on its companion. It hides
#: avatars from every engine's render of the main scene, Workbench included.
HIDE_PROPERTY = "gaussian_heads_hide_avatars"

#: ``scene.render`` settings the companion copies from the main scene before every render.
SYNCED_RENDER = ("resolution_x", "resolution_y", "resolution_percentage", "pixel_aspect_x",
                 "pixel_aspect_y", "use_border", "use_crop_to_border", "border_min_x",
                 "border_max_x", "border_min_y", "border_max_y", "fps", "fps_base")
#: ``scene`` settings copied likewise (for compositing, Blender also renders the companion at the
#: main scene's frame itself; the copy keeps a render of the companion alone in step).
SYNCED_SCENE = ("frame_start", "frame_end", "frame_step", "frame_current")

#: Blender 5.3 renders avatars natively (helper A's path); the composite stays an option there.
NATIVE_SPLATS_VERSION = (5, 3, 0)


def composite_offer(engine: str, version: tuple[int, int, int]) -> str:
    """How the render panel offers the composite for a scene rendered by ``engine``.

    Returns "offer" (Blender before 5.3), "option" (5.3+, where Blender renders avatars itself
    but our rasterizer is faster and exact), or "" (not for this engine: ours or an unknown one).
    """
    if engine not in COMPOSITE_ENGINES:
        return ""
    return "option" if tuple(version) >= NATIVE_SPLATS_VERSION else "offer"


def z_combine(front: np.ndarray, front_depth: np.ndarray, back: np.ndarray,
              back_depth: np.ndarray) -> np.ndarray:
    """Reference of Blender's Z Combine with "Use Alpha" (anti-aliasing off), RGB only.

    front, back: straight (not premultiplied) RGBA [H, W, 4]; depths [H, W]. Per pixel the
    layer with the smaller depth is "near"; the result is ``far·(1 − a_near) + near·a_near``
    [H, W, 3] (measured on 4.2.23 and 5.0.1: a straight-alpha mix).
    """
    front, back = np.asarray(front, np.float32), np.asarray(back, np.float32)
    if front.shape != back.shape or front.ndim != 3 or front.shape[2] != 4:
        raise GaussianHeadsError(f"z_combine needs two [H, W, 4] images, got {front.shape} and "
                                 f"{back.shape}")
    front_near = (np.asarray(front_depth) <= np.asarray(back_depth))[..., None]
    near = np.where(front_near, front, back)
    far = np.where(front_near, back, front)
    alpha = near[..., 3:4]
    return far[..., :3] * (1.0 - alpha) + near[..., :3] * alpha


def premultiplied_over(front: np.ndarray, back: np.ndarray) -> np.ndarray:
    """Premultiplied RGBA ``front`` over ``back`` [H, W, 4] -> [H, W, 4]."""
    front, back = np.asarray(front, np.float32), np.asarray(back, np.float32)
    return front + (1.0 - front[..., 3:4]) * back


# --- the record of what set-up changed ---------------------------------------------------------

@dataclass(frozen=True)
class HiddenObject:
    """An avatar or splat object the set-up hid from the main scene's own render."""

    name: str
    flags: tuple[bool, ...]       # the RAY_VISIBILITY values before, in that order
    hide_render: bool = False     # its hide_render before
    driver: bool = False          # set-up added the per-scene hide_render driver
    had_animation: bool = True    # it had animation data before (the driver may have made it)


@dataclass(frozen=True)
class Rewired:
    """A link that left the main Render Layers node and now leaves our Z Combine node."""

    node: str          # the node the link goes to
    socket: int        # that node's input index
    output: str        # "Image" or "Depth": the Render Layers output it came from


@dataclass(frozen=True)
class CompositeRecord:
    """Everything set-up changed on the main scene, so removal can restore exactly that."""

    view_layer: str                 # the main view layer the Render Layers node shows
    use_pass_z: bool                # that layer's Z pass before (the composite needs it on)
    created_tree: bool              # set-up made the compositor tree (removal deletes it)
    use_nodes: bool                 # scene.use_nodes before (4.2–4.5)
    use_compositing: bool           # scene.render.use_compositing before
    render_layers: str              # the main Render Layers node (found or added)
    added_render_layers: bool       # set-up added that node
    nodes: tuple[str, ...]          # the other nodes set-up added
    rewired: tuple[Rewired, ...]
    hidden: tuple[HiddenObject, ...]

    def with_hidden(self, more: tuple[HiddenObject, ...]) -> "CompositeRecord":
        known = {h.name for h in self.hidden}
        extra = tuple(h for h in more if h.name not in known)
        return self if not extra else replace(self, hidden=self.hidden + extra)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> "CompositeRecord":
        """Parse a stored record; ``where`` names it in the one error a damaged record gives."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            record = cls(
                view_layer=_typed(data["view_layer"], str),
                use_pass_z=_typed(data["use_pass_z"], bool),
                created_tree=_typed(data["created_tree"], bool),
                use_nodes=_typed(data["use_nodes"], bool),
                use_compositing=_typed(data["use_compositing"], bool),
                render_layers=_typed(data["render_layers"], str),
                added_render_layers=_typed(data["added_render_layers"], bool),
                nodes=tuple(_typed(n, str) for n in _typed(data["nodes"], list)),
                rewired=tuple(Rewired(_typed(r["node"], str), _typed(r["socket"], int),
                                      _typed(r["output"], str))
                              for r in _typed(data["rewired"], list)),
                hidden=tuple(HiddenObject(_typed(h["name"], str),
                                          tuple(_typed(f, bool) for f in _typed(h["flags"], list)),
                                          _typed(h["hide_render"], bool), _typed(h["driver"], bool),
                                          _typed(h["had_animation"], bool))
                             for h in _typed(data["hidden"], list)),
            )
        except (ValueError, TypeError, KeyError) as exc:  # JSONDecodeError is a ValueError
            raise GaussianHeadsError(f"{where}: the composite record is damaged ({exc}); "
                                     "remove the companion scene and compositor nodes by hand") from None
        if any(len(h.flags) != len(RAY_VISIBILITY) for h in record.hidden):
            raise GaussianHeadsError(f"{where}: the composite record is damaged (expected "
                                     f"{len(RAY_VISIBILITY)} visibility flags per object)")
        return record


def _typed(value, kind):
    # bool is an int in Python: an int field must not accept True, a bool field not 1
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{value!r} is not {kind.__name__}")
    return value

