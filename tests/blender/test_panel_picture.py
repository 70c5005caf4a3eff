"""tools/panel_picture.py: the Live panel's real draw() recorded and painted (docs/live_panel.png)."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy")

from tests.tool_modules import tool_module  # noqa: E402

from .conftest import addon  # noqa: E402


def _flatten(node):
    panel_picture = tool_module("panel_picture")
    if isinstance(node, panel_picture.Widget):
        return [node]
    return [w for item in node.items for w in _flatten(item)]


def test_live_panel_recording_shows_its_settings_and_state(gh):
    panel_picture = tool_module("panel_picture")
    settings = bpy.context.scene.gaussian_heads_live
    settings.protocol, settings.smoothing = 'VMC', 0.5
    panel = addon("panels.live").GAUSSIAN_HEADS_PT_live
    title, root = panel_picture.record_panel(panel, bpy.context)
    widgets = {w.label: w for w in _flatten(root)}
    assert title == "Live"
    assert widgets["Protocol"].value == "VMC protocol (OSC)" and widgets["Port"].value == "39539"  # the default follows
    assert widgets["Smoothing"].style == "slider" and widgets["Smoothing"].fraction == pytest.approx(0.5 / 0.95)
    assert widgets["Start Live"].kind == "operator" and widgets["Start Live"].enabled

    settings.running, settings.status, settings.phone_address = True, "12 frames", "127.0.0.1:39539"
    _, root = panel_picture.record_panel(panel, bpy.context)
    widgets = {w.label: w for w in _flatten(root)}
    assert not widgets["Protocol"].enabled and not widgets["Port"].enabled  # fixed while listening
    assert {"Stop Live", "Record", "Set Neutral", "Send to: 127.0.0.1:39539", "12 frames"} <= set(widgets)

    painter = panel_picture.Painter(panel_picture.Style(scale=1.0), panel_picture.theme_colors(),
                                    panel_picture.ui_font())
    image = painter.panel(title, root)
    assert image.width == 308 and image.height > 8 * 20  # nine rows and a box at 20 UI px each
    pixels = image.convert("L").getextrema()
    assert pixels[1] - pixels[0] > 100  # text and fields drawn, not a flat fill
