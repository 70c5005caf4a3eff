"""Camera in the OpenCV convention (x right, y down, z forward), as every backend takes it."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Camera:
    """A pinhole or orthographic camera.

    world_to_cam [4, 4]: OpenCV camera frame (x right, y down, z forward).
    Perspective: pixel = (fx * x / z + cx, fy * y / z + cy).
    Orthographic: pixel = (fx * x + cx, fy * y + cy); fx, fy are pixels per metre.
    Pixel centres are at integer + 0.5 (pixel (0, 0) covers [0, 1) x [0, 1)); row 0 is the top.
    near, far: view-depth range (metres along +z); a Gaussian whose centre lies outside it is not
    drawn (orthographic cameras may have a negative near).
    ``engine.raster.blender_camera`` builds these from Blender cameras and viewports.
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

    def scaled(self, width: int, height: int) -> "Camera":
        """The same view on a ``width`` x ``height`` pixel grid (intrinsics scaled per axis)."""
        width, height = int(width), int(height)
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        return replace(self, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy,
                       width=width, height=height)

    def project(self, points: np.ndarray) -> np.ndarray:
        """[N, 3] world points -> [N, 3] (pixel x, pixel y, depth z along the view axis), float64."""
        p = np.asarray(points, np.float64).reshape(-1, 3)
        w2c = np.asarray(self.world_to_cam, np.float64)
        pc = p @ w2c[:3, :3].T + w2c[:3, 3]
        z = pc[:, 2]
        if self.orthographic:
            u, v = self.fx * pc[:, 0] + self.cx, self.fy * pc[:, 1] + self.cy
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                u, v = self.fx * pc[:, 0] / z + self.cx, self.fy * pc[:, 1] / z + self.cy
        return np.stack([u, v, z], axis=1)

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
