"""The built-in identity source: procedural Gaussian heads with no network weights.

``BuiltinSource(model).sample(seed, shape=None, truncation=0.7) -> BoundIdentity``

Per seed (deterministic): an identity β ~ N(0, truncation²) from the head model's basis (the open
model's basis is scaled so that β ~ N(0, 1) spans its people), a skin tone from a range of real
human skin colours (very light to very dark), lip / eyelid / ear / nose tints, a hair colour and
a short hair cap on the scalp (raised, elongated Gaussians combed away from the crown), eyebrows,
an iris colour (white sclera, iris ring, dark pupil), white teeth and a dark red mouth interior,
plus subtle per-Gaussian colour variation and a soft baked light (cavity darkening and a key
light from the upper front), which is what a captured avatar's colours also contain.

Region masks (``model.masks``, per vertex) are softened over the mesh and interpolated with each
Gaussian's barycentrics, so region borders blend smoothly. Colours are display-referred sRGB
values, as in every 3DGS PLY (the rasterizer's output is written to PNG as is).

Gaussians lie flat on the surface (the local z axis of their frame is the face normal; the
normal scale is a fraction of the tangential one), are opaque, and are sized from the local
density of Gaussians so the surface has no holes. There is no deformation network: the mesh's
articulation and expression blendshapes drive the avatar (``deformation=None``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import GaussianHeadsError, check_shape
from ..head_model.model import HeadModel
from .binding import Binding, face_frames, sample_uv_binding, uv_face_areas
from .gaussian_set import rgb_to_sh_dc
from .identity import BoundIdentity, CanonicalGaussians
from .identity import model_spec as default_model_spec

# Monk Skin Tone scale (Google, 2022; 10 public reference swatches, sRGB), lightest to darkest.
SKIN_TONES_SRGB = np.array([
    [0xF6, 0xED, 0xE4], [0xF3, 0xE7, 0xDB], [0xF7, 0xEA, 0xD0], [0xEA, 0xDA, 0xBA], [0xD7, 0xBD, 0x96],
    [0xA0, 0x7E, 0x56], [0x82, 0x5C, 0x43], [0x60, 0x41, 0x34], [0x3A, 0x31, 0x2A], [0x29, 0x24, 0x20],
], np.float64) / 255.0

# Natural hair colours (sRGB) and how common they are for light / dark skin.
HAIR_COLOURS = {
    "black": (0.045, 0.040, 0.038), "dark brown": (0.13, 0.085, 0.06), "brown": (0.25, 0.16, 0.10),
    "light brown": (0.42, 0.30, 0.19), "dark blond": (0.56, 0.44, 0.28), "blond": (0.74, 0.62, 0.42),
    "auburn": (0.42, 0.17, 0.08), "red": (0.60, 0.27, 0.12), "grey": (0.52, 0.50, 0.48),
    "white": (0.80, 0.79, 0.76),
}
_HAIR_P_LIGHT = (0.10, 0.22, 0.20, 0.13, 0.10, 0.08, 0.05, 0.04, 0.06, 0.02)
_HAIR_P_DARK = (0.58, 0.28, 0.06, 0.01, 0.0, 0.0, 0.0, 0.0, 0.05, 0.02)

IRIS_COLOURS = {
    "dark brown": (0.16, 0.08, 0.04), "brown": (0.32, 0.18, 0.08), "hazel": (0.45, 0.35, 0.16),
    "green": (0.30, 0.42, 0.24), "blue": (0.32, 0.48, 0.66), "grey": (0.46, 0.51, 0.55),
}
_IRIS_P_LIGHT = (0.15, 0.25, 0.15, 0.12, 0.25, 0.08)
_IRIS_P_DARK = (0.70, 0.28, 0.02, 0.0, 0.0, 0.0)

SCLERA = (0.84, 0.81, 0.78)
PUPIL = (0.02, 0.02, 0.025)
TEETH = (0.88, 0.85, 0.76)
MOUTH = (0.30, 0.07, 0.07)


@dataclass(frozen=True)
class BuiltinSamplerConfig:
    """Settings of the built-in sampler (defaults give the documented look)."""

    n_gaussians: int = 65_536           # Gaussians per identity (50k-70k+ are fine)
    sh_degree: int = 0                  # view-independent colour; higher degrees are zero-padded
    binding_seed: int = 0               # every built-in identity shares one UV binding per model
    coverage: float = 0.95              # tangential std-dev = coverage / sqrt(local density)
    flatness: float = 0.22              # normal std-dev / tangential std-dev
    opacity: float = 0.97
    # relative density of Gaussians per region (1 elsewhere); smaller Gaussians where details are
    face_density: float = 1.5
    lips_density: float = 2.5
    eyelid_density: float = 4.0
    eye_density: float = 4.0
    hair_density: float = 1.3
    mouth_density: float = 0.3          # inside the mouth (mostly hidden)
    colour_noise: float = 0.025         # per-Gaussian relative colour variation (std-dev)
    hair_height: tuple[float, float] = (0.002, 0.006)   # range of the hair cap's thickness, metres
    hair_elongation: float = 2.6        # hair Gaussians' length / width
    iris_angle: float = 29.0            # iris radius as seen from the eyeball centre, degrees
    pupil_angle: tuple[float, float] = (9.0, 13.0)      # range of the pupil's radius, degrees
    light_direction: tuple[float, float, float] = (0.35, 0.55, 1.0)   # model frame, toward the light
    light_strength: float = 0.28        # 0 = flat colour
    sheen: float = 0.04                 # view-independent highlight of the key light
    cavity_strength: float = 0.32       # darkening of concave places (eye sockets, nostrils, ears)

    def __post_init__(self) -> None:
        if not 1 <= self.n_gaussians <= 10_000_000:
            raise GaussianHeadsError(f"number of Gaussians must be 1..10,000,000, got {self.n_gaussians}")
        if not 0 <= self.sh_degree <= 3:
            raise GaussianHeadsError(f"SH degree must be 0..3, got {self.sh_degree}")
        if not (0 < self.coverage and 0 < self.flatness and 0 < self.opacity < 1):
            raise GaussianHeadsError("coverage and flatness must be positive and opacity in (0, 1)")


_REGIONS = ("face", "lips", "eyelids", "eyes", "ears", "scalp", "neck", "mouth_interior", "nose", "teeth")
_SOFTEN = {"face": 2, "lips": 1, "eyelids": 1, "ears": 3, "scalp": 3, "neck": 3, "nose": 4}


@dataclass
class _ModelCache:
    """What depends only on the head model and config (not on the seed), computed once."""

    binding: Binding
    corners: np.ndarray         # [N, 3] vertex ids of each Gaussian's face
    bary: np.ndarray            # [N, 3] float64
    interp: object              # [N, V] scipy sparse float32: barycentric interpolation of vertex values
    smooth: object              # [V, V] scipy sparse row-normalised adjacency (with self loops)
    gmask: dict                 # region -> [N] softened mask interpolated at each Gaussian
    expected: np.ndarray        # [F] expected Gaussians per face
    gpos: np.ndarray            # [N, 3] Gaussian positions on the template mesh
    gpos32: np.ndarray          # the same, float32
    landmarks: dict             # brow_y, top_y, z_front, z_back (template, metres)
    eye_side: np.ndarray        # [N] int: 0 = not on an eyeball, 1 = left, 2 = right
    brow_idx: np.ndarray        # [M] Gaussians near where the eyebrows go
    eye_joints: np.ndarray      # [2, 3] template eye centres (left, right)
    cheeks: np.ndarray          # [N] soft cheek weight (for a blush)
    lashes: np.ndarray          # [N] lash line along the upper eyelid rims
    edge_fade: np.ndarray       # [N] 1 inside, falling to 0 at the neck's cut edge
    shapedirs: np.ndarray       # [V*3, S] float64
    incidence: object           # [V, F] scipy sparse: vertex-face incidence (sums face normals)


_CACHE: dict[tuple, tuple[HeadModel, _ModelCache]] = {}  # the model is held so its id stays unique


def _mask(model: HeadModel, name: str) -> np.ndarray:
    m = model.masks.get(name)
    if m is None:
        return np.zeros(model.n_vertices, np.float64)
    m = np.asarray(m).astype(np.float64).reshape(-1)
    check_shape(f"mask {name}", m, (model.n_vertices,))
    return m


def _adjacency(model: HeadModel):
    import scipy.sparse as sp

    f = np.asarray(model.faces, np.int64)
    rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0], np.arange(model.n_vertices)])
    cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2], np.arange(model.n_vertices)])
    a = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(model.n_vertices,) * 2)
    a.data[:] = 1.0
    deg = np.asarray(a.sum(axis=1)).reshape(-1)
    return (sp.diags(1.0 / deg) @ a).tocsr()


def _smoothed(smooth, values: np.ndarray, iterations: int) -> np.ndarray:
    for _ in range(iterations):
        values = smooth @ values
    return values


def _face_areas_3d(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def _boundary_vertices(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """[V] bool: vertices on an edge that only one face uses."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    out = np.zeros(n_vertices, bool)
    out[uniq[counts == 1].reshape(-1)] = True
    return out


