"""The bake MLP as ONNX bytes, encoded by hand (protobuf wire format; no ``onnx`` package needed).

The graph (opset 17, IR version 8; input "params" [batch, P] float32 -> output "coeffs" [batch, O]):
    m0 = MatMul(params, w0); a0 = Add(m0, b0); h1 = LeakyRelu(a0, alpha)
    m1 = MatMul(h1, w1);     a1 = Add(m1, b1); h2 = LeakyRelu(a1, alpha)
    m2 = MatMul(h2, w2);     coeffs = Add(m2, b2)
with the six weights as float32 initialisers (raw_data, little-endian). Fields are written in
field-number order, as protobuf serialisers do, so the bytes equal ``onnx.helper``'s model of the
same graph (tests compare them when ``onnx`` is installed; the reference is ``to_onnx_reference``
in ``mlp.py``).

Protobuf wire format used: a field is a varint key (number << 3 | wire type) then its value:
wire type 0 varint (ints, enums), 2 length-delimited (strings, bytes, sub-messages), 5 fixed32
(float). ONNX's schema is proto2, so repeated ints are unpacked (one key per element).
ONNX field numbers (onnx.proto): ModelProto ir_version 1, producer_name 2, graph 7, opset_import 8;
OperatorSetIdProto domain 1, version 2; GraphProto node 1, name 2, initializer 5, input 11,
output 12; NodeProto input 1, output 2, op_type 4, attribute 5; AttributeProto name 1, f 2,
type 20 (FLOAT = 1); TensorProto dims 1, data_type 2 (FLOAT = 1), name 8, raw_data 9;
ValueInfoProto name 1, type 2; TypeProto tensor_type 1; TypeProto.Tensor elem_type 1, shape 2;
TensorShapeProto dim 1; Dimension dim_value 1, dim_param 2.
"""

from __future__ import annotations

import struct

import numpy as np

ONNX_INPUT = "params"
ONNX_OUTPUT = "coeffs"
ONNX_OPSET = 17
IR_VERSION = 8
GRAPH_NAME = "gaussian_heads_bake_mlp"
PRODUCER = "gaussian_heads.bake"
_FLOAT = 1  # TensorProto.FLOAT and AttributeProto.FLOAT


def _varint(value: int) -> bytes:
    value = int(value)
    if value < 0:
        value += 1 << 64  # int64 two's complement, as protobuf does
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _float(field: int, value: float) -> bytes:
    return _varint(field << 3 | 5) + struct.pack("<f", float(value))


def _tensor(name: str, array: np.ndarray) -> bytes:
    a = np.ascontiguousarray(array, dtype="<f4")
    return b"".join(_int(1, d) for d in a.shape) + _int(2, _FLOAT) + _bytes(8, name) + _bytes(9, a.tobytes())


def _value_info(name: str, dims: tuple) -> bytes:
    shape = b"".join(_bytes(1, _bytes(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    tensor_type = _int(1, _FLOAT) + _bytes(2, shape)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def _node(op: str, inputs: tuple[str, ...], outputs: tuple[str, ...], alpha: float | None = None) -> bytes:
    out = b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs) + _bytes(4, op)
    if alpha is not None:
        out += _bytes(5, _bytes(1, "alpha") + _float(2, alpha) + _int(20, _FLOAT))
    return out


def mlp_onnx_bytes(weights) -> bytes:
    """``MLPWeights`` -> serialised ONNX ModelProto (the graph in the module docstring)."""
    slope = float(weights.negative_slope)
    nodes = [
        _node("MatMul", (ONNX_INPUT, "w0"), ("m0",)), _node("Add", ("m0", "b0"), ("a0",)),
        _node("LeakyRelu", ("a0",), ("h1",), slope),
        _node("MatMul", ("h1", "w1"), ("m1",)), _node("Add", ("m1", "b1"), ("a1",)),
        _node("LeakyRelu", ("a1",), ("h2",), slope),
        _node("MatMul", ("h2", "w2"), ("m2",)), _node("Add", ("m2", "b2"), (ONNX_OUTPUT,)),
    ]
    graph = b"".join(_bytes(1, n) for n in nodes) + _bytes(2, GRAPH_NAME)
    graph += b"".join(_bytes(5, _tensor(n, getattr(weights, n))) for n in ("w0", "b0", "w1", "b1", "w2", "b2"))
    graph += _bytes(11, _value_info(ONNX_INPUT, ("batch", weights.n_inputs)))
    graph += _bytes(12, _value_info(ONNX_OUTPUT, ("batch", weights.n_outputs)))
    opset = _bytes(1, "") + _int(2, ONNX_OPSET)
    return _int(1, IR_VERSION) + _bytes(2, PRODUCER) + _bytes(7, graph) + _bytes(8, opset)
