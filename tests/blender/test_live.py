"""Live capture in a bpy session, over loopback only: a replayed 2 s take drives the sliders and
records into keys equal to the take; stopping mid-record leaves a consistent action and frees
the port; a port in use is refused with the scene unchanged; file load stops the session."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from engine.animation import ParamSequence  # noqa: E402
from engine.animation.names import ARKIT_NAMES  # noqa: E402

from .conftest import addon  # noqa: E402

HOST = "127.0.0.1"


def _take(seconds=2.0, fps=60.0) -> ParamSequence:
    n = int(round(seconds * fps)) + 1
    rng = np.random.default_rng(1)
    t = np.arange(n)[:, None] / fps
    expr = 0.5 + 0.4 * np.sin(2 * np.pi * (rng.uniform(0.2, 1.0, 52) * t + rng.uniform(0, 1, 52)))
    z = np.zeros((n, 3), np.float32)
    head = np.stack([0.1 * np.sin(2 * t[:, 0]), 0.2 * np.sin(t[:, 0]), 0.0 * t[:, 0]], 1)
    return ParamSequence(fps, ARKIT_NAMES, expr, z, z, head, np.zeros((n, 2, 3)), z, space="arkit")


def _arkit_avatar(name="Live"):
    obj = bpy.data.objects.new(name, None)
    bpy.context.scene.collection.objects.link(obj)
    props = obj.gaussian_heads
    props.is_avatar = True
    for n in ARKIT_NAMES:
        ch = props.expr.add()
        ch.name = n
        ch.range_min, ch.range_max = 0.0, 1.0
    bpy.context.view_layer.objects.active = obj
    return obj


def _start(protocol: str, obj) -> int:
    settings = bpy.context.scene.gaussian_heads_live
    settings.protocol, settings.host, settings.target = protocol.upper(), HOST, obj.name
    settings.port = 0  # any free port
    assert bpy.ops.gaussian_heads.live_start() == {'FINISHED'}
    return addon("operators.live").session().receiver.port


def _replay(seq, protocol, port, max_seconds=5.0):
    sender = addon("engine.live.sender")
    th = threading.Thread(target=sender.send_sequence, args=(seq, protocol, HOST, port),
                          kwargs={"max_seconds": max_seconds})
    th.start()
    return th


def _tick_while(live, cond, limit_s):
    """Run the timer callback (the bpy module has no event loop) until ``cond()`` is false."""
    deadline = time.perf_counter() + limit_s
    ticks = 0
    while cond() and time.perf_counter() < deadline:
        live.tick()
        ticks += 1
        time.sleep(1 / 120)
    return ticks


def _keys(obj, path, index=0):
    fc = addon("operators.keyframes").find_fcurve(obj, path, index)
    co = np.empty(len(fc.keyframe_points) * 2, np.float32)
    fc.keyframe_points.foreach_get("co", co)
    return co.reshape(-1, 2)


@pytest.mark.parametrize("protocol", ["livelink", "vmc"])
def test_replayed_take_drives_sliders_and_records_matching_keys(gh, protocol):
    live = addon("operators.live")
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    scene.frame_current = 5
    obj = _arkit_avatar()
    port = _start(protocol, obj)
    assert bpy.ops.gaussian_heads.live_record() == {'FINISHED'}
    seq = _take()
    th = _replay(seq, protocol, port)
    seen = []

    def running():
        v = obj.gaussian_heads.expr[ARKIT_NAMES.index("jawOpen")].value
        if not seen or seen[-1] != v:
            seen.append(v)
        return th.is_alive()

    _tick_while(live, running, 10.0)
    th.join(5)
    _tick_while(live, lambda: live.session().receiver.stats.frames < seq.n_frames, 1.0)
    live.tick()
    assert len(seen) > 10  # the slider followed the stream
    jaw = seq.channel("jawOpen")
    assert obj.gaussian_heads.expr[ARKIT_NAMES.index("jawOpen")].value == pytest.approx(jaw[-1], abs=1e-5)
    assert bpy.ops.gaussian_heads.live_record_stop() == {'FINISHED'}
    assert bpy.ops.gaussian_heads.live_stop() == {'FINISHED'}
    assert live.session() is None
    want = seq.resample(30.0)  # the take at the scene's rate, keyed from frame 5
    for name in ("jawOpen", "eyeBlinkLeft", "mouthSmileRight"):
        keys = _keys(obj, f"gaussian_heads.expr[{ARKIT_NAMES.index(name)}].value")
        np.testing.assert_allclose(keys[:, 0], 5 + np.arange(want.n_frames))
        np.testing.assert_allclose(keys[:, 1], want.channel(name), atol=1e-5)
    head = np.stack([_keys(obj, "gaussian_heads.head_rot", k)[:, 1] for k in range(3)], 1)
    np.testing.assert_allclose(head, want.global_rot, atol=1e-4)


def test_stop_mid_record_leaves_a_consistent_action_and_frees_the_port(avatar):
    """On a sampled avatar (its own channel list, mapped by the importers' mapping)."""
    live = addon("operators.live")
    scene = bpy.context.scene
    scene.render.fps = 60
    scene.frame_current = 1
    obj = avatar
    port = _start("ifacialmocap", obj)
    bpy.ops.gaussian_heads.live_record()
    th = _replay(_take(), "ifacialmocap", port, max_seconds=3.0)
    t0 = time.perf_counter()
    _tick_while(live, lambda: time.perf_counter() - t0 < 0.7, 2.0)
    assert bpy.ops.gaussian_heads.live_stop() == {'FINISHED'}  # mid-record: the take so far is written
    th.join(5)
    lengths = set()
    names = [ch.name for ch in obj.gaussian_heads.expr]
    keyed = [i for i, n in enumerate(names) if n in ARKIT_NAMES]
    assert len(keyed) >= 50  # the built-in avatar animates ARKit channels
    for i in keyed:
        keys = _keys(obj, f"gaussian_heads.expr[{i}].value")
        lengths.add(len(keys))
        np.testing.assert_allclose(keys[:, 0], 1 + np.arange(len(keys)))
    (n,) = lengths
    assert 10 < n < 120  # part of the 2 s take, every curve keyed at the same frames
    assert not scene.gaussian_heads_live.running and not scene.gaussian_heads_live.recording
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, port))  # released


