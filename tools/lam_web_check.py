"""Does our LAM avatar zip play in LAM's own web renderer? Render it there and compare with ours.

    .venv/bin/python tools/lam_web_check.py --out out/lam_web [--seed 7] [--gaussians 20000]
        [--size 512] [--weight jawOpen=0.6 --weight eyeBlinkLeft=1 --weight mouthSmileRight=0.7]

Exports a built-in avatar with ``engine.io.lam.write_lam_zip``, loads the zip in the npm package
``gaussian-splat-renderer-for-lam`` (the renderer LAM / OpenAvatarChat ship) inside headless
Chromium (Debian's ``chromium``, software WebGL 2 through SwiftShader, driven by playwright-core),
sets a known camera and ARKit weights, screenshots the neutral and the posed head, renders the
same two frames with our CPU rasterizer (``engine.raster``, backend "cpu") from the identity
itself, and reports the PSNR of each pair. Images and ``summary.json`` land in ``--out``.

Needs: ``/usr/bin/chromium`` (``apt-get install chromium``), ``node`` and the pinned packages in
``tools/lam_web`` (``cd tools/lam_web && npm ci``). Nothing leaves localhost: the page and the zip
are served by a throw-away HTTP server on 127.0.0.1 and the browser refuses every other host.
The findings behind the harness (how the player composes splats, its camera and its weight
scaling) are written down in docs/DEVELOPING.md, "Checked in LAM's web renderer".
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
WEB = ROOT / "tools" / "lam_web"
CHROMIUM = "/usr/bin/chromium"
PACKAGES = ("gaussian-splat-renderer-for-lam", "playwright-core")
DEFAULT_WEIGHTS = {"jawOpen": 0.6, "eyeBlinkLeft": 1.0, "mouthSmileRight": 0.7}
#: Background of both renders (display sRGB, 0..1); black, so a splat's edge looks the same on both.
BACKGROUND = (0.0, 0.0, 0.0)


def missing_requirements() -> str | None:
    """Why the check cannot run on this machine (None when it can)."""
    if not pathlib.Path(CHROMIUM).is_file():
        return f"{CHROMIUM} is absent (Debian: apt-get install chromium)"
    if shutil.which("node") is None:
        return "node is not on PATH (node 20 or newer: playwright-core needs it)"
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0] or 0) < 20:
        return f"node {version} is too old (playwright-core needs 20 or newer)"
    absent = [p for p in PACKAGES if not (WEB / "node_modules" / p / "package.json").is_file()]
    if absent:
        return f"{', '.join(absent)} not installed in {WEB} (run: cd tools/lam_web && npm ci)"
    return None


# --- serving the page and the zip ---------------------------------------------------------------

class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves tools/lam_web, plus the exported zips under /zips/ from another folder."""

    zips: pathlib.Path

    def translate_path(self, path: str) -> str:
        clean = path.split("?", 1)[0].split("#", 1)[0]
        if clean.startswith("/zips/"):
            name = pathlib.PurePosixPath(clean).name
            return str(self.zips / name)
        return super().translate_path(path)

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@contextlib.contextmanager
def serve(zips: pathlib.Path):
    """A localhost HTTP server for the page (tools/lam_web) and ``zips``; yields its base URL."""
    handler = functools.partial(type("Handler", (_Handler,), {"zips": zips}), directory=str(WEB))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- camera ---------------------------------------------------------------------------------------

def three_camera(camera) -> dict:
    """Our OpenCV ``Camera`` -> the three.js camera the page sets (position [3], quaternion
    [x, y, z, w], vertical fov in degrees, near, far). three.js looks down -Z with +Y up, so its
    camera-to-world rotation is OpenCV's with the y and z axes negated. The player derives its
    focal length from the projection matrix (fy = H / 2 / tan(fov / 2)) and puts the principal
    point at the image centre, so the camera must be centred with square pixels."""
    from scipy.spatial.transform import Rotation

    if abs(camera.fx - camera.fy) > 1e-6 * camera.fy:
        raise ValueError("the LAM player needs square pixels (fx == fy)")
    if abs(camera.cx - camera.width / 2) > 1e-6 or abs(camera.cy - camera.height / 2) > 1e-6:
        raise ValueError("the LAM player needs the principal point at the image centre")
    w2c = np.asarray(camera.world_to_cam, np.float64)
    c2w_rotation = w2c[:3, :3].T @ np.diag([1.0, -1.0, -1.0])
    quaternion = Rotation.from_matrix(c2w_rotation).as_quat()    # x, y, z, w
    fov = 2.0 * np.degrees(np.arctan(camera.height / 2.0 / camera.fy))
    return {"position": camera.position.tolist(), "quaternion": quaternion.tolist(), "fov_deg": float(fov),
            "near": float(camera.near), "far": float(camera.far)}


