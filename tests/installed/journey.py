"""A new user's journey through the installed extension, run by the Blender under test.

    <bpy venv>/bin/python tests/installed/journey.py PHASE --zip Z --work W [--fixtures F]

This file runs inside the Python of the Blender being tested (a bare venv holding only the bpy
wheel and what it requires: Blender's own modules). It imports nothing from this repository:
everything it calls is the add-on as the zip installed it. ``BLENDER_USER_RESOURCES`` must point
at a fresh folder (``W/user``) before ``import bpy``: the test sets it.

Phases, each a fresh process (a Blender restart):
- ``install``: installs the zip into the ``user_default`` repository and enables it.
- ``run``: enables the installed add-on, checks that only Blender's modules and the bundled
  wheels import (torch and onnx are absent), then drives every operator the panels expose:
  sample (built-in and checkpoint sources), sliders + keyframes, reset/mirror, import (one file
  per format), export (PLY, animation, bake), bake, F12, a 3-frame animation render, the gallery,
  and saves the .blend beside the F12 image.
- ``reload``: opens the saved .blend and renders the same frame again.
- ``gpu`` (Blender 5.3+, where ``gpu.init()`` allows drawing headless; software OpenGL): the
  viewport's real drawing code, ``render_engine._draw_pixels`` (texture upload + draw) and
  ``_draw_text`` (the error overlay), runs into an offscreen buffer that is read back.
- ``native`` (Blender 5.3+): avatars as native, posed ``GAUSSIAN_SPLAT`` objects rendered by
  Cycles (``native_phase.py``).
- ``composite`` (every Blender): Composite with Cycles set up, rendered (occlusion both ways) and
  removed (``composite_phase.py``).
- ``gaussian_avatars``: a GaussianAvatars-format folder imported on a synthetic FLAME model
  (``ga_phase.py``).

Each phase prints one line ``@@RESULT@@{json}`` (what the pytest side checks) and exits 0; any
failure raises, so the process exits non-zero with the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import sys
import time
import traceback

import bpy
import numpy as np

EXT_ID = "gaussian_heads"
ADDON = f"bl_ext.user_default.{EXT_ID}"
MARKER = "@@RESULT@@"
RES = 96                # render resolution (square): small, the journey is about working at all
GAUSSIANS = 4000        # built-in avatar size


class JourneyError(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise JourneyError(message)


def run_op(op, **kwargs):
    """Call an operator; a result other than FINISHED fails the journey with the reports."""
    result = op(**kwargs)
    check(result == {'FINISHED'}, f"{op.idname_py()}({kwargs}) returned {result}")
    return result


# --- phases -----------------------------------------------------------------------------------

def phase_install(args) -> dict:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    ret = bpy.ops.extensions.package_install_files(filepath=str(args.zip), repo="user_default",
                                                   enable_on_install=True)
    module = sys.modules.get(ADDON)
    # package_install_files returns FINISHED even when Blender refuses the package (a version
    # outside the manifest's range): the module must exist.
    check(module is not None, f"{ADDON} is not importable after installing {args.zip} (result {ret})")
    bpy.ops.wm.save_userpref()
    return {"ret": sorted(ret), "module_file": module.__file__}


def enable_installed():
    import addon_utils

    bpy.ops.wm.read_factory_settings(use_empty=True)
    module = addon_utils.enable(ADDON, default_set=True, handle_error=None)
    check(module is not None, f"could not enable {ADDON}")
    return module


def import_report() -> dict:
    """Where the bundled modules come from; which development-only modules import."""
    site = pathlib.Path(os.environ["BLENDER_USER_RESOURCES"]) / "extensions" / ".local"
    where = {}
    for name in ("scipy", "numba", "llvmlite", "onnxruntime", "safetensors"):
        mod = importlib.import_module(name)
        where[name] = pathlib.Path(mod.__file__).resolve().is_relative_to(site.resolve())
    absent = {}
    for name in ("torch", "onnx", "gsplat", "pytest"):
        try:
            importlib.import_module(name)
            absent[name] = False
        except ImportError:
            absent[name] = True
    return {"bundled_from_extension": where, "absent": absent,
            "python": list(sys.version_info[:2]), "numpy": np.__version__, "blender": bpy.app.version_string}


def new_scene():
    scene = bpy.context.scene or bpy.data.scenes.new("Scene")
    scene.render.engine = 'GAUSSIAN_HEADS'
    scene.render.resolution_x = scene.render.resolution_y = RES
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = 'PNG'
    scene.view_settings.view_transform = 'Standard'
    cam_data = bpy.data.cameras.new("Camera")
    cam_data.lens = 85
    cam = bpy.data.objects.new("Camera", cam_data)
    scene.collection.objects.link(cam)
    cam.location = (0.0, -0.85, 0.0)
    cam.rotation_euler = (np.pi / 2, 0.0, 0.0)
    scene.camera = cam
    scene.frame_start, scene.frame_end = 1, 3
    return scene


def render_still(scene, path: pathlib.Path, frame: int) -> np.ndarray:
    scene.frame_set(frame)
    scene.render.filepath = str(path)
    run_op(bpy.ops.render.render, write_still=True)
    return load_png(path)


def load_png(path: pathlib.Path) -> np.ndarray:
    check(path.is_file(), f"{path} was not written")
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        w, h = image.size
        pixels = np.empty(w * h * 4, np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels.reshape(h, w, 4)


def key_slider(obj, name: str, frames_values) -> None:
    props = obj.gaussian_heads
    index = next(i for i, ch in enumerate(props.expr) if ch.name == name)
    for frame, value in frames_values:
        props.expr[index].value = value
        check(obj.keyframe_insert(f"gaussian_heads.expr[{index}].value", frame=frame),
              f"keyframe_insert failed for {name} at {frame}")


def phase_run(args) -> dict:
    t0 = time.perf_counter()
    enable_installed()
    out = {"imports": import_report()}
    work = pathlib.Path(args.work)
    fixtures = pathlib.Path(args.fixtures)
    scene = new_scene()
    timings = {}

    # Sample: every identity source.
    t = time.perf_counter()
    run_op(bpy.ops.gaussian_heads.sample_identity, source='BUILTIN', seed=3, n_gaussians=GAUSSIANS)
    avatar = bpy.context.active_object
    check(avatar is not None and avatar.type == 'POINTCLOUD', f"no point-cloud avatar: {avatar}")
    timings["sample_builtin"] = time.perf_counter() - t
    # A checkpoint without ONNX branches needs torch, which Blender lacks: one clear error.
    try:
        bpy.ops.gaussian_heads.sample_identity(source='CHECKPOINT', checkpoint=str(fixtures / "checkpoint_torch_only"))
        raise JourneyError("a safetensors-only checkpoint sampled without torch")
    except RuntimeError as exc:
        check("torch" in str(exc), f"unclear error for a safetensors-only checkpoint: {exc}")
    checkpoint = fixtures / "checkpoint"
    run_op(bpy.ops.gaussian_heads.sample_identity, source='CHECKPOINT', checkpoint=str(checkpoint), seed=1)
    from_checkpoint = bpy.context.active_object
    check(from_checkpoint is not avatar and from_checkpoint.type == 'POINTCLOUD', "checkpoint avatar missing")
    out["checkpoint_gaussians"] = len(from_checkpoint.data.points)
    bpy.data.objects.remove(from_checkpoint)
    # A checkpoint our training wrote (python -m engine train): the UI calls it trained; it samples.
    trained = (fixtures / "trained_checkpoint.txt").read_text().strip()
    sources = importlib.import_module(f"{ADDON}.engine.avatar.sources")
    status = sources.source_status(sources.SourceSpec("checkpoint", trained))
    out["trained_status"] = status.text if status else ""
    run_op(bpy.ops.gaussian_heads.sample_identity, source='CHECKPOINT', checkpoint=trained, seed=2)
    from_training = bpy.context.active_object
    out["trained_gaussians"] = len(from_training.data.points)
    bpy.data.objects.remove(from_training)
    bpy.context.view_layer.objects.active = avatar
    avatar.select_set(True)

    # Sliders: reset, mirror, then keys on a slider over frames 1..3.
    props = avatar.gaussian_heads
    names = [ch.name for ch in props.expr]
    out["n_channels"] = len(names)
    props.expr[names.index("mouthSmileLeft")].value = 0.8
    run_op(bpy.ops.gaussian_heads.mirror_expression)
    check(abs(props.expr[names.index("mouthSmileRight")].value - 0.8) < 1e-6, "mirror did not mirror the smile")
    run_op(bpy.ops.gaussian_heads.reset_expression)
    check(all(ch.value == 0.0 for ch in props.expr), "reset left non-zero channels")

    # Import: one small file per format, each onto the avatar.
    imports = {}
    for fmt, path in sorted(json.loads((fixtures / "takes.json").read_text()).items()):
        kwargs = {"filepath": path} if os.path.isfile(path) else {"filepath": "", "directory": path}
        run_op(bpy.ops.gaussian_heads.import_animation, target=avatar.name, **kwargs)
        bag = avatar.animation_data.action if avatar.animation_data else None
        check(bag is not None, f"import of {fmt} left no action")
        imports[fmt] = True
    out["imports_ok"] = imports
    # Our own keys on top of the last import: jaw opens over frames 1..3.
    avatar.animation_data_clear()
    key_slider(avatar, "jawOpen", [(1, 0.0), (2, 0.5), (3, 1.0)])

    # Export: animation (both writers), PLY (model and world space).
    for fmt, name in (("NPZ", "take.npz"), ("LIVE_LINK_CSV", "take.csv")):
        run_op(bpy.ops.gaussian_heads.export_animation, filepath=str(work / name), file_format=fmt)
        check((work / name).stat().st_size > 0, f"{name} is empty")
    run_op(bpy.ops.gaussian_heads.import_animation, target=avatar.name, filepath=str(work / "take.npz"),
           start_frame=1)
    for space in ("MODEL", "WORLD"):
        run_op(bpy.ops.gaussian_heads.export_ply, filepath=str(work / f"avatar_{space}.ply"), space=space)

    # F12 and a 3-frame animation before baking: the network path.
    t = time.perf_counter()
    f12 = render_still(scene, work / "f12_network.png", 2)
    timings["first_f12"] = time.perf_counter() - t
    check(f12[..., 3].max() > 0.5 and f12[..., :3].max() > 0.1, "F12 drew no head")
    scene.render.filepath = str(work / "anim_####")
    run_op(bpy.ops.render.render, animation=True)
    frames = [load_png(work / f"anim_{f:04d}.png") for f in (1, 2, 3)]
    out["anim_frame_diffs"] = [float(np.abs(frames[i + 1] - frames[i]).max()) for i in range(2)]

    # Bake with what the zip bundles, export it, render the bake.
    t = time.perf_counter()
    run_op(bpy.ops.gaussian_heads.bake_blendshapes, n_samples=300, k=12)
    timings["bake"] = time.perf_counter() - t
    check(props.use_bake if hasattr(props, "use_bake") else True, "bake not in use")
    out["bake_status"] = props.bake_status
    run_op(bpy.ops.gaussian_heads.export_bake, filepath=str(work / "baked.npz"))
    check((work / "baked.npz").stat().st_size > 0, "baked.npz is empty")
    baked = render_still(scene, work / "f12_baked.png", 2)
    out["baked_vs_network_max"] = float(np.abs(baked[..., :3] - f12[..., :3]).max())
    run_op(bpy.ops.gaussian_heads.clear_bake)
    unbaked = render_still(scene, work / "f12_unbaked.png", 2)
    out["cleared_vs_network_max"] = float(np.abs(unbaked - f12).max())
    run_op(bpy.ops.gaussian_heads.bake_blendshapes, n_samples=300, k=12)  # the saved file keeps a bake

    # GPU panel: the installer refuses without Allow Online Access (never downloads here); Check
    # GPU runs and says why gsplat cannot render (no torch in a user's Blender until installed).
    bpy.context.preferences.system.use_online_access = False
    try:
        bpy.ops.gaussian_heads.install_gpu_deps()
        raise JourneyError("the GPU installer ran without online access")
    except RuntimeError as exc:
        check("Allow Online Access" in str(exc), f"unclear installer refusal: {exc}")
    run_op(bpy.ops.gaussian_heads.check_gpu)
    gpu_deps = importlib.import_module(f"{ADDON}.operators.gpu_deps")
    out["check_gpu"] = gpu_deps.last_status().summary()

    # Colour management: AgX (Blender's default) is switched back to Standard in one click.
    scene.view_settings.view_transform = 'AgX'
    run_op(bpy.ops.gaussian_heads.use_standard_view)
    check(scene.view_settings.view_transform == 'Standard', "Use Standard did not set Standard")

    # The gallery (thumbnails of a few seeds).
    scene.gaussian_heads.gallery_count = 2
    t = time.perf_counter()
    run_op(bpy.ops.gaussian_heads.build_gallery, size=48)
    timings["gallery_2"] = time.perf_counter() - t

    # Live capture: 1 s replayed by the installed engine's own sender over loopback (VMC, i.e.
    # the bundled python-osc), driving the sliders through the timer callback and recorded as keys.
    import threading
    live_ops = importlib.import_module(f"{ADDON}.operators.live")
    live_sender = importlib.import_module(f"{ADDON}.engine.live.sender")
    anim = importlib.import_module(f"{ADDON}.engine.animation")
    live = scene.gaussian_heads_live
    live.protocol, live.host, live.port, live.target = 'VMC', "127.0.0.1", 0, avatar.name
    run_op(bpy.ops.gaussian_heads.live_start)
    run_op(bpy.ops.gaussian_heads.live_record)
    record_from = scene.frame_current
    ramp = np.linspace(0.0, 1.0, 61, dtype=np.float32)
    take = anim.ParamSequence.zeros(61, ("jawOpen", "eyeBlinkLeft"), fps=60.0, space="arkit")
    take = take.replace(expr=np.stack([ramp, 1.0 - ramp], 1))
    sender = threading.Thread(target=live_sender.send_sequence,
                              args=(take, "vmc", "127.0.0.1", live_ops.session().receiver.port),
                              kwargs={"max_seconds": 3.0})
    sender.start()
    deadline, slider_values = time.perf_counter() + 8.0, set()
    while (sender.is_alive() or live_ops.session().receiver.stats.frames < 61) and time.perf_counter() < deadline:
        live_ops.tick()  # what the bpy.app.timers timer runs (no event loop here)
        slider_values.add(round(props.expr[names.index("jawOpen")].value, 4))
        time.sleep(1 / 120)
    sender.join(5.0)
    live_ops.tick()
    stats = live_ops.session().receiver.stats.to_dict()
    run_op(bpy.ops.gaussian_heads.live_record_stop)
    run_op(bpy.ops.gaussian_heads.live_stop)
    check(live_ops.session() is None, "Stop Live left a session running")
    fc = importlib.import_module(f"{ADDON}.operators.keyframes").find_fcurve(
        avatar, f"gaussian_heads.expr[{names.index('jawOpen')}].value")
    check(fc is not None, "the live take wrote no jawOpen curve")
    co = np.empty(2 * len(fc.keyframe_points), np.float32)
    fc.keyframe_points.foreach_get("co", co)
    co = co.reshape(-1, 2)
    fps = scene.render.fps / scene.render.fps_base
    check(len(co) == int(np.floor(fps + 1e-6)) + 1, f"{len(co)} live keys for 1 s at {fps:g} fps")
    check(co[0, 0] == record_from and abs(co[0, 1]) < 1e-4 and abs(co[-1, 1] - 1.0) < 1e-4,
          f"live keys do not match the ramp: {co[[0, -1]].tolist()}")
    check(len(slider_values) > 5, "the slider did not follow the live stream")
    out["live"] = {"frames": stats["frames"], "malformed": stats["malformed"], "keys": len(co),
                   "slider_values_seen": len(slider_values)}

    # Splat files: the installed engine's own writers make a small .splat, .spz and .ply; each is
    # imported (Blender 5.3's attribute names on every version), one is exported back as SPZ,
    # then the splat objects are removed (the saved file stays as before).
    t = time.perf_counter()
    splat_io = importlib.import_module(f"{ADDON}.engine.io")
    GaussianSet = importlib.import_module(f"{ADDON}.engine.avatar.gaussian_set").GaussianSet
    rng = np.random.default_rng(0)
    quats = rng.normal(size=(200, 4))
    cloud = GaussianSet(rng.normal(0, 0.05, (200, 3)) + [0.5, 0.0, 0.0], np.full((200, 3), -5.0),
                        quats / np.linalg.norm(quats, axis=1, keepdims=True), np.full(200, 2.0),
                        rng.uniform(-0.5, 0.5, (200, 4, 3)))
    splats, imported = {}, []
    for ext in ("splat", "spz", "ply"):
        splat_io.write_splats(work / f"cloud.{ext}", cloud)
        run_op(bpy.ops.gaussian_heads.import_splats, filepath=str(work / f"cloud.{ext}"))
        obj = bpy.context.active_object
        types = {a.name: a.data_type for a in obj.data.attributes}
        check(obj is not avatar and obj.type == 'POINTCLOUD' and len(obj.data.points) == 200,
              f"import of cloud.{ext} made no 200-point splat object")
        check(types.get("position") == 'FLOAT_VECTOR' and types.get("scale") == 'FLOAT_VECTOR'
              and types.get("rotation") == 'QUATERNION' and types.get("radiance:base") in ('FLOAT4', 'FLOAT_COLOR'),
              f"cloud.{ext}: not Blender 5.3's splat attributes: {types}")
        splats[ext] = {"base": types["radiance:base"], "sh_attrs": sum(k.startswith("radiance:sh_") for k in types),
                       "type": getattr(obj.data, "type", None)}
        imported.append(obj)
    run_op(bpy.ops.gaussian_heads.export_splats, filepath=str(work / "cloud_out.spz"), file_format='SPZ')
    splats["export_spz_points"] = len(splat_io.read_splats(work / "cloud_out.spz"))
    check(splats["export_spz_points"] == 200, "the exported SPZ does not hold the 200 splats")
    for obj in imported:
        bpy.data.objects.remove(obj)
    bpy.context.view_layer.objects.active = avatar
    avatar.select_set(True)
    timings["splats"] = time.perf_counter() - t
    out["splats"] = splats

    # Save, with the F12 image the reload must reproduce.
    final = render_still(scene, work / "f12_saved.png", 3)
    out["final_alpha_max"] = float(final[..., 3].max())
    run_op(bpy.ops.wm.save_as_mainfile, filepath=str(work / "journey.blend"))
    out["timings"] = timings
    out["total_s"] = time.perf_counter() - t0
    return out


def phase_reload(args) -> dict:
    enable_installed()
    work = pathlib.Path(args.work)
    run_op(bpy.ops.wm.open_mainfile, filepath=str(work / "journey.blend"))
    scene = bpy.context.scene
    again = render_still(scene, work / "f12_reloaded.png", 3)
    saved = load_png(work / "f12_saved.png")
    return {"reload_max_diff": float(np.abs(again - saved).max()),
            "avatars": sorted(o.name for o in scene.objects if o.type == 'POINTCLOUD')}


class _DisplaySpaceStub:
    """Stands in for the RenderEngine's display-space shader binding, which only a real viewport
    provides; draw_texture_2d then draws the texture unchanged (scene-linear, premultiplied)."""

    def bind_display_space_shader(self, scene):
        pass

    def unbind_display_space_shader(self):
        pass


def phase_gpu(args) -> dict:
    import gpu

    if not hasattr(gpu, "init"):
        return {"skipped": f"Blender {bpy.app.version_string} cannot draw in background mode"}
    gpu.init()
    enable_installed()
    scene = new_scene()
    run_op(bpy.ops.gaussian_heads.sample_identity, source='BUILTIN', seed=3, n_gaussians=GAUSSIANS)
    render_engine = importlib.import_module(f"{ADDON}.render_engine")
    scene_render = importlib.import_module(f"{ADDON}.engine.scene_render")
    depsgraph = bpy.context.evaluated_depsgraph_get()
    viewport = scene_render.ViewportRenderer()
    viewport.set_gaussians(scene_render.merge_avatars(render_engine.avatar_instances(depsgraph)))
    width, height = 80, 64
    view = np.array(scene.camera.matrix_world.inverted(), np.float64)
    window = np.array(scene.camera.calc_matrix_camera(depsgraph, x=width, y=height), np.float64)
    frame = viewport.frame_pixels(width, height, view, window, refine=True,
                                  settings=render_engine.render_settings(scene))
    expected = np.asarray(frame.pixels, np.float32).reshape(height, width, 4)
    offscreen = gpu.types.GPUOffScreen(width, height, format='RGBA32F')
    try:
        with offscreen.bind(), gpu.matrix.push_pop(), gpu.matrix.push_pop_projection():
            # Region pixel space, as Blender sets it up before calling view_draw.
            from mathutils import Matrix
            gpu.matrix.load_identity()
            gpu.matrix.load_projection_matrix(Matrix(((2.0 / width, 0, 0, -1.0), (0, 2.0 / height, 0, -1.0),
                                                      (0, 0, 1.0, 0), (0, 0, 0, 1.0))))
            framebuffer = gpu.state.active_framebuffer_get()
            framebuffer.clear(color=(0.0, 0.0, 0.0, 0.0))
            render_engine._draw_pixels(_DisplaySpaceStub(), scene, frame, width, height)
            drawn = np.array(framebuffer.read_color(0, 0, width, height, 4, 0, 'FLOAT').to_list(),
                             np.float32).reshape(height, width, 4)
            framebuffer.clear(color=(0.0, 0.0, 0.0, 0.0))
            render_engine._draw_text(["Gaussian Heads: test overlay"], height + 70)
            text = np.array(framebuffer.read_color(0, 0, width, height, 4, 0, 'FLOAT').to_list(),
                            np.float32).reshape(height, width, 4)
    finally:
        offscreen.free()
    return {"frame_alpha_max": float(expected[..., 3].max()),
            "drawn_vs_frame_max": float(np.abs(drawn - expected).max()),
            "text_pixels": int((text[..., :3].max(axis=2) > 0.1).sum())}


def phase_native(args) -> dict:
    """Blender 5.3+: avatars as native, posed GAUSSIAN_SPLAT objects (tests/installed/native_phase.py)."""
    if not hasattr(bpy.types.PointCloud.bl_rna.properties.get("type"), "enum_items"):
        return {"skipped": f"Blender {bpy.app.version_string} has no native Gaussian splats"}
    from native_phase import run

    return run(args)


def phase_gaussian_avatars(args) -> dict:
    """A GaussianAvatars folder on a synthetic FLAME model (tests/installed/ga_phase.py)."""
    from ga_phase import run

    return run(args)


def phase_lam(args) -> dict:
    """A LAM avatar zip: import, F12, PLY and LAM export (tests/installed/lam_phase.py)."""
    from lam_phase import run

    return run(args)


def phase_composite(args) -> dict:
    """Composite with Cycles: set up, F12 occlusion both ways, remove (tests/installed/composite_phase.py)."""
    from composite_phase import run

    return run(args)


PHASES = {"install": phase_install, "run": phase_run, "reload": phase_reload, "gpu": phase_gpu,
          "native": phase_native, "gaussian_avatars": phase_gaussian_avatars, "composite": phase_composite,
          "lam": phase_lam}


def main() -> int:
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=list(PHASES))
    parser.add_argument("--zip", type=pathlib.Path)
    parser.add_argument("--work", type=pathlib.Path, required=True)
    parser.add_argument("--fixtures", type=pathlib.Path)
    args = parser.parse_args(argv)
    try:
        result = PHASES[args.phase](args)
    except Exception:
        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)  # skip Blender's atexit handlers: the traceback is the message
    sys.stdout.write("\n" + MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
