"""``python -m engine live record|send``: record a live stream into a take file, or replay a take
file as a protocol's packets at its own frame rate.

    python -m engine live record --protocol livelink --port 11111 --seconds 10 --out take.csv
    python -m engine live send --protocol vmc --port 39539 take.npz

``record`` listens on ``--host`` (default 127.0.0.1, this machine only; 0.0.0.0 for a phone on
the network), waits up to ``--wait`` seconds for the first frame, then records ``--seconds``
seconds of capture (or until the stream pauses for ``--idle`` seconds) and writes a take every importer
reads (``.csv``: Live Link Face CSV; ``.npz``: our FLAME-style npz). ``send`` sends to ``--host``
(default 127.0.0.1). Each prints one JSON line of counts.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from ..animation import read_any, write_any
from ..errors import GaussianHeadsError
from . import PROTOCOLS, default_port
from .receiver import Receiver
from .sender import send_sequence
from .take import sequence_from_frames

GRACE_S = 0.25  # listen this much past the take's length for its last, late packets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    rec = sub.add_parser("record", help="record a live stream into a take file")
    snd = sub.add_parser("send", help="replay a take file as live packets")
    for p in (rec, snd):
        p.add_argument("--protocol", required=True, choices=sorted(PROTOCOLS))
        p.add_argument("--port", type=int, default=None, help="UDP port (default: the protocol's)")
        p.add_argument("--host", default="127.0.0.1", help="address to listen on / send to")
    rec.add_argument("--seconds", type=float, required=True, help="length of the take")
    rec.add_argument("--out", required=True, help="take file to write (.csv or .npz)")
    rec.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the first frame")
    rec.add_argument("--idle", type=float, default=2.0, help="end early after this long without frames")
    snd.add_argument("file", help="take file (any format the importer reads)")
    snd.add_argument("--max-seconds", type=float, default=3600.0, help="stop sending after this long")


def record(protocol: str, host: str, port: int, seconds: float, out: str, *,
           wait: float = 10.0, idle: float = 2.0) -> dict:
    """Record a take (see the module docstring); returns the counts as a dict."""
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".csv", ".npz"):
        raise GaussianHeadsError(f"{out}: the take must be a .csv or .npz file")
    if not seconds > 0:
        raise GaussianHeadsError("--seconds must be positive")
    with Receiver(protocol, host, port) as rx:
        rx.start_recording()
        t0 = time.perf_counter()
        first = last = None
        while True:  # bounded: wait + seconds + idle at most
            time.sleep(0.01)
            now = time.perf_counter()
            if rx.stats.frames and first is None:
                first = now
            if rx.latest() is not None:
                last = now
            if first is None and now - t0 > wait:
                break
            if first is not None and (now - first >= seconds + GRACE_S or (last and now - last > idle)):
                break
        frames = rx.stop_recording()
        stats = rx.stats.to_dict()
    if not frames:
        raise GaussianHeadsError(
            f"no {PROTOCOLS[protocol][1]} frame arrived on {host}:{port} within {wait:g} s "
            f"({stats['received']} packets, {stats['malformed'] + stats['nonfinite']} malformed): is the "
            f"sender pointed at this machine and port, and does the firewall allow UDP {port}?")
    seq = sequence_from_frames(frames, source_format=f"live_{protocol}")
    seq = seq.slice_seconds(0.0, seconds + 0.5 / seq.fps)  # the frames the take asked for
    written = write_any(seq, out)
    return {"out": out, "take_frames": seq.n_frames, "fps": seq.fps, "seconds": seq.duration,
            "channels": seq.n_expr, "notes": list(written.notes), **stats}


def run(args: argparse.Namespace) -> int:
    port = args.port if args.port is not None else default_port(args.protocol)
    if args.action == "record":
        result = record(args.protocol, args.host, port, args.seconds, args.out, wait=args.wait, idle=args.idle)
    else:
        seq = read_any(args.file)
        rep = send_sequence(seq, args.protocol, args.host, port, max_seconds=args.max_seconds)
        result = {"file": args.file, "frames": rep.frames, "packets": rep.packets, "fps": seq.fps,
                  "seconds": round(rep.seconds, 3)}
    print(json.dumps(result))
    return 0
