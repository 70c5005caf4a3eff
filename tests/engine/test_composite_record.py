"""engine/composite.py: the composite's record, its offer per engine and version, its pixel maths."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from engine.composite import (RAY_VISIBILITY, CompositeRecord, HiddenObject, Rewired, composite_offer,
                              premultiplied_over, z_combine)
from engine.errors import GaussianHeadsError

RECORD = CompositeRecord(
    view_layer="ViewLayer", use_pass_z=False, created_tree=True, use_nodes=False, use_compositing=True,
    render_layers="Render Layers", added_render_layers=True,
    nodes=("Gaussian Heads Layer", "Gaussian Heads Straight Alpha", "Gaussian Heads Z Combine"),
    rewired=(Rewired("Group Output", 0, "Image"), Rewired("Viewer", 0, "Image")),
    hidden=(HiddenObject("GaussianHead.3", (True, True, False, True, True, True), False, True, False),))


def test_record_round_trips():
    assert CompositeRecord.from_json(RECORD.to_json(), "scene 'S'") == RECORD


def test_with_hidden_adds_only_new_objects():
    again = HiddenObject("GaussianHead.3", (False,) * len(RAY_VISIBILITY))   # already hidden: kept as first seen
    new = HiddenObject("splats", (True,) * len(RAY_VISIBILITY))
    assert RECORD.with_hidden(()) is RECORD
    assert RECORD.with_hidden((again,)) is RECORD
    assert RECORD.with_hidden((again, new)).hidden == (RECORD.hidden[0], new)


@pytest.mark.parametrize("change", [
    lambda d: d.pop("hidden"),
    lambda d: d.update(use_pass_z=1),                      # an int is not a bool
    lambda d: d.update(rewired=[{"node": "x", "socket": True, "output": "Image"}]),  # nor a bool an int
    lambda d: d.update(hidden=[{"name": "a", "flags": [True]}]),        # wrong number of flags
    lambda d: d.update(nodes="Gaussian Heads Layer"),
])
def test_damaged_record_is_one_clear_error(change):
    data = json.loads(RECORD.to_json())
    change(data)
    with pytest.raises(GaussianHeadsError, match="scene 'S': the composite record is damaged"):
        CompositeRecord.from_json(json.dumps(data), "scene 'S'")


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.text(max_size=200),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
                 max_leaves=30).map(json.dumps),
    st.builds(lambda key, value: json.dumps({**json.loads(RECORD.to_json()), key: value}),
              st.sampled_from(sorted(json.loads(RECORD.to_json()))),
              st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.lists(st.integers(), max_size=3)),
))
def test_fuzzed_records_parse_or_raise_one_error(text):
    try:
        record = CompositeRecord.from_json(text, "scene 'S'")
    except GaussianHeadsError as exc:
        assert str(exc).startswith("scene 'S': the composite record is damaged")
    else:
        assert CompositeRecord.from_json(record.to_json(), "scene 'S'") == record


def test_offer_per_engine_and_version():
    assert composite_offer("CYCLES", (4, 2, 23)) == "offer"
    assert composite_offer("BLENDER_EEVEE_NEXT", (4, 5, 0)) == "offer"
    assert composite_offer("BLENDER_EEVEE", (5, 0, 1)) == "offer"
    assert composite_offer("BLENDER_WORKBENCH", (5, 2, 0)) == "offer"
    assert composite_offer("CYCLES", (5, 3, 0)) == "option"
    assert composite_offer("GAUSSIAN_HEADS", (4, 2, 0)) == ""
    assert composite_offer("SOME_OTHER_ENGINE", (5, 0, 0)) == ""


def test_z_combine_of_straight_front_is_premultiplied_over():
    """Why the node tree converts our layer to straight alpha: Z Combine's mix of a straight
    nearer layer over an opaque farther one is the premultiplied "over"."""
    rng = np.random.default_rng(0)
    alpha = rng.uniform(0.0, 1.0, (6, 7, 1)).astype(np.float32)
    premultiplied = np.concatenate([rng.uniform(0, 1, (6, 7, 3)) * alpha, alpha], -1).astype(np.float32)
    straight = np.concatenate([premultiplied[..., :3] / alpha, alpha], -1)
    back = np.concatenate([rng.uniform(0, 1, (6, 7, 3)), np.ones((6, 7, 1))], -1).astype(np.float32)
    near, far = np.full((6, 7), 0.5), np.full((6, 7), 2.0)
    over = premultiplied_over(premultiplied, back)[..., :3]
    assert np.allclose(z_combine(straight, near, back, far), over, atol=1e-6)
    # the farther layer is hidden wherever the nearer one is opaque, whichever input it is
    opaque = straight.copy()
    opaque[..., 3] = 1.0
    assert np.allclose(z_combine(back, far, opaque, near), opaque[..., :3])
    with pytest.raises(GaussianHeadsError, match=r"\[H, W, 4\]"):
        z_combine(straight[..., :3], near, back, far)
