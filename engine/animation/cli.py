"""``python -m engine anim info FILE_OR_FOLDER`` and ``python -m engine anim convert IN OUT``.

``info`` prints one JSON object: ``{"format", "frames", "fps", "channels": [...], "space", ...}``.
``convert`` reads any supported input and writes a flame_param-style ``.npz`` or a Live Link Face
``.csv`` (chosen by OUT's extension or ``--to``), optionally resampled with ``--fps``.
"""

from __future__ import annotations

import argparse
import json

from .formats import WRITE_FORMATS, detect_format, read_any, write_any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="describe an animation file or folder as JSON")
    info.add_argument("path", help="animation file or folder")
    conv = sub.add_parser("convert", help="convert an animation to .npz or Live Link Face .csv")
    conv.add_argument("input", help="animation file or folder")
    conv.add_argument("output", help="output path (.npz or .csv)")
    conv.add_argument("--to", choices=WRITE_FORMATS, default=None, help="output format (default: from the extension)")
    conv.add_argument("--fps", type=float, default=None, help="resample to this frame rate first")


def info_dict(path: str) -> dict:
    fmt = detect_format(path)
    seq = read_any(path)
    return {
        "format": fmt,
        "frames": seq.n_frames,
        "fps": seq.fps,
        "duration_s": round(seq.duration, 6),
        "channels": list(seq.expr_names),
        "space": seq.space,
        "joints": [g for g in ("jaw", "neck", "global_rot", "eyes", "translation") if (getattr(seq, g) != 0).any()],
        "shape": None if seq.shape is None else int(seq.shape.shape[0]),
        "notes": dict(seq.notes),
    }


def run(args: argparse.Namespace) -> int:
    if args.command == "info":
        print(json.dumps(info_dict(args.path)))
        return 0
    seq = read_any(args.input)
    if args.fps is not None:
        seq = seq.resample(args.fps)
    res = write_any(seq, args.output, args.to)
    print(json.dumps({"written": args.output, "format": res.format, "frames": seq.n_frames, "fps": seq.fps,
                      "notes": list(res.notes)}))
    return 0
