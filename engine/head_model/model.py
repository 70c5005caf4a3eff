"""HeadModel and HeadParams: the FLAME layout shared by the open head model and FLAME.

Shapes (V vertices, F faces, S identity comps, E expression comps, J = 5 joints, P pose-corrective comps):
    v_template  [V, 3]      neutral mesh, metres, in the model's native frame (see ``frame``)
    shapedirs   [V, 3, S]   identity basis
    exprdirs    [V, 3, E]   expression basis, channel i is named ``expr_names[i]``
    posedirs    [V, 3, P] or None   pose correctives (FLAME: P = 36 = (J - 1) * 9)
    j_regressor [J, V]      joint locations from vertices (dense)
    parents     [J]         parent joint index, -1 for the root
    weights     [V, J]      LBS weights (rows sum to 1)
    faces       [F, 3]      triangle vertex indices (int32)
    vt          [T, 2]      UV coordinates in [0, 1]
    ft          [F, 3]      UV indices per face corner
    masks       {region: [V] bool}  regions: face, lips, eyelids, eyes, ears, scalp, neck, mouth_interior
                (REGIONS); the open model also has eyebrows, nose, teeth, iris, pupil (EXTRA_REGIONS).
                A FLAME model has the masks of a FLAME_masks.pkl found next to it, else none.

Joint order is fixed: global (root), neck, jaw, eye_l, eye_r — FLAME's order.
Posing: ``engine.head_model.lbs.forward`` (numpy) and ``engine.head_model.lbs_torch`` (torch).
Loading: ``engine.head_model.load_head_model("open" | path)``. Treat a loaded model as read-only
(the open model is cached and shared).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

JOINT_NAMES: tuple[str, ...] = ("global", "neck", "jaw", "eye_l", "eye_r")
REGIONS: tuple[str, ...] = ("face", "lips", "eyelids", "eyes", "ears", "scalp", "neck", "mouth_interior")
EXTRA_REGIONS: tuple[str, ...] = ("eyebrows", "nose", "teeth", "iris", "pupil")


@dataclass
class HeadModel:
    name: str
    v_template: np.ndarray
    shapedirs: np.ndarray
    exprdirs: np.ndarray
    expr_names: tuple[str, ...]
    j_regressor: np.ndarray
    parents: np.ndarray
    weights: np.ndarray
    faces: np.ndarray
    vt: np.ndarray | None = None
    ft: np.ndarray | None = None
    posedirs: np.ndarray | None = None
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    expr_space: str = "arkit"  # "arkit" (open model) or "flame"
    # Native frame, in words: which way is up / forward / left, and the origin.
    frame: str = ""
    # Per-channel soft range of expression values (min, max), [E, 2]; None = unbounded.
    expr_range: np.ndarray | None = None

    @property
    def n_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def n_shape(self) -> int:
        return int(self.shapedirs.shape[2])

    @property
    def n_expr(self) -> int:
        return int(self.exprdirs.shape[2])

    @property
    def has_uv(self) -> bool:
        return self.vt is not None and self.ft is not None


@dataclass
class HeadParams:
    """Head parameters for one frame (leading dims absent) or a batch ([B, ...]).

    shape [S], expr [E], global_rot [3], neck [3], jaw [3], eyes [2, 3] (left, right),
    translation [3]. Rotations are axis-angle in radians in the model's native frame.
    """

    shape: np.ndarray
    expr: np.ndarray
    global_rot: np.ndarray
    neck: np.ndarray
    jaw: np.ndarray
    eyes: np.ndarray
    translation: np.ndarray

    @classmethod
    def zeros(cls, n_shape: int, n_expr: int, batch: int | None = None) -> "HeadParams":
        lead = () if batch is None else (batch,)
        z = lambda *s: np.zeros(lead + s, np.float32)  # noqa: E731
        return cls(z(n_shape), z(n_expr), z(3), z(3), z(3), z(2, 3), z(3))

    @classmethod
    def neutral_for(cls, model: HeadModel, batch: int | None = None) -> "HeadParams":
        return cls.zeros(model.n_shape, model.n_expr, batch)
