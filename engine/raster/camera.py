"""Camera in the OpenCV convention (x right, y down, z forward), as every backend takes it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """A pinhole or orthographic camera.

    world_to_cam [4, 4]: OpenCV camera frame (x right, y down, z forward).
    Perspective: pixel = (fx * x / z + cx, fy * y / z + cy).
    Orthographic: pixel = (fx * x + cx, fy * y + cy); fx, fy are pixels per metre.
    Pixel centres are at integer + 0.5 (pixel (0, 0) covers [0, 1) x [0, 1)).
    """

    world_to_cam: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    near: float = 0.01
    far: float = 100.0
    orthographic: bool = False

    @property
    def intrinsics(self) -> np.ndarray:
        """[3, 3] K matrix."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], np.float64)

    @property
    def position(self) -> np.ndarray:
        """[3] camera centre in world space."""
        w2c = np.asarray(self.world_to_cam, np.float64)
        return -w2c[:3, :3].T @ w2c[:3, 3]


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """World-to-camera [4, 4] (OpenCV) for a camera at ``eye`` looking at ``target``."""
    eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-9:
        right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])
    w2c = np.eye(4)
    w2c[:3, :3] = rot
    w2c[:3, 3] = -rot @ eye
    return w2c
