"""The live receiver over loopback (127.0.0.1 only): ``live send`` -> ``live record`` round trips
equal the source take for each protocol; bad packets are counted and dropped without stopping
the stream; a port in use is one clear error; stop releases the port; frames <-> takes."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from engine.__main__ import main
from engine.animation import ParamSequence, read_any, write_any
from engine.animation.names import ARKIT_NAMES
from engine.errors import GaussianHeadsError
from engine.live import PROTOCOLS, protocol
from engine.live.cli import record
from engine.live.frame import LiveFrame
from engine.live.receiver import Receiver
from engine.live.sender import send_packets
from engine.live.take import frames_from_sequence, grid_arrivals, sequence_from_frames

HOST = "127.0.0.1"


def synthetic_take(n=60, fps=60.0, seed=0) -> ParamSequence:
    """A smooth ARKit take: 52 weights in 0..1, head and eye rotations."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None] / fps
    expr = 0.5 + 0.45 * np.sin(2 * np.pi * (rng.uniform(0.2, 1.5, 52) * t + rng.uniform(0, 1, 52)))
    z = np.zeros((n, 3), np.float32)
    head = np.stack([0.2 * np.sin(t[:, 0] * 3), 0.3 * np.sin(t[:, 0] * 2), 0.05 * np.cos(t[:, 0])], 1)
    eyes = np.stack([head * 0.3, head * -0.2], 1)
    return ParamSequence(fps, ARKIT_NAMES, expr, z, z, head, eyes, z, space="arkit")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("name,ext", [(p, ".csv") for p in sorted(PROTOCOLS)] + [("vmc", ".npz")])
def test_send_record_round_trip(tmp_path, name, ext):
    src = synthetic_take()
    src_path = tmp_path / "src.csv"
    write_any(src, src_path)
    src = read_any(src_path)  # as the importer reads it (rounded to the CSV's 10 decimals)
    out = tmp_path / f"rec{ext}"
    port = _free_port()
    result = {}
    rec = threading.Thread(target=lambda: result.update(
        record(name, HOST, port, src.duration, str(out), wait=20.0, idle=1.0)))
    rec.start()
    time.sleep(0.3)  # the receiver binds first
    assert main(["live", "send", "--protocol", name, "--port", str(port), str(src_path)]) == 0
    rec.join(30)
    assert not rec.is_alive()
    assert result["malformed"] == 0 and result["take_frames"] == src.n_frames, result
    got = read_any(out)
    assert got.fps == src.fps and got.n_frames == src.n_frames
    idx = [got.expr_names.index(n) for n in src.expr_names]
    np.testing.assert_allclose(got.expr[:, idx], src.expr, atol=2e-6)
    np.testing.assert_allclose(got.global_rot, src.global_rot, atol=2e-5)
    np.testing.assert_allclose(got.eyes, src.eyes, atol=2e-5)


def test_bad_packets_are_counted_and_the_stream_goes_on():
    mod = protocol("livelink")
    good = mod.encode(LiveFrame(values={"jawOpen": 0.4}, time=1.0, rate=60.0))[0]
    nan = bytearray(good)
    nan[-4:] = b"\x7f\xc0\x00\x00"
    with Receiver("livelink", HOST, 0) as rx:
        send_packets([b"junk", good[:-3], bytes(nan), b"\x06" * 5000, good], HOST, rx.port)
        deadline = time.perf_counter() + 5
        while rx.stats.frames < 1 and time.perf_counter() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        s = rx.stats
        assert (s.received, s.malformed, s.nonfinite, s.oversized, s.frames) == (5, 2, 1, 1, 1)
        frame = rx.latest()
        assert frame.values["jawOpen"] == pytest.approx(0.4) and frame.received > 0
        assert rx.latest() is None  # each frame is handed out once
        assert rx.running


def test_unknown_names_are_counted():
    with Receiver("ifacialmocap", HOST, 0) as rx:
        send_packets([b"hapihapi-3|", b"jawOpen-50|newShape-1|"], HOST, rx.port)
        deadline = time.perf_counter() + 5
        while rx.stats.received < 2 and time.perf_counter() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        assert (rx.stats.unknown, rx.stats.unknown_names, rx.stats.frames) == (1, 1, 1)


