"""Animation import/export operators in a bpy session: F-curves at the documented data paths,
values, error handling that leaves the scene unchanged, undo, export round trip."""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from engine.animation.names import ARKIT_NAMES  # noqa: E402


def _avatar(names=ARKIT_NAMES, name="Head", space_spec="open"):
    """A minimal avatar object: the properties the importer reads, no Gaussians needed."""
    obj = bpy.data.objects.new(name, None)
    bpy.context.scene.collection.objects.link(obj)
    props = obj.gaussian_heads
    props.is_avatar = True
    props.model_spec = space_spec
    for n in names:
        ch = props.expr.add()
        ch.name = n
        ch.range_min, ch.range_max = 0.0, 1.0
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    return obj


def _fcurve(obj, path, index=0):
    """The F-curve at ``path[index]`` in the object's assigned action slot, or None."""
    from bpy_extras import anim_utils

    ad = obj.animation_data
    if ad is None or ad.action is None:
        return None
    bag = anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)
    return None if bag is None else bag.fcurves.find(path, index=index)


def _keys(fc):
    co = np.empty(len(fc.keyframe_points) * 2, np.float32)
    fc.keyframe_points.foreach_get("co", co)
    return co.reshape(-1, 2)


def test_import_live_link_sample(gh, samples_dir):
    scene = bpy.context.scene
    scene.render.fps = 30
    obj = _avatar()
    path = samples_dir / "livelinkface_take.csv"
    res = bpy.ops.gaussian_heads.import_animation(filepath=str(path), start_frame=10)
    assert res == {'FINISHED'}
    act = obj.animation_data.action
    assert act is not None
    jaw_i = ARKIT_NAMES.index("jawOpen")
    fc = _fcurve(obj, f"gaussian_heads.expr[{jaw_i}].value")
    assert fc is not None
    keys = _keys(fc)
    # 328 rows at 60 fps -> ~5.45 s -> 164 frames at 30 fps, from frame 10
    assert keys[0, 0] == 10 and abs(len(keys) - 164) <= 1
    np.testing.assert_allclose(np.diff(keys[:, 0]), 1.0)
    rows = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(2, 63), max_rows=1)
    assert keys[0, 1] == pytest.approx(rows[ARKIT_NAMES.index("jawOpen")], abs=1e-6)
    assert fc.keyframe_points[0].interpolation == 'LINEAR'
    # eye rotation curves (the sample's eye columns carry data; head rotation is all zero)
    assert _fcurve(obj, "gaussian_heads.eyes", 1) is not None
    assert _fcurve(obj, "gaussian_heads.head_rot", 1) is None
    # the property follows the curve at a frame
    scene.frame_set(10)
    assert obj.gaussian_heads.expr[jaw_i].value == pytest.approx(keys[0, 1], abs=1e-6)
    assert obj.gaussian_heads.eyes[1] != 0.0


def test_import_flame_npz_to_flame_avatar(gh, tmp_path):
    scene = bpy.context.scene
    scene.render.fps = 25
    T, E = 20, 100
    rng = np.random.default_rng(0)
    expr = rng.normal(size=(T, E)).astype(np.float32)
    jaw = np.zeros((T, 3), np.float32)
    jaw[:, 0] = np.linspace(0, 0.3, T)
    rot = np.zeros((T, 3), np.float32)
    rot[:, 1] = np.linspace(-0.2, 0.2, T)
    p = tmp_path / "flame_param.npz"
    np.savez(p, expr=expr, jaw_pose=jaw, rotation=rot, shape=np.zeros(300, np.float32))
    obj = _avatar(names=[f"flame_{i}" for i in range(50)], space_spec="/models/flame2023.pkl")
    assert bpy.ops.gaussian_heads.import_animation(filepath=str(p), start_frame=1) == {'FINISHED'}
    keys = _keys(_fcurve(obj, "gaussian_heads.expr[7].value"))
    np.testing.assert_allclose(keys[:, 1], expr[:, 7], atol=1e-6)
    np.testing.assert_allclose(keys[:, 0], np.arange(1, T + 1))
    np.testing.assert_allclose(_keys(_fcurve(obj, "gaussian_heads.jaw", 0))[:, 1], jaw[:, 0], atol=1e-6)
    np.testing.assert_allclose(_keys(_fcurve(obj, "gaussian_heads.head_rot", 1))[:, 1], rot[:, 1], atol=1e-6)
    assert _fcurve(obj, "gaussian_heads.expr[50].value") is None


