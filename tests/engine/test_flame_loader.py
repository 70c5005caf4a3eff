"""FLAME loader: chumpy-free restricted unpickling, npz conversions, UVs, hostile and broken files."""

from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp

from engine.errors import GaussianHeadsError, InputFileError
from engine.head_model import load_head_model
from engine.head_model.flame import load_flame
from engine.head_model.lbs import forward
from engine.head_model.model import HeadParams

N_V = 40
ROOT_PARENT = 4294967295      # how FLAME's kintree_table marks the root (uint32 -1)


# ------------------------------------------------------------------------------------------------
# A tiny synthetic "FLAME": a chin strip, a skull, two eyes, 400 blendshapes, posedirs.

def synthetic_flame(seed=0):
    rng = np.random.default_rng(seed)
    v = rng.uniform(-0.08, 0.08, (N_V, 3))
    v[:10, 1] -= 0.08                          # chin block (jaw)
    v[30:35] = [0.03, 0.03, 0.06] + rng.normal(0, 0.005, (5, 3))    # left eye
    v[35:40] = [-0.03, 0.03, 0.06] + rng.normal(0, 0.005, (5, 3))   # right eye
    weights = np.zeros((N_V, 5))
    weights[:10, 2] = 1.0
    weights[10:20, 1] = 1.0
    weights[20:30, 0] = 0.5
    weights[20:30, 1] = 0.5
    weights[30:35, 3] = 1.0
    weights[35:40, 4] = 1.0
    jreg = np.zeros((5, N_V))
    jreg[0, 20:30] = 0.1
    jreg[1, 10:20] = 0.1
    jreg[2, 0:10] = 0.1
    jreg[3, 30:35] = 0.2
    jreg[4, 35:40] = 0.2
    faces = np.array([[i, i + 1, i + 2] for i in range(0, N_V - 2)], np.uint32)
    return {
        "v_template": v,
        "f": faces,
        "shapedirs": rng.normal(0, 1e-3, (N_V, 3, 400)),
        "posedirs": rng.normal(0, 1e-3, (N_V, 3, 36)),
        "J_regressor": sp.csc_matrix(jreg),
        "weights": weights,
        "kintree_table": np.array([[ROOT_PARENT, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
        "J": jreg @ v,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


@pytest.fixture
def fake_chumpy(monkeypatch):
    """A module ``chumpy.ch`` with a class ``Ch`` so pickles record the global 'chumpy.ch.Ch'."""
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            # what a real chumpy Ch carries in its pickled __dict__
            self.x = np.asarray(x, np.float64)
            self._dirty_vars = set()
            self._itr = None
            self._depends_on_deps = {}
            self._make_dense = False
            self._make_sparse = False

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    ch.Ch = Ch
    chumpy.ch = ch
    monkeypatch.setitem(sys.modules, "chumpy", chumpy)
    monkeypatch.setitem(sys.modules, "chumpy.ch", ch)
    return Ch


def write_chumpy_pickle(path, Ch, protocol=2, data=None):
    data = dict(synthetic_flame() if data is None else data)
    for key in ("v_template", "shapedirs", "posedirs", "J"):
        data[key] = Ch(data[key])
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=protocol)
    assert b"chumpy.ch" in open(path, "rb").read()
    return data


# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_chumpy_pickle_loads_and_poses(tmp_path, fake_chumpy, protocol):
    path = tmp_path / "generic_model.pkl"
    write_chumpy_pickle(path, fake_chumpy, protocol)
    ref = synthetic_flame()
    m = load_head_model(str(path))
    assert m.n_vertices == N_V and m.n_shape == 300 and m.n_expr == 100
    assert m.expr_names[0] == "psi00" and m.expr_names[-1] == "psi99" and len(m.expr_names) == 100
    assert m.expr_space == "flame" and m.posedirs.shape == (N_V, 3, 36)
    assert m.parents.tolist() == [-1, 0, 1, 1, 1]
    np.testing.assert_allclose(m.v_template, ref["v_template"], atol=1e-7)
    np.testing.assert_allclose(m.shapedirs, ref["shapedirs"][:, :, :300], atol=1e-7)
    np.testing.assert_allclose(m.exprdirs, ref["shapedirs"][:, :, 300:], atol=1e-7)
    np.testing.assert_allclose(m.j_regressor, ref["J_regressor"].toarray(), atol=1e-7)
    assert m.faces.dtype == np.int32 and not m.has_uv

    # zero params give the template; the jaw turns the chin about the jaw joint
    rest = forward(m, HeadParams.neutral_for(m))
    np.testing.assert_allclose(rest.vertices, m.v_template, atol=1e-6)
    p = HeadParams.neutral_for(m)
    p.jaw[:] = [0.4, 0.0, 0.0]
    posed = forward(m, p)
    jaw = rest.joints[2]
    np.testing.assert_allclose(np.linalg.norm(posed.vertices[:10] - jaw, axis=1),
                               np.linalg.norm(rest.vertices[:10] - jaw, axis=1), atol=1e-3)  # + posedirs
    assert np.abs(posed.vertices[:10] - rest.vertices[:10]).max() > 0.005


def test_flame_numpy_and_torch_agree_with_posedirs(tmp_path, fake_chumpy):
    torch = pytest.importorskip("torch")
    from engine.head_model.lbs_torch import TorchHeadModel

    path = tmp_path / "flame2023.pkl"
    write_chumpy_pickle(path, fake_chumpy)
    m = load_flame(path)
    rng = np.random.default_rng(2)
    b = 3
    p = HeadParams(rng.normal(0, 1, (b, 300)).astype(np.float32), rng.normal(0, 1, (b, 100)).astype(np.float32),
                   *(rng.normal(0, 0.3, s).astype(np.float32) for s in [(b, 3), (b, 3), (b, 3), (b, 2, 3), (b, 3)]))
    ref = forward(m, p)
    v, t = TorchHeadModel(m).forward_params(p)
    np.testing.assert_allclose(v.numpy(), ref.vertices, atol=1e-5)
    np.testing.assert_allclose(t.numpy(), ref.transforms, atol=1e-5)
    assert torch.isfinite(v).all()


def test_npz_conversion_and_uvs(tmp_path):
    data = synthetic_flame()
    data["J_regressor"] = data["J_regressor"].toarray()
    data.pop("bs_style")
    data.pop("bs_type")
    npz = tmp_path / "flame.npz"
    np.savez(npz, **data)
    m = load_flame(npz)
    assert m.n_shape == 300 and m.n_expr == 100
    # FLAME_texture.npz style UVs
    vt = np.random.default_rng(0).uniform(0, 1, (50, 2))
    ft = np.arange(len(data["f"]) * 3).reshape(-1, 3) % 50
    tex = tmp_path / "FLAME_texture.npz"
    np.savez(tex, vt=vt, ft=ft, mean=np.zeros(3), tex_dir=np.zeros((1, 1)))
    m = load_flame(npz, uv_path=tex)
    assert m.has_uv and m.ft.shape == m.faces.shape
    # head_template_mesh.obj style UVs
    obj = tmp_path / "head_template_mesh.obj"
    lines = [f"v {x} {y} {z}" for x, y, z in data["v_template"]] + [f"vt {u} {w}" for u, w in vt]
    lines += [f"f {a + 1}/{d + 1} {b + 1}/{e + 1} {c + 1}/{g + 1}" for (a, b, c), (d, e, g) in zip(data["f"], ft)]
    obj.write_text("\n".join(lines) + "\n")
    m = load_head_model(str(npz), uv_path=obj)
    np.testing.assert_array_equal(m.ft, ft)
    # our own layout round-trips through the loader too
    from engine.head_model.storage import model_to_arrays, save_npz

    own = tmp_path / "own.npz"
    save_npz(own, model_to_arrays(m))
    m2 = load_flame(own)
    np.testing.assert_array_equal(m2.faces, m.faces)
    assert m2.expr_names == m.expr_names and m2.has_uv


def test_flame_masks_next_to_the_model(tmp_path, fake_chumpy):
    path = tmp_path / "generic_model.pkl"
    write_chumpy_pickle(path, fake_chumpy)
    masks = {"face": np.arange(10, 30), "lips": np.array([0, 1, 2]), "left_eyeball": np.arange(30, 35),
             "right_eyeball": np.arange(35, 40), "boundary": np.array([3])}
    (tmp_path / "FLAME_masks.pkl").write_bytes(pickle.dumps(masks, protocol=2))
    m = load_flame(path)
    assert m.masks["eyes"].sum() == 10 and m.masks["lips"].sum() == 3 and m.masks["face"].sum() == 20
    assert "boundary" not in m.masks
    (tmp_path / "FLAME_masks.pkl").write_bytes(pickle.dumps({"lips": np.array([0, 999])}, protocol=2))
    with pytest.raises(InputFileError, match="FLAME_masks.pkl"):
        load_flame(path)


class _Hostile:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("target", ["os.system", "subprocess.call", "builtins.eval", "builtins.exec"])
def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path, target):
    import builtins
    import subprocess

    marker = tmp_path / "pwned"
    funcs = {"os.system": (os.system, f"touch {marker}"),
             "subprocess.call": (subprocess.call, ["touch", str(marker)]),
             "builtins.eval": (builtins.eval, f"open({str(marker)!r}, 'w').close()"),
             "builtins.exec": (builtins.exec, f"open({str(marker)!r}, 'w').close()")}
    func, arg = funcs[target]
    data = synthetic_flame()
    data["v_template"] = _Hostile(func, arg)
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=2)
    with pytest.raises(InputFileError) as err:
        load_head_model(str(path))
    assert str(path) in str(err.value) and "refusing" in str(err.value)
    assert not marker.exists()


def test_bad_files_give_one_input_file_error(tmp_path, fake_chumpy):
    missing = tmp_path / "missing.pkl"
    with pytest.raises(InputFileError, match="missing.pkl"):
        load_head_model(str(missing))

    good = tmp_path / "good.pkl"
    write_chumpy_pickle(good, fake_chumpy)
    raw = good.read_bytes()
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputFileError, match="truncated.pkl"):
        load_head_model(str(truncated))

    data = synthetic_flame()
    del data["weights"]
    wrong_keys = tmp_path / "wrong_keys.pkl"
    wrong_keys.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(InputFileError, match="wrong_keys.pkl.*weights"):
        load_head_model(str(wrong_keys))

    data = synthetic_flame()
    data["shapedirs"] = data["shapedirs"][:5]
    wrong_shape = tmp_path / "wrong_shape.pkl"
    wrong_shape.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(InputFileError, match="wrong_shape.pkl.*shapedirs"):
        load_head_model(str(wrong_shape))

    data = synthetic_flame()
    data["weights"] = data["weights"][:, :4]
    bad_weights = tmp_path / "bad_weights.npz"
    data["J_regressor"] = data["J_regressor"].toarray()
    np.savez(bad_weights, **{k: v for k, v in data.items() if not isinstance(v, str)})
    with pytest.raises(InputFileError, match="bad_weights.npz.*weights"):
        load_head_model(str(bad_weights))

    not_a_model = tmp_path / "list.pkl"
    not_a_model.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(InputFileError, match="list.pkl"):
        load_head_model(str(not_a_model))

    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"this is not a pickle at all")
    with pytest.raises(InputFileError, match="garbage.pkl"):
        load_head_model(str(garbage))

    broken_zip = tmp_path / "broken.npz"
    broken_zip.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(InputFileError, match="broken.npz"):
        load_head_model(str(broken_zip))

    bad_uv = tmp_path / "uv.npz"
    np.savez(bad_uv, vt=np.zeros((3, 2)), ft=np.zeros((2, 3), np.int32))
    with pytest.raises(InputFileError, match="uv.npz"):
        load_head_model(str(good), uv_path=bad_uv)
    assert issubclass(InputFileError, GaussianHeadsError)
