"""PropertyGroups: object.gaussian_heads, scene.gaussian_heads and the add-on preferences."""

import bpy

classes = ()
register, unregister = bpy.utils.register_classes_factory(classes)