def test_newest_frame_wins_and_superseded_ones_count_as_dropped():
    mod = protocol("ifacialmocap")
    with Receiver("ifacialmocap", HOST, 0) as rx:
        send_packets([mod.encode(LiveFrame(values={"jawOpen": v}))[0] for v in (0.1, 0.2, 0.3)], HOST, rx.port)
        deadline = time.perf_counter() + 5
        while rx.stats.frames < 3 and time.perf_counter() < deadline:
            time.sleep(0.01)
        assert rx.latest().values["jawOpen"] == pytest.approx(0.3)
        assert rx.stats.dropped == 2


def test_record_buffer_is_bounded():
    mod = protocol("ifacialmocap")
    with Receiver("ifacialmocap", HOST, 0, record_limit=2) as rx:
        rx.start_recording()
        send_packets([mod.encode(LiveFrame(values={"jawOpen": v}))[0] for v in (0.1, 0.2, 0.3)], HOST, rx.port)
        deadline = time.perf_counter() + 5
        while rx.stats.frames < 3 and time.perf_counter() < deadline:
            time.sleep(0.01)
        frames = rx.stop_recording()
        assert [f.values["jawOpen"] for f in frames] == pytest.approx([0.1, 0.2])
        assert rx.stats.record_overflow == 1 and not rx.recording


def test_port_in_use_is_one_clear_error_and_stop_releases_the_port():
    rx = Receiver("vmc", HOST, 0)
    port = rx.port
    with pytest.raises(GaussianHeadsError, match=f"UDP port {port} on 127.0.0.1 is already in use"):
        Receiver("livelink", HOST, port)
    rx.stop()
    rx.stop()  # idempotent
    assert not rx.running
    with Receiver("livelink", HOST, port) as again:  # the port is free again
        assert again.port == port


def test_record_without_a_sender_is_one_clear_error(tmp_path):
    with pytest.raises(GaussianHeadsError, match="no Live Link Face frame arrived"):
        record("livelink", HOST, _free_port(), 1.0, str(tmp_path / "x.csv"), wait=0.2)
    assert main(["live", "record", "--protocol", "vmc", "--port", str(_free_port()), "--seconds", "1",
                 "--wait", "0.1", "--out", str(tmp_path / "x.npz")]) == 1


def test_frames_take_round_trip_and_held_channels():
    src = synthetic_take(n=10)
    back = sequence_from_frames(frames_from_sequence(src))
    np.testing.assert_allclose(back.expr, src.expr, atol=1e-7)
    np.testing.assert_allclose(back.global_rot, src.global_rot, atol=1e-6)
    frames = [LiveFrame(values={"jawOpen": 0.5}, time=0.0), LiveFrame(values={"eyeBlinkLeft": 1.0}, time=0.5)]
    seq = sequence_from_frames(frames, fps=2.0)
    assert seq.expr_names == ("jawOpen", "eyeBlinkLeft")
    np.testing.assert_allclose(seq.expr, [[0.5, 0.0], [0.5, 1.0]])  # held, and 0 before its first


def test_arrival_times_snap_to_the_frame_grid():
    """Late packets (up to a frame) and bursts go back to their own slots."""
    jittered = (np.arange(10) + np.array([0, 0.3, -0.2, 0.9, 1.0, 0.1, 0, 0, 0.95, 0])) / 60.0
    np.testing.assert_allclose(grid_arrivals(np.sort(jittered), 60.0) * 60.0, np.arange(10))


def test_bench_live_runs_over_loopback_with_the_viewport_step(capsys):
    """The benchmark (loopback only, bounded): every frame decoded, latency and the viewport's
    live frame rate reported (a small avatar keeps it quick)."""
    import json

    from engine.__main__ import main

    assert main(["bench", "live", "--protocol", "livelink", "--seconds", "1", "--viewport", "--gaussians", "2000"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["lost"] == 0 and result["decoded"] == result["sent"] == 60
    assert result["latency_ms_median"] is not None and result["latency_ms_median"] > 0
    assert result["viewport"]["gaussians"] == 2000 and result["viewport"]["frames_drawn"] > 0
