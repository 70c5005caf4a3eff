"""The importer's engine side in one call: read → retime → scale → map → align.

The Blender operator builds an :class:`ImportOptions` from its properties and a target description
from the avatar, calls :func:`prepare_import`, and only then writes F-curves, so a bad file fails
before Blender data is touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import GaussianHeadsError
from .align import AlignOptions, align_to_range, frame_numbers, range_from_stats, retime, scale_values
from .formats import read_any
from .mapping import MappingReport, MapOptions, TargetSpec, map_sequence
from .sequence import ParamSequence


@dataclass(frozen=True)
class ImportOptions:
    scene_fps: float = 24.0  # the rate the curves are resampled to (the scene's fps / fps_base)
    start_frame: float = 1.0  # scene frame of the take's first sample
    source_fps: float | None = None  # override the file's frame rate (None = as read)
    value_scale: float = 1.0  # multiplies expression values
    align: bool = False  # "Align to avatar range" (off by default)
    align_options: AlignOptions = AlignOptions()
    map_options: MapOptions = MapOptions()
    # Statistics the avatar was sampled/trained on, used for alignment when the target has no range.
    expr_mean: tuple[float, ...] | None = None
    expr_std: tuple[float, ...] | None = None


@dataclass
class ImportResult:
    source: ParamSequence  # as read (after any fps override), source layout
    sequence: ParamSequence  # target layout, scene rate, scaled and aligned
    frames: np.ndarray  # [T] float32 scene frame numbers of sequence's samples
    report: MappingReport
    warnings: list[str] = field(default_factory=list)

    def message(self, path: str = "") -> str:
        name = os.path.basename(path) if path else self.source.source_format
        head = (
            f"{name}: {self.source.n_frames} frames at {self.source.fps:g} fps ({self.source.source_format}) "
            f"-> {self.sequence.n_frames} frames at {self.sequence.fps:g} fps from frame {self.frames[0]:g}"
        )
        return head + "; " + self.report.summary()


def prepare_import(
    source: str | os.PathLike | ParamSequence,
    target: TargetSpec,
    options: ImportOptions = ImportOptions(),
    *,
    source_model=None,
    target_model=None,
) -> ImportResult:
    """Read (if given a path) and prepare ``source`` for the ``target`` avatar.

    Returns an :class:`ImportResult` whose ``sequence`` has ``target.expr_names`` channels at
    ``options.scene_fps`` and ``frames [T]`` starting at ``options.start_frame``.
    """
    seq = source if isinstance(source, ParamSequence) else read_any(source)
    if options.source_fps is not None:
        seq = seq.replace(fps=float(options.source_fps))
    warnings: list[str] = []
    timed = retime(seq, options.scene_fps)
    scaled = scale_values(timed, options.value_scale)
    mapped, report = map_sequence(
        scaled, target, source_model=source_model, target_model=target_model, options=options.map_options
    )
    if options.align:
        rng = target.expr_range
        if rng is None and options.expr_mean is not None and options.expr_std is not None:
            if len(options.expr_mean) != len(target.expr_names) or len(options.expr_std) != len(target.expr_names):
                raise GaussianHeadsError("expression statistics do not match the avatar's channel count")
            rng = range_from_stats(np.asarray(options.expr_mean), np.asarray(options.expr_std), options.align_options.k_std)
        if rng is None:
            warnings.append("Align to avatar range: the avatar has no expression range or statistics; values left as they are")
        else:
            res = align_to_range(mapped, rng, options.align_options)
            mapped = res.sequence
            if res.changed:
                report.notes.append(
                    f"aligned to the avatar's range ({options.align_options.mode}): {len(res.changed)} channels changed, "
                    f"largest change {res.max_change:.3g}"
                )
    return ImportResult(seq, mapped, frame_numbers(mapped.n_frames, options.start_frame), report, warnings)
