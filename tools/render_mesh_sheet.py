"""Render the open head model's mesh to a contact sheet (numpy z-buffer + Lambert, pillow only).

    .venv/bin/python tools/render_mesh_sheet.py [--model open|PATH] [--out docs/open_head_contact_sheet.png]

Rows 1-2 (front, then profile seen from the subject's left): neutral, jawOpen=1, jaw pose
(0.35 rad about +X), mouthSmileLeft+Right, eyeBlinkLeft=1 (left lid only), eye pose (both eyes
turned to the subject's left). Rows 3-4: random identities beta ~ N(0, I) (seeds 1..6). Regions
are tinted with the model's masks (lips, lids, brows, irises, hair cap ...) so they can be
checked too.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
from PIL import Image, ImageDraw

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.head_model import load_head_model  # noqa: E402
from engine.head_model.lbs import forward  # noqa: E402
from engine.head_model.model import HeadParams  # noqa: E402

TINTS = [  # (mask, rgb) applied in order, later wins
    ("face", (0.93, 0.76, 0.64)),
    ("neck", (0.85, 0.70, 0.60)),
    ("scalp", (0.45, 0.33, 0.25)),
    ("ears", (0.95, 0.68, 0.60)),
    ("nose", (0.96, 0.72, 0.62)),
    ("eyebrows", (0.30, 0.22, 0.16)),
    ("eyelids", (0.85, 0.60, 0.55)),
    ("lips", (0.80, 0.35, 0.38)),
    ("mouth_interior", (0.55, 0.20, 0.22)),
    ("teeth", (0.97, 0.96, 0.90)),
    ("eyes", (0.97, 0.97, 0.97)),
    ("iris", (0.25, 0.45, 0.65)),
    ("pupil", (0.05, 0.05, 0.05)),
]


def vertex_colours(model) -> np.ndarray:
    col = np.tile(np.array([[0.88, 0.74, 0.64]]), (model.n_vertices, 1))
    for name, rgb in TINTS:
        if name in model.masks:
            col[model.masks[name]] = rgb
    return col


def rasterize(verts2d: np.ndarray, depth: np.ndarray, faces: np.ndarray, face_rgb: np.ndarray,
              size: int) -> np.ndarray:
    """Flat-shaded triangles; verts2d [V,2] in pixels, depth [V] (larger = closer). -> [H,W,3]."""
    img = np.ones((size, size, 3)) * 0.12
    zbuf = np.full((size, size), -np.inf)
    tri = verts2d[faces]                                  # [F,3,2]
    tz = depth[faces]
    lo = np.floor(tri.min(1)).astype(int)
    hi = np.ceil(tri.max(1)).astype(int)
    for f in range(len(faces)):
        x0, y0 = max(lo[f, 0], 0), max(lo[f, 1], 0)
        x1, y1 = min(hi[f, 0], size - 1), min(hi[f, 1], size - 1)
        if x1 < x0 or y1 < y0:
            continue
        (ax, ay), (bx, by), (cx, cy) = tri[f]
        den = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
        if abs(den) < 1e-12:
            continue
        xs, ys = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
        w0 = ((by - cy) * (xs - cx) + (cx - bx) * (ys - cy)) / den
        w1 = ((cy - ay) * (xs - cx) + (ax - cx) * (ys - cy)) / den
        w2 = 1 - w0 - w1
        inside = (w0 >= -1e-6) & (w1 >= -1e-6) & (w2 >= -1e-6)
        if not inside.any():
            continue
        z = w0 * tz[f, 0] + w1 * tz[f, 1] + w2 * tz[f, 2]
        sub = zbuf[y0:y1 + 1, x0:x1 + 1]
        win = inside & (z > sub)
        sub[win] = z[win]
        img[y0:y1 + 1, x0:x1 + 1][win] = face_rgb[f]
    return img


def render_view(vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray, view: str, size: int,
                centre: np.ndarray, half: float) -> np.ndarray:
    v = vertices - centre
    if view == "front":        # camera on +Z looking at the face; subject's left on image right
        u, w, d = v[:, 0], -v[:, 1], v[:, 2]
        light = np.array([0.3, 0.4, 1.0])
    else:                      # camera on +X (subject's left) looking toward -X; face on the left
        u, w, d = -v[:, 2], -v[:, 1], v[:, 0]
        light = np.array([1.0, 0.4, 0.3])
    light = light / np.linalg.norm(light)
    px = np.stack([(u / half * 0.5 + 0.5) * size, (w / half * 0.5 + 0.5) * size], axis=1)
    tri = vertices[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    lam = 0.25 + 0.75 * np.abs(n @ light)                  # two-sided Lambert
    face_rgb = colours[faces].mean(1) * lam[:, None]
    return rasterize(px, d, faces, face_rgb, size)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="open")
    ap.add_argument("--out", default=str(REPO / "docs" / "open_head_contact_sheet.png"))
    ap.add_argument("--size", type=int, default=300)
    args = ap.parse_args(argv)
    if args.model.endswith(".npz") and args.model != "open":
        from engine.head_model.storage import load_npz
        model = load_npz(args.model)
    else:
        model = load_head_model(args.model)
    names = list(model.expr_names)

    def params(**kw):
        p = HeadParams.neutral_for(model)
        for k, val in kw.items():
            if k in names:
                p.expr[names.index(k)] = val
            else:
                setattr(p, k, np.asarray(val, np.float32))
        return p

    cols = [("neutral", params()),
            ("jawOpen=1", params(jawOpen=1.0)),
            ("jaw pose +0.35 rad X", params(jaw=[0.35, 0, 0])),
            ("smile L+R", params(mouthSmileLeft=1.0, mouthSmileRight=1.0)),
            ("eyeBlinkLeft=1", params(eyeBlinkLeft=1.0)),
            ("eyes to subj. left", params(eyes=[[0, 0.4, 0], [0, 0.4, 0]]))]
    for seed in range(1, 7):
        beta = np.random.default_rng(seed).standard_normal(model.n_shape).astype(np.float32)
        cols.append((f"identity seed {seed}", params(shape=beta)))
    colours = vertex_colours(model)
    centre = model.v_template.mean(0)
    half = 0.6 * float(np.ptp(model.v_template, axis=0).max())
    size = args.size
    label_h = 18
    per_row = 6
    n_rows = 2 * ((len(cols) + per_row - 1) // per_row)
    sheet = Image.new("RGB", (size * per_row, (size + label_h) * n_rows), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (label, p) in enumerate(cols):
        verts = forward(model, p).vertices
        c, block = i % per_row, i // per_row
        for r, view in enumerate(("front", "profile")):
            img = render_view(verts, model.faces, colours, view, size, centre, half)
            tile = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
            y = (2 * block + r) * (size + label_h)
            sheet.paste(tile, (c * size, y + label_h))
            draw.text((c * size + 4, y + 3), f"{label} ({view})", fill=(0, 0, 0))
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
