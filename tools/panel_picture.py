"""Pictures of our sidebar panels, drawn from the panels' own ``draw()`` (no Blender window needed).

    .venv/bin/python tools/panel_picture.py live --out docs/live_panel.png

Blender's window manager cannot open a window on our headless machines, so a real screenshot is
impossible here. This tool does the next most faithful thing: it enables the add-on in a bpy
process, puts the panel in a real state (for ``live``: a Live Link Face take replayed over
loopback with ``engine.live.sender``, received, driving an avatar and recording), runs the
panel's real ``draw()`` against :class:`RecordingLayout` — which records every row, column, box,
property, operator and label with the labels and values Blender's RNA reports — and paints that
tree with Blender's own UI font (Inter, from bpy's datafiles) and the colours of the current
theme. What it cannot show: icons (Blender compiles them into its binary), tooltips, hover.
The avatar beside the panel is rendered by our engine (F12) at the same moment.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

REPO = pathlib.Path(__file__).resolve().parents[1]


# --- recording -------------------------------------------------------------------------------

@dataclass
class Widget:
    kind: str                 # 'prop' | 'operator' | 'label'
    label: str                # the property's name / the operator's label / the label's text
    value: str = ""           # what the widget shows (props)
    style: str = "text"       # 'text' | 'number' | 'slider' | 'enum' | 'search' | 'button' | 'bool'
    fraction: float = 0.0     # sliders: filled part
    enabled: bool = True
    split: bool = False       # use_property_split: label column + widget column


@dataclass
class Container:
    kind: str                 # 'column' | 'row' | 'box'
    align: bool = False
    enabled: bool = True
    split: bool = False
    items: list = field(default_factory=list)


class RecordingLayout:
    """Stands in for ``bpy.types.UILayout``: the calls our panels make, recorded as a tree."""

    def __init__(self, container: Container, parent: "RecordingLayout | None" = None):
        self._node = container
        self._parent = parent
        self.use_property_split = parent.use_property_split if parent else False
        self.use_property_decorate = False
        self._enabled = container.enabled
        self.alignment = 'EXPAND'
        self.scale_y = 1.0

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = self._node.enabled = bool(value)

    def _effective_enabled(self) -> bool:
        layout, on = self, True
        while layout is not None:
            on = on and layout._enabled
            layout = layout._parent
        return on

    def _child(self, kind: str, align: bool = False) -> "RecordingLayout":
        node = Container(kind, align=align, enabled=True, split=self.use_property_split)
        self._node.items.append(node)
        return RecordingLayout(node, self)

    def column(self, align: bool = False, **_kw) -> "RecordingLayout":
        return self._child("column", align)

    def row(self, align: bool = False, **_kw) -> "RecordingLayout":
        return self._child("row", align)

    def box(self) -> "RecordingLayout":
        return self._child("box")

    def separator(self, **_kw) -> None:
        self._node.items.append(Widget("label", ""))

    def label(self, text: str = "", icon: str = 'NONE', **_kw) -> None:
        self._node.items.append(Widget("label", text, enabled=self._effective_enabled()))

    def operator(self, idname: str, text: str | None = None, icon: str = 'NONE', **_kw):
        import bpy

        module, name = idname.split(".", 1)
        label = text if text is not None else getattr(getattr(bpy.ops, module), name).get_rna_type().name
        self._node.items.append(Widget("operator", label, style="button", enabled=self._effective_enabled()))
        return None

    def prop(self, data, prop: str, text: str | None = None, slider: bool = False, **_kw) -> None:
        rna = data.bl_rna.properties[prop]
        label = rna.name if text is None else text
        value = getattr(data, prop)
        widget = Widget("prop", label, enabled=self._effective_enabled(), split=self.use_property_split)
        if rna.type == 'ENUM':
            widget.style, widget.value = "enum", rna.enum_items[value].name
        elif rna.type == 'BOOLEAN':
            widget.style, widget.value = "bool", "on" if value else "off"
        elif rna.type in {'INT', 'FLOAT'}:
            widget.value = str(value) if rna.type == 'INT' else f"{value:.3f}"
            lo, hi = rna.soft_min, rna.soft_max
            if slider and hi > lo:
                widget.style, widget.fraction = "slider", max(0.0, min(1.0, (value - lo) / (hi - lo)))
            else:
                widget.style = "number"
        else:
            widget.style, widget.value = "text", str(value)
        self._node.items.append(widget)

    def prop_search(self, data, prop: str, search_data, search_prop: str, text: str | None = None, **_kw) -> None:
        rna = data.bl_rna.properties[prop]
        self._node.items.append(Widget("prop", rna.name if text is None else text, str(getattr(data, prop)),
                                       style="search", enabled=self._effective_enabled(),
                                       split=self.use_property_split))


def record_panel(panel_cls, context) -> tuple[str, Container]:
    """Run ``panel_cls.draw`` on a recording layout; -> (panel label, root container)."""
    root = Container("column")
    fake = type("RecordedPanel", (), {"layout": RecordingLayout(root), "bl_label": panel_cls.bl_label})()
    panel_cls.draw(fake, context)
    return panel_cls.bl_label, root


# --- painting --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Style:
    scale: float = 2.0        # pixels per Blender UI unit pixel (a 2x "retina" picture)
    width: int = 300          # panel width in UI pixels
    unit: int = 20            # UI_UNIT_Y
    gap: int = 2              # between widgets
    margin: int = 8
    font_px: int = 11         # Blender's UI text size at scale 1
    split: float = 0.4        # property split: the label column's share


def theme_colors() -> dict:
    """The current Blender theme's colours for what we paint, as 0-255 RGBA tuples."""
    import bpy

    theme = bpy.context.preferences.themes[0]
    ui = theme.user_interface

    def rgba(color, alpha=None):
        values = list(color)
        if len(values) == 3:
            values.append(1.0 if alpha is None else alpha)
        return tuple(int(round(255 * max(0.0, min(1.0, v)))) for v in values)

    panel = theme.view_3d.space.panelcolors if hasattr(theme.view_3d.space, "panelcolors") else None
    return {
        "region": rgba(theme.view_3d.space.back if hasattr(theme.view_3d.space, "back") else (0.19, 0.19, 0.19)),
        "panel": rgba(panel.back) if panel else (61, 61, 61, 255),
        "header": rgba(panel.header) if panel else (48, 48, 48, 255),
        "text": rgba(ui.wcol_regular.text),
        "label": rgba(ui.wcol_box.text),
        "button": rgba(ui.wcol_tool.inner), "button_text": rgba(ui.wcol_tool.text),
        "number": rgba(ui.wcol_num.inner), "number_text": rgba(ui.wcol_num.text),
        "slider": rgba(ui.wcol_numslider.inner), "slider_fill": rgba(ui.wcol_numslider.item),
        "text_field": rgba(ui.wcol_text.inner), "text_field_text": rgba(ui.wcol_text.text),
        "menu": rgba(ui.wcol_menu.inner), "menu_text": rgba(ui.wcol_menu.text),
        "box": rgba(ui.wcol_box.inner), "outline": rgba(ui.wcol_regular.outline),
    }


