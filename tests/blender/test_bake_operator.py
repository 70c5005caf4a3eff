"""Bake Blendshapes / Clear Bake: the worker job, cancel leaving the avatar untouched, the bake
stored in the .blend and rendered when 'Render Baked' is on."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

SAMPLES, K = 24, 4


def _small_config(helpers):
    config = helpers.addon("engine.bake.config")
    return config.BakeConfig(mlp=config.MLPConfig(steps=60))


def _object_state(obj):
    props = obj.gaussian_heads
    data = obj.data
    return (props.bake_status, props.show_baked, data.gaussian_heads.bake_hash,
            data.gaussian_heads.bake_manifest, sorted(a.name for a in data.attributes),
            data.gaussian_heads.content_hash)


def test_cancelled_bake_leaves_avatar_unchanged(gh, helpers, avatar, small_identity):
    bake_op = helpers.addon("operators.bake")
    before = _object_state(avatar)
    job = bake_op.BakeJob(small_identity, bake_op.BakeSettings(SAMPLES, K, 0), _small_config(helpers))
    job.cancel()                       # Esc before the first sample
    job.start().wait(120)
    assert job.done and job.cancelled and job.result is None
    level, message = bake_op.apply_result(avatar, job, helpers.addon("operators.storage").stored_hash(avatar))
    assert level == 'INFO' and "cancelled" in message
    assert _object_state(avatar) == before


def test_bake_is_stored_in_the_blend_and_rendered(gh, helpers, avatar, small_identity, tmp_path):
    storage = helpers.addon("operators.storage")
    bake_op = helpers.addon("operators.bake")
    job = bake_op.BakeJob(small_identity, bake_op.BakeSettings(SAMPLES, K, 0), _small_config(helpers))
    progress = []
    job.start()
    while not job.wait(0.05):
        progress.append(job.progress)
    assert job.error is None and job.result is not None
    assert progress == sorted(progress)
    level, message = bake_op.apply_result(avatar, job, storage.stored_hash(avatar))
    assert level == 'INFO', message
    assert storage.has_bake(avatar) and avatar.gaussian_heads.show_baked
    expected = job.result.to_arrays()

    path = tmp_path / "baked.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    storage.clear_cache()
    obj = bpy.data.objects["GaussianHead.test"]
    stored = storage.read_stored_bake_arrays(obj)
    assert sorted(stored) == sorted(expected)
    for key in expected:
        assert np.array_equal(np.asarray(stored[key]).view(np.uint8), np.asarray(expected[key]).view(np.uint8)), key

    # the engine renders the bake when 'Render Baked' is on, the full model otherwise
    render_engine = helpers.addon("render_engine")
    identity = storage.load_identity(obj)
    assert render_engine.avatar_identity(obj) is not identity
    obj.gaussian_heads.show_baked = False
    assert render_engine.avatar_identity(obj) is identity

    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.gaussian_heads.clear_bake() == {'FINISHED'}
    assert not storage.has_bake(obj)
    assert not [a.name for a in obj.data.attributes if a.name.startswith("gh.bake.")]


def test_bake_operator_runs_blocking_from_scripts(gh, helpers, avatar, monkeypatch):
    avatar.gaussian_heads.bake_samples = SAMPLES
    avatar.gaussian_heads.bake_components = K
    bake_op = helpers.addon("operators.bake")
    original = bake_op.BakeJob.__init__

    def small(self, identity, settings, config=None):
        original(self, identity, settings, _small_config(helpers))

    monkeypatch.setattr(bake_op.BakeJob, "__init__", small)
    assert bpy.ops.gaussian_heads.bake_blendshapes() == {'FINISHED'}
    assert helpers.addon("operators.storage").has_bake(avatar)
    assert "K=4" in avatar.gaussian_heads.bake_status


def test_render_baked_draws_the_bake(gh, helpers, avatar, small_identity, tmp_path):
    storage = helpers.addon("operators.storage")
    bake_op = helpers.addon("operators.bake")
    job = bake_op.BakeJob(small_identity, bake_op.BakeSettings(SAMPLES, K, 0), _small_config(helpers)).start()
    job.wait()
    assert bake_op.apply_result(avatar, job, storage.stored_hash(avatar))[0] == 'INFO'
    helpers.setup_camera_scene(64, distance=0.7)
    scene = bpy.context.scene
    images = {}
    for baked in (True, False):
        avatar.gaussian_heads.show_baked = baked
        scene.render.filepath = str(tmp_path / f"baked_{baked}.png")
        assert bpy.ops.render.render(write_still=True) == {'FINISHED'}
        images[baked] = helpers.read_png(tmp_path / f"baked_{baked}.png").astype(int)
    assert images[True][..., :3].std() > 10                        # a head
    assert np.abs(images[True] - images[False]).mean() < 3.0        # the bake reproduces the neutral pose


def test_export_bake_writes_the_self_contained_file(gh, helpers, avatar, small_identity, tmp_path):
    storage = helpers.addon("operators.storage")
    bake_op = helpers.addon("operators.bake")
    baked_mod = helpers.addon("engine.bake.baked")
    bpy.context.view_layer.objects.active = avatar
    assert not bpy.ops.gaussian_heads.export_bake.poll()          # nothing baked yet
    job = bake_op.BakeJob(small_identity, bake_op.BakeSettings(SAMPLES, K, 0), _small_config(helpers)).start()
    job.wait()
    assert bake_op.apply_result(avatar, job, storage.stored_hash(avatar))[0] == 'INFO'

    path = tmp_path / "avatar_bake.npz"
    assert bpy.ops.gaussian_heads.export_bake(filepath=str(path)) == {'FINISHED'}
    loaded = baked_mod.BakedIdentity.load(path, small_identity.model)
    expected = job.result.to_arrays()
    got = loaded.to_arrays()
    assert sorted(got) == sorted(expected)
    for key in expected:
        assert np.array_equal(np.asarray(got[key]).view(np.uint8), np.asarray(expected[key]).view(np.uint8)), key
    params = small_identity.neutral_params()
    params.jaw[0] = 0.2
    np.testing.assert_allclose(loaded.pose(params).means, job.result.pose(params).means, atol=1e-6)

    # an unwritable destination is reported, not raised
    bad = tmp_path / "missing_folder" / "x.npz"
    with pytest.raises(RuntimeError, match="missing_folder"):
        bpy.ops.gaussian_heads.export_bake(filepath=str(bad))


def test_bake_status_shows_held_out_quality(gh, helpers, small_identity):
    """The user's bake measures held-out PSNR; the panel's status line shows mean, min and RMSE."""
    bake_op = helpers.addon("operators.bake")
    config = helpers.addon("engine.bake.config")
    job = bake_op.BakeJob(small_identity, bake_op.BakeSettings(SAMPLES, K, 0),
                          config.BakeConfig(mlp=config.MLPConfig(steps=60),
                                            report=config.ReportConfig(n_heldout=2, psnr=True, resolution=64)))
    job.start().wait()
    assert job.error is None, job.error
    report = job.result.report
    assert report.psnr_mean is not None and report.psnr_min <= report.psnr_mean
    text = bake_op.summary(job.result, job.seconds)
    assert f"held-out PSNR {report.psnr_mean:.1f} dB (min {report.psnr_min:.1f})" in text
    assert "position RMSE" in text
