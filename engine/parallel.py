"""One lock for every launch of a parallel (``prange``) numba kernel, process-wide.

Where OpenMP or TBB is missing numba falls back to its "workqueue" threading layer, which is not
safe for concurrent launches: two threads starting parallel kernels at once (a render and the
background kernel warm-up, the viewport and a bake job) can crash the process. Every parallel
kernel of the engine (``raster/cpu.py``'s projection and tiles, ``bake/blend_kernel.py``'s blend)
is launched while holding ``PARALLEL_LOCK``; nothing that holds it waits on anything else.
"""

from __future__ import annotations

import threading

PARALLEL_LOCK = threading.Lock()
