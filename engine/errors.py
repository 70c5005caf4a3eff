"""The one root error type. Its message is written for the user (operators show it verbatim)."""

from __future__ import annotations

import os


class GaussianHeadsError(Exception):
    """A problem the user can act on: a bad file, a wrong shape, a missing model."""


class InputFileError(GaussianHeadsError):
    """A file the user handed us is missing, corrupt, truncated or of the wrong layout.

    The message always names the file and the problem: ``"<path>: <problem>"``.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def check_shape(name: str, array, shape: tuple) -> None:
    """Raise GaussianHeadsError unless ``array.shape`` matches ``shape``.

    ``shape`` entries are ints or None (any size). Example: ``check_shape("means", m, (None, 3))``.
    """
    actual = tuple(getattr(array, "shape", ()))
    if len(actual) != len(shape) or any(s is not None and s != a for s, a in zip(shape, actual)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise GaussianHeadsError(f"{name} has shape {actual}, expected {want}")
