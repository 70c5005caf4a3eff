"""Reference twins of the bake MLP that need torch or onnx (tests and ``bench bake --trainer torch``).

    torch_module(weights)     torch ``nn.Sequential`` computing ``MLPWeights.forward``
    fit_torch(...)            the torch trainer: same init, batches and lr schedule as
                              ``mlp_numpy.fit_numpy`` (autograd + ``torch.optim.Adam``)
    onnx_model_bytes(weights) the ONNX graph built with the ``onnx`` package (``onnx_writer``'s twin)

Nothing the add-on runs imports this module; torch and onnx are imported inside the functions.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..errors import GaussianHeadsError
from .onnx_writer import GRAPH_NAME, IR_VERSION, ONNX_INPUT, ONNX_OPSET, ONNX_OUTPUT, PRODUCER


def _torch():
    try:
        import torch
    except ImportError:
        raise GaussianHeadsError("the torch reference trainer needs PyTorch, which is not installed "
                                 "(the add-on trains with numpy: MLPConfig.trainer = 'numpy')") from None
    return torch


def _sequential(p: int, h1: int, h2: int, o: int, slope: float):
    from torch import nn

    return nn.Sequential(nn.Linear(p, h1), nn.LeakyReLU(slope), nn.Linear(h1, h2), nn.LeakyReLU(slope),
                         nn.Linear(h2, o))


def _load(net, params: Sequence[np.ndarray]) -> None:
    torch = _torch()
    with torch.no_grad():
        for layer, w, b in zip((net[0], net[2], net[4]), params[0::2], params[1::2]):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(np.asarray(w, np.float32).T)))
            layer.bias.copy_(torch.from_numpy(np.asarray(b, np.float32).copy()))


def torch_module(weights):
    """A torch ``nn.Sequential`` computing exactly ``weights.forward`` (MLPWeights)."""
    p, h1 = weights.w0.shape
    h2, o = weights.w2.shape
    net = _sequential(p, h1, h2, o, weights.negative_slope)
    _load(net, [getattr(weights, n) for n in ("w0", "b0", "w1", "b1", "w2", "b2")])
    return net


def fit_torch(xn: np.ndarray, yn: np.ndarray, params: Sequence[np.ndarray], batches: np.ndarray | None,
              lrs: np.ndarray, negative_slope: float, weight_decay: float = 0.0, threads: int = 1,
              tick: Callable[[int, float], None] | None = None) -> list[np.ndarray]:
    """``mlp_numpy.fit_numpy``'s signature and semantics, in torch (float32, ``threads`` torch threads)."""
    torch = _torch()
    p, h1 = params[0].shape
    h2, o = params[4].shape
    xt = torch.from_numpy(np.ascontiguousarray(xn, np.float32))
    yt = torch.from_numpy(np.ascontiguousarray(yn, np.float32))
    bt = None if batches is None else torch.from_numpy(np.asarray(batches, np.int64))
    old_threads = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        net = _sequential(p, h1, h2, o, negative_slope)
        _load(net, params)
        opt = torch.optim.Adam(net.parameters(), lr=float(lrs[0]) if len(lrs) else 1e-3,
                               weight_decay=weight_decay, foreach=False)
        for step in range(len(lrs)):
            for group in opt.param_groups:
                group["lr"] = float(lrs[step])
            x, y = (xt, yt) if bt is None else (xt[bt[step]], yt[bt[step]])
            loss = torch.mean((net(x) - y) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if tick is not None:
                tick(step, float(loss.detach()))
    finally:
        if threads > 0:
            torch.set_num_threads(old_threads)
    out = []
    for layer in (net[0], net[2], net[4]):
        out += [layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy().copy()]
    return out


def onnx_model_bytes(weights) -> bytes:
    """The graph of ``onnx_writer.mlp_onnx_bytes`` built and checked with the ``onnx`` package."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise GaussianHeadsError(f"the ONNX reference builder needs the 'onnx' package ({exc})") from None
    p, o = weights.n_inputs, weights.n_outputs
    inits = [numpy_helper.from_array(getattr(weights, n), name=n) for n in ("w0", "b0", "w1", "b1", "w2", "b2")]
    nodes = [
        helper.make_node("MatMul", [ONNX_INPUT, "w0"], ["m0"]),
        helper.make_node("Add", ["m0", "b0"], ["a0"]),
        helper.make_node("LeakyRelu", ["a0"], ["h1"], alpha=float(weights.negative_slope)),
        helper.make_node("MatMul", ["h1", "w1"], ["m1"]),
        helper.make_node("Add", ["m1", "b1"], ["a1"]),
        helper.make_node("LeakyRelu", ["a1"], ["h2"], alpha=float(weights.negative_slope)),
        helper.make_node("MatMul", ["h2", "w2"], ["m2"]),
        helper.make_node("Add", ["m2", "b2"], [ONNX_OUTPUT]),
    ]
    graph = helper.make_graph(
        nodes, GRAPH_NAME,
        [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, ["batch", p])],
        [helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, ["batch", o])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name=PRODUCER)
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString()
