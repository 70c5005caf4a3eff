"""Sample Identity, Reset/Mirror Expression, Export PLY, the gallery, and operator error paths."""

import os

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

N = 5000


def _scene_state():
    return (sorted(o.name for o in bpy.data.objects), sorted(p.name for p in bpy.data.pointclouds),
            sorted(m.name for m in bpy.data.meshes), len(bpy.context.scene.collection.all_objects))


def test_sample_identity_creates_a_stored_avatar(gh, helpers, tmp_path):
    storage = helpers.addon("operators.storage")
    collection = bpy.data.collections.new("Avatars")
    bpy.context.scene.collection.children.link(collection)
    layer_collection = bpy.context.view_layer.layer_collection.children["Avatars"]
    bpy.context.view_layer.active_layer_collection = layer_collection

    assert bpy.ops.gaussian_heads.sample_identity(seed=11, truncation=0.5, n_gaussians=N) == {'FINISHED'}
    obj = bpy.context.active_object
    assert obj.name == "GaussianHead_11"
    assert obj.select_get() and obj.name in collection.objects
    props = obj.gaussian_heads
    assert props.is_avatar and props.seed == 11 and props.truncation == pytest.approx(0.5)
    assert obj.type == 'POINTCLOUD' and len(obj.data.points) == N
    identity = storage.load_identity(obj)
    assert [c.name for c in props.expr] == list(identity.model.expr_names)
    assert len(props.expr) == identity.model.n_expr
    assert {c.group for c in props.expr} >= {"eyes", "brows", "mouth", "jaw"}
    assert np.allclose(np.array(props.shape)[:props.shape_count], identity.shape[:props.shape_count])

    # the identity is the one the engine samples for the same settings
    builtin = helpers.addon("engine.avatar.builtin")
    again = builtin.BuiltinSource(config=builtin.BuiltinSamplerConfig(n_gaussians=N)).sample(11, truncation=0.5)
    assert storage.content_hash(again.to_arrays()) == storage.stored_hash(obj)

    path = tmp_path / "sampled.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    storage.clear_cache()
    obj = bpy.data.objects["GaussianHead_11"]
    assert storage.content_hash(storage.read_stored_arrays(obj)) == storage.stored_hash(obj)


def test_sample_error_leaves_scene_unchanged(gh, helpers, tmp_path):
    bpy.ops.mesh.primitive_cube_add()
    before = _scene_state()
    missing = str(tmp_path / "no_such_checkpoint.safetensors")
    with pytest.raises(RuntimeError, match="no such"):
        bpy.ops.gaussian_heads.sample_identity(source='CHECKPOINT', checkpoint=missing, seed=1)
    assert _scene_state() == before


def test_store_failure_leaves_scene_unchanged(gh, helpers, small_identity, monkeypatch):
    storage = helpers.addon("operators.storage")
    errors = helpers.addon("engine.errors")
    before = _scene_state()

    def broken(*args, **kwargs):
        raise errors.GaussianHeadsError("disk on fire")

    monkeypatch.setattr(storage, "_display_attributes", broken)
    with pytest.raises(errors.GaussianHeadsError):
        storage.create_avatar_object("Broken", small_identity, bpy.context.scene.collection)
    assert _scene_state() == before


def test_polls_explain_refusals(gh, helpers):
    assert not bpy.ops.gaussian_heads.reset_expression.poll()
    assert not bpy.ops.gaussian_heads.mirror_expression.poll()
    assert not bpy.ops.gaussian_heads.export_ply.poll()
    assert not bpy.ops.gaussian_heads.bake_blendshapes.poll()
    with pytest.raises(RuntimeError, match="avatar"):
        bpy.ops.gaussian_heads.reset_expression()


