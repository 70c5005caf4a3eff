"""Sending a take as a protocol's packets, paced at its own frame rate (``live send``, tests,
benchmarks, demos). Every loop here is bounded: by the take's length and by ``max_seconds``."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from ..animation.sequence import ParamSequence
from . import protocol as get_protocol
from .frame import LiveFrame
from .take import frames_from_sequence


@dataclass(frozen=True)
class SendReport:
    frames: int  # frames sent
    packets: int  # datagrams sent
    seconds: float  # wall time spent
    send_times: tuple[float, ...] = ()  # time.perf_counter() at each frame's first packet


def send_packets(packets, host: str, port: int, sock: socket.socket | None = None) -> int:
    """Send each packet to ``host:port`` over UDP; returns how many were sent."""
    own = sock is None
    sock = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for p in packets:
            sock.sendto(p, (host, int(port)))
        return len(packets)
    finally:
        if own:
            sock.close()


def send_frames(frames: list[LiveFrame], protocol_name: str, host: str, port: int, *, rate: float,
                max_seconds: float = 3600.0, stop=None) -> SendReport:
    """Encode and send ``frames`` one every ``1 / rate`` seconds (absolute schedule, so timing
    errors do not add up). Stops after ``max_seconds`` or when ``stop()`` returns true."""
    encode = get_protocol(protocol_name).encode
    packets_per_frame = [encode(f) for f in frames]  # encoded up front: pacing stays exact
    sent, sent_frames, stamps = 0, 0, []
    period = 1.0 / float(rate)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t0 = time.perf_counter()
    try:
        for k, packets in enumerate(packets_per_frame):
            due = t0 + k * period
            if due - t0 > max_seconds or (stop is not None and stop()):
                break
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            stamps.append(time.perf_counter())
            sent += send_packets(packets, host, port, sock)
            sent_frames += 1
    finally:
        sock.close()
    return SendReport(sent_frames, sent, time.perf_counter() - t0, tuple(stamps))


def send_sequence(seq: ParamSequence, protocol_name: str, host: str, port: int, *,
                  max_seconds: float = 3600.0, start_time: float = 0.0) -> SendReport:
    """Send ``seq`` at its own frame rate (capture timestamps ``start_time + k / fps``)."""
    frames = frames_from_sequence(seq, start_time=start_time)
    return send_frames(frames, protocol_name, host, port, rate=seq.fps, max_seconds=max_seconds)