def _model_cache(model: HeadModel, config: BuiltinSamplerConfig) -> _ModelCache:
    key = (id(model), model.n_vertices, int(model.faces.shape[0]), config.n_gaussians, config.binding_seed,
           config.face_density, config.lips_density, config.eyelid_density, config.eye_density,
           config.hair_density, config.mouth_density)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is model:
        return hit[1]
    faces = np.asarray(model.faces, np.int64)
    template = np.asarray(model.v_template, np.float64)
    smooth = _adjacency(model)
    raw = {n: _mask(model, n) for n in _REGIONS}
    vmask = {n: (_smoothed(smooth, raw[n], _SOFTEN[n]) if n in _SOFTEN else raw[n]) for n in _REGIONS}
    # Sampling weights: uniform in 3D (3D area / UV area undoes the UV layout's distortion),
    # denser where there is detail, sparser inside the mouth.
    uv_area = uv_face_areas(model)
    area3d = _face_areas_3d(template, faces)
    inner_mouth = np.clip(raw["mouth_interior"] - raw["lips"], 0, 1)
    per_vertex = np.maximum.reduce([
        np.ones(model.n_vertices) * (1 - inner_mouth) + config.mouth_density * inner_mouth,
        config.face_density * raw["face"], config.lips_density * raw["lips"],
        config.eyelid_density * raw["eyelids"], config.eye_density * raw["eyes"],
        config.hair_density * raw["scalp"]])
    density = per_vertex[faces].mean(1)
    ratio = np.where(uv_area > 0, area3d / np.maximum(uv_area, 1e-30), 0.0)
    weights = ratio * density
    if not (weights > 0).any():
        raise GaussianHeadsError(f"head model '{model.name}' has no faces with both UV and 3D area")
    binding = sample_uv_binding(model, config.n_gaussians, seed=config.binding_seed, region_weights=weights)
    w = uv_area * weights
    expected = w / w.sum() * config.n_gaussians
    corners = faces[binding.face_idx]
    bary = binding.bary.astype(np.float64)

    def at_gaussians(values):
        return (values[corners] * bary).sum(1)

    gmask = {k: at_gaussians(v).astype(np.float32) for k, v in vmask.items()}
    gpos = np.einsum("nk,nkc->nc", bary, template[corners])
    # landmarks of the template (the head model's frame: +Y up, +Z forward)
    joints = np.asarray(model.j_regressor, np.float64) @ template
    top_y = float(template[:, 1].max())
    brow_y = float(joints[3:5, 1].mean()) + 0.047     # the brow line, ~4.7 cm above the eye centres
    head = template[:, 1] > brow_y - 0.06
    landmarks = {"brow_y": brow_y, "top_y": top_y, "z_front": float(template[head, 2].max()),
                 "z_back": float(template[head, 2].min())}
    # eyeballs: which eye each Gaussian is on (by the nearer eye joint)
    eye_side = np.zeros(len(binding), np.int8)
    on_eye = gmask["eyes"] > 0.5
    if on_eye.any():
        d_l = np.linalg.norm(gpos[on_eye] - joints[3], axis=1)
        d_r = np.linalg.norm(gpos[on_eye] - joints[4], axis=1)
        eye_side[on_eye] = np.where(d_l <= d_r, 1, 2)
    # eyebrow candidates: on the front surface, a band above the eyes
    rel_y = gpos[:, 1] - joints[3, 1]
    rel_x = np.minimum(np.abs(gpos[:, 0] - joints[3, 0]), np.abs(gpos[:, 0] - joints[4, 0]))
    near_brow = ((rel_y > 0.008) & (rel_y < 0.04) & (rel_x < 0.04) & (gpos[:, 2] > joints[3, 2] + 0.005)
                 & (gmask["eyes"] < 0.5) & (gmask["eyelids"] < 0.5))
    brow_idx = np.flatnonzero(near_brow)
    cheeks = np.zeros(len(binding))
    for eye in joints[3:5]:
        centre = eye + np.array([0.004 * np.sign(eye[0]), -0.032, 0.02])
        cheeks = np.maximum(cheeks, np.exp(-((gpos - centre) ** 2).sum(1) / (2 * 0.014 ** 2)))
    cheeks *= np.clip(gmask["face"], 0, 1) * (1 - np.clip(gmask["lips"] + gmask["eyes"] + gmask["eyelids"], 0, 1))
    cheeks = cheeks.astype(np.float32)
    # lash lines: the eyelid rims are where the lids rest on the front of the eyeball
    boundary = _boundary_vertices(faces, model.n_vertices)
    lash_v = np.zeros(model.n_vertices)
    eye_v = raw["eyes"] > 0
    for eye in joints[3:5]:
        d = np.linalg.norm(template - eye, axis=1)
        own = eye_v & (d < 0.03)
        if not own.any():
            continue
        r = float(np.median(d[own]))
        rim = ~eye_v & (template[:, 2] - eye[2] > 0.45 * r) & (d > r + 0.0005) & (d < r + 0.003)
        upper = template[:, 1] > eye[1] + 0.002                 # the lower lid gets no lash line
        lash_v = np.maximum(lash_v, rim * upper)
    lashes = np.clip(at_gaussians(np.clip(_smoothed(smooth, lash_v, 1) * 1.5, 0, 1)), 0, 1).astype(np.float32)
    lashes *= gmask["eyes"] < 0.5
    # the neck's cut edge fades out (mesh boundary below the neck joint, not the eyes or mouth)
    joints_y = (np.asarray(model.j_regressor, np.float64) @ template)[1, 1]
    cut = (boundary & (template[:, 1] < joints_y)
           & (raw["mouth_interior"] + raw["teeth"] + raw["eyes"] == 0)).astype(np.float64)
    edge = np.clip(_smoothed(smooth, cut, 5) * 2.5, 0, 1)
    edge_fade = (1.0 - at_gaussians(edge)).astype(np.float32)
    import scipy.sparse as sp

    shapedirs = np.asarray(model.shapedirs, np.float64).reshape(model.n_vertices * 3, model.n_shape)
    incidence = sp.csr_matrix((np.ones(faces.size), (faces.reshape(-1), np.repeat(np.arange(len(faces)), 3))),
                              shape=(model.n_vertices, len(faces)))
    interp = sp.csr_matrix((bary.reshape(-1).astype(np.float32), (np.repeat(np.arange(len(binding)), 3),
                                                                  corners.reshape(-1))),
                           shape=(len(binding), model.n_vertices))
    cached = _ModelCache(binding, corners, bary, interp, smooth, gmask, expected, gpos, gpos.astype(np.float32), landmarks, eye_side, brow_idx,
                         joints[3:5].copy(), cheeks, lashes, edge_fade, shapedirs, incidence)
    _CACHE.clear()  # one model at a time is the common case; keep memory bounded
    _CACHE[key] = (model, cached)
    return cached


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray, incidence) -> np.ndarray:
    """Area-weighted vertex normals [V, 3]; ``incidence`` [V, F] sums the faces around a vertex."""
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    vn = incidence @ fn
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


