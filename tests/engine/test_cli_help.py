"""``python -m engine --help`` lists every verb, quickly and without importing the verbs."""

from __future__ import annotations

import pathlib
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
VERBS = ("head-model", "sample", "export", "render", "anim", "bake", "bench", "live", "train", "dataset")


def _engine(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


def test_help_lists_every_verb():
    proc = _engine("--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m engine")
    for verb in VERBS:
        assert any(line.split()[:1] == [verb] for line in proc.stdout.splitlines()), (verb, proc.stdout)


def test_unknown_verb_is_refused_with_the_list_of_verbs():
    proc = _engine("no-such-verb")
    assert proc.returncode == 2
    assert "invalid choice: 'no-such-verb'" in proc.stderr
    for verb in VERBS:
        assert verb in proc.stderr


def test_verbs_match_the_dispatch_table():
    sys.path.insert(0, str(REPO_ROOT))
    try:
        from engine.__main__ import VERBS as table
    finally:
        sys.path.remove(str(REPO_ROOT))
    assert set(VERBS) == set(table)


def test_no_verb_is_a_usage_error():
    proc = _engine()
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: python -m engine") and "name a verb" in proc.stderr
