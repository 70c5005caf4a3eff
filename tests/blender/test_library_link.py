"""Avatars linked or appended from another .blend render like in their own file.

A library session stores an animated avatar (built-in source; jawOpen and jaw keyed over three
frames), saves ``lib.blend`` and renders each frame (F12). Fresh sessions then bring the avatar
in by ``bpy.data.libraries.load`` (linked, appended, as a linked collection instance, and as a
library override) into their own scene with the same camera, and render the same frames. Linked
data is read-only in Blender: rendering it also proves the render path writes nothing to it.
"""

from __future__ import annotations

import pytest

from tests.blender.bpy_runner import run_bpy
from tests.blender.session_snippets import GAUSSIANS, PROLOGUE, SIZE, assert_same_frames

pytestmark = pytest.mark.slow

NAME = "GaussianHead.lib"


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """lib.blend with an animated avatar in collection 'Heads', and its own renders ``ref_####.png``."""
    root = tmp_path_factory.mktemp("library")
    run_bpy(PROLOGUE + f"""
identity = H.make_small_identity(5, {GAUSSIANS})
obj = new_avatar(identity, {NAME!r})
heads = bpy.data.collections.new("Heads")
bpy.context.scene.collection.children.link(heads)
heads.objects.link(obj)
bpy.context.scene.collection.objects.unlink(obj)
animate(obj)
H.setup_camera_scene({SIZE}, distance=0.7, transparent=True)
bpy.ops.wm.save_as_mainfile(filepath={str(root / "lib.blend")!r})
render_stills({str(root / "ref_")!r})
""", root / "user")
    return root


def _session(library, out, bring_in: str) -> dict:
    """A fresh session: the same camera scene, the avatar brought in by ``bring_in``, F12 per
    frame into ``out/got_####.png``; reports what the avatar looked like."""
    return run_bpy(PROLOGUE + f"""
scene = bpy.context.scene
H.setup_camera_scene({SIZE}, distance=0.7, transparent=True)
lib_path = {str(library / "lib.blend")!r}
{bring_in}
obj = next(o for o in scene.objects if o.name == {NAME!r}) if {NAME!r} in scene.objects else None
avatar = obj or bpy.data.objects[{NAME!r}]
result["linked"] = avatar.library is not None
result["data_linked"] = avatar.data.library is not None
result["override"] = avatar.override_library is not None
result["animated"] = avatar.animation_data is not None and avatar.animation_data.action is not None
manifest_before = avatar.data.gaussian_heads.manifest
render_stills({str(out / "got_")!r})
result["manifest_unchanged"] = avatar.data.gaussian_heads.manifest == manifest_before
result["cached"] = len(storage._identity_cache)
""", out / "user")


def test_linked_avatar_renders_like_its_library(library, tmp_path):
    result = _session(library, tmp_path, f"""
with bpy.data.libraries.load(lib_path, link=True) as (data_from, data_to):
    data_to.objects = [{NAME!r}]
scene.collection.objects.link(data_to.objects[0])
""")
    assert result["linked"] and result["data_linked"] and result["animated"]
    assert result["manifest_unchanged"] and result["cached"] == 1
    assert_same_frames(tmp_path / "got_", library / "ref_")


def test_appended_avatar_renders_like_its_library(library, tmp_path):
    result = _session(library, tmp_path, f"""
with bpy.data.libraries.load(lib_path, link=False) as (data_from, data_to):
    data_to.objects = [{NAME!r}]
scene.collection.objects.link(data_to.objects[0])
""")
    assert not result["linked"] and not result["data_linked"] and result["animated"]
    assert_same_frames(tmp_path / "got_", library / "ref_")


def test_linked_collection_instance_renders_like_its_library(library, tmp_path):
    result = _session(library, tmp_path, """
with bpy.data.libraries.load(lib_path, link=True) as (data_from, data_to):
    data_to.collections = ["Heads"]
instancer = bpy.data.objects.new("Heads.instance", None)
instancer.instance_type = 'COLLECTION'
instancer.instance_collection = data_to.collections[0]
scene.collection.objects.link(instancer)
""")
    assert result["linked"] and result["animated"]
    assert_same_frames(tmp_path / "got_", library / "ref_")


def test_library_override_of_a_linked_avatar_renders(library, tmp_path):
    result = _session(library, tmp_path, f"""
with bpy.data.libraries.load(lib_path, link=True) as (data_from, data_to):
    data_to.objects = [{NAME!r}]
linked = data_to.objects[0]
scene.collection.objects.link(linked)
override = linked.override_create(remap_local_usages=True)
assert override is not None and override.library is None
""")
    assert result["override"] and result["data_linked"] and result["animated"]
    assert_same_frames(tmp_path / "got_", library / "ref_")
