"""AGORA-M: Gaussian blendshape baking (residual sampling, streaming SVD, coefficient MLP, runtime)."""
