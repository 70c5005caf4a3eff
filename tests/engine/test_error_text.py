"""The error text the render engine reports and draws over the viewport (engine.error_text)."""

from engine.error_text import PREFIX, describe, overlay_lines
from engine.errors import GaussianHeadsError, InputFileError


def test_describe_keeps_user_messages_and_names_bugs():
    assert describe(GaussianHeadsError("the scene has no camera")) == "the scene has no camera"
    assert describe(InputFileError("/a/b.csv", "bad row 3")) == "/a/b.csv: bad row 3"
    assert describe(IndexError("index 9 is out of bounds")) == (
        "unexpected IndexError (index 9 is out of bounds); see the system console")
    assert describe(KeyError()) == "unexpected KeyError (no details); see the system console"


def test_overlay_lines_wrap_to_the_region_and_keep_every_word():
    message = "Gaussian avatars support only uniform object scale " * 2
    lines = overlay_lines(message, width_px=300, char_px=7.0)
    columns = int((300 - 32) / 7.0)
    assert len(lines) > 1 and all(len(line) <= columns for line in lines)
    assert " ".join(lines) == (PREFIX + message).strip()
    assert overlay_lines("", 300) == []
    narrow = overlay_lines("x " * 10, width_px=10)                 # at least 20 columns
    assert all(len(line) <= 20 for line in narrow) and narrow[0].startswith("Gaussian")


def test_overlay_lines_cut_long_messages():
    lines = overlay_lines("word " * 500, width_px=400, max_lines=3)
    assert len(lines) == 3 and lines[-1].endswith("…")
    assert all(len(line) <= int((400 - 32) / 7.0) for line in lines)
