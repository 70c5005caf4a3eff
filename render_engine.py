"""The Gaussian Heads render engine (bl_idname 'GAUSSIAN_HEADS').

This module only gathers plain data from Blender and writes pixels back; posing, merging,
rasterizing and colour conversion happen in ``engine.scene_render`` (no bpy), which the tests
drive directly.

* ``render`` (F12, ``render(animation=True)``, ``blender -b file.blend -a``): every visible avatar
  of the evaluated depsgraph at the current frame, through the scene camera, at the scene's
  resolution (percentage and border respected), into the Combined and Depth passes.
* ``view_update``/``view_draw``: the interactive viewport at ``viewport_scale`` while the view
  changes, refined to full resolution once it has been idle (a timer tags a redraw).
"""

from __future__ import annotations

import dataclasses
import traceback
from dataclasses import dataclass

import bpy
import numpy as np

from .engine import error_text
from .engine.errors import GaussianHeadsError
from .engine.scene_render import (AvatarInstance, RenderSettings, ViewportRenderer, border_rect,
                                  bottom_up, merge_avatars, params_from_channels, render_gaussians)

ENGINE_ID = 'GAUSSIAN_HEADS'
DEPTH_PASS = "Depth"


# --- gathering (bpy -> plain data) ----------------------------------------------------------

def render_settings(scene) -> RenderSettings:
    props = scene.gaussian_heads
    # '' means the stored choice is not offered now: Reference without PyTorch (properties.py),
    # so ask for it and let the render say what to install
    return RenderSettings(mode=props.mode.lower(), sh_degree=int(props.sh_degree),
                          backend=props.backend.lower() or "reference")


def world_background(scene):
    """Scene-linear RGB of the world, or None when the film is transparent."""
    if scene.render.film_transparent:
        return None
    world = scene.world
    return tuple(world.color) if world is not None else (0.0, 0.0, 0.0)


def head_params(obj, identity):
    """HeadParams from an (evaluated) avatar object's properties, for ``identity.model``."""
    props = obj.gaussian_heads
    count = len(props.expr)
    values = np.zeros(count, np.float32)
    if count:
        props.expr.foreach_get("value", values)
    names = [channel.name for channel in props.expr]
    shape = np.asarray(identity.shape, np.float32).copy()
    used = min(int(props.shape_count), shape.shape[0])
    if used:
        shape[:used] = np.asarray(props.shape, np.float32)[:used]
    return params_from_channels(identity.model, names, values, props.jaw, props.neck,
                                props.head_rot, props.eyes, props.translation, shape)


def avatar_identity(obj):
    """The identity to pose for ``obj``: its bake when 'Render Baked' is on and a bake exists."""
    from .operators import storage

    identity = storage.load_identity(obj)
    if obj.gaussian_heads.show_baked:
        baked = storage.load_bake(obj, identity)
        if baked is not None:
            return baked
    return identity


def avatar_instances(depsgraph):
    """AvatarInstance for every visible avatar in the evaluated depsgraph (instancing included)."""
    from .operators import storage

    instances = []
    for instance in depsgraph.object_instances:
        obj = instance.object  # the evaluated avatar itself, also when a collection instances it
        if obj is None or obj.type != 'POINTCLOUD' or not obj.gaussian_heads.is_avatar:
            continue
        if not storage.has_identity(obj):
            continue
        identity = avatar_identity(obj)
        instances.append(AvatarInstance(obj.name, identity, head_params(obj, identity),
                                        np.array(instance.matrix_world, np.float64)))
    return instances


def camera_settings(scene, camera_obj):
    """BlenderCameraSettings from an evaluated camera object and the scene's render settings."""
    from .engine.raster.blender_camera import BlenderCameraSettings

    cam = camera_obj.data
    render = scene.render
    return BlenderCameraSettings(
        matrix_world=tuple(tuple(row) for row in camera_obj.matrix_world),
        type=cam.type,
        lens=float(cam.lens),
        ortho_scale=float(cam.ortho_scale),
        sensor_width=float(cam.sensor_width),
        sensor_height=float(cam.sensor_height),
        sensor_fit=cam.sensor_fit,
        shift_x=float(cam.shift_x),
        shift_y=float(cam.shift_y),
        clip_start=float(cam.clip_start),
        clip_end=float(cam.clip_end),
        resolution_x=int(render.resolution_x),
        resolution_y=int(render.resolution_y),
        resolution_percentage=int(render.resolution_percentage),
        pixel_aspect_x=float(render.pixel_aspect_x),
        pixel_aspect_y=float(render.pixel_aspect_y),
        use_border=bool(render.use_border),
        use_crop_to_border=bool(render.use_crop_to_border),
        border_min_x=float(render.border_min_x),
        border_max_x=float(render.border_max_x),
        border_min_y=float(render.border_min_y),
        border_max_y=float(render.border_max_y),
    )


