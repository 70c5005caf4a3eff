"""``make demo``: a headless Blender session renders a sampled avatar playing the demo clip.

Steps: the dev checkout is linked as an extension (``bl_ext.demo.gaussian_heads``) into a
Blender whose user folder is ``out/demo/.blender_user`` (nothing under ``~`` is touched); Sample
Identity (seed 7) adds the avatar; the built-in demo clip (blink, smile, jaw open, head turn) is
keyframed onto its properties; a camera frames the head; the Gaussian Heads engine renders 48
frames at 512x512 with ``bpy.ops.render.render(animation=True)`` into ``out/demo/frame_####.png``;
a contact sheet of all frames is written to ``out/demo/contact_sheet.png`` and the scene is saved
as ``out/demo/demo.blend`` (``blender -b out/demo/demo.blend -a`` renders it again).

    .venv/bin/python tools/demo.py [--frames 48] [--size 512] [--seed 7] [--gaussians 65536]
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
EXTENSION_ID = "gaussian_heads"
REPO_MODULE = "demo"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(REPO / "out" / "demo"), help="output folder")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--fps", type=int, default=24)
    p.add_argument("--size", type=int, default=512, help="output width and height, pixels")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--gaussians", type=int, default=65_536)
    return p.parse_args(argv)


def link_extension(out: pathlib.Path) -> pathlib.Path:
    repo_dir = out / ".extensions"
    repo_dir.mkdir(parents=True, exist_ok=True)
    link = repo_dir / EXTENSION_ID
    if link.is_symlink() and link.resolve() != REPO:
        link.unlink()
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    return repo_dir


def enable_extension(repo_dir: pathlib.Path):
    import addon_utils
    import bpy

    prefs = bpy.context.preferences
    if not any(r.module == REPO_MODULE for r in prefs.extensions.repos):
        prefs.extensions.repos.new(name=REPO_MODULE, module=REPO_MODULE, custom_directory=str(repo_dir),
                                   source='USER')
    module = addon_utils.enable(f"bl_ext.{REPO_MODULE}.{EXTENSION_ID}", default_set=True, handle_error=None)
    if module is None:
        raise SystemExit("could not enable the Gaussian Heads extension")
    return module


def keyframe_clip(obj, seq, first_frame: int = 1) -> None:
    """Keyframe a ParamSequence (in the avatar's channel order) onto the avatar's properties with
    the add-on's own fast F-curve writer (layered Actions)."""
    from importlib import import_module

    import numpy as np

    keyframes = import_module(f"bl_ext.{REPO_MODULE}.{EXTENSION_ID}.operators.keyframes")
    names = [c.name for c in obj.gaussian_heads.expr]
    if list(seq.expr_names) != names:
        raise SystemExit("the demo clip's channels differ from the avatar's")
    frames = np.arange(seq.expr.shape[0], dtype=np.float32) + first_frame
    active = [i for i in range(len(names)) if np.any(seq.expr[:, i] != 0)]
    keyframes.write_curves(obj, keyframes.build_curves(seq, frames, expr_channels=active),
                           f"{obj.name}.demo")


def frame_camera(scene, obj, size: int, fill: float = 0.72):
    """A camera in front of the avatar (looking along +Y) framing its stored points."""
    import bpy
    import mathutils
    import numpy as np

    n = len(obj.data.points)
    pos = np.empty(n * 3, np.float32)
    obj.data.attributes["position"].data.foreach_get("vector", pos)
    mw = np.array(obj.matrix_world)
    pos = pos.reshape(n, 3) @ mw[:3, :3].T + mw[:3, 3]
    lo, hi = np.percentile(pos, 1, axis=0), np.percentile(pos, 99, axis=0)
    centre = (lo + hi) / 2
    height = max(float(hi[2] - lo[2]), float(hi[0] - lo[0]))
    cam_data = bpy.data.cameras.new("DemoCamera")
    cam_data.lens = 85.0
    cam_data.sensor_fit = 'VERTICAL'
    cam_data.sensor_height = 24.0
    cam_data.clip_start, cam_data.clip_end = 0.05, 50.0
    distance = cam_data.lens / cam_data.sensor_height * height / fill
    cam = bpy.data.objects.new("DemoCamera", cam_data)
    scene.collection.objects.link(cam)
    cam.location = (float(centre[0]), float(lo[1]) - distance, float(centre[2]))
    cam.rotation_euler = mathutils.Euler((math.pi / 2, 0.0, 0.0), 'XYZ')
    scene.camera = cam
    return cam


def contact_sheet(paths, out_path, columns: int = 8, thumb: int = 128) -> None:
    import numpy as np
    from PIL import Image, ImageDraw

    rows = math.ceil(len(paths) / columns)
    sheet = Image.new("RGB", (columns * thumb, rows * thumb), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            tile = image.convert("RGB").resize((thumb, thumb), Image.LANCZOS)
        x, y = (i % columns) * thumb, (i // columns) * thumb
        sheet.paste(tile, (x, y))
        draw.text((x + 4, y + 2), str(i + 1), fill=(230, 230, 230))
    sheet.save(out_path)
    np.asarray(sheet)  # fail loudly here if PIL produced nothing


def main(argv=None) -> int:
    args = parse_args(argv)
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["BLENDER_USER_RESOURCES"] = str(out / ".blender_user")
    repo_dir = link_extension(out)
    t0 = time.perf_counter()

    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    enable_extension(repo_dir)
    from importlib import import_module

    demo_clip = import_module(f"bl_ext.{REPO_MODULE}.{EXTENSION_ID}.engine.animation.demo_clip")

    scene = bpy.context.scene
    t = time.perf_counter()
    result = bpy.ops.gaussian_heads.sample_identity(seed=args.seed, n_gaussians=args.gaussians)
    if 'FINISHED' not in result:
        raise SystemExit("Sample Identity failed")
    obj = bpy.context.active_object
    print(f"sampled {obj.name}: {len(obj.data.points):,} Gaussians in {time.perf_counter() - t:.1f} s")

    storage = import_module(f"bl_ext.{REPO_MODULE}.{EXTENSION_ID}.operators.storage")
    model = storage.load_identity(obj).model
    seq = demo_clip.demo_clip(model, fps=args.fps, frames=args.frames)
    keyframe_clip(obj, seq, first_frame=1)

    scene.render.engine = 'GAUSSIAN_HEADS'
    scene.gaussian_heads.backend = 'AUTO'
    scene.render.resolution_x = scene.render.resolution_y = args.size
    scene.render.resolution_percentage = 100
    scene.render.fps = args.fps
    scene.frame_start, scene.frame_end = 1, args.frames
    scene.render.film_transparent = False
    if scene.world is None:
        scene.world = bpy.data.worlds.new("World")
    scene.world.color = (0.02, 0.02, 0.025)
    scene.view_settings.view_transform = 'Standard'
    scene.render.dither_intensity = 0.0
    scene.render.image_settings.file_format = 'PNG'
    scene.render.image_settings.color_mode = 'RGB'
    scene.render.filepath = str(out / "frame_####")
    frame_camera(scene, obj, args.size)

    bpy.ops.wm.save_as_mainfile(filepath=str(out / "demo.blend"))
    t = time.perf_counter()
    bpy.ops.render.render(animation=True)
    render_s = time.perf_counter() - t
    frames = [out / f"frame_{f:04d}.png" for f in range(1, args.frames + 1)]
    missing = [str(p) for p in frames if not p.is_file()]
    if missing:
        raise SystemExit(f"render wrote no {missing[0]} ({len(missing)} frames missing)")
    contact_sheet(frames, out / "contact_sheet.png")
    print(f"rendered {args.frames} frames at {args.size}x{args.size} in {render_s:.1f} s "
          f"({render_s / args.frames * 1000:.0f} ms per frame, incl. posing and PNG writing)")
    print(f"frames:        {out}/frame_0001.png ... frame_{args.frames:04d}.png")
    print(f"contact sheet: {out / 'contact_sheet.png'}")
    print(f"blend file:    {out / 'demo.blend'}")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
