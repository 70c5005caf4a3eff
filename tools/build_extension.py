"""Build the per-platform Blender extension zips: ``make extension`` (or run this file).

    .venv/bin/python tools/build_extension.py [--platform linux-x64 ...] [--offline]

Steps:
1. For each target platform and each Python the allowed Blenders embed (``PYTHONS``: CPython
   3.11 for Blender 4.2-5.0, CPython 3.13 for 5.1-5.3), make sure ``wheels/`` holds a wheel of
   every bundled package, at the pinned version, built for that Python on that platform. Missing
   ones are fetched with ``pip download --only-binary=:all: --no-deps --python-version X.Y
   --implementation cp --platform <tags>``; wheels already in ``wheels/`` are reused, so a re-run
   does not touch the network. One zip per platform carries both Pythons' wheels: Blender
   installs only those whose tags match its own Python.
2. Check the dependency closure: every ``Requires-Dist`` of every bundled wheel whose marker is
   true on the target (that CPython, OS and CPU, no extras) is either bundled at a version that
   satisfies it, or provided by Blender (numpy, at every version the Blenders of that Python's
   range ship). The build fails otherwise, so a new dependency in a future pin, or a pin that
   needs a newer numpy than ``blender_version_min`` ships, cannot slip through.
3. Stage a copy of the source tree (git's tracked and untracked-but-not-ignored files; a plain
   copy outside a git checkout) in a fresh temporary ``out/extension/stage_*/gaussian_heads``,
   removed after the build, so concurrent builds do not collide) with the selected
   wheels under ``wheels/`` and a manifest that gains ``platforms = [...]`` and
   ``wheels = [...]``. The committed ``blender_manifest.toml`` deliberately has neither: a fresh
   clone has no wheels, and a manifest that lists absent wheels fails Blender's validation, so
   the repository could no longer be linked as a development extension or validated as is.
   Writing the generated lists into a staged copy keeps the committed manifest valid and the
   working tree untouched by builds.
4. Build with Blender's own extension CLI (``blender_ext.py build --split-platforms``, with
   Blender's list of valid tags) into ``dist/`` and run ``blender_ext.py validate`` on every zip.

Bundled (Blender lacks them): onnxruntime, scipy, numba, llvmlite, safetensors and their
run-time dependencies (flatbuffers, protobuf, packaging). numpy is not bundled: Blender ships it,
and the oldest Blender we support (4.2 LTS) ships numpy 1.24.3, so every bundled wheel must
accept it (scipy is pinned to 1.15.3 for that; step 2 checks it). torch and gsplat are not
bundled either: they are large, CUDA-specific and optional; the add-on preferences offer an
opt-in installer for them.

Platforms: linux-x64, windows-x64, macos-arm64 and macos-x64. The pins in requirements.txt
publish no macOS x86_64 wheels for onnxruntime (1.31.1), numba (0.68.1) and llvmlite (0.50.0),
so the Intel-Mac zip bundles the newest releases that do (``Platform.pins``: onnxruntime 1.23.2,
numba 0.62.1, llvmlite 0.45.1, plus onnxruntime 1.23's own dependencies coloredlogs,
humanfriendly, sympy and mpmath); ``tests/engine/test_oldest_stack.py`` documents how the engine
was run against exactly these versions and numpy 1.24.3. The macos-arm64 zip needs macOS 14 or
newer (onnxruntime's wheel is ``macosx_14_0_arm64``). ``blender_version_max`` may not pass the
last Blender of the newest Python built here (a later Python would find no wheels).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from email.parser import HeaderParser

from packaging import tags as ptags
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

REPO = pathlib.Path(__file__).resolve().parents[1]
MANIFEST = "blender_manifest.toml"

@dataclasses.dataclass(frozen=True)
class PythonTarget:
    """One CPython that a range of Blender releases embeds."""
    version: tuple[int, int]
    blender_min: str             # first Blender with this Python (inclusive)
    blender_max: str             # first Blender after it (exclusive)
    full_version: str            # for PEP 508 markers
    # name -> version replacing the common pins for this Python (where they have no wheel for it
    # or do not accept the numpy these Blenders ship)
    pins: dict = dataclasses.field(default_factory=dict)

    @property
    def abi(self) -> str:
        return f"cp{self.version[0]}{self.version[1]}"

    @property
    def dotted(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


# Blender 4.2 LTS to 5.0 embed Python 3.11; 5.1, 5.2 and 5.3 embed Python 3.13. One zip per
# platform carries wheels for both; Blender installs the ones whose tags match its Python.
# scipy 1.15.3 (cp311: the newest accepting 4.2's numpy 1.24.3) refuses numpy >= 2.5, which
# 5.2+ may ship, so Python 3.13 gets scipy 1.17.1 (numpy >= 1.26.4, < 2.7).
PYTHONS = (
    PythonTarget((3, 11), "4.2.0", "5.1.0", "3.11.9"),
    PythonTarget((3, 13), "5.1.0", "5.4.0", "3.13.1", pins={"scipy": "1.17.1"}),
)
PY311 = PYTHONS[0]

# numpy is the one package Blender provides that the bundled wheels depend on. Which numpy a
# Blender ships (first Blender version, numpy), from Blender's build_files/build_environment
# versions.cmake and the bpy wheels' metadata: 4.2 LTS (Python 3.11.9) builds numpy 1.24.3; the
# bump to 1.26.4 first shows in bpy 4.5.0 (Requires-Dist numpy>=1.26,<2), as in 5.0.1 and 5.1.0
# (Python 3.13); bpy 5.2.0 and 5.3.0 require numpy>=2.2,<3. 4.3 and 4.4 are not verified, so they
# count as 1.24.3. Every numpy listed within a Python's Blender range is checked.
BLENDER_NUMPY = (((4, 2, 0), "1.24.3"), ((4, 5, 0), "1.26.4"), ((5, 2, 0), "2.2.0"))


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def blender_numpys(blender_min: str, blender_max: str | None = None) -> list[Version]:
    """Every numpy that a Blender in [blender_min, blender_max) may ship, oldest first."""
    lo = _version_tuple(blender_min)
    hi = _version_tuple(blender_max) if blender_max else None
    found = None
    result = []
    for first, version in BLENDER_NUMPY:
        if first <= lo:
            found = version
        elif hi is None or first < hi:
            result.append(Version(version))
    if found is None:
        raise BuildError(f"Blender {blender_min} is older than any Blender we know the numpy of")
    return [Version(found), *result]


def provided_by_blender(blender_version_min: str) -> dict[str, Version]:
    """Packages every Blender from ``blender_version_min`` on provides, at their oldest version."""
    return {"numpy": blender_numpys(blender_version_min)[0]}

# What the extension bundles. Versions come from requirements.txt where it pins the package;
# EXTRA_PINS holds the run-time dependencies requirements.txt does not name (the versions the
# development environment resolved, so tests ran against exactly these).
BUNDLED = ("onnxruntime", "scipy", "numba", "llvmlite", "safetensors",
           "flatbuffers", "protobuf", "packaging", "python-osc",
           "pygltflib", "dataclasses-json", "marshmallow", "typing-inspect", "mypy-extensions",
           "typing-extensions", "deprecated", "wrapt")
EXTRA_PINS = {"flatbuffers": "25.12.19", "protobuf": "7.36.2",
              # pygltflib's closure (all pure Python; wrapt's py3-none-any wheel)
              "dataclasses-json": "0.6.7", "marshmallow": "3.26.2", "typing-inspect": "0.9.0",
              "mypy-extensions": "1.2.0", "typing-extensions": "4.16.0", "deprecated": "1.3.1", "wrapt": "2.5.2"}


@dataclasses.dataclass(frozen=True)
class Platform:
    name: str                    # Blender's platform name
    wheel_platforms: tuple[str, ...]  # wheel platform tags, most preferred first
    markers: dict                # PEP 508 environment of the target
    # name -> version replacing or adding to the common pins on this platform only (where the
    # common pin has no wheel for it)
    pins: dict = dataclasses.field(default_factory=dict)


def _manylinux_x86_64() -> tuple[str, ...]:
    # Blender 4.2+ needs glibc 2.28 on Linux, so manylinux_2_28 is the newest tag it can load.
    newer = tuple(f"manylinux_2_{minor}_x86_64" for minor in range(28, 16, -1))
    return newer + ("manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64")


def _macos(arch: str, newest: tuple[int, int]) -> tuple[str, ...]:
    return tuple(ptags.mac_platforms(newest, arch))


_COMMON_MARKERS = {
    "implementation_name": "cpython", "platform_python_implementation": "CPython",
    "platform_release": "", "platform_version": "",
}


def markers(platform: Platform, python: PythonTarget) -> dict:
    """The PEP 508 environment of ``python`` on ``platform`` (no extras)."""
    return {**platform.markers, "python_version": python.dotted, "python_full_version": python.full_version,
            "implementation_version": python.full_version, "extra": ""}

PLATFORMS = {
    "linux-x64": Platform("linux-x64", _manylinux_x86_64(), {
        **_COMMON_MARKERS, "sys_platform": "linux", "platform_system": "Linux",
        "os_name": "posix", "platform_machine": "x86_64"}),
    "windows-x64": Platform("windows-x64", ("win_amd64",), {
        **_COMMON_MARKERS, "sys_platform": "win32", "platform_system": "Windows",
        "os_name": "nt", "platform_machine": "AMD64"}),
    "macos-arm64": Platform("macos-arm64", _macos("arm64", (14, 0)), {
        **_COMMON_MARKERS, "sys_platform": "darwin", "platform_system": "Darwin",
        "os_name": "posix", "platform_machine": "arm64"}),
    "macos-x64": Platform("macos-x64", _macos("x86_64", (13, 0)), {
        **_COMMON_MARKERS, "sys_platform": "darwin", "platform_system": "Darwin",
        "os_name": "posix", "platform_machine": "x86_64"},
        pins={"onnxruntime": "1.23.2", "numba": "0.62.1", "llvmlite": "0.45.1",
              "coloredlogs": "15.0.1", "humanfriendly": "10.0", "sympy": "1.14.0", "mpmath": "1.3.0"}),
}


PROVIDED_NAMES = {"numpy"}


class BuildError(Exception):
    pass


def pinned_versions(requirements: pathlib.Path = REPO / "requirements.txt") -> dict[str, str]:
    """name -> version for every bundled package (requirements.txt first, then EXTRA_PINS)."""
    pins: dict[str, str] = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        spec = list(req.specifier)
        if len(spec) == 1 and spec[0].operator == "==":
            pins[canonicalize_name(req.name)] = spec[0].version
    result = {}
    for name in BUNDLED:
        key = canonicalize_name(name)
        version = pins.get(key) or EXTRA_PINS.get(name)
        if version is None:
            raise BuildError(f"no pinned version for bundled package {name!r}: pin it in requirements.txt")
        if key in pins and name in EXTRA_PINS and pins[key] != EXTRA_PINS[name]:
            raise BuildError(f"{name}: requirements.txt pins {pins[key]}, EXTRA_PINS {EXTRA_PINS[name]}")
        result[key] = version
    return result


def supported_tags(platform: Platform, python: PythonTarget = PY311) -> list[ptags.Tag]:
    """Tags ``python`` on ``platform`` loads, most preferred first."""
    plats = list(platform.wheel_platforms)
    return [*ptags.cpython_tags(python.version, abis=[python.abi], platforms=plats),
            *ptags.compatible_tags(python.version, interpreter=python.abi, platforms=plats)]


def select_wheel(wheel_dir: pathlib.Path, name: str, version: str, platform: Platform,
                 python: PythonTarget = PY311) -> pathlib.Path | None:
    """The best wheel in ``wheel_dir`` for name==version on ``platform`` and ``python``, or None."""
    rank = {tag: i for i, tag in enumerate(supported_tags(platform, python))}
    best: tuple[int, pathlib.Path] | None = None
    for path in wheel_dir.glob("*.whl"):
        try:
            wname, wversion, _build, wtags = parse_wheel_filename(path.name)
        except ValueError:
            continue
        if wname != name or wversion != Version(version):
            continue
        score = min((rank[t] for t in wtags if t in rank), default=None)
        if score is not None and (best is None or score < best[0]):
            best = (score, path)
    return None if best is None else best[1]


def pip_download(wheel_dir: pathlib.Path, requirements: list[str], platform: Platform,
                 python: PythonTarget = PY311) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
           "--only-binary=:all:", "--no-deps", "--python-version", python.dotted, "--implementation", "cp",
           "--abi", python.abi, "--abi", "abi3", "--abi", "none", "--dest", str(wheel_dir)]
    for tag in platform.wheel_platforms:
        cmd += ["--platform", tag]
    cmd += ["--platform", "any", *requirements]
    print(f"[{platform.name} {python.abi}] pip download {' '.join(requirements)}", flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise BuildError(f"pip download failed for {platform.name} {python.abi}:\n{proc.stdout[-3000:]}")


def target_pins(pins: dict[str, str], platform: Platform, python: PythonTarget) -> dict[str, str]:
    """The common ``pins`` with the Python's own, then the platform's own, over them."""
    return {**pins, **{canonicalize_name(n): v for n, v in python.pins.items()},
            **{canonicalize_name(n): v for n, v in platform.pins.items()}}


def ensure_wheels(wheel_dir: pathlib.Path, platform: Platform, pins: dict[str, str],
                  offline: bool = False, python: PythonTarget = PY311) -> list[pathlib.Path]:
    """The wheel of every bundled package for ``platform`` and ``python`` (``target_pins``);
    downloads only what is missing."""
    pins = target_pins(pins, platform, python)
    missing = [name for name, version in pins.items()
               if select_wheel(wheel_dir, name, version, platform, python) is None]
    if missing:
        if offline:
            raise BuildError(f"[{platform.name} {python.abi}] not in {wheel_dir} and --offline given: "
                             f"{', '.join(missing)}")
        pip_download(wheel_dir, [f"{name}=={pins[name]}" for name in missing], platform, python)
    chosen = []
    for name, version in pins.items():
        path = select_wheel(wheel_dir, name, version, platform, python)
        if path is None:
            raise BuildError(f"[{platform.name}] no CPython {python.dotted} wheel of {name}=={version} "
                             "for this platform")
        chosen.append(path)
    return chosen


def wheel_requirements(path: pathlib.Path) -> list[Requirement]:
    with zipfile.ZipFile(path) as zf:
        meta_name = next(n for n in zf.namelist()
                         if n.count("/") == 1 and n.split("/")[0].endswith(".dist-info") and n.endswith("/METADATA"))
        meta = HeaderParser().parsestr(zf.read(meta_name).decode("utf-8"))
    return [Requirement(r) for r in meta.get_all("Requires-Dist") or []]


def check_closure(wheels: list[pathlib.Path], platform: Platform, blender_version_min: str,
                  python: PythonTarget = PY311, numpy: Version | None = None) -> None:
    """Fail unless every run-time requirement of ``wheels`` on ``platform`` and ``python`` is met,
    counting on Blender only for what the oldest supported Blender (``blender_version_min``)
    provides (or for ``numpy`` at the given version, to check another Blender of the range)."""
    available = dict(provided_by_blender(blender_version_min))
    if numpy is not None:
        available["numpy"] = numpy
    for path in wheels:
        name, version, _b, _t = parse_wheel_filename(path.name)
        available[name] = version
    env = markers(platform, python)
    problems = []
    for path in wheels:
        for req in wheel_requirements(path):
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            have = available.get(canonicalize_name(req.name))
            if have is None:
                problems.append(f"{path.name} needs {req}, which is neither bundled nor part of Blender")
            elif req.specifier and not req.specifier.contains(have, prereleases=True):
                where = (f"Blender {blender_version_min} ships" if canonicalize_name(req.name) in
                         PROVIDED_NAMES and numpy is None else "Blender ships" if
                         canonicalize_name(req.name) in PROVIDED_NAMES else "we bundle")
                problems.append(f"{path.name} needs {req}, but {where} {req.name} {have}")
    if problems:
        raise BuildError(f"[{platform.name} {python.abi}] dependency closure is incomplete:\n  "
                         + "\n  ".join(problems))


def check_python_target(wheels: list[pathlib.Path], platform: Platform, python: PythonTarget,
                        blender_version_min: str) -> None:
    """``check_closure`` against every numpy a Blender embedding ``python`` may ship."""
    lo = max(_version_tuple(blender_version_min), _version_tuple(python.blender_min))
    lo_text = ".".join(map(str, lo))
    for numpy in blender_numpys(lo_text, python.blender_max):
        check_closure(wheels, platform, lo_text, python, numpy=numpy)


def _ignore_for_stage(directory: str, names: list[str]) -> set[str]:
    ignored = {n for n in names if n in ("__pycache__", ".pytest_cache", ".hypothesis") or n.endswith(".pyc")}
    if pathlib.Path(directory).resolve() == REPO:
        # Large or generated top-level folders; the manifest's paths_exclude_pattern drops the rest.
        ignored |= {n for n in names if n in (".git", ".venv", ".venvs", "out", "dist", "wheels")}
    return ignored


def source_files() -> list[str] | None:
    """Repository-relative files to package: tracked plus untracked-but-not-ignored (git), or
    None outside a git checkout. Using git's view keeps ignored clutter (caches, outputs, local
    experiments listed in .gitignore) out of the zip; paths_exclude_pattern then applies."""
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        return None
    proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        return None
    names = sorted({n for n in proc.stdout.decode("utf-8").split("\0") if n})
    return [n for n in names if (REPO / n).is_file()]  # tracked files deleted in the tree drop out


def stage(stage_dir: pathlib.Path, wheels: list[pathlib.Path], platforms: list[str]) -> pathlib.Path:
    """Copy the source tree and the wheels into ``stage_dir``; write the generated manifest."""
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    files = source_files()
    if files is None:
        shutil.copytree(REPO, stage_dir, ignore=_ignore_for_stage, symlinks=False)
    else:
        for name in files:
            if name.split("/")[0] == "wheels":
                continue
            dest = stage_dir / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest)
    (stage_dir / "wheels").mkdir()
    for path in wheels:
        shutil.copy2(path, stage_dir / "wheels" / path.name)
    text = (REPO / MANIFEST).read_text()
    if re.search(r"^\s*(wheels|platforms)\s*=", text, re.M):
        raise BuildError(f"{MANIFEST} already lists wheels/platforms; the build writes them into a staged copy")
    generated = ("\n# Written by tools/build_extension.py into the staged copy only.\n"
                 f"platforms = [{', '.join(repr(p).replace(chr(39), chr(34)) for p in platforms)}]\n"
                 "wheels = [\n" + "".join(f'  "./wheels/{p.name}",\n' for p in sorted(wheels)) + "]\n")
    # Top-level keys must come before the first table header.
    first_table = re.search(r"^\[", text, re.M)
    cut = first_table.start() if first_table else len(text)
    text = text[:cut] + generated + "\n" + text[cut:]
    tomllib.loads(text)  # fail here, not inside Blender's tool, if the result is not TOML
    (stage_dir / MANIFEST).write_text(text)
    return stage_dir


def blender_ext() -> tuple[pathlib.Path, pathlib.Path]:
    """Paths of Blender's extension CLI and of its list of valid tags, from the bpy module."""
    import importlib.util
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("the bpy module is not installed: run `make setup`")
    bpy_dir = pathlib.Path(next(iter(spec.submodule_search_locations)))
    candidates = sorted(bpy_dir.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not candidates:
        raise BuildError(f"blender_ext.py not found under {bpy_dir}")
    cli = candidates[-1]
    valid_tags = cli.parents[3] / "modules" / "_bpy_internal" / "extensions" / "tags.py"
    return cli, valid_tags


def run_blender_ext(*args: str) -> str:
    cli, _ = blender_ext()
    proc = subprocess.run([sys.executable, str(cli), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise BuildError(f"blender_ext.py {args[0]} failed:\n{proc.stdout}")
    return proc.stdout


def manifest_fields() -> tuple[str, str, str]:
    """id, version and blender_version_min of the committed manifest."""
    data = tomllib.loads((REPO / MANIFEST).read_text())
    return data["id"], data["version"], data["blender_version_min"]


def pythons_for(blender_min: str, blender_max: str | None) -> list[PythonTarget]:
    """The Pythons embedded by the Blenders the manifest allows."""
    lo, hi = _version_tuple(blender_min), _version_tuple(blender_max) if blender_max else None
    chosen = [p for p in PYTHONS if _version_tuple(p.blender_max) > lo
              and (hi is None or _version_tuple(p.blender_min) < hi)]
    if hi is None or hi > _version_tuple(PYTHONS[-1].blender_max):
        raise BuildError(f"blender_version_max must be at most {PYTHONS[-1].blender_max}: no wheels are built "
                         "for the Python of later Blenders")
    return chosen


def build(platforms: list[str], *, wheel_dir: pathlib.Path = REPO / "wheels", out_dir: pathlib.Path = REPO / "dist",
          stage_root: pathlib.Path = REPO / "out" / "extension", offline: bool = False) -> list[pathlib.Path]:
    """Build and validate one zip per platform; returns their paths."""
    for name in platforms:
        if name not in PLATFORMS:
            raise BuildError(f"unknown platform {name!r}; choose from {', '.join(PLATFORMS)}")
    wheel_dir.mkdir(parents=True, exist_ok=True)
    pins = pinned_versions()
    ext_id, version, blender_min = manifest_fields()
    blender_max = tomllib.loads((REPO / MANIFEST).read_text()).get("blender_version_max")
    all_wheels: set[pathlib.Path] = set()
    for name in platforms:
        for python in pythons_for(blender_min, blender_max):
            chosen = ensure_wheels(wheel_dir, PLATFORMS[name], pins, offline=offline, python=python)
            check_python_target(chosen, PLATFORMS[name], python, blender_min)
            all_wheels.update(chosen)
    out_dir.mkdir(parents=True, exist_ok=True)
    _, valid_tags = blender_ext()
    zips = [out_dir / f"{ext_id}-{version}-{name.replace('-', '_')}.zip" for name in platforms]
    for path in zips:
        path.unlink(missing_ok=True)
    stage_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stage_", dir=stage_root) as tmp:
        stage_dir = stage(pathlib.Path(tmp) / ext_id, sorted(all_wheels), platforms)
        run_blender_ext("build", "--source-dir", str(stage_dir), "--output-dir", str(out_dir),
                        "--split-platforms", "--valid-tags", str(valid_tags))
    for path in zips:
        if not path.is_file():
            raise BuildError(f"blender_ext.py build did not write {path}")
        run_blender_ext("validate", str(path), "--valid-tags", str(valid_tags))
    return zips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--platform", action="append", choices=list(PLATFORMS),
                        help="build only this platform (repeatable); default: all supported")
    parser.add_argument("--wheel-dir", type=pathlib.Path, default=REPO / "wheels",
                        help="download cache for the bundled wheels (default: wheels/)")
    parser.add_argument("--output-dir", type=pathlib.Path, default=REPO / "dist")
    parser.add_argument("--offline", action="store_true",
                        help="never download: fail if a wheel is not already in the cache")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        zips = build(args.platform or list(PLATFORMS), wheel_dir=args.wheel_dir.resolve(),
                     out_dir=args.output_dir.resolve(), offline=args.offline)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Built and validated in {time.perf_counter() - start:.1f} s:")
    for path in zips:
        print(f"  {path}  ({path.stat().st_size / 1e6:.1f} MB)")
    print("Install: Blender > Edit > Preferences > Get Extensions > (menu) Install from Disk...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
