"""``python -m engine bench live``: packet-to-slider latency and dropped frames over loopback.

For each protocol a sender thread sends a synthetic ARKit take at ``--rate`` packets/s to a
:class:`Receiver` on 127.0.0.1, and a consumer loop does what Blender's timer does every 1/60 s
(``Receiver.latest`` → ``LiveDrive.step`` → write the pose into the slider array). Each frame
carries its index in ``tongueOut`` (k / 4096, exact in every protocol), so latency is measured
from the moment the sender sent that frame to the moment its values reached the sliders.
Reported per protocol: latency median/p99, frames sent / decoded / applied, lost (never
decoded), superseded (replaced before a tick took them), and the tick's cost (wall and CPU).

``--viewport`` adds what the artist sees: every tick also poses a built-in avatar
(``--gaussians``, 65,536 by default) from the sliders and renders the viewport frame the render
engine would draw (``ViewportRenderer`` at 1280x720 and the default interactive scale 0.5), so
the figure is live frames per second on screen and packet-to-pixels latency.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

import numpy as np

from ..animation.mapping import TargetSpec
from ..animation.names import ARKIT_NAMES
from . import PROTOCOLS
from .drive import LiveDrive
from .frame import LiveFrame
from .receiver import Receiver
from .sender import send_frames

HOST = "127.0.0.1"
MARK = "tongueOut"
MARK_SCALE = 4096.0


def _frames(n: int, rate: float) -> list[LiveFrame]:
    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        values = {name: float(v) for name, v in zip(ARKIT_NAMES, rng.uniform(0, 1, len(ARKIT_NAMES)))}
        values[MARK] = k / MARK_SCALE
        out.append(LiveFrame(values=values, head=(0.1, 0.2, 0.0), time=k / rate, rate=rate))
    return out


class _ViewportStep:
    """Slider values -> posed built-in avatar -> the viewport frame (1280x720 region, scale 0.5)."""

    def __init__(self, n_gaussians: int, width: int = 1280, height: int = 720, scale: float = 0.5):
        from ..avatar.builtin import BuiltinSamplerConfig, BuiltinSource
        from ..avatar.frames import MODEL_TO_BLENDER
        from ..scene_render import ViewportRenderer, params_from_channels

        self.identity = BuiltinSource(config=BuiltinSamplerConfig(n_gaussians=n_gaussians)).sample(3)
        self.params_from_channels, self.to_blender = params_from_channels, MODEL_TO_BLENDER
        self.renderer = ViewportRenderer()
        self.size, self.scale = (width, height), scale
        # a camera 0.9 m in front of the face (Blender: the face looks down -Y), 50 mm lens
        self.view = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, -0.9], [0, 0, 0, 1]], np.float64)
        f, aspect, near, far = 50 / 18.0, width / height, 0.1, 100.0
        self.window = np.array([[f, 0, 0, 0], [0, f * aspect, 0, 0],
                                [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)],
                                [0, 0, -1, 0]], np.float64)

    def __call__(self, pose) -> None:
        z3 = np.zeros(3, np.float32)
        params = self.params_from_channels(self.identity.model, ARKIT_NAMES, pose.expr, pose.jaw, pose.neck,
                                           pose.head_rot, pose.eyes, z3, self.identity.shape)
        self.renderer.set_gaussians(self.identity.pose(params).transformed(self.to_blender))
        self.renderer.frame_pixels(*self.size, self.view, self.window, scale=self.scale)


def bench_protocol(name: str, seconds: float, rate: float, tick_s: float = 1 / 60, viewport=None) -> dict:
    frames = _frames(int(seconds * rate), rate)
    target = TargetSpec(ARKIT_NAMES, "arkit")
    drive = LiveDrive(target)
    mark = ARKIT_NAMES.index(MARK)
    sliders = np.zeros(len(ARKIT_NAMES), np.float32)
    latencies, tick_wall, tick_cpu, applied = [], [], [], set()
    with Receiver(name, HOST, 0) as rx:
        report = {}
        sender = threading.Thread(target=lambda: report.update(
            r=send_frames(frames, name, HOST, rx.port, rate=rate, max_seconds=seconds + 5)))
        sender.start()
        deadline = time.perf_counter() + seconds + 10  # bounded however the machine behaves
        drain_until = None
        while time.perf_counter() < deadline:
            if not sender.is_alive():  # a few more ticks for the last packets
                drain_until = drain_until or time.perf_counter() + 0.2
                if time.perf_counter() > drain_until:
                    break
            time.sleep(tick_s)
            w0, c0 = time.perf_counter(), time.thread_time()
            frame = rx.latest()
            if frame is None:
                continue
            pose = drive.step(frame)
            sliders[:] = pose.expr
            if viewport is not None:
                viewport(pose)
            w1 = time.perf_counter()
            tick_wall.append(w1 - w0)
            tick_cpu.append(time.thread_time() - c0)
            k = int(round(sliders[mark] * MARK_SCALE))
            if 0 <= k < len(frames):
                applied.add(k)
                latencies.append((k, w1))
        sender.join(5)
        time.sleep(0.1)
        stats = rx.stats.to_dict()
    sent = report["r"].send_times
    lat = np.array([w - sent[k] for k, w in latencies if k < len(sent)]) * 1e3
    pct = lambda a, q: round(float(np.percentile(a, q)), 3) if len(a) else None  # noqa: E731
    return {
        "bench": "live", "protocol": name, "rate": rate, "seconds": seconds, "tick_ms": round(tick_s * 1e3, 2),
        "latency_ms_median": pct(lat, 50), "latency_ms_p99": pct(lat, 99),
        "sent": len(sent), "decoded": stats["frames"], "applied": len(applied),
        "lost": len(sent) - stats["frames"], "superseded": stats["dropped"],
        "malformed": stats["malformed"] + stats["nonfinite"] + stats["oversized"],
        "tick_wall_ms_median": pct(np.array(tick_wall) * 1e3, 50), "tick_wall_ms_p99": pct(np.array(tick_wall) * 1e3, 99),
        "tick_cpu_ms_median": pct(np.array(tick_cpu) * 1e3, 50),
        "viewport": None if viewport is None else {
            "gaussians": len(viewport.identity.canonical.offsets), "region": list(viewport.size),
            "scale": viewport.scale, "frames_drawn": len(tick_wall),
            "fps": round(len(tick_wall) / max(seconds, 1e-9), 1)},
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), action="append",
                        help="protocol(s) to measure (default: all)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each stream")
    parser.add_argument("--rate", type=float, default=60.0, help="packets per second")
    parser.add_argument("--viewport", action="store_true",
                        help="also pose a built-in avatar and render the viewport frame every tick")
    parser.add_argument("--gaussians", type=int, default=65536, help="avatar size for --viewport")


def run(args: argparse.Namespace) -> int:
    viewport = _ViewportStep(args.gaussians) if args.viewport else None
    if viewport is not None:
        from ..raster import cpu
        cpu.warm_up()
        viewport(LiveDrive(TargetSpec(ARKIT_NAMES, "arkit")).step(_frames(1, args.rate)[0]))  # compile, cache
    for name in args.protocol or sorted(PROTOCOLS):
        c0 = time.process_time()
        result = bench_protocol(name, args.seconds, args.rate, viewport=viewport)
        result["process_cpu_s"] = round(time.process_time() - c0, 3)
        result["loadavg_1m"] = round(os.getloadavg()[0], 2)
        print(json.dumps(result), flush=True)
    return 0
