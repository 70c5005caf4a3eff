"""The GPU installer installs into a staging folder and moves it into place only when pip succeeded;
a failed or cancelled install leaves the previous folder byte for byte. "Check GPU" says why not.

pip runs for real (Blender's Python, as the installer does) on a tiny wheel this test builds, with
``--no-index --find-links``: no network.
"""

import hashlib
import os
import pathlib
import sys
import zipfile

import pytest

bpy = pytest.importorskip("bpy")

PKG = "ghfake"


def _wheel(folder: pathlib.Path, version: str) -> None:
    """A minimal pure-Python wheel ``ghfake-<version>`` (module ``ghfake`` with VERSION)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {f"{PKG}/__init__.py": f"VERSION = {version!r}\n",
             f"{PKG}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {PKG}\nVersion: {version}\n",
             f"{PKG}-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                 "Tag: py3-none-any\n"}
    record = "".join(f"{name},,\n" for name in files) + f"{PKG}-{version}.dist-info/RECORD,,\n"
    files[f"{PKG}-{version}.dist-info/RECORD"] = record
    with zipfile.ZipFile(folder / f"{PKG}-{version}-py3-none-any.whl", "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)


def _tree(folder) -> dict:
    """{relative path: sha1} of every file under ``folder`` (empty when it does not exist)."""
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = hashlib.sha1(open(path, "rb").read()).hexdigest()
    return out


def _install(gpu_deps, wheels, spec, cancel=False):
    job = gpu_deps.start_install(requirements=(spec,), extra_args=("--no-index", "--find-links", str(wheels)))
    assert job.running and os.path.isdir(job.staging)
    if cancel:
        job.cancel()
    job.wait(timeout=300)
    return job


def test_install_is_staged_and_failure_or_cancel_keep_the_previous_folder(gh, helpers, tmp_path):
    gpu_deps = helpers.addon("operators.gpu_deps")
    preferences = helpers.addon("preferences")
    target = preferences.gpu_site_packages(create=False)
    parent = os.path.dirname(target)
    wheels = tmp_path / "wheels"
    _wheel(wheels, "1.0")
    _wheel(wheels, "2.0")
    import shutil

    shutil.rmtree(target, ignore_errors=True)
    try:
        # success: the package lands in the final folder, nothing is left beside it
        job = _install(gpu_deps, wheels, f"{PKG}==1.0")
        assert (job.outcome, job.returncode) == ("installed", 0), job.output()
        assert job.status_line().startswith("Installed")
        assert gpu_deps._finish(job).startswith("GPU packages installed") and target in sys.path
        first = _tree(target)
        assert f"{PKG}/__init__.py" in first and f"{PKG}-1.0.dist-info/METADATA" in first
        assert not any(n.startswith(("site-packages.partial-", "site-packages.old-")) for n in os.listdir(parent))
        # a failing install (no such version) leaves the previous folder byte for byte
        job = _install(gpu_deps, wheels, f"{PKG}==3.0")
        assert job.outcome == "failed" and job.returncode != 0
        assert "previous installation is unchanged" in job.status_line()
        assert _tree(target) == first
        # a cancelled install too, however far pip got
        job = _install(gpu_deps, wheels, f"{PKG}==2.0", cancel=True)
        assert job.outcome == "cancelled" and job.status_line().startswith("Cancelled")
        assert _tree(target) == first
        assert not any(n.startswith(("site-packages.partial-", "site-packages.old-")) for n in os.listdir(parent))
        # an upgrade replaces the folder as a whole: no file of 1.0 survives
        job = _install(gpu_deps, wheels, f"{PKG}==2.0")
        assert job.outcome == "installed", job.output()
        second = _tree(target)
        assert f"{PKG}-2.0.dist-info/METADATA" in second and f"{PKG}-1.0.dist-info/METADATA" not in second
        assert open(os.path.join(target, PKG, "__init__.py")).read() == "VERSION = '2.0'\n"
    finally:
        if target in sys.path:
            sys.path.remove(target)
        shutil.rmtree(target, ignore_errors=True)


def test_promote_puts_the_previous_folder_back_when_the_move_fails(gh, helpers, tmp_path):
    gpu_deps = helpers.addon("operators.gpu_deps")
    target = tmp_path / "site-packages"
    target.mkdir()
    (target / "old.txt").write_text("previous")
    with pytest.raises(OSError):
        gpu_deps.promote(str(tmp_path / "missing-staging"), str(target))
    assert (target / "old.txt").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site-packages"]


def test_leftovers_of_a_crashed_install_are_removed_at_the_next_one(gh, helpers, tmp_path):
    gpu_deps = helpers.addon("operators.gpu_deps")
    (tmp_path / "site-packages.partial-abc" / "torch").mkdir(parents=True)
    (tmp_path / "site-packages.old-def").mkdir()
    (tmp_path / "site-packages").mkdir()
    gpu_deps.remove_leftovers(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site-packages"]


def test_check_gpu_says_exactly_why_gsplat_cannot_render(gh, helpers):
    """Without a CUDA device (this machine) the check names the failing step; with one, it must
    have rasterized a frame that matches the CPU."""
    gpu_deps = helpers.addon("operators.gpu_deps")
    assert bpy.ops.gaussian_heads.check_gpu() == {'FINISHED'}
    status = gpu_deps.last_status()
    import torch

    if torch.cuda.is_available():
        assert status.ready and status.rendered and status.max_diff <= 2e-2, status.summary()
    else:
        assert not status.ready and not status.rendered
        assert status.summary().startswith("Not ready: no CUDA device: torch " + torch.__version__)