class Painter:
    def __init__(self, style: Style, colors: dict, font_path: pathlib.Path):
        from PIL import ImageFont

        self.s, self.c = style, colors
        self.font = ImageFont.truetype(str(font_path), int(round(style.font_px * style.scale)))
        self.title_font = ImageFont.truetype(str(font_path), int(round((style.font_px + 1) * style.scale)))

    def px(self, v: float) -> int:
        return int(round(v * self.s.scale))

    def height(self, node) -> int:
        """Height in UI pixels of a widget or container."""
        s = self.s
        if isinstance(node, Widget):
            return s.unit
        if not node.items:
            return 0
        if node.kind == "row":
            return max(self.height(i) for i in node.items)
        gap = 0 if node.align else s.gap
        inner = sum(self.height(i) for i in node.items) + gap * (len(node.items) - 1)
        return inner + (2 * 6 if node.kind == "box" else 0)

    def _text(self, draw, xy, text, color, anchor="lm", enabled=True):
        if not enabled:
            color = (*color[:3], int(color[3] * 0.45))
        draw.text((self.px(xy[0]), self.px(xy[1])), text, font=self.font, fill=color, anchor=anchor)

    def _fit(self, text: str, width_ui: float) -> str:
        limit = self.px(width_ui) - self.px(8)
        if self.font.getlength(text) <= limit:
            return text
        while text and self.font.getlength(text + "…") > limit:
            text = text[:-1]
        return text + "…"

    def _field(self, draw, box, fill, enabled, radius=4):
        x0, y0, x1, y1 = box
        if not enabled:
            fill = (*fill[:3], int(fill[3] * 0.5))
        draw.rounded_rectangle([self.px(x0), self.px(y0), self.px(x1), self.px(y1)], radius=self.px(radius),
                               fill=fill, outline=self.c["outline"], width=max(1, self.px(0.5)))

    def widget(self, draw, w: Widget, x: float, y: float, width: float) -> None:
        c, s = self.c, self.s
        mid = y + s.unit / 2
        if w.kind == "label":
            self._text(draw, (x + 4, mid), self._fit(w.label, width), c["label"], enabled=w.enabled)
            return
        if w.kind == "operator":
            self._field(draw, (x, y, x + width, y + s.unit), c["button"], w.enabled)
            self._text(draw, (x + width / 2, mid), self._fit(w.label, width), c["button_text"], "mm", w.enabled)
            return
        fx, fw = x, width
        if w.split:
            split = width * s.split
            self._text(draw, (x + split - 6, mid), w.label, c["text"], "rm", w.enabled)
            fx, fw = x + split, width - split
        box = (fx, y, fx + fw, y + s.unit)
        if w.style == "slider":
            self._field(draw, box, c["slider"], w.enabled)
            if w.fraction > 0:
                self._field(draw, (fx, y, fx + max(8.0, fw * w.fraction), y + s.unit), c["slider_fill"], w.enabled)
            self._text(draw, (fx + fw / 2, mid), w.value, c["number_text"], "mm", w.enabled)
        elif w.style == "number":
            self._field(draw, box, c["number"], w.enabled)
            self._text(draw, (fx + fw / 2, mid), w.value, c["number_text"], "mm", w.enabled)
        elif w.style == "enum":
            self._field(draw, box, c["menu"], w.enabled)
            self._text(draw, (fx + 6, mid), self._fit(w.value, fw - 16), c["menu_text"], "lm", w.enabled)
            self._text(draw, (fx + fw - 8, mid), "⌄", c["menu_text"], "mm", w.enabled)
        else:  # text and search fields
            self._field(draw, box, c["text_field"], w.enabled)
            self._text(draw, (fx + 6, mid), self._fit(w.value, fw - 8), c["text_field_text"], "lm", w.enabled)

    def container(self, draw, node: Container, x: float, y: float, width: float) -> float:
        """Paint ``node`` with its top-left at (x, y); -> the y below it."""
        s = self.s
        if node.kind == "box":
            h = self.height(node)
            self._field(draw, (x, y, x + width, y + h), self.c["box"], True, radius=5)
            x, y, width = x + 6, y + 6, width - 12
        if node.kind == "row" and node.items:
            n = len(node.items)
            gap = 0 if node.align else s.gap
            each = (width - gap * (n - 1)) / n
            for i, item in enumerate(node.items):
                self._paint(draw, item, x + i * (each + gap), y, each)
            return y + self.height(node) + (6 if node.kind == "box" else 0)
        gap = 0 if node.align else s.gap
        for item in node.items:
            y = self._paint(draw, item, x, y, width) + gap
        return y - gap + (6 if node.kind == "box" else 0)

    def _paint(self, draw, item, x, y, width) -> float:
        if isinstance(item, Widget):
            self.widget(draw, item, x, y, width)
            return y + self.s.unit
        return self.container(draw, item, x, y, width)

    def panel(self, title: str, root: Container):
        """-> a PIL image of the panel: header with ``title`` and the recorded widgets."""
        from PIL import Image, ImageDraw

        s = self.s
        header = 26
        body = self.height(root) + 2 * s.margin
        image = Image.new("RGBA", (self.px(s.width + 2 * 4), self.px(header + body + 8)), self.c["region"])
        draw = ImageDraw.Draw(image, "RGBA")
        draw.rounded_rectangle([self.px(4), self.px(4), self.px(4 + s.width), self.px(4 + header + body)],
                               radius=self.px(5), fill=self.c["panel"])
        draw.rounded_rectangle([self.px(4), self.px(4), self.px(4 + s.width), self.px(4 + header)],
                               radius=self.px(5), fill=self.c["header"])
        cx, cy, r = self.px(16), self.px(4 + header / 2), self.px(3.5)  # the open-panel triangle
        draw.polygon([(cx - r, cy - r * 0.6), (cx + r, cy - r * 0.6), (cx, cy + r * 0.8)], fill=self.c["text"])
        draw.text((self.px(26), cy), title, font=self.title_font, fill=self.c["text"], anchor="lm")
        self.container(draw, root, 4 + s.margin, 4 + header + s.margin, s.width - 2 * s.margin)
        return image


