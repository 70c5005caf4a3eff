"""The identity-source registry in the UI: the sampling panel says whether a checkpoint is trained,
the source enums come from the registry, and properties never import operators."""

from __future__ import annotations

import ast
import json
import pathlib
import types

import pytest

bpy = pytest.importorskip("bpy")

REPO = pathlib.Path(__file__).resolve().parents[2]


class _Layout:
    """Records labels (with icons) and props; enough of UILayout for the sampling panel."""

    def __init__(self, log):
        self.log = log

    def column(self, *a, **k):
        return self

    row = column

    def label(self, text="", icon='NONE', **k):
        self.log.append(("label", text, icon))

    def prop(self, data, name, **k):
        assert name in data.bl_rna.properties, name
        self.log.append(("prop", name))

    def operator(self, idname, **k):
        return types.SimpleNamespace()


def _panel_log(scene):
    log = []
    panel = types.SimpleNamespace(layout=_Layout(log))
    bpy.types.GAUSSIAN_HEADS_PT_sample.draw(panel, types.SimpleNamespace(scene=scene))
    return log


def _checkpoint(folder: pathlib.Path, trained: bool) -> str:
    from engine.generator import checkpoint as ckpt_mod
    from engine.generator.config import small_config

    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "format": ckpt_mod.FORMAT, "version": ckpt_mod.VERSION, "config": small_config().to_dict(),
        "meta": {"trained": trained}, "files": {"weights": ckpt_mod.WEIGHTS_NAME}}))
    return str(folder)


def test_sampling_panel_says_an_untrained_checkpoint_gives_noise(gh, tmp_path):
    scene = bpy.context.scene
    props = scene.gaussian_heads
    assert not [e for e in _panel_log(scene) if e[0] == "label"]  # built-in: nothing to say
    props.sample_source = 'CHECKPOINT'
    props.sample_checkpoint = _checkpoint(tmp_path / "random", trained=False)
    labels = [e for e in _panel_log(scene) if e[0] == "label"]
    assert labels == [("label", "untrained (random weights): samples are structured noise", 'ERROR')]
    props.sample_checkpoint = _checkpoint(tmp_path / "real", trained=True)
    assert [e for e in _panel_log(scene) if e[0] == "label"] == [("label", "trained checkpoint", 'CHECKMARK')]


def test_source_enums_come_from_the_registry(gh, helpers):
    sources = helpers.addon("engine.avatar.sources")
    ids = [i[0] for i in sources.enum_items()]
    for rna in (bpy.context.scene.gaussian_heads.bl_rna.properties["sample_source"],
                bpy.data.objects.new("o", None).gaussian_heads.bl_rna.properties["source"],
                bpy.ops.gaussian_heads.sample_identity.get_rna_type().properties["source"]):
        assert [item.identifier for item in rna.enum_items] == ids


def test_properties_never_import_operators(gh, helpers):
    tree = ast.parse((REPO / "properties.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not (node.module or "").startswith("operators"), ast.dump(node)
            assert not (node.level and "operators" in [a.name for a in node.names]), ast.dump(node)
        if isinstance(node, ast.Import):
            assert not any("operators" in a.name for a in node.names)
    # the gallery's items reach properties through preview's registration, and fall back without it
    properties = helpers.addon("properties")
    items = properties._gallery_items(bpy.context.scene.gaussian_heads, bpy.context)
    assert items and items[0][0] == 'NONE'
    properties.set_gallery_items(None)
    try:
        assert properties._gallery_items(None, None) == properties._NO_GALLERY
    finally:
        properties.set_gallery_items(helpers.addon("operators.preview").gallery_enum_items)
