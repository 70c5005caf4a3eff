"""Streaming CSV reading into growable float32 arrays (bounded memory: the text is never held whole).

Lines are read in blocks of ``BLOCK_ROWS`` and converted block by block into a preallocated float32
array that grows geometrically (its size is estimated from the file size after the first block,
so a typical file is never re-allocated). Peak memory is the output arrays plus one block of line
strings, whatever the file's length.
"""

from __future__ import annotations

import csv
import itertools
import os
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...errors import InputFileError

BLOCK_ROWS = 512


class GrowableRows:
    """A ``[n, width]`` array that grows by appending blocks (amortised O(1) per row)."""

    def __init__(self, width: int, dtype=np.float32, capacity: int = 1024):
        self.width = int(width)
        self.data = np.empty((max(1, int(capacity)), self.width), dtype)
        self.n = 0

    def reserve(self, rows: int) -> None:
        if rows > self.data.shape[0]:
            new = np.empty((int(rows), self.width), self.data.dtype)
            new[: self.n] = self.data[: self.n]
            self.data = new

    def extend(self, block: np.ndarray) -> None:
        k = block.shape[0]
        if self.n + k > self.data.shape[0]:
            self.reserve(max(self.n + k, int(self.data.shape[0] * 1.5) + 1))
        self.data[self.n : self.n + k] = block
        self.n += k

    def array(self) -> np.ndarray:
        """The filled rows (a view when full enough, else a compact copy)."""
        if self.n * 4 < self.data.shape[0] * 3:
            return self.data[: self.n].copy()
        return self.data[: self.n]


@dataclass(frozen=True)
class CsvColumns:
    """Which columns a CSV reader wants: ``numeric`` (indices, parsed as float32) and ``time``
    (one index or None; its text is turned into numbers by ``time_parser``, a function of a
    list of k strings and their k line numbers that returns ``[k]`` float64 or ``[k, m]``)."""

    numeric: tuple[int, ...]
    time: int | None = None
    time_parser: Callable[[list[str], int], np.ndarray] | None = None
    time_width: int = 1


@dataclass
class CsvTable:
    header: list[str]
    values: np.ndarray  # [T, len(numeric)] float32
    time: np.ndarray | None  # [T] or [T, time_width] float64


def _open_text(path: str):
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputFileError(path, f"cannot be opened ({exc.strerror})") from None