def ui_font() -> pathlib.Path:
    import bpy

    fonts = pathlib.Path(bpy.utils.system_resource('DATAFILES', path="fonts"))
    for name in ("Inter.woff2", "DejaVuSans.woff2"):
        if (fonts / name).is_file():
            return fonts / name
    raise FileNotFoundError(f"no UI font in {fonts}")


# --- the Live panel's scenario ---------------------------------------------------------------

def _enable_addon():
    spec = importlib.util.spec_from_file_location("gh_blender_conftest", REPO / "tests" / "blender" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)  # sets BLENDER_USER_RESOURCES to a temporary folder first
    return conftest


def live_pictures(style: Style):
    """-> [(caption, PIL image)]: the Live panel idle, then live and recording, and the avatar's frame."""
    conftest = _enable_addon()
    import bpy
    import numpy as np

    bpy.ops.wm.read_factory_settings(use_empty=True)
    conftest.enable_addon()
    from importlib import import_module

    def sub(name):
        return import_module(f"{conftest.ADDON_MODULE}.{name}")

    warmup = sub("engine.warmup").current()
    if warmup is not None:  # the panel shows the state a user sees after the first seconds
        warmup.wait(timeout=600)
    scene = bpy.context.scene
    scene.render.engine = "GAUSSIAN_HEADS"
    bpy.ops.gaussian_heads.sample_identity(seed=11)
    obj = bpy.context.active_object
    camera_data = bpy.data.cameras.new("Camera")
    camera = bpy.data.objects.new("Camera", camera_data)
    scene.collection.objects.link(camera)
    camera.location = (0.0, -0.62, 0.03)
    camera.rotation_euler = (np.pi / 2, 0.0, 0.0)
    camera_data.lens = 50
    scene.camera = camera
    settings = scene.gaussian_heads_live
    settings.protocol = 'LIVELINK'
    settings.target = obj.name
    settings.smoothing = 0.3
    panel_cls = sub("panels.live").GAUSSIAN_HEADS_PT_live
    painter = Painter(style, theme_colors(), ui_font())
    pictures = [("Before Start", painter.panel(*record_panel(panel_cls, bpy.context)))]

    settings.host = "127.0.0.1"
    settings.port = _free_port(settings.port)
    assert bpy.ops.gaussian_heads.live_start() == {'FINISHED'}
    live = sub("operators.live")
    port = live.session().receiver.port
    take = _smile_take(sub("engine.animation"))
    sender = sub("engine.live.sender")
    thread = threading.Thread(target=sender.send_sequence, args=(take, "livelink", "127.0.0.1", port),
                              daemon=True)
    thread.start()
    assert bpy.ops.gaussian_heads.live_record() == {'FINISHED'}
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1.2:
        live.tick()
        time.sleep(1 / 60)
    pictures.append(("Live, recording a Live Link take", painter.panel(*record_panel(panel_cls, bpy.context))))
    with tempfile.TemporaryDirectory() as tmp:
        scene.render.resolution_x = scene.render.resolution_y = 360
        scene.render.filepath = os.path.join(tmp, "frame.png")
        bpy.ops.render.render(write_still=True)
        from PIL import Image

        pictures.append(("The avatar at that moment (F12)", Image.open(scene.render.filepath).convert("RGBA")))
    thread.join(timeout=10)
    bpy.ops.gaussian_heads.live_record_stop()
    bpy.ops.gaussian_heads.live_stop()
    return pictures