# --- the browser ----------------------------------------------------------------------------------

def browser_render(url: str, camera, shots: list[dict], width: int, height: int, work: pathlib.Path,
                   timeout_s: float = 240.0) -> dict:
    """Open ``url`` (check.html) in headless Chromium, set ``camera`` and take one screenshot per
    shot ({name, weights, out}). Returns the driver's report (renderer string, splat count,
    console lines); raises RuntimeError with the page's console when it fails."""
    job = {"url": url, "width": width, "height": height, "chromium": CHROMIUM, "timeout_s": timeout_s,
           "user_data_dir": str(work / "chromium-profile"), "camera": three_camera(camera), "shots": shots}
    job_file = work / "job.json"
    job_file.write_text(json.dumps(job))
    proc = subprocess.run(["node", str(WEB / "driver.mjs"), str(job_file)], cwd=WEB, capture_output=True,
                          text=True, timeout=timeout_s + 60)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    report = json.loads(lines[-1]) if lines else {"error": proc.stderr[-2000:] or "no output"}
    if proc.returncode != 0 or "error" in report:
        console = "\n".join(report.get("console", [])[-30:])
        raise RuntimeError(f"LAM web render failed: {report.get('error')}\n{console}")
    return report


# --- images ---------------------------------------------------------------------------------------

def load_rgb(path) -> np.ndarray:
    """PNG -> [H, W, 3] uint8."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of two [H, W, 3] uint8 images (peak 255), over ``mask`` [H, W] when given."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    if mask is not None:
        diff = diff[mask]
    mse = float(np.mean(diff ** 2)) if diff.size else 0.0
    return float("inf") if mse == 0.0 else 10.0 * np.log10(255.0 ** 2 / mse)


def foreground(*images: np.ndarray, level: int = 8) -> np.ndarray:
    """[H, W] bool: pixels where any image differs from the black background by more than ``level``."""
    return np.any(np.stack([img.max(axis=2) > level for img in images]), axis=0)


def save_rgb(path, rgb: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(rgb, "RGB").save(path)


def diff_image(a: np.ndarray, b: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """|a - b| per channel, amplified ``gain`` times, for looking at."""
    d = np.abs(a.astype(np.int16) - b.astype(np.int16)).astype(np.float32) * gain
    return np.clip(d, 0, 255).astype(np.uint8)


# --- the check ------------------------------------------------------------------------------------

@dataclass
class CheckResult:
    """What one run measured. PSNRs in dB over the whole image and over the foreground (pixels
    where either image shows the head); ``web_pose_change``: PSNR between LAM's neutral and posed
    renders (low = the weights took effect); ``change_correlation``: correlation of the per-pixel
    change neutral -> posed between LAM's renders and ours (near 1 = the same pixels moved)."""

    psnr: dict = field(default_factory=dict)
    psnr_foreground: dict = field(default_factory=dict)
    web_pose_change: float = 0.0
    change_correlation: float = 0.0
    renderer: str = ""
    splat_count: int = 0
    n_gaussians: int = 0
    size: int = 0
    weights: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)


def _translated(camera, offset):
    """``camera`` looking at the same scene moved by ``offset`` [3] (world_to_cam @ T(-offset))."""
    from dataclasses import replace

    shift = np.eye(4)
    shift[:3, 3] = -np.asarray(offset, np.float64)
    return replace(camera, world_to_cam=np.asarray(camera.world_to_cam, np.float64) @ shift)


def _params(identity, weights: dict):
    params = identity.neutral_params()
    names = list(identity.model.expr_names)
    for name, value in weights.items():
        if name not in names:
            raise ValueError(f"the avatar has no expression channel {name!r}")
        params.expr[names.index(name)] = value
    return params


def _cpu_image(identity, params, camera, size: int) -> np.ndarray:
    """Our CPU render, in the LAM player's mode: no antialiasing compensation ("classic": the
    0.3 px² dilation only), SH degree 0, black background -> [H, W, 3] uint8."""
    from engine.raster import render

    result = render(identity.pose(params), camera, size, size, BACKGROUND, mode="classic", sh_degree=0,
                    backend="cpu")
    return np.round(np.clip(np.asarray(result.rgba)[..., :3], 0.0, 1.0) * 255.0).astype(np.uint8)


