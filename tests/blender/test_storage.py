"""Avatar storage in the .blend: point cloud attributes + manifest, bit-exact across save/reload."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")


def _assert_same_arrays(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        assert x.dtype == y.dtype, key
        assert x.shape == y.shape, key
        if x.dtype.kind in "US":
            assert x.tolist() == y.tolist(), key
        else:
            assert np.array_equal(x.view(np.uint8), y.view(np.uint8)), key


def test_identity_survives_save_and_reload(gh, helpers, small_identity, tmp_path):
    storage = helpers.addon("operators.storage")
    obj = helpers.add_avatar(small_identity, name="GaussianHead_3")
    expected = small_identity.to_arrays()
    before = small_identity.pose(small_identity.neutral_params())

    path = tmp_path / "avatar.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    helpers.enable_addon()
    storage.clear_cache()
    bpy.ops.wm.open_mainfile(filepath=str(path))

    obj = bpy.data.objects["GaussianHead_3"]
    assert obj.type == 'POINTCLOUD' and obj.gaussian_heads.is_avatar
    _assert_same_arrays(expected, storage.read_stored_arrays(obj))
    identity = storage.load_identity(obj)
    after = identity.pose(identity.neutral_params())
    assert np.array_equal(before.means, after.means)
    assert np.array_equal(before.sh, after.sh)
    assert [c.name for c in obj.gaussian_heads.expr] == list(small_identity.model.expr_names)


def test_points_show_the_neutral_head_in_blender_frame(gh, helpers, small_identity):
    frames = helpers.addon("engine.avatar.frames")
    obj = helpers.add_avatar(small_identity)
    n = len(small_identity.binding)
    assert len(obj.data.points) == n
    pos = np.empty(n * 3, np.float32)
    obj.data.attributes["position"].data.foreach_get("vector", pos)
    neutral = small_identity.pose(small_identity.neutral_params())
    expected = neutral.means @ frames.MODEL_TO_BLENDER[:3, :3].T.astype(np.float32)
    assert np.allclose(pos.reshape(n, 3), expected, atol=1e-6)
    # Z up: the head is taller along Blender Z than it is deep along Y... and faces -Y
    extent = pos.reshape(n, 3).max(0) - pos.reshape(n, 3).min(0)
    assert extent[2] > extent[1] * 0.8
    radius = np.empty(n, np.float32)
    obj.data.attributes["radius"].data.foreach_get("value", radius)
    assert 0 < radius.min() and radius.max() < 0.01
    assert "Col" in obj.data.attributes


def test_generic_arrays_round_trip_bit_exact(gh, helpers):
    storage = helpers.addon("operators.storage")
    n = 37
    rng = np.random.default_rng(1)
    arrays = {
        "f32_vec": rng.standard_normal((n, 3)).astype(np.float32),
        "f32_wide": rng.standard_normal((n, 16, 3)).astype(np.float32),
        "f16_basis": rng.standard_normal((5, n, 3)).astype(np.float16),   # N on axis 1
        "f64": rng.standard_normal(n),
        "i32": rng.integers(-5, 5, n).astype(np.int32),
        "i64": rng.integers(-2**40, 2**40, (n, 2)),
        "bools": rng.random(n) > 0.5,
        "small": np.arange(7, dtype=np.float32),
        "bytes": np.frombuffer(b"onnx bytes \x00\x01", np.uint8).copy(),
        "text": np.array(['{"a": 1}']),
    }
    arrays["f32_vec"][0, 0] = np.nan
    pointcloud = helpers.addon("operators.attribute_columns").new_pointcloud("generic", n)
    manifest = storage.write_arrays(pointcloud, arrays, n)
    stored = {e["key"]: e["store"] for e in manifest["arrays"]}
    assert stored["small"] == "inline" and stored["f16_basis"] == "points"
    _assert_same_arrays(arrays, storage.read_arrays(pointcloud, manifest))
    assert not any(m.users == 0 for m in bpy.data.meshes)   # the conversion left nothing behind
    assert not [o for o in bpy.data.objects if o.name.startswith("generic")]


def test_load_identity_is_cached_by_content_hash(gh, helpers, small_identity):
    storage = helpers.addon("operators.storage")
    obj = helpers.add_avatar(small_identity)
    digest = storage.stored_hash(obj)
    assert digest == storage.content_hash(small_identity.to_arrays())
    assert storage.load_identity(obj) is storage.load_identity(obj)
    storage.clear_cache()
    first = storage.load_identity(obj)
    assert first is not small_identity and storage.load_identity(obj) is first
    # the evaluated copy shares the cache entry
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    assert storage.load_identity(evaluated) is first


def test_damaged_storage_raises_user_error(gh, helpers, small_identity):
    storage = helpers.addon("operators.storage")
    errors = helpers.addon("engine.errors")
    obj = helpers.add_avatar(small_identity)
    obj.data.attributes.remove(obj.data.attributes["gh.canonical.offsets"])
    storage.clear_cache()
    with pytest.raises(errors.GaussianHeadsError, match="lacks the attribute"):
        storage.load_identity(obj)