def test_reset_and_mirror_expression(gh, helpers, avatar):
    props = avatar.gaussian_heads
    names = [c.name for c in props.expr]
    left, right = names.index("eyeBlinkLeft"), names.index("eyeBlinkRight")
    smile = names.index("mouthSmileLeft")
    props.expr[left].value, props.expr[right].value = 0.8, 0.1
    props.expr[smile].value = 0.5
    center = names.index("jawOpen")
    props.expr[center].value = 0.3
    assert bpy.ops.gaussian_heads.mirror_expression() == {'FINISHED'}
    assert props.expr[left].value == pytest.approx(0.1) and props.expr[right].value == pytest.approx(0.8)
    assert props.expr[names.index("mouthSmileRight")].value == pytest.approx(0.5)
    assert props.expr[smile].value == pytest.approx(0.0)
    assert props.expr[center].value == pytest.approx(0.3)

    props.jaw = (0.2, 0.0, 0.0)
    assert bpy.ops.gaussian_heads.reset_expression() == {'FINISHED'}
    assert all(c.value == 0.0 for c in props.expr) and props.jaw[0] == pytest.approx(0.2)
    assert bpy.ops.gaussian_heads.reset_expression(include_pose=True) == {'FINISHED'}
    assert tuple(props.jaw) == (0.0, 0.0, 0.0)


def test_export_ply_of_posed_avatar(gh, helpers, avatar, small_identity, tmp_path):
    ply = helpers.addon("engine.io.ply")
    avatar.gaussian_heads.jaw = (0.3, 0.0, 0.0)
    path = tmp_path / "posed.ply"
    assert bpy.ops.gaussian_heads.export_ply(filepath=str(path)) == {'FINISHED'}
    written = ply.read_ply(path)
    params = small_identity.neutral_params()
    params.jaw[:] = (0.3, 0.0, 0.0)
    expected = small_identity.pose(params)
    assert len(written) == N
    assert np.allclose(written.means, expected.means, atol=1e-6)
    neutral = small_identity.pose(small_identity.neutral_params())
    assert not np.allclose(written.means, neutral.means, atol=1e-4)


def test_gallery_thumbnails_cached_in_user_folder(gh, helpers):
    preview = helpers.addon("operators.preview")
    props = bpy.context.scene.gaussian_heads
    props.gallery_first_seed, props.gallery_count = 20, 8
    props.sample_gaussians = 3000
    assert bpy.ops.gaussian_heads.build_gallery() == {'FINISHED'}
    folder = preview.preview_dir()
    assert folder.startswith(os.environ["BLENDER_USER_RESOURCES"])
    files = sorted(f for f in os.listdir(folder) if "_n3000_" in f and "seed2" in f)
    assert len(files) == 8
    image = helpers.read_png(os.path.join(folder, files[0]))
    assert image.shape == (128, 128, 4)
    assert image[..., :3].std() > 10            # a face, not a flat background

    items = preview.gallery_enum_items(props, bpy.context)
    assert [i[0] for i in items] == [str(s) for s in range(20, 28)]
    previews = preview._previews                 # the bpy.utils.previews collection behind the icons
    assert sorted(previews.keys()) == files
    assert all(tuple(previews[f].image_size) == (128, 128) for f in files)
    props.gallery = "23"
    assert props.sample_seed == 23

    # cached: a second build renders nothing new
    mtimes = [os.path.getmtime(os.path.join(folder, f)) for f in files]
    assert bpy.ops.gaussian_heads.build_gallery() == {'FINISHED'}
    assert mtimes == [os.path.getmtime(os.path.join(folder, f)) for f in files]


def test_expression_soft_range_follows_the_models(gh, helpers, avatar):
    properties = helpers.addon("properties")
    rna = avatar.gaussian_heads.expr[0].bl_rna.properties["value"]
    assert (rna.soft_min, rna.soft_max) == (0.0, 1.0)            # the open model's ARKit range
    ranges = {(c.range_min, c.range_max) for c in avatar.gaussian_heads.expr}
    assert ranges == {(0.0, 1.0)}
    avatar.gaussian_heads.expr[0].value = 0.4
    assert properties.widen_expression_range(-3.0, 3.0)          # e.g. a FLAME avatar appears
    rna = avatar.gaussian_heads.expr[0].bl_rna.properties["value"]
    assert (rna.soft_min, rna.soft_max) == (-3.0, 3.0)
    assert avatar.gaussian_heads.expr[0].value == pytest.approx(0.4)
    assert not properties.widen_expression_range(0.0, 1.0)       # never narrowed