def test_bad_input_cancels_and_leaves_scene_unchanged(gh, tmp_path):
    obj = _avatar()
    bad = tmp_path / "broken.csv"
    bad.write_text("Timecode,BlendShapeCount,EyeBlinkLeft\n00:00:00:00.000,61,0.5\n00:00:00:01.000,61,nan\n")
    n_actions = len(bpy.data.actions)
    with pytest.raises(RuntimeError, match="broken.csv"):
        bpy.ops.gaussian_heads.import_animation(filepath=str(bad))
    assert obj.animation_data is None and len(bpy.data.actions) == n_actions
    missing = tmp_path / "nothing_here.npz"
    with pytest.raises(RuntimeError, match="nothing_here.npz"):
        bpy.ops.gaussian_heads.import_animation(filepath=str(missing))
    pickled = tmp_path / "flame_param.npz"
    np.savez(pickled, expr=np.zeros((3, 10)), evil=np.array([object()], dtype=object))
    with pytest.raises(RuntimeError, match="pickled"):
        bpy.ops.gaussian_heads.import_animation(filepath=str(pickled))
    assert obj.animation_data is None and len(bpy.data.actions) == n_actions


def test_no_matching_channel_is_an_error(gh, tmp_path):
    obj = _avatar(names=["foo", "bar"])
    p = tmp_path / "curves.json"
    p.write_text('{"fps": 24, "baz": [0, 1, 0]}')
    with pytest.raises(RuntimeError, match="nothing to animate"):
        bpy.ops.gaussian_heads.import_animation(filepath=str(p))
    assert obj.animation_data is None


def test_failed_write_rolls_back(gh, helpers):
    """A failure while writing F-curves restores the object's previous action and deletes the new one."""
    import numpy as np

    keyframes = helpers.addon("operators.keyframes")
    obj = _avatar(names=["a", "b"])
    obj.gaussian_heads.expr[0].value = 0.0
    obj.gaussian_heads.expr[0].keyframe_insert("value", frame=1)
    old = obj.animation_data.action
    n_actions = len(bpy.data.actions)
    good = keyframes.CurveData("gaussian_heads.expr[1].value", 0, np.array([1, 0.5, 2, 0.7], np.float32))
    bad = keyframes.CurveData("gaussian_heads.expr[0].value", 0, np.array(["x", "y"]))  # foreach_set raises
    with pytest.raises(Exception):
        keyframes.write_curves(obj, [good, bad], "Broken")
    assert obj.animation_data.action == old and len(bpy.data.actions) == n_actions
    bag_curves = [fc.data_path for fc in _channelbag_curves(obj)]
    assert bag_curves == ["gaussian_heads.expr[0].value"]


def _channelbag_curves(obj):
    from bpy_extras import anim_utils

    bag = anim_utils.action_get_channelbag_for_slot(obj.animation_data.action, obj.animation_data.action_slot)
    return list(bag.fcurves)


def test_reimport_replaces_curves_and_keeps_others(gh, tmp_path):
    obj = _avatar(names=["jawOpen", "eyeBlinkLeft"])
    obj.location = (0, 0, 0)
    obj.keyframe_insert("location", frame=1)
    p = tmp_path / "a.json"
    p.write_text('{"fps": 24, "jawOpen": [0, 0.5, 1.0, 0.5]}')
    bpy.context.scene.render.fps = 24
    assert bpy.ops.gaussian_heads.import_animation(filepath=str(p)) == {'FINISHED'}
    name, n_actions = obj.animation_data.action.name, len(bpy.data.actions)
    p.write_text('{"fps": 24, "jawOpen": [1, 1]}')
    assert bpy.ops.gaussian_heads.import_animation(filepath=str(p)) == {'FINISHED'}
    assert obj.animation_data.action.name == name and len(bpy.data.actions) == n_actions
    paths = sorted((fc.data_path, fc.array_index) for fc in _channelbag_curves(obj))
    assert ("location", 0) in paths and paths.count(("gaussian_heads.expr[0].value", 0)) == 1
    keys = _keys(_fcurve(obj, "gaussian_heads.expr[0].value"))
    np.testing.assert_allclose(keys, [[1, 1], [2, 1]])


def test_undo_restores_previous_state(gh, tmp_path):
    """One undo step removes the import (undo needs a window; headless it is skipped, and the
    transactional write is covered by test_failed_write_rolls_back)."""
    assert {'REGISTER', 'UNDO'} <= set(bpy.types.GAUSSIAN_HEADS_OT_import_animation.bl_options)
    obj = _avatar(names=["jawOpen"])
    p = tmp_path / "a.json"
    p.write_text('{"fps": 24, "jawOpen": [0, 0.5, 1.0]}')
    bpy.ops.ed.undo_push(message="before import")
    assert bpy.ops.gaussian_heads.import_animation(filepath=str(p)) == {'FINISHED'}
    try:
        res = bpy.ops.ed.undo()
    except RuntimeError as exc:
        pytest.skip(f"undo is unavailable in background mode ({exc})")
    if res != {'FINISHED'}:
        pytest.skip("undo is unavailable in background mode")
    obj = bpy.data.objects["Head"]
    assert obj.animation_data is None or obj.animation_data.action is None