def _pick(rng: np.random.Generator, names, p_light, p_dark, darkness: float) -> str:
    p = (1 - darkness) * np.asarray(p_light) + darkness * np.asarray(p_dark)
    return list(names)[int(rng.choice(len(p), p=p / p.sum()))]


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - x.dtype.type(e0)) * x.dtype.type(1.0 / (e1 - e0)), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _hair_field(cache: _ModelCache, hairline: float, sideburn: float, nape: float, recession: float) -> tuple:
    """Hair coverage [N] in [0, 1] and height above the hairline [N] (metres), on the template.

    The hairline is a height y_h(z, x) that is high over the forehead, drops at the temples to
    the sideburns and runs low around the back (the nape); all relative to the brow line and
    the top of the head, so it fits any head model in the FLAME frame.
    """
    lm = cache.landmarks
    x, y, z = cache.gpos32.T
    h = np.float32(lm["top_y"] - lm["brow_y"])
    t = np.clip((z - np.float32(lm["z_back"])) * np.float32(1.0 / (lm["z_front"] - lm["z_back"])), 0.0, 1.0)
    knots_t = (0.0, 0.35, 0.50, 0.62, 0.76, 1.0)
    knots_k = (-1.55 + nape, -1.55 + nape, -0.95 + sideburn, -0.2 + sideburn, 0.55 + hairline, 0.60 + hairline)
    k = np.interp(t, knots_t, knots_k).astype(np.float32)              # 0 back .. 1 front
    k += np.float32(recession) * np.clip(np.abs(x) * np.float32(1 / 0.045), 0, 1) ** 2 * _smoothstep(0.65, 0.8, t)
    above = y - (np.float32(lm["brow_y"]) + k * h)
    m = cache.gmask
    features = np.clip(m["ears"] * 1.5 + m["eyes"] + m["eyelids"] + m["lips"] + m["nose"]
                       + m["mouth_interior"], 0, 1)
    cover = _smoothstep(-0.002, 0.004, above) * (1 - features)
    return cover, above


