"""Border renders (F12 with Render Region) at awkward borders and sizes, checked against Blender.

Blender decides the size of a cropped border render (its pipeline computes ``border * winx`` in
float32 and truncates); our engine must fill exactly that region, through a camera of exactly that
size. A 0.7 border at 400 px once gave a black frame because two computations disagreed.
"""

import itertools

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

# (x border, y border) pairs: each pairs 0.35, 0.7 or 0.9 (float32 x size lands just below an
# integer in float64) with an exact value, so a float64 rectangle would differ in size
BORDERS = [((0.0, 0.7), (0.35, 1.0)), ((0.25, 0.9), (0.5, 0.7)), ((0.35, 0.5), (0.0, 0.9))]
RESOLUTIONS = [(400, 1080), (1080, 1920), (1920, 400)]


def _set_border(scene, border, crop):
    r = scene.render
    r.use_border, r.use_crop_to_border = True, crop
    (r.border_min_x, r.border_max_x), (r.border_min_y, r.border_max_y) = border


def _render(tmp_path, name):
    scene = bpy.context.scene
    scene.render.filepath = str(tmp_path / name)
    assert bpy.ops.render.render(write_still=True) == {'FINISHED'}
    return tmp_path / name


def _expected_region(helpers, scene):
    """Our region for the scene's border, from the render engine's own camera reader."""
    render_engine = helpers.addon("render_engine")
    blender_camera = helpers.addon("engine.raster.blender_camera")
    camera, crop = blender_camera.camera_from_blender(render_engine.camera_settings(scene, scene.camera))
    assert (camera.width, camera.height) == (crop.width, crop.height)
    return crop


@pytest.mark.parametrize("resolution, border", list(itertools.product(RESOLUTIONS, BORDERS)))
def test_cropped_border_size_is_blenders(gh, helpers, tmp_path, capfd, resolution, border):
    """Blender's own cropped image size equals our region, and the engine reports no error."""
    from PIL import Image

    scene = bpy.context.scene
    helpers.setup_camera_scene(16)
    scene.render.resolution_x, scene.render.resolution_y = resolution
    _set_border(scene, border, crop=True)
    crop = _expected_region(helpers, scene)
    capfd.readouterr()
    with Image.open(_render(tmp_path, "crop.png")) as image:
        size = image.size
    out = capfd.readouterr()
    assert "Error: Gaussian Heads" not in out.out + out.err      # no error report (black frame)
    assert size == (crop.width, crop.height)
    r = scene.render
    rect = helpers.addon("engine.scene_render").border_rect(
        *resolution, True, r.border_min_x, r.border_max_x, r.border_min_y, r.border_max_y)
    assert rect == (crop.x, crop.y, crop.x + crop.width, crop.y + crop.height)


@pytest.mark.parametrize("resolution, border", [((400, 400), ((0.25, 0.7), (0.35, 1.0))),
                                                ((1080, 1080), ((0.35, 0.75), (0.25, 0.9)))])
def test_border_pixels_equal_the_full_frame(gh, helpers, avatar, tmp_path, capfd, resolution, border):
    """Cropped: the region of the full render. Not cropped: the full frame with only the region drawn."""
    scene = bpy.context.scene
    helpers.setup_camera_scene(resolution[0], distance=0.7)
    scene.render.resolution_y = resolution[1]
    full = helpers.read_png(_render(tmp_path, "full.png"))
    _set_border(scene, border, crop=True)
    crop = _expected_region(helpers, scene)
    capfd.readouterr()
    cropped = helpers.read_png(_render(tmp_path, "crop.png"))
    window = full[crop.top: crop.top + crop.height, crop.x: crop.x + crop.width]
    assert cropped.shape == window.shape
    assert window[..., 3].max() == 255                            # the head is in the region
    diff = np.abs(cropped.astype(int) - window.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.05
    _set_border(scene, border, crop=False)
    uncropped = helpers.read_png(_render(tmp_path, "uncropped.png"))
    assert uncropped.shape == full.shape
    inside = uncropped[crop.top: crop.top + crop.height, crop.x: crop.x + crop.width]
    assert np.abs(inside.astype(int) - window.astype(int)).max() <= 1
    outside = uncropped.copy()
    outside[crop.top: crop.top + crop.height, crop.x: crop.x + crop.width] = 0
    assert outside.max() == 0
    out = capfd.readouterr()
    assert "Error: Gaussian Heads" not in out.out + out.err