def _free_port(preferred: int) -> int:
    """``preferred`` if nothing listens on it (the picture then shows the protocol's default), else any."""
    import socket

    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise OSError("no free UDP port on 127.0.0.1")


def _smile_take(animation):
    """A 3-second ARKit take at 60 fps: a smile, the jaw opening, raised brows, a slow head turn."""
    import numpy as np

    names = import_module_of(animation, "names").ARKIT_NAMES
    fps, n = 60.0, 180
    t = np.arange(n) / fps
    ramp = np.clip(t / 0.8, 0.0, 1.0)[:, None]
    expr = np.zeros((n, len(names)), np.float32)
    for name, peak in {"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9, "jawOpen": 0.35,
                       "browInnerUp": 0.5, "cheekSquintLeft": 0.4, "cheekSquintRight": 0.4}.items():
        expr[:, names.index(name)] = peak * ramp[:, 0]
    zeros = np.zeros((n, 3), np.float32)
    head = np.stack([0.04 * ramp[:, 0], 0.25 * np.sin(t), np.zeros(n)], axis=1).astype(np.float32)
    return animation.ParamSequence(fps, tuple(names), expr, zeros, zeros, head, np.zeros((n, 2, 3), np.float32),
                                   zeros, space="arkit")


def import_module_of(package, name: str):
    from importlib import import_module

    return import_module(f"{package.__name__}.{name}")


def compose(pictures, out: pathlib.Path, scale: float, font_path: pathlib.Path) -> None:
    """Place the pictures side by side, each under its caption."""
    from PIL import Image, ImageDraw, ImageFont

    pad, caption = int(12 * scale), int(22 * scale)
    font = ImageFont.truetype(str(font_path), int(11 * scale))
    height = max(p.height for _, p in pictures) + 2 * pad + caption
    width = sum(p.width for _, p in pictures) + pad * (len(pictures) + 1)
    sheet = Image.new("RGBA", (width, height), (40, 40, 40, 255))
    draw = ImageDraw.Draw(sheet)
    x = pad
    for text, picture in pictures:
        draw.text((x + int(4 * scale), pad + caption // 2), text, font=font, fill=(200, 200, 200, 255), anchor="lm")
        sheet.alpha_composite(picture, (x, pad + caption))
        x += picture.width + pad
    sheet.convert("RGB").save(out, optimize=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("panel", choices=["live"])
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--scale", type=float, default=1.5)
    args = parser.parse_args(argv)
    style = Style(scale=args.scale)
    pictures = live_pictures(style)
    compose(pictures, args.out, args.scale, ui_font())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
