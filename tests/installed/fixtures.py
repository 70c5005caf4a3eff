"""Files the installed journey feeds the add-on, built by the tests (development venv).

``make_fixtures(folder)`` writes one small take per animation format our importer reads (the
same layouts the format tests use), a random-weight generator checkpoint (small config), and
``takes.json`` mapping format name -> path.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
SAMPLES = REPO.parent / "shared" / "samples"


def _flame_arrays(frames: int, expr: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "shape": rng.normal(size=300).astype(np.float32),
        "expr": (0.5 * rng.normal(size=(frames, expr))).astype(np.float32),
        "rotation": (0.05 * rng.normal(size=(frames, 3))).astype(np.float32),
        "neck_pose": (0.05 * rng.normal(size=(frames, 3))).astype(np.float32),
        "jaw_pose": np.abs(0.1 * rng.normal(size=(frames, 3))).astype(np.float32),
        "eyes_pose": (0.05 * rng.normal(size=(frames, 6))).astype(np.float32),
        "translation": np.zeros((frames, 3), np.float32),
    }


def _per_frame_folder(root: pathlib.Path, files: dict[str, int], frames: int = 4) -> None:
    rng = np.random.default_rng(5)
    for i in range(frames):
        d = root / f"{i:05d}"
        d.mkdir(parents=True)
        for name, width in files.items():
            np.save(d / f"{name}.npy", (0.05 * rng.normal(size=width)).astype(np.float32))


def make_takes(folder: pathlib.Path) -> dict[str, str]:
    """One file (or folder) per reader in engine.animation.formats.FORMATS."""
    folder.mkdir(parents=True, exist_ok=True)
    takes = {}
    np.savez(folder / "flame_param.npz", **_flame_arrays(8))
    takes["flame_param_npz"] = folder / "flame_param.npz"
    np.savez(folder / "tracked_flame_params_0.npz", **_flame_arrays(8, seed=1), n_processed_frames=np.array(6))
    takes["vhap_tracked_npz"] = folder / "tracked_flame_params_0.npz"
    nerf = folder / "nerf_export"
    (nerf / "flame_param").mkdir(parents=True)
    frames = []
    for step in range(3):
        arrays = {k: v[:1] for k, v in _flame_arrays(1, seed=10 + step).items() if k != "shape"}
        np.savez(nerf / "flame_param" / f"{step:05d}.npz", **arrays)
        frames.append({"timestep_index": step, "camera_index": 0, "file_path": f"images/{step:05d}.png",
                       "flame_param_path": f"flame_param/{step:05d}.npz"})
    (nerf / "transforms_train.json").write_text(json.dumps({"fps": 25, "frames": frames}))
    takes["nerf_export"] = nerf
    _per_frame_folder(folder / "smirk", {"exp": 50, "jawpose": 3, "globalpose": 3, "eyelid": 2})
    takes["smirk_folder"] = folder / "smirk"
    _per_frame_folder(folder / "emoca", {"exp": 50, "pose": 6, "shape": 100})
    takes["emoca_folder"] = folder / "emoca"
    bare = folder / "flame_arrays"  # stacked [T, 100] expression + [T, 15] pose, no sub-folders
    bare.mkdir(parents=True)
    rng = np.random.default_rng(6)
    np.save(bare / "exp.npy", (0.5 * rng.normal(size=(6, 100))).astype(np.float32))
    np.save(bare / "pose.npy", (0.05 * rng.normal(size=(6, 15))).astype(np.float32))
    takes["flame_arrays"] = bare
    live_link = SAMPLES / "livelinkface_take.csv"
    shutil.copy(live_link, folder / "livelinkface_take.csv")
    takes["live_link_face_csv"] = folder / "livelinkface_take.csv"
    t = np.arange(0, 0.5001, 0.04)
    (folder / "curves.csv").write_text("time,jawOpen,eyeBlinkLeft\n"
                                       + "".join(f"{x:.4f},{x:.3f},{1 - x:.3f}\n" for x in t))
    takes["named_csv"] = folder / "curves.csv"
    (folder / "curves.json").write_text(json.dumps({"fps": 30, "jawOpen": [0, 0.5, 1.0],
                                                    "mouthSmileLeft": [1, 0.5, 0]}))
    takes["named_json"] = folder / "curves.json"
    weights = np.random.default_rng(0).uniform(size=(6, 3)).round(4).tolist()
    (folder / "a2f_bsweight.json").write_text(json.dumps({
        "exportFps": 30, "numPoses": 3, "numFrames": 6, "weightMat": weights,
        "facsNames": ["jawOpen", "eyeBlinkLeft", "mouthClose"]}))
    takes["audio2face_json"] = folder / "a2f_bsweight.json"
    return {name: str(path) for name, path in takes.items()}


def make_checkpoint(path: pathlib.Path, onnx: bool = True) -> None:
    """A random-weight generator checkpoint (small config) written by the project's own tool;
    with ``onnx`` it carries the ONNX branches Blender runs without torch."""
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "make_generator_checkpoint.py"), str(path),
                           "--small", "--w-avg-samples", "256", *(["--onnx"] if onnx else [])], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"make_generator_checkpoint failed:\n{proc.stdout}\n{proc.stderr}")


def make_trained_checkpoint(folder: pathlib.Path) -> pathlib.Path:
    """A checkpoint written by ``python -m engine train`` (a tiny configuration, a few steps on a
    tiny synthetic dataset): what a user's training run hands to Blender. -> its folder."""
    sys.path.insert(0, str(REPO))
    try:
        from tests.engine.train_fixtures import TINY_FLAGS
    finally:
        sys.path.remove(str(REPO))
    data, run = folder / "dataset", folder / "run"
    commands = (["dataset", "synthetic", str(data), "--identities", "2", "--views", "2", "--resolution", "16",
                 "--n-gaussians", "1024", "--heldout-expressions", "1", "--heldout-identities", "1"],
                ["train", "--data", str(data), "--out", str(run), "--steps", "2", *TINY_FLAGS])
    for command in commands:
        proc = subprocess.run([sys.executable, "-m", "engine", *command], cwd=REPO, capture_output=True,
                              text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"engine {command[0]} failed:\n{proc.stdout}\n{proc.stderr}")
    return run / "checkpoint"


def make_fixtures(folder: pathlib.Path) -> pathlib.Path:
    takes = make_takes(folder / "takes")
    (folder / "takes.json").write_text(json.dumps(takes, indent=1))
    make_checkpoint(folder / "checkpoint")
    make_checkpoint(folder / "checkpoint_torch_only", onnx=False)
    (folder / "trained_checkpoint.txt").write_text(str(make_trained_checkpoint(folder / "training")))
    return folder


if __name__ == "__main__":
    print(make_fixtures(pathlib.Path(sys.argv[1])))