# --- the engine -----------------------------------------------------------------------------

@dataclass(frozen=True)
class RenderStats:
    """What the last final render did (the render panel shows it)."""

    backend: str          # the rasterizer that ran: "cpu", "gsplat", "reference"
    n_gaussians: int
    ms: float             # rasterizing and colour conversion
    fallback: str = ""    # why gsplat was not used after all ("" when it was not asked for)
    waited_s: float = 0.0  # spent waiting for the background kernel compile

    def text(self) -> str:
        return f"Gaussian Heads · {self.backend} · {self.n_gaussians:,} splats · {self.ms:.0f} ms"


last_stats: RenderStats | None = None   # set by every final render (render thread), read by the UI


class GaussianHeadsRenderEngine(bpy.types.RenderEngine):
    bl_idname = ENGINE_ID
    bl_label = "Gaussian Heads"
    bl_use_preview = False
    bl_use_eevee_viewport = False
    bl_use_shading_nodes_custom = False
    bl_use_postprocess = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._viewport = ViewportRenderer()
        self._viewport_error = ""
        self._refine_timer = None

    def __del__(self):
        try:
            timer = self._refine_timer
        except (AttributeError, ReferenceError):  # the RNA side may already be gone
            return
        if timer is not None and bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)

    # -- final render --------------------------------------------------------------------------
    def update_render_passes(self, scene=None, renderlayer=None):
        self.register_pass(scene, renderlayer, "Combined", 4, "RGBA", 'COLOR')
        if renderlayer is not None and renderlayer.use_pass_z:
            self.register_pass(scene, renderlayer, DEPTH_PASS, 1, "Z", 'VALUE')

    def render(self, depsgraph):
        scene = depsgraph.scene
        width, height = int(self.resolution_x), int(self.resolution_y)
        r = scene.render
        try:  # the one border computation (blender_camera.border_region), as the camera's
            rect = border_rect(width, height, r.use_border, r.border_min_x, r.border_max_x,
                               r.border_min_y, r.border_max_y)
        except GaussianHeadsError as exc:
            self.report({'ERROR'}, f"Gaussian Heads: {exc}")
            return
        self._warn_view_transform(scene)
        try:
            self._render_frame(depsgraph, scene, width, height, rect)
        except Exception as exc:  # noqa: BLE001  every failure stops the render, see _render_failed
            self._render_failed(exc)

    def _render_failed(self, exc):
        """An ERROR report makes Blender stop an animation render before it writes the frame
        (nothing is written, never a black image); ``error_set`` shows it over the render result."""
        if not isinstance(exc, GaussianHeadsError):
            traceback.print_exc()
        message = error_text.PREFIX + error_text.describe(exc)
        self.error_set(message)
        self.report({'ERROR'}, message)

    def _warn_view_transform(self, scene):
        """A warning (once per render job) when the view transform alters avatar colours."""
        if self.is_animation and scene.frame_current != scene.frame_start:
            return
        from .operators.color_management import view_problem

        problem = view_problem(scene)
        if problem is not None:
            self.report({'WARNING'}, f"Gaussian Heads: the {problem} washes out avatar colours; "
                                     "use 'Standard' (Render Properties > Avatar Colours)")

    def _render_frame(self, depsgraph, scene, width, height, rect):
        self.update_stats("", "Gaussian Heads: gathering avatars")
        camera_obj = self.camera_override or scene.camera
        if camera_obj is None:
            raise GaussianHeadsError("the scene has no camera")
        camera_obj = camera_obj.evaluated_get(depsgraph)
        from .engine.raster.blender_camera import camera_from_blender

        camera, _ = camera_from_blender(camera_settings(scene, camera_obj))  # border-sized already
        w, h = rect[2] - rect[0], rect[3] - rect[1]
        if (camera.width, camera.height) != (w, h):
            raise GaussianHeadsError(f"camera conversion gave {camera.width}x{camera.height} pixels "
                                     f"for a {w}x{h} region of a {width}x{height} render")
        instances = avatar_instances(depsgraph)
        from .splat_data import splat_instances  # static splat objects, in the same depth order
        splats = splat_instances(depsgraph)
        if self.test_break():
            return
        self.update_progress(0.1)
        waited = self._wait_for_kernels(instances)
        if self.test_break():
            return
        self.update_stats("", f"Gaussian Heads: posing {len(instances)} avatar(s)")
        gaussians = merge_avatars(instances, cancel=self.test_break, splats=splats)
        if self.test_break():
            return
        self.update_progress(0.4)
        self.update_stats("", f"Gaussian Heads: rasterizing {len(gaussians):,} Gaussians")
        settings = render_settings(scene)
        from .engine.raster import gsplat_backend, resolve_backend

        if resolve_backend(settings.backend) == "gsplat" and not gsplat_backend.ready():
            # F12 runs in Blender's render thread, not the UI's: the first use builds here, visibly
            self._show("Gaussian Heads: gsplat is compiling its CUDA kernels (first use: minutes)")
        frame = render_gaussians(gaussians, camera, w, h, settings, world_background(scene))
        self._write_result(rect, frame.rgba, frame.depth)
        self.update_progress(1.0)
        global last_stats
        last_stats = RenderStats(frame.backend or "nothing to draw", len(gaussians), frame.seconds * 1000,
                                 frame.fallback, waited)
        self._show(last_stats.text())
        if frame.fallback:
            self.report({'WARNING'}, f"Gaussian Heads: {frame.fallback}")

    def _wait_for_kernels(self, instances) -> float:
        """Wait while ``engine.warmup`` compiles the numba kernels this frame needs (first use
        after installing), saying so in the render stats and in a report; returns the seconds."""
        from .engine import warmup
        from .engine.bake.baked import BakedIdentity

        needed = {warmup.LIFT, warmup.RASTER}
        if any(isinstance(inst.identity, BakedIdentity) for inst in instances):
            needed.add(warmup.BLEND)

        def show(progress):
            self._show(f"Gaussian Heads: waiting for the first-use compile: {progress.text()}")

        waited = warmup.wait_for_kernels(on_progress=show, cancel=self.test_break, needed=needed)
        if waited > 0:
            self.report({'INFO'}, f"Gaussian Heads: waited {waited:.1f} s for the CPU kernels to compile "
                                  "(first use only; later sessions load them from the cache)")
        return waited

    def _show(self, text: str) -> None:
        """The render stats line (Blender shows it over the image; silent in background mode)."""
        self.update_stats("", text)

    def _write_result(self, rect, rgba, depth):
        # begin_result's coordinates start at the border region's corner (Blender clips to it)
        x0, y0, x1, y1 = rect
        result = self.begin_result(0, 0, x1 - x0, y1 - y0)
        layer = result.layers[0]
        layer.passes["Combined"].rect.foreach_set(bottom_up(rgba).reshape(-1))
        depth_pass = next((p for p in layer.passes if p.name == DEPTH_PASS), None)
        if depth_pass is not None:
            if depth is None:
                depth = np.full(rgba.shape[:2], 1.0e10, np.float32)
            depth_pass.rect.foreach_set(bottom_up(depth).reshape(-1))
        self.end_result(result)

    # -- viewport --------------------------------------------------------------------------------
    def view_update(self, context, depsgraph):
        try:
            from .splat_data import splat_instances
            self._viewport.set_gaussians(merge_avatars(avatar_instances(depsgraph),
                                                       splats=splat_instances(depsgraph)))
            self._viewport_error = ""
        except Exception as exc:  # noqa: BLE001  shown over the viewport by view_draw
            self._viewport_error = _viewport_failure(exc, self._viewport_error)

    def view_draw(self, context, depsgraph):
        region, region_3d = context.region, context.region_data
        scene = depsgraph.scene
        from .engine import warmup

        waiting = warmup.pending((warmup.LIFT, warmup.RASTER))
        if waiting is not None:  # never block the UI on the first-use compile: show its progress
            _draw_text([f"Gaussian Heads: {waiting.text()}"], region.height)
            self._schedule_refine()
            return
        try:
            frame, wants_refine = self._viewport.next_frame(
                region.width, region.height, region_3d.view_matrix, region_3d.window_matrix,
                scale=scene.gaussian_heads.viewport_scale, settings=render_settings(scene),
                background=world_background(scene))
        except Exception as exc:  # noqa: BLE001  kept until view_update succeeds again
            self._viewport_error = _viewport_failure(exc, self._viewport_error)
            frame, wants_refine = None, False
        if frame is not None:
            try:
                frame = _apply_viewport_border(context, depsgraph, frame)
            except GaussianHeadsError as exc:
                self._viewport_error, frame = str(exc), None
        if frame is not None:
            _draw_pixels(self, scene, frame, region.width, region.height)
        lines = error_text.overlay_lines(self._viewport_error, region.width)
        from .engine.raster import gsplat_backend

        building = gsplat_backend.build_status()
        if building:  # gsplat's first CUDA build runs in the background; the CPU draws meanwhile
            lines = [*lines, *error_text.overlay_lines(building, region.width)]
            if not building.startswith("gsplat could not"):
                wants_refine = True  # redraw until it is ready, then the GPU takes over
        if lines:  # an error is drawn over the view, never a silently blank viewport
            _draw_text(lines, region.height)
        if wants_refine:
            self._schedule_refine()

    def _schedule_refine(self):
        if self._refine_timer is not None and bpy.app.timers.is_registered(self._refine_timer):
            return
        engine = self

        def refine():
            engine._refine_timer = None
            try:
                engine.tag_redraw()
            except ReferenceError:
                pass
            return None

        self._refine_timer = refine
        bpy.app.timers.register(refine, first_interval=self._viewport.refine_after)


