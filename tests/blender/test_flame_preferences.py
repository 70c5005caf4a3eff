"""FLAME takes onto an ARKit avatar: the preferences' FLAME model drives the least-squares mapping
(a synthetic FLAME-format model stands in for the user's), the import's Source Head Model overrides
it, a broken preference is one clear error with the scene unchanged, and without a model only the
joints come through."""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from engine.animation.names import ARKIT_NAMES  # noqa: E402

N_V = 40


def _synthetic_flame_npz(path, seed=0):
    """A tiny FLAME-format model (.npz with FLAME's keys): 300 shape + 100 expression components."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(-0.08, 0.08, (N_V, 3))
    weights = np.zeros((N_V, 5))
    weights[:10, 2] = weights[10:20, 1] = weights[30:35, 3] = weights[35:40, 4] = 1.0
    weights[20:30, 0] = 1.0
    jreg = np.zeros((5, N_V))
    for j, (a, b) in enumerate(((20, 30), (10, 20), (0, 10), (30, 35), (35, 40))):
        jreg[j, a:b] = 1.0 / (b - a)
    np.savez(path, v_template=v, f=np.array([[i, i + 1, i + 2] for i in range(N_V - 2)], np.uint32),
             shapedirs=rng.normal(0, 1e-3, (N_V, 3, 400)), posedirs=np.zeros((N_V, 3, 36)),
             J_regressor=jreg, weights=weights, J=jreg @ v,
             kintree_table=np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64))
    return path


def _bare_take(folder, T=6):
    rng = np.random.default_rng(3)
    folder.mkdir()
    np.save(folder / "exp.npy", rng.normal(size=(T, 100)).astype(np.float32))
    np.save(folder / "pose.npy", (0.1 * rng.normal(size=(T, 15))).astype(np.float32))
    return folder


def _avatar():
    obj = bpy.data.objects.new("Head", None)
    bpy.context.scene.collection.objects.link(obj)
    props = obj.gaussian_heads
    props.is_avatar = True
    props.model_spec = "open"
    for n in ARKIT_NAMES:
        ch = props.expr.add()
        ch.name, ch.range_min, ch.range_max = n, 0.0, 1.0
    bpy.context.view_layer.objects.active = obj
    return obj


def _expr_keys(obj) -> dict[str, np.ndarray]:
    """{data path: [K, 2] keys} of the avatar's expression curves."""
    from bpy_extras import anim_utils

    ad = obj.animation_data
    if ad is None or ad.action is None:
        return {}
    bag = anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)
    out = {}
    for fc in bag.fcurves:
        if fc.data_path.startswith("gaussian_heads.expr["):
            co = np.empty(len(fc.keyframe_points) * 2, np.float32)
            fc.keyframe_points.foreach_get("co", co)
            out[fc.data_path] = co.reshape(-1, 2)
    return out


@pytest.fixture
def prefs(gh, helpers):
    p = bpy.context.preferences.addons[helpers.ADDON_MODULE].preferences
    yield p
    p.flame_model = ""


def _import(folder, **kwargs):
    return bpy.ops.gaussian_heads.import_animation(filepath="", directory=str(folder), **kwargs)


def test_preferences_flame_model_maps_expressions_by_least_squares(prefs, helpers, tmp_path):
    from engine.animation import ImportOptions, TargetSpec, prepare_import, read_any
    from engine.head_model import load_head_model

    take = _bare_take(tmp_path / "take")
    model = _synthetic_flame_npz(tmp_path / "flame.npz")
    bpy.context.scene.render.fps = 25

    obj = _avatar()  # no FLAME model anywhere: joints only, as before
    assert _import(take) == {'FINISHED'}
    assert _expr_keys(obj) == {}
    assert obj.animation_data.action is not None  # jaw / neck / eyes curves

    prefs.flame_model = str(model)
    assert helpers.addon("preferences").flame_model_path() == str(model)
    assert _import(take) == {'FINISHED'}
    keys = _expr_keys(obj)
    assert len(keys) >= 40  # the 100 FLAME coefficients now reach the ARKit channels

    # the same numbers the engine gives for this take, these two models and the operator's options
    seq = read_any(take)
    target = TargetSpec(ARKIT_NAMES, "arkit", np.tile([0.0, 1.0], (len(ARKIT_NAMES), 1)).astype(np.float32))
    result = prepare_import(seq, target, ImportOptions(scene_fps=25.0, start_frame=1.0),
                            source_model=load_head_model(str(model)), target_model=load_head_model("open"))
    for path, k in keys.items():
        i = int(path.split("[")[1].split("]")[0])
        np.testing.assert_allclose(k[:, 1], result.sequence.expr[:, i], atol=1e-5, err_msg=ARKIT_NAMES[i])
        np.testing.assert_array_equal(k[:, 0], result.frames)

    # Source Head Model overrides a preference that points nowhere, with the same result
    prefs.flame_model = str(tmp_path / "gone.pkl")
    obj.animation_data_clear()
    assert _import(take, source_model=str(model)) == {'FINISHED'}
    again = _expr_keys(obj)
    assert again.keys() == keys.keys()
    for path in keys:
        np.testing.assert_array_equal(again[path], keys[path])


def test_broken_preference_is_one_error_and_the_scene_is_unchanged(prefs, tmp_path):
    take = _bare_take(tmp_path / "take")
    prefs.flame_model = str(tmp_path / "gone.pkl")
    obj = _avatar()
    with pytest.raises(RuntimeError, match="gone.pkl.*preferences"):
        _import(take)
    assert obj.animation_data is None or obj.animation_data.action is None


def test_preferences_show_the_flame_model(prefs):
    assert "flame_model" in prefs.bl_rna.properties
    assert prefs.bl_rna.properties["flame_model"].subtype == 'FILE_PATH'
