"""Gaussian Heads computational core.

Runs without Blender: nothing under ``engine`` imports ``bpy``. Inside Blender this package is
imported as ``bl_ext.<repo>.gaussian_heads.engine``, so every import inside it is relative.
"""

from .errors import GaussianHeadsError

__all__ = ["GaussianHeadsError"]