def viewport_border_box(context, depsgraph):
    """(box in region pixels, (min_x, max_x, min_y, max_y)) of the render border the viewport
    shows, or None: the scene's border inside the camera frame in camera view, the 3D view's
    Render Region inside the region otherwise."""
    region, region_3d, space = context.region, context.region_data, context.space_data
    scene = depsgraph.scene
    if region_3d.view_perspective == 'CAMERA':
        render = scene.render
        camera = scene.camera
        if not render.use_border or camera is None:
            return None
        from bpy_extras.view3d_utils import location_3d_to_region_2d

        corners = [location_3d_to_region_2d(region, region_3d, camera.matrix_world @ v)
                   for v in camera.data.view_frame(scene=scene)]
        if any(c is None for c in corners):
            return None
        xs, ys = [c.x for c in corners], [c.y for c in corners]
        return ((min(xs), min(ys), max(xs), max(ys)),
                (render.border_min_x, render.border_max_x, render.border_min_y, render.border_max_y))
    if not getattr(space, "use_render_border", False):
        return None
    return ((0, 0, region.width, region.height),
            (space.render_border_min_x, space.render_border_max_x,
             space.render_border_min_y, space.render_border_max_y))


def _apply_viewport_border(context, depsgraph, frame):
    """``frame`` transparent outside the viewport's render border (engine/viewport_border.py)."""
    from .engine.viewport_border import mask_outside, viewport_border_rect

    found = viewport_border_box(context, depsgraph)
    if found is None:
        return frame
    region = context.region
    rect = viewport_border_rect(found[0], region.width, region.height, *found[1])
    pixels = mask_outside(frame.pixels, frame.width, frame.height, rect, region.width, region.height)
    return dataclasses.replace(frame, pixels=pixels)


