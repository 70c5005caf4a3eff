"""Animation readers and writers: every format on fixtures written here, bad input, round trips."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from engine.animation import ParamSequence, detect_format, read_any, write_any
from engine.animation.formats.livelink import ROTATION_UNIT, read_live_link_csv, write_live_link_csv
from engine.animation.formats.flame_npz import write_flame_npz
from engine.animation.names import ARKIT_NAMES, LIVE_LINK_BLENDSHAPES, LIVE_LINK_ROTATIONS
from engine.errors import GaussianHeadsError, InputFileError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _flame_arrays(T=12, E=100, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "shape": rng.normal(size=300).astype(np.float32),
        "expr": rng.normal(size=(T, E)).astype(np.float32),
        "rotation": (0.1 * rng.normal(size=(T, 3))).astype(np.float32),
        "neck_pose": (0.1 * rng.normal(size=(T, 3))).astype(np.float32),
        "jaw_pose": (0.1 * rng.normal(size=(T, 3))).astype(np.float32),
        "eyes_pose": (0.1 * rng.normal(size=(T, 6))).astype(np.float32),
        "translation": (0.01 * rng.normal(size=(T, 3))).astype(np.float32),
    }


# ------------------------------------------------------------------ FLAME npz
def test_flame_param_npz(tmp_path):
    a = _flame_arrays()
    p = tmp_path / "flame_param.npz"
    np.savez(p, **a, static_offset=np.zeros((1, 5023, 3), np.float32))
    assert detect_format(p) == "flame_param_npz"
    s = read_any(p)
    assert s.space == "flame" and s.n_frames == 12 and s.n_expr == 100
    assert s.expr_names[0] == "expr_000"
    np.testing.assert_array_equal(s.expr, a["expr"])
    np.testing.assert_array_equal(s.global_rot, a["rotation"])
    np.testing.assert_array_equal(s.eyes.reshape(12, 6), a["eyes_pose"])
    np.testing.assert_array_equal(s.shape, a["shape"])
    assert "fps" in s.notes  # no rate stored -> assumed and noted


def test_vhap_tracked_npz_trims_to_processed_frames(tmp_path):
    a = _flame_arrays(T=10)
    p = tmp_path / "tracked_flame_params_30.npz"
    np.savez(p, **a, timestep_id=np.array([f"{i:05d}" for i in range(10)]), n_processed_frames=np.int64(7),
             focal_length=np.float32(2.0))
    assert detect_format(p) == "vhap_tracked_npz"
    s = read_any(p)
    assert s.n_frames == 7 and s.source_format == "vhap_tracked_npz"
    np.testing.assert_array_equal(s.jaw, a["jaw_pose"][:7])


def test_npz_round_trip(tmp_path):
    a = _flame_arrays(T=9)
    p = tmp_path / "flame_param.npz"
    np.savez(p, **a)
    s = read_any(p).replace(fps=30.0)
    out = tmp_path / "out.npz"
    write_flame_npz(s, out)
    r = read_any(out)
    assert r.fps == 30.0 and r.expr_names == s.expr_names and r.space == "flame"
    for f in ("expr", "jaw", "neck", "global_rot", "eyes", "translation", "shape"):
        np.testing.assert_array_equal(getattr(r, f), getattr(s, f))


def test_pickled_npz_refused(tmp_path):
    p = tmp_path / "flame_param.npz"
    np.savez(p, expr=np.zeros((2, 10), np.float32), meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputFileError, match="pickled"):
        read_any(p)


def test_truncated_npz(tmp_path):
    p = tmp_path / "flame_param.npz"
    np.savez(p, **_flame_arrays())
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match=str(p.name)):
        read_any(p)


def test_npz_wrong_shapes_and_nan(tmp_path):
    p = tmp_path / "flame_param.npz"
    np.savez(p, expr=np.zeros((4, 10), np.float32), jaw_pose=np.zeros((4, 2), np.float32))
    with pytest.raises(InputFileError, match="jaw_pose"):
        read_any(p)
    np.savez(p, expr=np.zeros((4, 10), np.float32), jaw_pose=np.zeros((3, 3), np.float32))
    with pytest.raises(InputFileError, match="frames"):
        read_any(p)
    e = np.zeros((4, 10), np.float32)
    e[2, 3] = np.nan
    np.savez(p, expr=e)
    with pytest.raises(InputFileError, match="non-finite"):
        read_any(p)
    np.savez(p, something=np.zeros(3))
    with pytest.raises(InputFileError, match="no FLAME parameters"):
        read_any(p)


# ------------------------------------------------------------------ NeRF-style export
def _nerf_folder(root, steps=(2, 0, 1, 3), cams=2, E=100, fps=None):
    root.mkdir()
    (root / "flame_param").mkdir()
    rng = np.random.default_rng(3)
    per = {}
    for s in steps:
        a = {k: v[:1] for k, v in _flame_arrays(T=1, E=E, seed=10 + s).items() if k != "shape"}
        per[s] = a
        np.savez(root / "flame_param" / f"{s:05d}.npz", **a)
    frames = [{"timestep_index": s, "camera_index": c, "flame_param_path": f"flame_param/{s:05d}.npz",
               "file_path": f"images/{s:05d}_{c:02d}.png"} for s in steps for c in range(cams)]
    half = len(frames) // 2
    doc = {"frames": frames[:half]}
    if fps:
        doc["fps"] = fps
    (root / "transforms_train.json").write_text(json.dumps(doc))
    (root / "transforms_val.json").write_text(json.dumps({"frames": frames[half:]}))
    shape = rng.normal(size=300).astype(np.float32)
    np.savez(root / "canonical_flame_param.npz", shape=shape, static_offset=np.zeros((1, 10, 3), np.float32))
    return per, shape


def test_nerf_export_folder(tmp_path):
    per, shape = _nerf_folder(tmp_path / "export", fps=25)
    assert detect_format(tmp_path / "export") == "nerf_export"
    s = read_any(tmp_path / "export")
    assert s.n_frames == 4 and s.fps == 25 and s.source_format == "nerf_export"
    for i in range(4):  # sorted by timestep_index, one entry per timestep
        np.testing.assert_array_equal(s.expr[i], per[i]["expr"][0])
        np.testing.assert_array_equal(s.jaw[i], per[i]["jaw_pose"][0])
    np.testing.assert_array_equal(s.shape, shape)


def test_nerf_export_missing_timestep_interpolated(tmp_path):
    per, _ = _nerf_folder(tmp_path / "export", steps=(0, 2))
    s = read_any(tmp_path / "export")
    assert s.n_frames == 3
    np.testing.assert_allclose(s.expr[1], 0.5 * (per[0]["expr"][0] + per[2]["expr"][0]), atol=1e-6)
    assert "frames" in s.notes


def test_nerf_export_missing_frame_file(tmp_path):
    _nerf_folder(tmp_path / "export")
    os.remove(tmp_path / "export" / "flame_param" / "00001.npz")
    with pytest.raises(InputFileError, match="00001.npz"):
        read_any(tmp_path / "export")


# ------------------------------------------------------------------ SMIRK / EMOCA
def test_smirk_folder(tmp_path):
    root = tmp_path / "smirk"
    rng = np.random.default_rng(1)
    exp = rng.normal(size=(5, 50)).astype(np.float32)
    eyelid = rng.uniform(size=(5, 2)).astype(np.float32)
    for i in range(5):
        d = root / f"frame{i}"  # natural order: frame10 would sort after frame9
        d.mkdir(parents=True)
        np.save(d / "exp.npy", exp[i][None])
        np.save(d / "jawpose.npy", np.full(3, 0.01 * i, np.float32))
        np.save(d / "globalpose.npy", np.full(3, 0.02 * i, np.float32))
        np.save(d / "eyelid.npy", eyelid[i])
        np.save(d / "shape.npy", np.ones(300, np.float32))
        np.save(d / "cam.npy", np.ones(3, np.float32))
    assert detect_format(root) == "smirk_folder"
    s = read_any(root)
    assert s.n_frames == 5 and s.space == "flame"
    assert s.expr_names[-2:] == ("eyeBlinkLeft", "eyeBlinkRight")
    np.testing.assert_array_equal(s.expr[:, :50], exp)
    np.testing.assert_array_equal(s.channel("eyeBlinkLeft"), eyelid[:, 0])
    np.testing.assert_allclose(s.jaw[3], 0.03, atol=1e-7)
    np.testing.assert_allclose(s.global_rot[4], 0.08, atol=1e-7)


def test_smirk_bad_frame_shape(tmp_path):
    root = tmp_path / "smirk"
    for i in range(3):
        d = root / f"{i:05d}"
        d.mkdir(parents=True)
        np.save(d / "exp.npy", np.zeros(50, np.float32))
        np.save(d / "jawpose.npy", np.zeros(3 if i != 1 else 4, np.float32))
    with pytest.raises(InputFileError, match="00001"):
        read_any(root)


def test_emoca_folder(tmp_path):
    root = tmp_path / "emoca"
    rng = np.random.default_rng(2)
    pose = rng.normal(size=(3, 6)).astype(np.float32)
    for i in range(3):
        d = root / f"{i:06d}_000"
        d.mkdir(parents=True)
        np.save(d / "exp.npy", np.full(50, i, np.float32))
        np.save(d / "pose.npy", pose[i])
        np.save(d / "shape.npy", np.zeros(100, np.float32))
        np.save(d / "tex.npy", np.zeros(50, np.float32))
    assert detect_format(root) == "emoca_folder"
    s = read_any(root)
    assert s.n_frames == 3 and s.source_format == "emoca_folder"
    np.testing.assert_array_equal(s.global_rot, pose[:, :3])
    np.testing.assert_array_equal(s.jaw, pose[:, 3:])


def test_per_frame_npy_pickle_refused(tmp_path):
    root = tmp_path / "emoca"
    d = root / "000001"
    d.mkdir(parents=True)
    np.save(d / "exp.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    np.save(d / "pose.npy", np.zeros(6, np.float32))
    with pytest.raises(InputFileError, match="pickled"):
        read_any(root)


# ------------------------------------------------------------------ Live Link Face
def test_live_link_public_sample(samples_dir):
    path = samples_dir / "livelinkface_take.csv"
    assert detect_format(path) == "live_link_face_csv"
    s = read_any(path)
    assert s.fps == 60.0 and s.space == "arkit"
    assert s.expr_names == ARKIT_NAMES
    # 328 rows whose timecodes advance by ~1.0006 frames: the uniform grid spans the real duration.
    assert abs(s.n_frames - 328) <= 1
    first = open(path).readlines()[1].split(",")
    np.testing.assert_allclose(s.expr[0], np.array(first[2:54], np.float32), atol=1e-7)
    assert not s.global_rot.any()  # the sample's head columns are zero
    left_yaw, left_pitch = float(first[57]), float(first[58])
    assert abs(s.eyes[0, 0, 1] - left_yaw * ROTATION_UNIT) < 1e-3  # small angles: yaw ~ about +Y
    assert abs(s.eyes[0, 0, 0] - left_pitch * ROTATION_UNIT) < 1e-3


def _seq_for_live_link(T=40, fps=60.0, seed=0):
    rng = np.random.default_rng(seed)
    seq = ParamSequence.zeros(T, ARKIT_NAMES, fps=fps, space="arkit")
    head = np.stack([0.4 * np.sin(np.arange(T) / 7), 0.2 * np.cos(np.arange(T) / 5), 0.1 * np.sin(np.arange(T) / 3)], 1)
    from engine.animation.rotation import yaw_pitch_roll_to_axis_angle
    return seq.replace(
        expr=rng.uniform(size=(T, 52)).astype(np.float32),
        global_rot=yaw_pitch_roll_to_axis_angle(*head.T).astype(np.float32),
        eyes=np.stack([yaw_pitch_roll_to_axis_angle(0.1 * head[:, 0], 0.05 * head[:, 1], 0 * head[:, 2])] * 2, 1).astype(np.float32),
    )


@pytest.mark.parametrize("fps", [60.0, 30.0, 24.0])
def test_live_link_round_trip(tmp_path, fps):
    seq = _seq_for_live_link(T=150, fps=fps)
    p = tmp_path / "take.csv"
    write_live_link_csv(seq, p)
    r = read_any(p)
    assert r.fps == fps and r.n_frames == seq.n_frames
    np.testing.assert_allclose(r.expr, seq.expr, atol=1e-7)
    np.testing.assert_allclose(r.global_rot, seq.global_rot, atol=1e-6)
    np.testing.assert_allclose(r.eyes, seq.eyes, atol=1e-6)
    # a second round trip reproduces the file: blendshapes exactly, rotations to float32 precision
    p2 = tmp_path / "take2.csv"
    write_any(r, p2)
    a = np.loadtxt(p, delimiter=",", skiprows=1, usecols=range(2, 63))
    b = np.loadtxt(p2, delimiter=",", skiprows=1, usecols=range(2, 63))
    np.testing.assert_array_equal(a[:, :52], b[:, :52])
    np.testing.assert_allclose(a[:, 52:], b[:, 52:], atol=5e-7)
    assert [l.split(",")[0] for l in p.read_text().splitlines()] == [l.split(",")[0] for l in p2.read_text().splitlines()]


def test_live_link_dropped_rows_keep_timing(tmp_path):
    seq = _seq_for_live_link(T=61)
    p = tmp_path / "take.csv"
    write_live_link_csv(seq, p)
    lines = p.read_text().splitlines(keepends=True)
    del lines[11]  # drop frame 10
    p.write_text("".join(lines))
    r = read_any(p)
    assert r.n_frames == 61  # the gap is filled on the uniform grid
    np.testing.assert_allclose(r.expr[10], 0.5 * (seq.expr[9] + seq.expr[11]), atol=1e-6)


def test_live_link_bad_inputs(tmp_path):
    seq = _seq_for_live_link(T=20)
    p = tmp_path / "take.csv"
    write_live_link_csv(seq, p)
    good = p.read_text()
    lines = good.splitlines(keepends=True)
    # truncated mid-row
    p.write_text("".join(lines[:10]) + lines[10][:40])
    with pytest.raises(InputFileError, match=r"take.csv: line 11 has \d+ fields"):
        read_any(p)
    # NaN / inf
    for bad in ("nan", "inf"):
        cells = lines[5].split(",")
        cells[7] = bad
        p.write_text("".join(lines[:5]) + ",".join(cells) + "".join(lines[6:]))
        with pytest.raises(InputFileError, match="non-finite"):
            read_any(p)
    # a word where a number should be
    cells = lines[3].split(",")
    cells[9] = "oops"
    p.write_text("".join(lines[:3]) + ",".join(cells) + "".join(lines[4:]))
    with pytest.raises(InputFileError, match="line 4 has 'oops'.*EyeLookOutRight|line 4 has 'oops'"):
        read_any(p)
    # bad timecode
    cells = lines[2].split(",")
    cells[0] = "garbage"
    p.write_text("".join(lines[:2]) + ",".join(cells) + "".join(lines[3:]))
    with pytest.raises(InputFileError, match="timecode"):
        read_any(p)
    # duplicated column
    header = lines[0].replace("JawOpen", "EyeBlinkLeft")
    p.write_text(header + "".join(lines[1:]))
    with pytest.raises(InputFileError, match="appears twice"):
        read_any(p)
    # header only, empty
    p.write_text(lines[0])
    with pytest.raises(InputFileError, match="no data rows"):
        read_any(p)
    p.write_text("")
    with pytest.raises(InputFileError, match="empty"):
        read_any(p)


def test_live_link_unknown_column_kept_and_reported(tmp_path):
    seq = _seq_for_live_link(T=10)
    p = tmp_path / "take.csv"
    write_live_link_csv(seq, p)
    lines = p.read_text().splitlines()
    lines = [lines[0] + ",MysteryChannel"] + [l + ",0.5" for l in lines[1:]]
    p.write_text("\n".join(lines) + "\n")
    r = read_any(p)
    assert r.expr_names[-1] == "MysteryChannel" and "MysteryChannel" in r.notes
    np.testing.assert_allclose(r.channel("MysteryChannel"), 0.5)


def test_large_csv_streams_with_bounded_memory(tmp_path):
    """A 50k-row CSV: the streaming layer's peak is a fraction of the text, and the whole read
    (including the sequence's own arrays) stays well below the text size."""
    from engine.animation.formats.csv_stream import CsvColumns, stream_csv

    T, C = 50_000, 16
    p = tmp_path / "big.csv"
    rng = np.random.default_rng(0)
    with open(p, "w") as f:
        f.write("time," + ",".join(f"ch{i}" for i in range(C)) + "\n")
        block = rng.uniform(size=(1000, C))
        for start in range(0, T, 1000):
            rows = [f"{(start + k) / 30:.6f}," + ",".join(f"{v:.17f}" for v in block[k]) for k in range(1000)]
            f.write("\n".join(rows) + "\n")
    size = os.path.getsize(p)
    data_bytes = T * C * 4
    assert size > 4 * data_bytes
    tracemalloc.start()
    try:
        table = stream_csv(p, lambda h: CsvColumns(tuple(range(1, C + 1))))
        _, peak_stream = tracemalloc.get_traced_memory()
        del table
        tracemalloc.reset_peak()
        s = read_any(p)
        _, peak_read = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert s.n_frames == T and s.fps == 30.0
    assert peak_stream < 1.6 * data_bytes + 4 * 2**20, (peak_stream, data_bytes)
    assert peak_stream < size / 4, (peak_stream, size)
    assert peak_read < 0.7 * size, (peak_read, size)


# ------------------------------------------------------------------ named CSV / JSON
def test_named_csv_with_time_column(tmp_path):
    p = tmp_path / "curves.csv"
    t = np.arange(0, 1.0001, 0.04)
    p.write_text("time,jaw_open,EyeBlinkLeft\n" + "".join(f"{x:.4f},{x:.3f},{1 - x:.3f}\n" for x in t))
    s = read_any(p)
    assert detect_format(p) == "named_csv"
    assert s.fps == 25.0 and s.n_frames == 26 and s.space == "arkit"
    assert s.expr_names == ("jawOpen", "eyeBlinkLeft")
    np.testing.assert_allclose(s.channel("jawOpen"), t, atol=1e-3)


def test_named_csv_frames_and_plain(tmp_path):
    p = tmp_path / "curves.csv"
    p.write_text("frame,smile,frown\n10,0,1\n11,0.5,0.5\n12,1,0\n")
    s = read_any(p)
    assert s.space == "named" and s.n_frames == 3 and "fps" in s.notes
    p.write_text("a,b\n1,2\n\n3,4\n")
    s = read_any(p)
    assert s.n_frames == 2 and s.expr_names == ("a", "b")
    p.write_text("a,a\n1,2\n")
    with pytest.raises(InputFileError, match="appears twice"):
        read_any(p)
    p.write_text("time,a\n0,1\n1,2\n0.5,3\n")
    with pytest.raises(InputFileError, match="backwards"):
        read_any(p)
    p.write_text("a,b\n1,\n")
    with pytest.raises(InputFileError, match="empty value"):
        read_any(p)


def test_named_json_and_audio2face(tmp_path):
    p = tmp_path / "curves.json"
    p.write_text(json.dumps({"fps": 50, "jawOpen": [0, 0.5, 1.0], "mouthSmileLeft": [1, 1, 0], "version": "x"}))
    s = read_any(p)
    assert s.fps == 50 and s.space == "arkit" and s.n_frames == 3
    np.testing.assert_allclose(s.channel("jawOpen"), [0, 0.5, 1])
    a2f = tmp_path / "a2f_bsweight.json"
    names = ["jawOpen", "eyeBlinkLeft", "mouthClose"]
    mat = np.random.default_rng(0).uniform(size=(7, 3)).round(6).tolist()
    a2f.write_text(json.dumps({"exportFps": 30, "trackPath": "/World/x", "numPoses": 3, "numFrames": 7,
                               "facsNames": names, "weightMat": mat}))
    assert detect_format(a2f) == "audio2face_json"
    s = read_any(a2f)
    assert s.fps == 30 and s.expr_names == tuple(names) and s.source_format == "audio2face_json"
    np.testing.assert_allclose(s.expr, np.array(mat, np.float32))
    a2f.write_text(json.dumps({"facsNames": names, "weightMat": [[0, 1, 2], [0, 1]]}))
    with pytest.raises(InputFileError, match="weightMat"):
        read_any(a2f)
    a2f.write_text('{"facsNames": ["a"], "weightMat": [[0.1], [0.')
    with pytest.raises(InputFileError, match="not valid JSON"):
        read_any(a2f)
    p.write_text(json.dumps({"a": [1, 2], "b": [1]}))
    with pytest.raises(InputFileError, match="different lengths"):
        read_any(p)
    p.write_text(json.dumps({"a": [1, None]}))
    with pytest.raises(InputFileError, match="non-finite|not numbers"):
        read_any(p)


def test_unknown_inputs(tmp_path):
    with pytest.raises(InputFileError, match="no such"):
        read_any(tmp_path / "missing.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no recognised animation"):
        read_any(tmp_path / "empty")
    e = tmp_path / "empty.npz"
    e.write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        read_any(e)


# ------------------------------------------------------------------ CLI
def test_cli_info_and_convert(tmp_path):
    a = _flame_arrays(T=60)
    src = tmp_path / "flame_param.npz"
    np.savez(src, **a)
    env = dict(os.environ, PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-m", "engine", "anim", "info", str(src)], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert info["format"] == "flame_param_npz" and info["frames"] == 60 and info["space"] == "flame"
    assert len(info["channels"]) == 100 and info["fps"] == 25.0
    dst = tmp_path / "take.csv"
    subprocess.run([sys.executable, "-m", "engine", "anim", "convert", str(src), str(dst), "--fps", "50"],
                   cwd=REPO, env=env, capture_output=True, text=True, check=True)
    info = json.loads(subprocess.run([sys.executable, "-m", "engine", "anim", "info", str(dst)], cwd=REPO, env=env,
                                     capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "live_link_face_csv" and info["fps"] == 50.0 and info["space"] == "arkit"
    bad = subprocess.run([sys.executable, "-m", "engine", "anim", "info", str(tmp_path / "nope.csv")], cwd=REPO,
                         env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and "nope.csv" in bad.stderr


def test_csv_dialects_and_garbage(tmp_path):
    p = tmp_path / "crlf.csv"
    p.write_bytes(b"\xef\xbb\xbftime,jawOpen\r\n0,0.1\r\n0.04, 0.3 \r\n")
    s = read_any(p)
    assert s.fps == 25.0 and s.expr_names == ("jawOpen",)
    np.testing.assert_allclose(s.expr[:, 0], [0.1, 0.3])
    p = tmp_path / "semi.csv"
    p.write_text("frame;smile;frown\n0;0,5;1\n".replace("0,5", "0.5"))
    s = read_any(p)
    assert s.expr_names == ("smile", "frown") and s.expr[0].tolist() == [0.5, 1.0]
    p = tmp_path / "tab.csv"
    p.write_text("a\tb\n1\t2\n3\t4\n")
    assert read_any(p).n_frames == 2
    garbage = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    for name in ("noise.csv", "noise.npz", "noise.json", "noise"):
        g = tmp_path / name
        g.write_bytes(b"\xff\xfe" + garbage)
        with pytest.raises(InputFileError, match=name):
            read_any(g)


def test_live_link_writer_converts_what_it_can(tmp_path):
    a = _flame_arrays(T=30)
    a["jaw_pose"][:, 0] = np.linspace(0, 0.35, 30)
    p = tmp_path / "flame_param.npz"
    np.savez(p, **a)
    s = read_any(p).replace(fps=30.0)
    out = tmp_path / "take.csv"
    res = write_any(s, out)
    assert res.format == "live_link_csv"
    text = " ".join(res.notes)
    assert "100 expression channels are not ARKit" in text and "JawOpen" in text and "neck" in text
    r = read_any(out)
    np.testing.assert_allclose(r.channel("jawOpen"), np.linspace(0, 1, 30), atol=1e-6)
    # the whole head's rotation (global then neck) survives, up to float32
    from engine.animation.rotation import axis_angle_to_quat, quat_mul

    q = quat_mul(axis_angle_to_quat(s.global_rot), axis_angle_to_quat(s.neck))
    qr = axis_angle_to_quat(r.global_rot)
    assert np.all(np.abs(np.sum(q * qr, axis=1)) > 1 - 1e-6)


def test_nerf_export_without_timestep_index(tmp_path):
    root = tmp_path / "export"
    per, _ = _nerf_folder(root, steps=(0, 1, 2), cams=2)
    for name in ("transforms_train.json", "transforms_val.json"):
        doc = json.loads((root / name).read_text())
        for fr in doc["frames"]:
            del fr["timestep_index"]
        (root / name).write_text(json.dumps(doc))
    s = read_any(root)
    assert s.n_frames == 3
    np.testing.assert_array_equal(s.expr[2], per[2]["expr"][0])
