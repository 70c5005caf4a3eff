"""A small synthetic head model for tests: a UV-mapped ellipsoid in the FLAME layout.

``make_synthetic_head()`` returns a ``HeadModel`` (+Y up, +Z forward, +X the subject's left,
metres) with a latitude/longitude UV layout (seam at the back), 5 joints (global, neck, jaw,
eye_l, eye_r), LBS weights (the lower front of the head follows the jaw), a smooth identity basis,
a few ARKit-named expression channels and region masks (face, lips, eyelids, eyes, ears, scalp,
neck, mouth_interior). ``synthetic_forward(model, params)`` is a plain numpy LBS (no pose
correctives) for tests that must not depend on ``engine.head_model.lbs``; it returns an object
with ``vertices [V,3]``, ``joints [J,3]`` and ``transforms [J,4,4]``.

Other developers (generator, bake) may import it: ``from synthetic_head import ...`` from tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.head_model.model import HeadModel, HeadParams

RADII = np.array([0.075, 0.100, 0.090])  # x (half width), y (half height), z (half depth), metres
JOINTS = np.array([
    [0.0, 0.0, 0.0],        # global
    [0.0, -0.070, -0.010],  # neck
    [0.0, -0.025, 0.020],   # jaw
    [0.030, 0.020, 0.060],  # eye_l (+X is the subject's left)
    [-0.030, 0.020, 0.060],  # eye_r
])
PARENTS = np.array([-1, 0, 1, 1, 1])
EXPR_NAMES = ("jawOpen", "mouthSmileLeft", "mouthSmileRight", "eyeBlinkLeft", "eyeBlinkRight", "browInnerUp")


def _smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _bump(points, centre, radius):
    d2 = ((points - np.asarray(centre)) ** 2).sum(-1)
    return np.exp(-d2 / (2 * radius * radius))


def _regressor_row(verts: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Weights over 4 vertices (summing to 1) that reproduce ``target`` exactly on ``verts``."""
    dirs = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3)
    picks = []
    for d in dirs:
        # the vertex best aligned with direction d as seen from the target
        rel = verts - target
        score = (rel / np.linalg.norm(rel, axis=1, keepdims=True)) @ d
        idx = int(np.argmax(score))
        while idx in picks:
            score[idx] = -np.inf
            idx = int(np.argmax(score))
        picks.append(idx)
    a = np.vstack([verts[picks].T, np.ones(4)])
    w = np.linalg.solve(a, np.append(target, 1.0))
    row = np.zeros(len(verts))
    row[picks] = w
    return row


