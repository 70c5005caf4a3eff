"""Add-on preferences and the add-on's run-time environment.

Registered first (see ``__init__.py``). ``register()`` prepares the environment before any
``engine`` module is imported:
- ``NUMBA_CACHE_DIR`` -> ``<extension user folder>/numba_cache`` unless the user has set it
  (numba reads it once, at import; the extension's own folder must stay read-only);
- ``OMP_WAIT_POLICY`` -> ``PASSIVE`` unless set: idle OpenMP workers sleep instead of spinning, so
  torch's and numba's thread pools do not starve each other (each parallel launch of the CPU
  rasterizer cost ~15 ms when torch's spinning workers held the cores; docs/PERFORMANCE.md);
- ``TORCH_EXTENSIONS_DIR`` -> ``<extension user folder>/torch_extensions`` unless set: where
  gsplat's first CUDA use builds its kernels (torch's default is ``~/.cache/torch_extensions``);
- the folder the opt-in GPU installer writes (``<extension user folder>/site-packages``) is
  appended to ``sys.path`` when it exists, so torch and gsplat installed there import.
Then it starts ``engine.warmup`` (every numba kernel compiles in a background thread; the first
time takes 10-45 s) and a timer that redraws our panels while it runs.
``unregister()`` undoes all of it (a compile in progress is left to finish in its daemon thread).

The preferences show whether GPU rendering is possible (torch with CUDA, and gsplat) and offer
the opt-in installer (``operators/gpu_deps.py``); it needs Blender's "Allow Online Access".
"""

import importlib.util
import os
import sys

import bpy

ADDON_PACKAGE = __package__

# What prepare_environment() changed, so restore_environment() undoes exactly that.
_changed = {"env": [], "sys_path": None}


def user_folder(name: str, create: bool) -> str:
    """A folder under the extension's user directory (the only place the add-on writes)."""
    return bpy.utils.extension_path_user(ADDON_PACKAGE, path=name, create=create)


def gpu_site_packages(create: bool = False) -> str:
    """Where the GPU installer puts torch and gsplat."""
    return user_folder("site-packages", create=create)


def prepare_environment() -> None:
    defaults = {"NUMBA_CACHE_DIR": lambda: user_folder("numba_cache", create=True),
                "OMP_WAIT_POLICY": lambda: "PASSIVE",
                "TORCH_EXTENSIONS_DIR": lambda: user_folder("torch_extensions", create=False)}
    for name, value in defaults.items():
        if name not in os.environ:
            os.environ[name] = value()
            _changed["env"].append(name)
    add_gpu_site_packages()


def add_gpu_site_packages() -> bool:
    """Append the GPU packages' folder to sys.path if it exists; True when it is there."""
    folder = gpu_site_packages(create=False)
    if not os.path.isdir(folder):
        return False
    if folder not in sys.path:
        sys.path.append(folder)
        _changed["sys_path"] = folder
        importlib.invalidate_caches()
    return True


def restore_environment() -> None:
    for name in _changed["env"]:
        os.environ.pop(name, None)
    _changed["env"] = []
    folder = _changed["sys_path"]
    if folder is not None and folder in sys.path:
        sys.path.remove(folder)
    _changed["sys_path"] = None


def warmup_progress():
    """engine.warmup's Progress, or None before the add-on started it."""
    from .engine import warmup  # light: numba is imported by the warm-up thread

    w = warmup.current()
    return None if w is None else w.progress()


def _redraw_while_warming():
    """Timer: redraw the panels that show the warm-up's progress until it ends."""
    wm = getattr(bpy.context, "window_manager", None)
    for window in (wm.windows if wm is not None else ()):
        for area in window.screen.areas:
            if area.type in {'PROPERTIES', 'PREFERENCES'}:
                area.tag_redraw()
    progress = warmup_progress()
    return 0.5 if progress is not None and progress.running else None


