"""The one conversion between the head model's native frame and Blender's object space.

Model frame (FLAME's): +Y up, +Z forward (the face looks down +Z), +X the subject's left.
Blender: +Z up; the avatar faces -Y so Blender's Front view (looking along +Y) sees the face.
(x, y, z)_model -> (x, -z, y)_blender.
"""

import numpy as np

MODEL_TO_BLENDER = np.array(
    [[1.0, 0.0, 0.0, 0.0],
     [0.0, 0.0, -1.0, 0.0],
     [0.0, 1.0, 0.0, 0.0],
     [0.0, 0.0, 0.0, 1.0]]
)
BLENDER_TO_MODEL = MODEL_TO_BLENDER.T.copy()