def run_check(out_dir, seed: int = 7, n_gaussians: int = 20000, size: int = 512, weights: dict | None = None,
              timeout_s: float = 240.0) -> CheckResult:
    """Export, render in LAM's player and on our CPU, compare; images + summary.json in ``out_dir``."""
    from engine.avatar.cli_sample import make_source
    from engine.io.lam import DEFAULT_HEAD_CENTRE, read_lam_zip, write_lam_zip
    from engine.raster.cli_render import head_camera

    reason = missing_requirements()
    if reason:
        raise RuntimeError(reason)
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = CheckResult(n_gaussians=n_gaussians, size=size, weights=weights)
    poses = {"neutral": {}, "posed": weights}

    t0 = time.perf_counter()
    identity = make_source("builtin", n_gaussians).sample(seed)
    with tempfile.TemporaryDirectory(prefix="lam_web_") as tmp:
        work = pathlib.Path(tmp)
        (work / "zips").mkdir()
        zip_path = work / "zips" / "avatar.zip"
        write_lam_zip(identity, zip_path, head_centre=DEFAULT_HEAD_CENTRE)
        result.seconds["export"] = time.perf_counter() - t0

        # One camera, written in the identity's model frame; the zip holds the same head moved by
        # DEFAULT_HEAD_CENTRE, the re-imported avatar the zip's head moved back by its own origin.
        camera = head_camera(identity.pose(identity.neutral_params()).means, size, size)
        camera_zip = _translated(camera, DEFAULT_HEAD_CENTRE)
        reimported = read_lam_zip(zip_path).identity
        camera_reimported = _translated(camera_zip, -np.asarray(reimported.meta["lam_origin"]))

        t0 = time.perf_counter()
        shots = [{"name": name, "weights": w, "out": str(out / f"web_{name}.png")} for name, w in poses.items()]
        with serve(work / "zips") as base:
            report = browser_render(f"{base}/check.html?zip=/zips/avatar.zip&w={size}&h={size}&bg=0x000000",
                                    camera_zip, shots, size, size, work, timeout_s)
        result.seconds["browser"] = time.perf_counter() - t0
        result.renderer, result.splat_count = report["renderer"], report["splat_count"]

    t0 = time.perf_counter()
    images = {}
    for name, w in poses.items():
        images[f"web_{name}"] = load_rgb(out / f"web_{name}.png")
        images[f"ours_{name}"] = _cpu_image(identity, _params(identity, w), camera, size)
        images[f"lamread_{name}"] = _cpu_image(reimported, _params(reimported, w), camera_reimported, size)
    result.seconds["cpu_renders"] = time.perf_counter() - t0
    for key, image in images.items():
        if not key.startswith("web_"):
            save_rgb(out / f"{key}.png", image)
        result.files[key] = str(out / f"{key}.png")

    for name in poses:
        web = images[f"web_{name}"]
        for ref in ("ours", "lamread"):
            other = images[f"{ref}_{name}"]
            key = f"web_vs_{ref}_{name}"
            result.psnr[key] = psnr(web, other)
            result.psnr_foreground[key] = psnr(web, other, foreground(web, other))
            save_rgb(out / f"diff_{key}.png", diff_image(web, other))
    result.web_pose_change = psnr(images["web_neutral"], images["web_posed"])
    change_web = np.abs(images["web_posed"].astype(np.float64) - images["web_neutral"]).sum(axis=2).ravel()
    change_ours = np.abs(images["ours_posed"].astype(np.float64) - images["ours_neutral"]).sum(axis=2).ravel()
    result.change_correlation = float(np.corrcoef(change_web, change_ours)[0, 1])
    (out / "summary.json").write_text(json.dumps(result.__dict__, indent=2))
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="out/lam_web", help="folder for the images and summary.json")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--gaussians", type=int, default=20000, help="Gaussians of the built-in avatar")
    parser.add_argument("--size", type=int, default=512, help="image width and height in pixels")
    parser.add_argument("--weight", action="append", default=[], metavar="NAME=VALUE",
                        help=f"ARKit weight of the posed frame (default {DEFAULT_WEIGHTS})")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds the browser may take")
    args = parser.parse_args(argv)
    weights = {k: float(v) for k, _, v in (w.partition("=") for w in args.weight)} or None
    load = os.getloadavg()
    cpu0 = time.process_time()
    result = run_check(args.out, args.seed, args.gaussians, args.size, weights, args.timeout)
    print(f"LAM web renderer: {result.renderer}; {result.splat_count} splats drawn")
    for key in result.psnr:
        print(f"  PSNR {key:28s} {result.psnr[key]:6.2f} dB (foreground {result.psnr_foreground[key]:6.2f} dB)")
    print(f"  LAM neutral vs posed: {result.web_pose_change:.2f} dB; change correlation with ours "
          f"{result.change_correlation:.3f}")
    print(f"  seconds: {', '.join(f'{k} {v:.1f}' for k, v in result.seconds.items())}; this process's CPU "
          f"{time.process_time() - cpu0:.1f} s (Chromium's not included); load average before {load[0]:.2f}, "
          f"after {os.getloadavg()[0]:.2f}")
    print(f"  images: {args.out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