def start_warmup() -> None:
    """Compile the numba kernels in the background (unless GAUSSIAN_HEADS_WARMUP=0)."""
    if os.environ.get("GAUSSIAN_HEADS_WARMUP", "1") == "0":
        return
    from .engine import warmup

    warmup.start()
    if not bpy.app.timers.is_registered(_redraw_while_warming):
        bpy.app.timers.register(_redraw_while_warming, first_interval=0.5, persistent=True)


def stop_warmup() -> None:
    if bpy.app.timers.is_registered(_redraw_while_warming):
        bpy.app.timers.unregister(_redraw_while_warming)
    from .engine import warmup

    warmup.stop(timeout=1.0)  # a compile in progress finishes in its daemon thread


def flame_model_path(context=None) -> str:
    """The FLAME model file chosen in the preferences, absolute ('' when none is chosen)."""
    context = context if context is not None else bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    prefs = getattr(addon, "preferences", None)
    path = getattr(prefs, "flame_model", "") if prefs is not None else ""
    return bpy.path.abspath(path) if path else ""


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


class GAUSSIAN_HEADS_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    extra_index_url: bpy.props.StringProperty(
        name="Extra Index URL",
        description=(
            "Optional extra package index for the GPU installer. PyPI's Linux torch wheels include "
            "CUDA; on Windows PyPI's torch is CPU-only, so give PyTorch's CUDA index here "
            "(for example https://download.pytorch.org/whl/cu128)"
        ),
        default="",
    )
    flame_model: bpy.props.StringProperty(
        name="FLAME Model", subtype='FILE_PATH', default="",
        description=(
            "Your FLAME model file (generic_model.pkl, flame2023.pkl or an .npz conversion), chosen "
            "once: FLAME takes imported onto ARKit avatars convert through it by least squares "
            "(an import's Source Head Model overrides it)"
        ),
    )

    def draw(self, context):
        from .operators import gpu_deps  # imported here: registration has finished by now

        layout = self.layout
        box = layout.box()
        box.label(text="FLAME model (FLAME takes onto ARKit avatars)")
        box.prop(self, "flame_model")
        progress = warmup_progress()
        if progress is not None:
            icon = 'SORTTIME' if progress.running else ('ERROR' if progress.errors else 'CHECKMARK')
            layout.label(text=progress.text(), icon=icon)
        box = layout.box()
        box.label(text="GPU rendering (gsplat)")
        status = gpu_deps.last_status()
        checking = gpu_deps.check_job()
        if checking is not None and checking.running:
            box.label(text=checking.status_line(), icon='SORTTIME')
        elif status is None:
            have = [name for name in ("torch", "gsplat") if _installed(name)]
            text = (f"Installed: {', '.join(have)}; press Check GPU to render a test frame" if have
                    else "torch and gsplat are not installed: rendering uses the CPU")
            box.label(text=text, icon='QUESTION')
        else:
            box.label(text=status.summary()[:200], icon='CHECKMARK' if status.ready else 'ERROR')
        box.operator("gaussian_heads.check_gpu", icon='FILE_REFRESH')
        from . import render_engine

        stats = render_engine.last_stats
        if stats is not None:
            box.label(text=f"Last render used: {stats.backend}" + (f" ({stats.fallback[:120]})"
                                                                   if stats.fallback else ""))

        box = layout.box()
        box.label(text="Install GPU dependencies (torch, gsplat; several GB)")
        job = gpu_deps.current_job()
        if job is not None and job.running:
            box.label(text=job.status_line(), icon='SORTTIME')
            box.operator("gaussian_heads.cancel_gpu_install", icon='CANCEL')
        else:
            if job is not None and job.status_line():
                box.label(text=job.status_line(), icon='INFO')
            box.prop(self, "extra_index_url")
            box.operator("gaussian_heads.install_gpu_deps", icon='IMPORT')
            if not bpy.app.online_access:
                box.label(text="Needs Preferences > System > Network > Allow Online Access", icon='ERROR')
        box.label(text=f"Folder: {gpu_site_packages(create=False)}")


classes = (GAUSSIAN_HEADS_AddonPreferences,)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    prepare_environment()
    _register_classes()
    start_warmup()


def unregister():
    stop_warmup()
    _unregister_classes()
    restore_environment()
