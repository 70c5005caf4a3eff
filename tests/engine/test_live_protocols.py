"""Live protocol decoders: documented layouts decoded field by field, encode/decode round trips,
bad input counted and dropped, and hypothesis fuzzing of each decoder with structured mutations
of valid packets (≥ 1,000 each)."""

from __future__ import annotations

import functools
import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.animation.formats.livelink import ROTATION_UNIT
from engine.animation.names import ARKIT_NAMES, LIVE_LINK_BLENDSHAPES
from engine.animation.rotation import yaw_pitch_roll_to_axis_angle
from engine.live import PROTOCOLS, protocol
from engine.live.frame import MAX_ABS_VALUE, LiveFrame, PacketError, canonical_name

RNG = np.random.default_rng(5)


def _frame(timed=True) -> LiveFrame:
    return LiveFrame(
        values={n: float(RNG.uniform(0, 1)) for n in ARKIT_NAMES},
        head=(0.12, -0.3, 0.05), eyes=((0.05, 0.1, 0.0), (0.02, -0.1, 0.01)),
        time=12.25 if timed else None, rate=60.0 if timed else None,
    )


def _close(a, b, tol):
    return np.allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), atol=tol, rtol=0)


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_encode_decode_round_trip(name):
    mod = protocol(name)
    src = _frame()
    packets = mod.encode(src)
    assert len(packets) == 1 and len(packets[0]) <= mod.MAX_PACKET
    got = mod.decode(packets[0])
    assert got is not None
    assert set(got.values) == set(src.values)
    assert _close([got.values[n] for n in ARKIT_NAMES], [src.values[n] for n in ARKIT_NAMES], 1e-6)
    assert _close(got.head, src.head, 1e-6)
    assert _close(got.eyes, src.eyes, 1e-6)
    if name != "ifacialmocap":  # the only protocol without a capture timestamp
        assert abs(got.time - src.time) < 1e-5


def _livelink_packet(values, frame_no=120, sub=0.5, num=60, den=1, version=6, count=61):
    dev, subj = b"ABCD-1234", b"iPhone"
    return (struct.pack(">BI", version, len(dev)) + dev + struct.pack(">I", len(subj)) + subj
            + struct.pack(">ifiiB", frame_no, sub, num, den, count) + struct.pack(f">{len(values)}f", *values))


def test_livelink_layout_field_by_field():
    vals = np.zeros(61, np.float32)
    vals[LIVE_LINK_BLENDSHAPES.index("JawOpen")] = 0.75
    vals[LIVE_LINK_BLENDSHAPES.index("EyeBlinkLeft")] = 0.25
    vals[52:55] = (0.2, -0.1, 0.05)  # head yaw, pitch, roll (1.0 = 90°)
    vals[55:58] = (0.1, 0.0, 0.0)
    f = protocol("livelink").decode(_livelink_packet(vals))
    assert f.values["jawOpen"] == pytest.approx(0.75) and f.values["eyeBlinkLeft"] == pytest.approx(0.25)
    assert len(f.values) == 52 and f.subject == "iPhone"
    assert f.time == pytest.approx(120.5 / 60.0) and f.rate == 60.0
    want = yaw_pitch_roll_to_axis_angle(*(np.float32([0.2, -0.1, 0.05]).astype(np.float64) * ROTATION_UNIT))
    assert _close(f.head, want, 1e-9)
    assert _close(f.eyes[0], yaw_pitch_roll_to_axis_angle(0.1 * ROTATION_UNIT, 0.0, 0.0), 1e-6)
    # 30000/1001 timecode rate
    f = protocol("livelink").decode(_livelink_packet(vals, frame_no=30, sub=0.0, num=30000, den=1001))
    assert f.time == pytest.approx(30 * 1001 / 30000)


IFM_DOC = ("mouthSmile_R-0|eyeLookOut_L-0|mouthUpperUp_L-11|eyeBlink_R-7|jawOpen-12|"
           "=head#-21.488958,-6.038993,-6.6019735,-0.030653415,-0.10287084,-0.6584072|"
           "rightEye#6.0297494,2.4403017,0.25649446|leftEye#6.034903,-1.6660284,-0.17520553|")


