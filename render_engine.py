"""The Gaussian Heads render engine (bl_idname 'GAUSSIAN_HEADS')."""

import bpy

classes = ()
register, unregister = bpy.utils.register_classes_factory(classes)
