"""AGORA-M: Gaussian blendshape baking (residual sampling, streaming SVD, coefficient MLP, runtime).

Public API:
    bake(identity, n_samples, k, seed, *, config=BakeConfig(), progress=None, cancel=None,
         extra_frames=None) -> BakedIdentity
    BakedIdentity.pose(params) -> GaussianSet; .save(path) / BakedIdentity.load(path);
    .to_arrays() / BakedIdentity.from_arrays(arrays)
    BakeConfig (+ SamplingConfig, SVDConfig, MLPConfig, ReportConfig), BakeReport, BakeCancelled
The file format is documented in docs/BAKED_FORMAT.md.
"""

from .baked import BakedIdentity
from .bake import BakeCancelled, bake
from .config import BakeConfig, MLPConfig, ReportConfig, SamplingConfig, SVDConfig
from .report import BakeReport

__all__ = ["BakeCancelled", "BakeConfig", "BakeReport", "BakedIdentity", "MLPConfig", "ReportConfig",
           "SVDConfig", "SamplingConfig", "bake"]