def make_synthetic_head(n_lat: int = 32, n_lon: int = 64, n_shape: int = 8, seed: int = 0) -> HeadModel:
    """A UV-mapped ellipsoid head model. V = (n_lat - 1) * n_lon + 2, F = 2 * n_lon * (n_lat - 1)."""
    # Longitude phi: 0 at the back (-Z), increasing through the subject's right (-X), front (+Z), left.
    lat = np.linspace(-np.pi / 2, np.pi / 2, n_lat + 1)[1:-1]          # interior rings
    phi = np.arange(n_lon) * (2 * np.pi / n_lon)
    cl, sl = np.cos(lat)[:, None], np.sin(lat)[:, None]
    dirs = np.stack([-np.sin(phi)[None] * cl, np.broadcast_to(sl, (len(lat), n_lon)),
                     -np.cos(phi)[None] * cl], -1).reshape(-1, 3)
    dirs = np.vstack([[0, -1, 0], dirs, [0, 1, 0]])                    # south pole, rings, north pole
    verts = dirs * RADII
    south, north = 0, len(verts) - 1

    def vid(i, j):
        return 1 + i * n_lon + (j % n_lon)

    # UVs: one extra column for the seam; poles get one vt per column.
    u = np.arange(n_lon + 1) / n_lon
    v = (lat + np.pi / 2) / np.pi
    vt_rings = np.stack(np.meshgrid(u, v, indexing="xy"), -1).reshape(-1, 2)   # [(n_lat-1)*(n_lon+1), 2]
    vt_south = np.stack([(np.arange(n_lon) + 0.5) / n_lon, np.zeros(n_lon)], -1)
    vt_north = np.stack([(np.arange(n_lon) + 0.5) / n_lon, np.ones(n_lon)], -1)
    vt = np.vstack([vt_rings, vt_south, vt_north])
    n_ring_vt = len(vt_rings)

    def tid(i, j):
        return i * (n_lon + 1) + j

    faces, ft = [], []
    # Orientation: counter-clockwise seen from outside (normal points outward).
    for j in range(n_lon):
        faces.append([south, vid(0, j + 1), vid(0, j)])
        ft.append([n_ring_vt + j, tid(0, j + 1), tid(0, j)])
        top = len(lat) - 1
        faces.append([north, vid(top, j), vid(top, j + 1)])
        ft.append([n_ring_vt + n_lon + j, tid(top, j), tid(top, j + 1)])
    for i in range(len(lat) - 1):
        for j in range(n_lon):
            a, b, c, d = vid(i, j), vid(i, j + 1), vid(i + 1, j + 1), vid(i + 1, j)
            ta, tb, tc, td = tid(i, j), tid(i, j + 1), tid(i + 1, j + 1), tid(i + 1, j)
            faces += [[a, b, c], [a, c, d]]
            ft += [[ta, tb, tc], [ta, tc, td]]
    faces = np.asarray(faces, np.int32)
    ft = np.asarray(ft, np.int32)
    # Fix orientation so every normal points away from the centre.
    tri = verts[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = (normal * tri.mean(1)).sum(-1) < 0
    faces[flip] = faces[flip][:, ::-1]
    ft[flip] = ft[flip][:, ::-1]

    x, y, z = verts.T
    front = _smoothstep(0.0, 0.04, z)
    # LBS weights: jaw drives the lower front, eyes drive small patches, neck the bottom.
    w_jaw = front * _smoothstep(-0.030, -0.050, y)
    w_neck = _smoothstep(-0.070, -0.095, y) * (1 - w_jaw)
    w_eye_l = (np.linalg.norm(verts - [0.030, 0.020, 0.075], axis=1) < 0.014).astype(float)
    w_eye_r = (np.linalg.norm(verts - [-0.030, 0.020, 0.075], axis=1) < 0.014).astype(float)
    w_eye_l *= 1 - w_jaw
    w_eye_r *= 1 - w_jaw
    w_global = 1 - w_jaw - w_neck - w_eye_l - w_eye_r
    weights = np.stack([w_global, w_neck, w_jaw, w_eye_l, w_eye_r], 1)

    j_regressor = np.stack([_regressor_row(verts, t) for t in JOINTS])

    rng = np.random.default_rng(seed)
    # Identity basis: smooth low-order fields along the surface normal direction, ~5 mm per unit.
    basis = [dirs * x[:, None] / RADII[0], dirs * y[:, None] / RADII[1], dirs * z[:, None] / RADII[2],
             dirs * (x * y)[:, None] / (RADII[0] * RADII[1]), dirs * (y * z)[:, None] / (RADII[1] * RADII[2]),
             dirs * (y * y)[:, None] / RADII[1] ** 2, np.stack([np.zeros_like(x), z / RADII[2], np.zeros_like(x)], 1),
             dirs * front[:, None]]
    while len(basis) < n_shape:
        coef = rng.normal(size=3)
        basis.append(dirs * np.tanh((verts / RADII) @ coef)[:, None])
    shapedirs = 0.005 * np.stack(basis[:n_shape], -1)

    mouth = [0.0, -0.045, 0.085]
    exprdirs = np.zeros((len(verts), 3, len(EXPR_NAMES)))
    exprdirs[:, 1, 0] = -0.01 * w_jaw * _bump(verts, mouth, 0.03)                    # jawOpen (lips part)
    exprdirs[:, 0, 1] = 0.006 * _bump(verts, [0.025, -0.045, 0.08], 0.012)            # smile L
    exprdirs[:, 1, 1] = 0.004 * _bump(verts, [0.025, -0.045, 0.08], 0.012)
    exprdirs[:, 0, 2] = -0.006 * _bump(verts, [-0.025, -0.045, 0.08], 0.012)          # smile R
    exprdirs[:, 1, 2] = 0.004 * _bump(verts, [-0.025, -0.045, 0.08], 0.012)
    exprdirs[:, 1, 3] = -0.006 * _bump(verts, [0.030, 0.030, 0.075], 0.008)           # blink L
    exprdirs[:, 1, 4] = -0.006 * _bump(verts, [-0.030, 0.030, 0.075], 0.008)          # blink R
    exprdirs[:, 1, 5] = 0.005 * _bump(verts, [0.0, 0.045, 0.08], 0.02)                # brow up

    lips = (np.abs(x) < 0.025) & (np.abs(y + 0.045) < 0.008) & (z > 0.06)
    eyes = (w_eye_l + w_eye_r) > 0.5
    eyelids = ~eyes & ((np.linalg.norm(verts - [0.030, 0.020, 0.075], axis=1) < 0.022)
                       | (np.linalg.norm(verts - [-0.030, 0.020, 0.075], axis=1) < 0.022))
    ears = (np.abs(x) > 0.065) & (np.abs(y) < 0.025) & (np.abs(z) < 0.03)
    neck = y < -0.085
    scalp = (y > 0.05) | ((y > 0.0) & (z < 0.0))
    mouth_interior = (np.abs(x) < 0.015) & (np.abs(y + 0.045) < 0.004) & (z > 0.06)
    face = (z > 0.03) & (y < 0.06) & ~neck
    masks = dict(face=face, lips=lips, eyelids=eyelids, eyes=eyes, ears=ears, scalp=scalp, neck=neck,
                 mouth_interior=mouth_interior)
    return HeadModel(
        name="synthetic", v_template=verts.astype(np.float32), shapedirs=shapedirs.astype(np.float32),
        exprdirs=exprdirs.astype(np.float32), expr_names=EXPR_NAMES, j_regressor=j_regressor.astype(np.float32),
        parents=PARENTS.copy(), weights=weights.astype(np.float32), faces=faces, vt=vt.astype(np.float32),
        ft=ft, masks=masks, expr_space="arkit", frame="+Y up, +Z forward, +X subject's left; origin at centre",
        expr_range=np.tile([[0.0, 1.0]], (len(EXPR_NAMES), 1)).astype(np.float32))


def _rodrigues(aa: np.ndarray) -> np.ndarray:
    aa = np.asarray(aa, np.float64)
    theta = np.linalg.norm(aa)
    if theta < 1e-12:
        return np.eye(3)
    k = aa / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


@dataclass
class SyntheticPose:
    vertices: np.ndarray    # [V, 3]
    joints: np.ndarray      # [J, 3]
    transforms: np.ndarray  # [J, 4, 4]


def synthetic_forward(model: HeadModel, params: HeadParams) -> SyntheticPose:
    """Plain LBS for one frame: shape + expression blendshapes, then skinning (no correctives)."""
    v = (model.v_template.astype(np.float64) + model.shapedirs.astype(np.float64) @ np.asarray(params.shape, float)
         + model.exprdirs.astype(np.float64) @ np.asarray(params.expr, float))
    joints = model.j_regressor.astype(np.float64) @ v
    rots = [params.global_rot, params.neck, params.jaw, params.eyes[0], params.eyes[1]]
    world = np.zeros((len(rots), 4, 4))
    for j, aa in enumerate(rots):
        local = np.eye(4)
        local[:3, :3] = _rodrigues(aa)
        parent = model.parents[j]
        local[:3, 3] = joints[j] - (joints[parent] if parent >= 0 else 0)
        world[j] = local if parent < 0 else world[parent] @ local
    skin = world.copy()
    for j in range(len(rots)):
        skin[j, :3, 3] -= world[j, :3, :3] @ joints[j]
    t = np.einsum("vj,jab->vab", model.weights.astype(np.float64), skin)
    out = np.einsum("vab,vb->va", t[:, :3, :3], v) + t[:, :3, 3] + np.asarray(params.translation, float)
    world[:, :3, 3] += np.asarray(params.translation, float)
    posed_joints = world[:, :3, 3]
    return SyntheticPose(out.astype(np.float32), posed_joints.astype(np.float32), world.astype(np.float32))