def test_ifacialmocap_documented_example():
    f = protocol("ifacialmocap").decode(IFM_DOC.encode())
    assert f.values == pytest.approx({"mouthSmileRight": 0.0, "eyeLookOutLeft": 0.0, "mouthUpperUpLeft": 0.11,
                                      "eyeBlinkRight": 0.07, "jawOpen": 0.12})
    pitch, yaw, roll = np.radians([-21.488958, -6.038993, -6.6019735])
    assert _close(f.head, yaw_pitch_roll_to_axis_angle(yaw, pitch, roll), 1e-9)
    assert _close(f.translation, (-0.030653415, -0.10287084, -0.6584072), 1e-12)
    p, y, r = np.radians([6.034903, -1.6660284, -0.17520553])
    assert _close(f.eyes[0], yaw_pitch_roll_to_axis_angle(y, p, r), 1e-9)  # leftEye -> eyes[0]
    assert f.time is None and f.unknown == ()
    # older "head#" spelling, the TCP suffix, a negative value, an unknown name
    old = protocol("ifacialmocap").decode(b"jawOpen--5|hapihapi-3|head#1,2,3|___iFacialMocap")
    assert old.values == {"jawOpen": -0.05} and old.unknown == ("hapihapi",) and old.translation is None


def _osc(address, *args):
    from pythonosc.osc_message_builder import OscMessageBuilder

    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def test_vmc_single_messages_assemble_a_frame_at_apply():
    dec = protocol("vmc").Decoder()
    assert dec.feed(_osc("/VMC/Ext/Blend/Val", "JawOpen", 0.5)) is None
    assert dec.feed(_osc("/VMC/Ext/Blend/Val", "A", 1.0)) is None  # a VRM preset: not ours
    assert dec.feed(_osc("/VMC/Ext/T", 3.5)) is None
    half = math.sqrt(0.5)  # Unity: 90° about +Y (x, y, z, w)
    assert dec.feed(_osc("/VMC/Ext/Bone/Pos", "Head", 0.0, 1.5, 0.0, 0.0, half, 0.0, half)) is None
    f = dec.feed(_osc("/VMC/Ext/Blend/Apply"))
    assert f.values == {"jawOpen": 0.5} and f.unknown == ("A",) and f.time == 3.5
    assert _close(f.head, (0.0, -math.pi / 2, 0.0), 1e-6)  # mirrored X: the yaw turns sign
    g = dec.feed(_osc("/VMC/Ext/Blend/Apply"))  # the next frame starts empty
    assert g.values == {} and g.head is None


BAD_CASES = {
    "livelink": [
        (b"", "malformed"), (_livelink_packet([0.0] * 61, version=5), "malformed"),
        (_livelink_packet([0.0] * 61, num=0), "malformed"),
        (_livelink_packet([0.0] * 60 + [float("nan")]), "nonfinite"),
        (_livelink_packet([0.0] * 61) + b"\0", "malformed"), (_livelink_packet([0.0] * 61)[:-1], "malformed"),
        (b"\x06" + b"\xff" * 3000, "oversized"), (_livelink_packet([1e9] + [0.0] * 60), "malformed"),
    ],
    "ifacialmocap": [
        (b"", "malformed"), (b"\xff\xfe", "malformed"), (b"jawOpen-nan|", "nonfinite"),
        (b"jawOpen-1e300|", "malformed"), (b"hapihapi-3|foo-2|", "unknown"), (b"jawOpen|", "malformed"),
        (b"jawOpen-1|jawOpen-2|", "malformed"), (b"=head#1,2|", "malformed"), (b"x" * 9000, "oversized"),
        (b"iFacialMocap_sahuasouryya9218sauhuiayeta91555dy3719", "malformed"), (b"=tail#1,2,3|", "malformed"),
    ],
    "vmc": [
        (b"", "malformed"), (b"/VMC", "malformed"), (b"#bundle\0" + b"\0" * 7, "malformed"),
        (_osc("/VMC/Ext/Blend/Val", "JawOpen"), "malformed"),
        (_osc("/VMC/Ext/Blend/Val", "JawOpen", float("inf")), "nonfinite"),
        (_osc("/VMC/Ext/Bone/Pos", "Head", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), "malformed"),
        (b"\0" * 40000, "oversized"),
    ],
}


