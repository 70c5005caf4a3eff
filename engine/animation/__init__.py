"""Head-parameter sequences: format readers/writers, retiming, expression-space mapping, range alignment.

Public entry points: :class:`ParamSequence`, :func:`read_any`, :func:`write_any`,
:func:`demo_clip`, :func:`map_sequence` and :func:`prepare_import` (the importer's whole engine
side: read → retime → scale → map → align).
"""

from .demo_clip import demo_clip
from .formats import detect_format, read_any, write_any
from .mapping import MappingReport, MapOptions, TargetSpec, map_sequence
from .pipeline import ImportOptions, ImportResult, prepare_import
from .sequence import ParamSequence

__all__ = [
    "ParamSequence", "read_any", "write_any", "detect_format", "demo_clip", "map_sequence",
    "MappingReport", "MapOptions", "TargetSpec", "ImportOptions", "ImportResult", "prepare_import",
]