def test_export_round_trip(gh, tmp_path):
    scene = bpy.context.scene
    scene.render.fps = 24
    obj = _avatar()
    src = tmp_path / "in.json"
    vals = np.linspace(0, 1, 24).round(4).tolist()
    src.write_text('{"fps": 24, "jawOpen": %s, "mouthSmileLeft": %s}' % (vals, vals[::-1]))
    assert bpy.ops.gaussian_heads.import_animation(filepath=str(src), start_frame=1) == {'FINISHED'}
    scene.frame_start, scene.frame_end = 1, 24
    out = tmp_path / "out.npz"
    assert bpy.ops.gaussian_heads.export_animation(filepath=str(out), file_format='NPZ') == {'FINISHED'}
    from engine.animation import read_any

    seq = read_any(out)
    assert seq.n_frames == 24 and seq.fps == 24 and seq.space == "arkit"
    np.testing.assert_allclose(seq.channel("jawOpen"), vals, atol=1e-6)
    csv = tmp_path / "out.csv"
    assert bpy.ops.gaussian_heads.export_animation(filepath=str(csv), file_format='LIVE_LINK_CSV') == {'FINISHED'}
    seq2 = read_any(csv)
    np.testing.assert_allclose(seq2.channel("mouthSmileLeft"), vals[::-1], atol=1e-6)


def test_menu_entries_registered(gh):
    import_entries = [f.__name__ for f in bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()]
    assert "_menu_import" in import_entries
    assert hasattr(bpy.types, "GAUSSIAN_HEADS_OT_import_animation")


@pytest.mark.slow
def test_import_speed_10k_frames_60_channels(gh, tmp_path):
    """10,000 frames x 60 channels import (parse + resample + map + F-curves) in about a second."""
    import time

    from engine.animation.bench import synthetic_take
    from engine.animation.formats.livelink import write_live_link_csv

    scene = bpy.context.scene
    scene.render.fps = 60
    obj = _avatar()
    p = tmp_path / "take.csv"
    write_live_link_csv(synthetic_take(10_000), p)
    t0 = time.perf_counter()
    assert bpy.ops.gaussian_heads.import_animation(filepath=str(p)) == {'FINISHED'}
    elapsed = time.perf_counter() - t0
    assert len(_channelbag_curves(obj)) == 52 + 3 + 6
    assert len(_fcurve(obj, "gaussian_heads.expr[0].value").keyframe_points) == 10_000
    # 1 s on an idle 2-core machine; allow headroom for the shared CI/dev machine
    assert elapsed < 4.0, elapsed


def test_import_smirk_folder(gh, tmp_path):
    """A folder (SMIRK per-frame .npy) imports like a file; eyelids drive blink channels by name."""
    bpy.context.scene.render.fps = 25
    root = tmp_path / "smirk"
    for i in range(6):
        d = root / f"{i:05d}"
        d.mkdir(parents=True)
        np.save(d / "exp.npy", np.full((1, 50), 0.1 * i, np.float32))
        np.save(d / "jawpose.npy", np.array([0.02 * i, 0, 0], np.float32))
        np.save(d / "eyelid.npy", np.array([0.1 * i, 0.0], np.float32))
    obj = _avatar(names=[f"flame_{i}" for i in range(50)] + ["eyeBlinkLeft"], space_spec="/models/flame.pkl")
    assert bpy.ops.gaussian_heads.import_animation(filepath=str(root) + "/") == {'FINISHED'}
    np.testing.assert_allclose(_keys(_fcurve(obj, "gaussian_heads.expr[3].value"))[:, 1], 0.1 * np.arange(6), atol=1e-6)
    np.testing.assert_allclose(_keys(_fcurve(obj, "gaussian_heads.expr[50].value"))[:, 1], 0.1 * np.arange(6), atol=1e-6)
    np.testing.assert_allclose(_keys(_fcurve(obj, "gaussian_heads.jaw", 0))[:, 1], 0.02 * np.arange(6), atol=1e-6)


