"""Fuzzing the LAM readers (zip, skin.glb, vertex_order.json) with structured mutations of a valid
synthetic avatar: every outcome is a result or one GaussianHeadsError, never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import GaussianHeadsError
from engine.io.lam import read_lam_zip, read_vertex_order
from engine.io.lam_glb import read_skinned_mesh
from tests.engine.lam_fixtures import lam_members, zip_bytes

MEMBERS, _ = lam_members(seed=2, stride=40)
N_VERTICES = len(json.loads(MEMBERS["vertex_order.json"]))
SETTINGS = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def _mutate(data: bytes, edits, cut) -> bytes:
    out = bytearray(data)
    for pos, value in edits:
        if out:
            out[pos % len(out)] = value
    if cut is not None and out:
        out = out[: cut % len(out)]
    return bytes(out)


edits = st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 255)), max_size=8)
cuts = st.one_of(st.none(), st.integers(0, 1 << 30))


@pytest.mark.slow
@SETTINGS
@given(member=st.sampled_from(sorted(MEMBERS)), edit=edits, cut=cuts, whole=st.booleans())
def test_fuzz_lam_zip(tmp_path_factory, member, edit, cut, whole):
    members = dict(MEMBERS)
    if whole:
        data = _mutate(zip_bytes(members), edit, cut)
    else:
        members[member] = _mutate(members[member], edit, cut)
        data = zip_bytes(members)
    path = tmp_path_factory.mktemp("fz") / "fuzz.zip"
    path.write_bytes(data)
    try:
        read_lam_zip(path)
    except GaussianHeadsError:
        pass


@pytest.mark.slow
@SETTINGS
@given(edit=edits, cut=cuts, json_edit=st.booleans(), pos=st.integers(0, 1 << 30), text=st.text(max_size=6))
def test_fuzz_skin_glb(edit, cut, json_edit, pos, text):
    data = MEMBERS["skin.glb"]
    if json_edit:   # structured: change the JSON chunk's text (keeps the chunk lengths)
        length = int.from_bytes(data[12:16], "little")
        body = bytearray(data[20:20 + length])
        piece = text.encode("utf-8")[: len(body)]
        at = pos % max(1, len(body) - len(piece))
        body[at:at + len(piece)] = piece
        data = data[:20] + bytes(body) + data[20 + length:]
    data = _mutate(data, edit, cut)
    try:
        read_skinned_mesh("skin.glb", data)
    except GaussianHeadsError:
        pass


@pytest.mark.slow
@SETTINGS
@given(order=st.one_of(
    st.lists(st.integers(-2, N_VERTICES + 2), max_size=N_VERTICES + 2),
    st.permutations(list(range(N_VERTICES))),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=3), c, max_size=3)),
))
def test_fuzz_vertex_order(order):
    try:
        result = read_vertex_order("vertex_order.json", json.dumps(order).encode(), N_VERTICES)
        assert sorted(result.tolist()) == list(range(N_VERTICES))
    except GaussianHeadsError:
        pass


@pytest.mark.slow
@SETTINGS
@given(edit=edits, cut=cuts, pos=st.integers(0, 1 << 30), text=st.text(max_size=6))
def test_fuzz_animation_glb(edit, cut, pos, text):
    from engine.animation.formats.lam_glb import sequence_from_glb

    data = MEMBERS["animation.glb"]
    length = int.from_bytes(data[12:16], "little")
    body = bytearray(data[20:20 + length])
    piece = text.encode("utf-8")[: len(body)]
    at = pos % max(1, len(body) - len(piece))
    body[at:at + len(piece)] = piece
    data = _mutate(data[:20] + bytes(body) + data[20 + length:], edit, cut)
    try:
        sequence_from_glb("animation.glb", data)
    except GaussianHeadsError:
        pass