@pytest.mark.parametrize("name,packet,kind", [(n, p, k) for n, cases in BAD_CASES.items() for p, k in cases])
def test_bad_packets_raise_packet_error_of_their_kind(name, packet, kind):
    mod = protocol(name)
    with pytest.raises(PacketError) as err:
        mod.Decoder().feed(packet)
    assert err.value.kind == kind
    assert mod.decode(packet) is None


def test_vmc_unknown_only_frame_is_dropped_at_apply():
    dec = protocol("vmc").Decoder()
    dec.feed(_osc("/VMC/Ext/Blend/Val", "Joy", 1.0))
    with pytest.raises(PacketError) as err:
        dec.feed(_osc("/VMC/Ext/Blend/Apply"))
    assert err.value.kind == "unknown"


def test_every_livelink_truncation_is_refused():
    packet = protocol("livelink").encode(_frame())[0]
    for n in range(len(packet)):
        assert protocol("livelink").decode(packet[:n]) is None


# ---------------------------------------------------------------------------- fuzzing
@functools.lru_cache(maxsize=None)
def _valid_packets(name):
    mod = protocol(name)
    out = [mod.encode(_frame())[0], mod.encode(_frame(timed=False))[0],
           mod.encode(LiveFrame(values={"jawOpen": 0.3}))[0]]
    if name == "ifacialmocap":
        out.append(IFM_DOC.encode())
    return tuple(out)


def _mutate(packet: bytes, ops) -> bytes:
    b = bytearray(packet)
    for op, pos, data in ops:
        if not b:
            b = bytearray(data)
            continue
        i = pos % (len(b) + 1)
        if op == "flip":
            b[i % len(b)] ^= (data[0] if data else 0xFF) or 1
        elif op == "cut":
            del b[i:]
        elif op == "insert":
            b[i:i] = data
        elif op == "delete":
            del b[i:i + max(1, len(data))]
        elif op == "dup":
            b[i:i] = b[i:i + max(1, len(data) * 4)]
        elif op == "float":  # overwrite 4 bytes with an extreme float (big- or little-endian)
            v = [float("nan"), float("inf"), -float("inf"), 3.4e38, -1e-45, 1e6][len(data) % 6]
            b[i:i + 4] = struct.pack(">f" if pos % 2 else "<f", v)
        elif op == "text":  # text-level: a separator or number swapped in
            b[i:i] = [b"|", b"-", b"#", b",", b"=head#", b"nan", b"1e99", b"-0", b"|=", b"_L"][len(data) % 10]
    return bytes(b)


OPS = st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "delete", "dup", "float", "text"]),
                         st.integers(0, 4096), st.binary(max_size=8)), min_size=1, max_size=6)


def _check(mod, packet):
    try:
        frame = mod.Decoder().feed(packet)
    except PacketError as exc:
        assert exc.kind in ("malformed", "nonfinite", "oversized", "unknown")
        assert mod.decode(packet) is None
        return
    if frame is None:
        return
    for n, v in frame.values.items():
        assert canonical_name(n) == n
        assert math.isfinite(v) and abs(v) <= MAX_ABS_VALUE
    for vec in [frame.head, frame.translation] + list(frame.eyes or ()):
        if vec is not None:
            assert len(vec) == 3 and all(math.isfinite(x) for x in vec)
    assert frame.time is None or math.isfinite(frame.time)


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, 3), ops=OPS)
def test_fuzz_decoder_with_mutated_valid_packets(name, which, ops):
    valid = _valid_packets(name)
    _check(protocol(name), _mutate(valid[which % len(valid)], ops))