def _brow_field(cache: _ModelCache, height: float, arch: float, thickness: float, length: float) -> np.ndarray:
    """Eyebrow coverage [M] in [0, 1] for the candidates ``cache.brow_idx``: an arched band above
    each eye, thick on the inner side and tapering toward the temple."""
    p = cache.gpos[cache.brow_idx]
    out = np.zeros(len(p))
    for eye, outward in ((cache.eye_joints[0], 1.0), (cache.eye_joints[1], -1.0)):  # +X is the left
        u = (p[:, 0] - eye[0]) * outward                     # along the brow, toward the temple
        centre_y = eye[1] + height + arch * (1 - ((u - 0.004) / (0.6 * length)) ** 2)
        half = thickness * (1.0 - 0.6 * np.clip((u + 0.4 * length) / length, 0, 1))
        along = _smoothstep(-0.45 * length, -0.38 * length, u) * _smoothstep(0.62 * length, 0.52 * length, u)
        across = _smoothstep(half, 0.55 * half, np.abs(p[:, 1] - centre_y))
        out = np.maximum(out, along * across)
    return out


class BuiltinSource:
    """Procedural identities on a head model (the embedded default source; no weights).

    model: the head model (default ``load_head_model(model_spec)``); model_spec: how identities
    record their model for reloading (``meta["model"]``) - pass the FLAME path here when ``model``
    was loaded from one; config: BuiltinSamplerConfig.
    """

    def __init__(self, model: HeadModel | None = None, config: BuiltinSamplerConfig = BuiltinSamplerConfig(),
                 model_spec: str = "open"):
        if model is None:
            from ..head_model import load_head_model

            model = load_head_model(model_spec)
            self.model_spec = model_spec
        else:
            self.model_spec = model_spec if model_spec != "open" else default_model_spec(model)
        if not model.has_uv:
            raise GaussianHeadsError(f"head model '{model.name}' has no UV layout; the built-in sampler needs one")
        self.model = model
        self.config = config

    def sample(self, seed: int, shape: np.ndarray | None = None, truncation: float = 0.7) -> BoundIdentity:
        """seed -> BoundIdentity with N = config.n_gaussians Gaussians (deterministic per seed).

        shape: optional identity β [S] (else β ~ N(0, truncation²)).
        """
        model, cfg = self.model, self.config
        seed = int(seed)
        if not 0 <= seed < 2 ** 63:
            raise GaussianHeadsError(f"seed must be a non-negative integer, got {seed}")
        truncation = float(truncation)
        if not np.isfinite(truncation) or truncation < 0:
            raise GaussianHeadsError(f"truncation must be a non-negative number, got {truncation}")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9E3779B9]))
        beta_draw = rng.standard_normal(model.n_shape)
        if shape is None:
            beta = (truncation * beta_draw).astype(np.float32)
        else:
            beta = np.asarray(shape, np.float32).reshape(-1)
            check_shape("shape", beta, (model.n_shape,))
            if not np.isfinite(beta).all():
                raise GaussianHeadsError("identity shape contains NaN or infinity")

        cache = _model_cache(model, cfg)
        binding, corners, bary, masks = cache.binding, cache.corners, cache.bary, cache.gmask
        n = len(binding)
        faces = np.asarray(model.faces, np.int64)
        verts = np.asarray(model.v_template, np.float64) + (cache.shapedirs @ beta.astype(np.float64)).reshape(-1, 3)

        # -- appearance draws (all from rng, in a fixed order) --
        tone = rng.random()
        pos = tone * (len(SKIN_TONES_SRGB) - 1)
        i0 = min(int(pos), len(SKIN_TONES_SRGB) - 2)
        skin = SKIN_TONES_SRGB[i0] * (1 - (pos - i0)) + SKIN_TONES_SRGB[i0 + 1] * (pos - i0)
        skin = skin.mean() + 1.2 * (skin - skin.mean())         # the swatches are paler than living skin
        undertone = rng.normal(0.0, 1.0)
        skin = skin * np.array([1.0 + 0.035 * undertone, 1.0, 1.0 - 0.045 * undertone])
        darkness = float(np.clip((tone - 0.35) / 0.5, 0.0, 1.0))
        pale = 1.0 - float(np.clip(tone / 0.4, 0.0, 1.0))            # 1 for the lightest tones
        skin = skin * np.array([1.02, 0.945 - 0.015 * pale, 0.895 - 0.04 * pale])  # warmth: blood under the skin
        skin = skin * (0.86 + 0.09 * darkness + 0.05 * rng.standard_normal())  # exposure of the baked albedo
        hair_name = _pick(rng, HAIR_COLOURS, _HAIR_P_LIGHT, _HAIR_P_DARK, darkness)
        hair = np.array(HAIR_COLOURS[hair_name]) * (0.9 + 0.2 * rng.random())
        iris_name = _pick(rng, IRIS_COLOURS, _IRIS_P_LIGHT, _IRIS_P_DARK, darkness)
        iris = np.array(IRIS_COLOURS[iris_name]) * (0.85 + 0.3 * rng.random())
        lip_tint = np.array([0.93, 0.72, 0.72]) + rng.normal(0.0, 0.025, 3)
        lip_tint *= 1.0 - 0.15 * darkness
        blush = 0.04 + 0.05 * rng.random()
        brow_strength = 0.6 + 0.35 * rng.random()
        brow_height = 0.019 + 0.004 * rng.random()
        brow_arch = 0.002 + 0.003 * rng.random()
        brow_thickness = 0.0045 + 0.002 * rng.random()
        brow_length = 0.042 + 0.008 * rng.random()
        hair_height = cfg.hair_height[0] + (cfg.hair_height[1] - cfg.hair_height[0]) * rng.random()
        hairline = rng.normal(0.0, 0.07)
        sideburn = rng.normal(0.0, 0.12)
        nape = rng.normal(0.0, 0.1)
        recession = max(0.0, rng.normal(0.05, 0.12))
        pupil_angle = np.radians(cfg.pupil_angle[0] + (cfg.pupil_angle[1] - cfg.pupil_angle[0]) * rng.random())

        # -- colours (float32 [N, 3]; tints are small, so they are summed rather than multiplied) --
        f32 = np.float32
        tint = (np.outer(masks["ears"] + 0.8 * masks["nose"], (blush * np.array([0.6, -0.5, -0.6])).astype(f32))
                - np.outer(masks["eyelids"], np.array([0.05, 0.10, 0.09], f32))
                + np.outer(cache.cheeks, (blush * 1.2 * np.array([0.5, -0.45, -0.5])).astype(f32)))
        tint += f32(1.0)
        colour = tint * skin.astype(f32)
        lips = np.clip(masks["lips"], 0, 1)[:, None]
        colour += lips * ((skin * lip_tint).astype(f32) - colour)
        brow_cover = _brow_field(cache, brow_height, brow_arch, brow_thickness, brow_length) * brow_strength
        brow_col = 0.75 * hair + 0.1 * skin
        colour[cache.brow_idx] = colour[cache.brow_idx] * (1 - brow_cover[:, None]) + brow_col * brow_cover[:, None]
        colour *= (1 - f32(0.7) * cache.lashes)[:, None]
        hair_cover, above = _hair_field(cache, hairline, sideburn, nape, recession)
        hair_cover = hair_cover.astype(f32)
        colour += hair_cover[:, None] * (hair.astype(f32) - colour)
        # eyes: sclera, iris with a darker limbal ring, pupil (angles from the eyeball centre)
        eyes = cache.eye_side > 0
        if eyes.any():
            joints = np.asarray(model.j_regressor, np.float64) @ verts
            centre = np.where((cache.eye_side[eyes] == 1)[:, None], joints[3], joints[4])
            d = np.einsum("nk,nkc->nc", bary[eyes], verts[corners[eyes]]) - centre
            ang = np.arccos(np.clip(d[:, 2] / np.maximum(np.linalg.norm(d, axis=1), 1e-12), -1, 1))
            iris_a = np.radians(cfg.iris_angle)
            iris_w = _smoothstep(iris_a + 0.03, iris_a - 0.03, ang)
            ring = _smoothstep(iris_a - 0.22, iris_a - 0.02, ang)             # limbus darkening
            pupil_w = _smoothstep(pupil_angle + 0.03, pupil_angle - 0.03, ang)
            iris_col = iris[None] * (1 - 0.45 * ring[:, None]) * (1 + 0.12 * rng.standard_normal((len(ang), 1)))
            eye_col = np.array(SCLERA) * (1 - iris_w[:, None]) + iris_col * iris_w[:, None]
            eye_col = eye_col * (1 - pupil_w[:, None]) + np.array(PUPIL) * pupil_w[:, None]
            colour[eyes] = eye_col
        mouth = (masks["mouth_interior"] > 0.5) & ~eyes
        teeth = (masks["teeth"] > 0.5) & mouth
        colour[mouth] = np.array(MOUTH)
        colour[teeth] = np.array(TEETH)

        # -- baked light: key light + cavity darkening, on the shaped mesh --
        vn = _vertex_normals(verts, faces, cache.incidence)
        light = np.asarray(cfg.light_direction, np.float64)
        light = light / np.linalg.norm(light)
        lambert = np.clip(vn @ light, 0.0, 1.0)
        smooth_v = _smoothed(cache.smooth, verts, 12)
        cavity = np.clip(((smooth_v - verts) * vn).sum(1) / 0.005, 0.0, 1.0)
        shade_v = (1.0 - cfg.light_strength + cfg.light_strength * lambert) * (1.0 - cfg.cavity_strength * cavity)
        # a soft sheen where the key light meets the skin head-on (forehead, nose, cheekbones)
        sheen_v = (cfg.sheen + 0.04 * darkness) * lambert ** 12
        per_vertex = np.stack([shade_v, 0.8 + 0.2 * lambert, sheen_v], 1).astype(f32)
        light_g = cache.interp @ per_vertex
        shade = np.where(eyes, light_g[:, 1], light_g[:, 0])
        skin_w = np.clip(1.0 - hair_cover - masks["mouth_interior"], 0.0, 1.0) * ~eyes
        noise = f32(cfg.colour_noise) * rng.standard_normal((n, 1), dtype=f32) + f32(1.0)
        colour *= (shade * noise[:, 0])[:, None]
        colour += (light_g[:, 2] * skin_w)[:, None]
        colour *= f32(0.3 * cfg.colour_noise) * rng.standard_normal((n, 3), dtype=f32) + f32(1.0)
        hair_g = hair_cover > 0.3
        n_hair = int(hair_g.sum())
        colour[hair_g] *= f32(0.10) * rng.standard_normal((n_hair, 1), dtype=f32) + f32(1.0)
        np.clip(colour, 0.0, 1.0, out=colour)

        # -- geometry in the face frames of the shaped rest mesh --
        rot_f, s_f = face_frames(verts, faces)                        # [F,3,3], [F]
        s = s_f[binding.face_idx]
        area = _face_areas_3d(verts, faces)
        density = cache.expected[binding.face_idx] / np.maximum(area[binding.face_idx], 1e-16)  # per m²
        sigma_t = (cfg.coverage / np.sqrt(density)).astype(f32)     # metres
        sigma_t = np.minimum(sigma_t, 3.0 * np.partition(sigma_t, n // 2)[n // 2])
        sigma = np.empty((n, 3), f32)
        sigma[:, 0] = sigma_t
        sigma[:, 1] = sigma_t
        sigma[:, 2] = sigma_t * f32(cfg.flatness)
        angle = rng.random(n, dtype=f32) * f32(np.pi)                # in-plane orientation
        offsets = np.zeros((n, 3), f32)
        # hair: raised, elongated along the combing direction (away from the crown, downward)
        if n_hair:
            lm = cache.landmarks
            crown = np.array([0.0, lm["top_y"], lm["z_back"] + 0.35 * (lm["z_front"] - lm["z_back"])])
            flow = cache.gpos[hair_g] - crown + np.array([0.0, -0.03, 0.0])
            local = (rot_f[binding.face_idx[hair_g]] * flow[:, :, None]).sum(1)   # R^T flow
            angle[hair_g] = np.arctan2(local[:, 1], local[:, 0]) + rng.normal(0, 0.25, n_hair)
            sigma[hair_g, 0] *= cfg.hair_elongation
            sigma[hair_g, 1] *= 0.75
            sigma[hair_g, 2] = 1.6 * cfg.flatness * sigma_t[hair_g]
            rise = hair_height * _smoothstep(0.0, 0.025, above[hair_g]) * (0.6 + 0.8 * rng.random(n_hair))
            offsets[hair_g, 2] = rise / s[hair_g]
        brow_g = cache.brow_idx[brow_cover > 0.3]
        if len(brow_g):
            side = np.sign(cache.gpos[brow_g, 0])
            flow = np.stack([side, 0.25 * np.ones(len(brow_g)), np.zeros(len(brow_g))], 1)
            local = (rot_f[binding.face_idx[brow_g]] * flow[:, :, None]).sum(1)
            angle[brow_g] = np.arctan2(local[:, 1], local[:, 0]) + rng.normal(0, 0.2, len(brow_g))
            sigma[brow_g, 0] *= 1.8
            sigma[brow_g, 1] *= 0.7
        log_scales = np.log(sigma) - np.log(s).astype(f32)[:, None]
        quats = np.zeros((n, 4), f32)
        quats[:, 0] = np.cos(angle * f32(0.5))
        quats[:, 3] = np.sin(angle * f32(0.5))
        opacity = np.full(n, cfg.opacity, f32)
        opacity[hair_g] = cfg.opacity - 0.07
        opacity = np.clip(opacity * cache.edge_fade, 1e-4, 1 - 1e-6)
        logits = np.log(opacity / (1 - opacity))
        sh = np.zeros((n, (cfg.sh_degree + 1) ** 2, 3), np.float32)
        sh[:, 0] = rgb_to_sh_dc(colour)

        canonical = CanonicalGaussians(offsets, log_scales, quats, logits, sh)
        meta = {"source": "builtin", "seed": seed, "truncation": truncation, "model": self.model_spec,
                "skin_tone": round(float(tone), 4), "hair_colour": hair_name, "iris_colour": iris_name,
                "config": {k: (list(v) if isinstance(v, tuple) else v)
                           for k, v in dataclasses.asdict(cfg).items()}}
        return BoundIdentity(model, binding, canonical, beta, None, meta)
