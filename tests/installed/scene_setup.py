"""Scene pieces the journey's Cycles phases share (``composite_phase``, ``native_phase``; also the
development tier's ``tests/blender/test_composite.py``): a tiny CPU Cycles scene looking at the head,
and flat emission quads (noise-free in Cycles) to put in front of or behind it.
"""

from __future__ import annotations

import bpy
import numpy as np


def cycles_scene(res: int, samples: int):
    """The current scene set to Cycles on the CPU (``samples``, no denoising) at ``res``² PNG, the
    'Standard' view, and an 85 mm camera 0.85 m in front of the head (looking along +Y)."""
    scene = bpy.context.scene
    scene.render.engine = 'CYCLES'
    scene.cycles.device = 'CPU'
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.render.resolution_x = scene.render.resolution_y = res
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = 'PNG'
    scene.view_settings.view_transform = 'Standard'
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.data.lens = 85
    scene.collection.objects.link(camera)
    camera.location = (0.0, -0.85, 0.0)
    camera.rotation_euler = (np.pi / 2, 0.0, 0.0)
    scene.camera = camera
    return scene


def cycles_scene_with_avatar(res: int, samples: int, gaussians: int):
    """``cycles_scene`` and a built-in avatar of ``gaussians`` Gaussians (seed 3) added by Sample
    Identity, the add-on already enabled: (scene, avatar)."""
    from journey import run_op   # the journey's process only (tests/blender imports this module too)

    scene = cycles_scene(res, samples)
    run_op(bpy.ops.gaussian_heads.sample_identity, source='BUILTIN', seed=3, n_gaussians=gaussians)
    return scene, bpy.context.active_object


def emission_material(name: str, colour):
    """A material whose surface is only an emission shader of ``colour`` (scene-linear RGB)."""
    material = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    nodes = material.node_tree.nodes
    nodes.clear()
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (*colour, 1.0)
    output = nodes.new("ShaderNodeOutputMaterial")
    material.node_tree.links.new(emission.outputs[0], output.inputs["Surface"])
    return material


def emission_quad(scene, name: str, colour, corners, material_name: str | None = None):
    """A one-face mesh object ``name`` through ``corners`` (4 xyz, in order) with an emission
    material of ``colour`` (named ``material_name``, default ``name``), linked to ``scene``."""
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(corners, [], [(0, 1, 2, 3)])
    mesh.materials.append(emission_material(material_name or name, colour))
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    return obj