def read_header(path: str) -> list[str]:
    """The first row of a CSV file (names stripped). Raises InputFileError if there is none."""
    with _open_text(path) as f:
        try:
            first = f.readline()
            header = next(csv.reader([first], delimiter=sniff_delimiter(first)), None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputFileError(path, f"is not readable CSV text ({exc})") from None
    if not header or all(not h.strip() for h in header):
        raise InputFileError(path, "the file is empty (no header row)")
    return [h.strip() for h in header]


def stream_csv(path: str | os.PathLike, choose: Callable[[list[str]], CsvColumns]) -> CsvTable:
    """Read a CSV with a header row, streaming, into float32 columns chosen by ``choose(header)``.

    Lines are taken ``BLOCK_ROWS`` at a time; a block of plain numeric lines is parsed by
    ``np.loadtxt`` (C speed), a block with quotes or a problem goes through :mod:`csv` row by row
    so errors name the exact line. Blank lines are skipped. A row with the wrong number of fields
    (a truncated file), an empty or non-numeric cell raises InputFileError naming line and column.
    The separator is ``,`` unless the header uses ``;`` or tabs (see :func:`sniff_delimiter`).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputFileError(path, "no such file")
    size = os.path.getsize(path)
    if size == 0:
        raise InputFileError(path, "the file is empty")
    with _open_text(path) as f:
        try:
            first = f.readline()
        except UnicodeDecodeError:
            raise InputFileError(path, "is not UTF-8 text") from None
        delimiter = sniff_delimiter(first)
        try:
            header = next(csv.reader([first], delimiter=delimiter), None)
        except csv.Error as exc:
            raise InputFileError(path, f"has an unreadable header row ({exc})") from None
        if not header or all(not h.strip() for h in header):
            raise InputFileError(path, "the file is empty (no header row)")
        header = [h.strip() for h in header]
        cols = choose(header)
        n_cols = len(header)
        numeric = list(cols.numeric)
        values = GrowableRows(len(numeric), np.float32)
        times = GrowableRows(cols.time_width, np.float64) if cols.time is not None else None
        line_no = 1
        first_block = True
        chars = len(first)
        while True:
            try:
                raw = list(itertools.islice(f, BLOCK_ROWS))
            except UnicodeDecodeError:
                raise InputFileError(path, f"is not UTF-8 text (after line {line_no})") from None
            if not raw:
                break
            lines, numbers = [], []
            for text in raw:
                line_no += 1
                if text.strip():
                    lines.append(text)
                    numbers.append(line_no)
            if not lines:
                continue
            arr, tcells = _parse_block(path, header, cols, numeric, n_cols, lines, numbers, delimiter)
            if first_block:
                # Reserve the whole file's rows at once, estimated from this block's characters.
                per_row = max(1.0, sum(len(t) for t in raw) / len(lines))
                values.reserve(int((size - chars) / per_row * 1.02) + 16)
                if times is not None:
                    times.reserve(values.data.shape[0])
                first_block = False
            values.extend(arr)
            if times is not None:
                t = np.asarray(cols.time_parser(tcells, numbers), np.float64).reshape(len(tcells), -1)
                times.extend(t)
    if values.n == 0:
        raise InputFileError(path, "has a header but no data rows")
    return CsvTable(header, values.array(), times.array() if times is not None else None)


def sniff_delimiter(header_line: str) -> str:
    """``,`` unless the header line has more ``;`` or tab characters (spreadsheet exports)."""
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


def _parse_block(path, header, cols, numeric, n_cols, lines, numbers, delimiter=","):
    """One block of lines -> (values [k, len(numeric)] float32, time cells list[str] or None)."""
    fast = all(t.count(delimiter) == n_cols - 1 for t in lines) and not any('"' in t for t in lines)
    if fast:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                arr = (
                    np.loadtxt(lines, delimiter=delimiter, usecols=numeric, dtype=np.float32, ndmin=2, comments=None)
                    if numeric else np.zeros((len(lines), 0), np.float32)
                )
            tcells = None
            if cols.time is not None:
                tc = cols.time
                tcells = [t.split(delimiter, tc + 1)[tc] for t in lines]
            return arr, tcells
        except ValueError:
            pass  # fall through to the row-by-row path for a precise message
    rows = []
    try:
        for row, line in zip(csv.reader(lines, delimiter=delimiter), numbers):
            if len(row) != n_cols:
                raise InputFileError(
                    path, f"line {line} has {len(row)} fields, expected {n_cols} (truncated or malformed file?)"
                )
            rows.append(row)
    except csv.Error as exc:
        raise InputFileError(path, f"near line {numbers[0]}: {exc}") from None
    block = [[r[i] for i in numeric] for r in rows]
    try:
        arr = np.array(block, dtype=np.float32) if numeric else np.zeros((len(rows), 0), np.float32)
    except ValueError:
        _raise_bad_cell(path, header, numeric, block, numbers)
    tcells = [r[cols.time] for r in rows] if cols.time is not None else None
    return arr, tcells


def _raise_bad_cell(path, header, numeric, block, lines) -> None:
    for r, cells in enumerate(block):
        for c, text in enumerate(cells):
            try:
                float(text)
            except ValueError:
                what = "an empty value" if not text.strip() else f"{text.strip()!r}, not a number,"
                raise InputFileError(
                    path, f"line {lines[r]} has {what} in column {header[numeric[c]]!r}"
                ) from None
    raise InputFileError(path, f"has unreadable numbers near line {lines[0]}")