def test_port_in_use_is_refused_and_the_scene_is_unchanged(gh):
    obj = _arkit_avatar()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind((HOST, 0))
        settings = bpy.context.scene.gaussian_heads_live
        settings.protocol, settings.host, settings.target = 'VMC', HOST, obj.name
        settings.port = busy.getsockname()[1]
        with pytest.raises(RuntimeError, match="already in use"):
            bpy.ops.gaussian_heads.live_start()
    assert addon("operators.live").session() is None
    assert not settings.running and obj.animation_data is None


def test_file_load_stops_the_session(gh):
    live = addon("operators.live")
    obj = _arkit_avatar()
    port = _start("livelink", obj)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert live.session() is None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, port))


def test_ifacialmocap_take_drives_sliders_and_records_on_the_arrival_clock(gh):
    """iFacialMocap packets carry no capture time: frames are placed by arrival, so the recorded
    keys follow the take within a frame's worth of motion (not bit-exactly as with timestamps)."""
    live = addon("operators.live")
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    scene.frame_current = 1
    obj = _arkit_avatar()
    port = _start("ifacialmocap", obj)
    assert bpy.ops.gaussian_heads.live_record() == {'FINISHED'}
    seq = _take()
    th = _replay(seq, "ifacialmocap", port)
    _tick_while(live, th.is_alive, 10.0)
    th.join(5)
    _tick_while(live, lambda: live.session().receiver.stats.frames < seq.n_frames, 1.0)
    live.tick()
    assert bpy.ops.gaussian_heads.live_record_stop() == {'FINISHED'}
    assert bpy.ops.gaussian_heads.live_stop() == {'FINISHED'}
    want = seq.resample(30.0)
    for name in ("jawOpen", "mouthSmileRight"):
        keys = _keys(obj, f"gaussian_heads.expr[{ARKIT_NAMES.index(name)}].value")
        assert abs(len(keys) - want.n_frames) <= 2, (len(keys), want.n_frames)
        np.testing.assert_allclose(keys[:, 0], 1 + np.arange(len(keys)))   # contiguous frames
        source = np.interp((keys[:, 0] - 1) / 30.0, np.arange(seq.n_frames) / seq.fps, seq.channel(name))
        error = np.abs(keys[:, 1] - source)
        assert np.median(error) < 0.02 and error.max() < 0.1, (np.median(error), error.max())