def test_import_options_fps_override_scale_and_align(gh, tmp_path):
    scene = bpy.context.scene
    scene.render.fps = 24
    obj = _avatar(names=["jawOpen", "mouthSmileLeft"])
    for ch in obj.gaussian_heads.expr:
        ch.range_min, ch.range_max = 0.0, 0.5
    p = tmp_path / "c.json"
    vals = np.linspace(0, 1, 25).tolist()
    p.write_text('{"fps": 24, "jawOpen": %s, "mouthSmileLeft": %s}' % (vals, vals))
    # the 25 samples reinterpreted at 12 fps span 2 s -> 49 scene frames; values doubled then aligned
    assert bpy.ops.gaussian_heads.import_animation(
        filepath=str(p), override_fps=True, source_fps=12.0, value_scale=2.0,
        align_to_range=True, align_mode='CLIP') == {'FINISHED'}
    keys = _keys(_fcurve(obj, "gaussian_heads.expr[0].value"))
    assert len(keys) == 49
    assert keys[:, 1].max() == pytest.approx(0.5) and keys[3, 1] == pytest.approx(2 * 1.5 / 24, abs=1e-5)
    # soft alignment leaves in-range values alone and compresses the overshoot into the knee
    assert bpy.ops.gaussian_heads.import_animation(filepath=str(p), value_scale=2.0, align_to_range=True,
                                                   align_mode='SOFT') == {'FINISHED'}
    keys = _keys(_fcurve(obj, "gaussian_heads.expr[1].value"))
    np.testing.assert_allclose(keys[:7, 1], 2 * np.array(vals[:7]), atol=1e-6)
    assert 0.5 < keys[:, 1].max() <= 0.55 + 1e-6 and np.all(np.diff(keys[:, 1]) >= 0)


def _report_lines(out: str, name: str) -> list[str]:
    """The operator's report lines about file ``name`` (headless, Blender prints each report)."""
    return [line for line in out.splitlines() if line.startswith(("Info: ", "Warning: ")) and f" {name}:" in line]


def test_import_reports_every_note_of_the_live_link_sample(gh, samples_dir, capfd):
    bpy.context.scene.render.fps = 30
    _avatar(names=ARKIT_NAMES[:40] + ("extraChannel",))
    capfd.readouterr()
    path = samples_dir / "livelinkface_take.csv"
    assert bpy.ops.gaussian_heads.import_animation(filepath=str(path)) == {'FINISHED'}
    lines = _report_lines(capfd.readouterr().out, path.name)
    expected = [
        "Info: livelinkface_take.csv: frame rate 60 fps, derived from its timecodes; resampled to 30 fps",
        "Info: livelinkface_take.csv: converted eye rotation -> eyes (from Left/RightEyeYaw/Pitch/Roll (1.0 = 90°))",
        "Info: livelinkface_take.csv: 12 columns ignored, the avatar has no matching channel: " + ", ".join(
            ARKIT_NAMES[40:52]),
        "Info: livelinkface_take.csv: 1 avatar channels get no curve (extraChannel)",
    ]
    assert lines[:-1] == expected                      # each note its own line, in this order
    assert lines[-1].startswith("Info: livelinkface_take.csv: 328 frames at 60 fps (live_link_face_csv) "
                                "-> 164 frames at 30 fps from frame 1; mapped 40")


def test_import_reports_clamped_and_out_of_range_values(gh, tmp_path, capfd):
    bpy.context.scene.render.fps = 24
    obj = _avatar(names=["jawOpen", "mouthSmileLeft", "browInnerUp"])
    p = tmp_path / "loud.json"
    p.write_text('{"fps": 24, "jawOpen": [0, 1.5, 0.5], "mouthSmileLeft": [0, 12.0, 0], "browInnerUp": [0, 0.5, 1]}')
    capfd.readouterr()
    # as it is: the values outside the avatar's range and beyond the slider limit are reported
    assert bpy.ops.gaussian_heads.import_animation(filepath=str(p)) == {'FINISHED'}
    lines = _report_lines(capfd.readouterr().out, p.name)
    assert ("Warning: loud.json: 2 channels leave the avatar's range (by up to 11; Align to Avatar Range "
            "brings them in): jawOpen, mouthSmileLeft") in lines
    assert "Warning: loud.json: values beyond ±10 are clamped to the slider limit: mouthSmileLeft" in lines
    # clamped into the range: the engine's note is shown and the warnings are gone
    assert bpy.ops.gaussian_heads.import_animation(filepath=str(p), align_to_range=True,
                                                   align_mode='CLIP') == {'FINISHED'}
    lines = _report_lines(capfd.readouterr().out, p.name)
    assert ("Info: loud.json: aligned to the avatar's range (clip): 2 channels changed, largest change 11"
            in lines)
    assert not any(line.startswith("Warning:") for line in lines)
    keys = _keys(_fcurve(obj, "gaussian_heads.expr[1].value"))
    np.testing.assert_allclose(keys[:, 1], [0, 1, 0])
