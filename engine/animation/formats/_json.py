"""Reading a JSON file with one clear error per problem, naming the file."""

from __future__ import annotations

import json

from ...errors import InputFileError


def load_json(path: str):
    """The parsed JSON value of ``path`` (UTF-8, a byte-order mark allowed).

    Raises InputFileError for invalid JSON (with line, e.g. a truncated file) or non-UTF-8 text.
    """
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise InputFileError(path, f"is not valid JSON ({exc.msg} at line {exc.lineno}; truncated?)") from None
    except UnicodeDecodeError:
        raise InputFileError(path, "is not UTF-8 text") from None