def _viewport_failure(exc, previous: str) -> str:
    """The viewport's error text for ``exc``; an unexpected error's traceback is printed once."""
    message = error_text.describe(exc)
    if message != previous and not isinstance(exc, GaussianHeadsError):
        traceback.print_exception(exc)
    return message


def _draw_text(lines, region_height):
    """Draw ``lines`` at the region's top left, below Blender's own view text (blf; drawn for
    real into an offscreen buffer by the installed tier on Blender 5.3, tests/installed)."""
    import blf
    import gpu

    try:
        gpu.platform.backend_type_get()
    except SystemError:  # background mode without gpu.init(): blf would crash, not raise
        return
    scale = bpy.context.preferences.system.ui_scale or 1.0  # 0 in background mode
    font = 0
    blf.size(font, 12.0 * scale)
    blf.color(font, 1.0, 0.4, 0.3, 1.0)
    blf.enable(font, blf.SHADOW)
    blf.shadow(font, 3, 0.0, 0.0, 0.0, 1.0)
    y = region_height - 80.0 * scale
    for line in lines:
        blf.position(font, 16.0 * scale, y, 0.0)
        blf.draw(font, line)
        y -= 16.0 * scale
    blf.disable(font, blf.SHADOW)


def _draw_pixels(engine, scene, frame, region_width, region_height):
    """Upload the frame as a texture and draw it over the region (run for real on Blender 5.3's
    headless GPU by the installed tier, which reads the pixels back)."""
    import gpu
    from gpu_extras.presets import draw_texture_2d

    buffer = gpu.types.Buffer('FLOAT', frame.width * frame.height * 4, frame.pixels)
    texture = gpu.types.GPUTexture((frame.width, frame.height), format='RGBA16F', data=buffer)
    gpu.state.blend_set('ALPHA_PREMULT')
    engine.bind_display_space_shader(scene)
    draw_texture_2d(texture, (0, 0), region_width, region_height)
    engine.unbind_display_space_shader()
    gpu.state.blend_set('NONE')


classes = (GaussianHeadsRenderEngine,)
register, unregister = bpy.utils.register_classes_factory(classes)

__all__ = ["GaussianHeadsRenderEngine", "ENGINE_ID", "avatar_instances", "head_params",
           "render_settings", "world_background", "camera_settings"]
