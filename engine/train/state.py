"""Training state on disk (resume): safetensors tensors + a JSON file, no pickles.

    state/train_state.json         {"format": "gaussian_heads.train_state", "version": 1, "step",
                                    "position", "config": TrainConfig, "world_size",
                                    "head_model": dataset.json's entry, "dataset": description,
                                    "elapsed": seconds trained}
    state/train_state.safetensors  G.* G_ema.* D.* (state dicts), opt_g.<i>.<key> and
                                   opt_d.<i>.<key> (Adam's per-parameter state)

Optimiser hyper-parameters are rebuilt from the config; only the per-parameter moments and
step counts are stored. Restored tensors are bit-identical, so a resumed run continues exactly.
"""

from __future__ import annotations

import json
import os

import torch

from ..errors import GaussianHeadsError, InputFileError

FORMAT = "gaussian_heads.train_state"
VERSION = 1
JSON_NAME = "train_state.json"
TENSORS_NAME = "train_state.safetensors"


def _flat_optimizer(prefix: str, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for i, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            out[f"{prefix}.{i}.{key}"] = value.detach().cpu().contiguous()
    return out


def _load_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            _, i, key = name.split(".", 2)
            state.setdefault(int(i), {})[key] = value
    sd["state"] = state
    opt.load_state_dict(sd)


def save_state(folder: str, *, step: int, position: int, config_dict: dict, world_size: int, head_model: dict,
               dataset: str, elapsed: float, modules: dict[str, torch.nn.Module],
               optimizers: dict[str, torch.optim.Optimizer]) -> str:
    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    tensors = {}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().cpu().contiguous()
    for name, opt in optimizers.items():
        tensors.update(_flat_optimizer(name, opt))
    tmp = os.path.join(folder, TENSORS_NAME + ".tmp")
    save_file(tensors, tmp)
    os.replace(tmp, os.path.join(folder, TENSORS_NAME))
    doc = {"format": FORMAT, "version": VERSION, "step": int(step), "position": int(position),
           "config": config_dict, "world_size": int(world_size), "head_model": head_model, "dataset": dataset,
           "elapsed": float(elapsed)}
    tmp = os.path.join(folder, JSON_NAME + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
    os.replace(tmp, os.path.join(folder, JSON_NAME))
    return folder


def read_state_json(folder: str) -> dict:
    """The state's JSON (a run folder holding ``state/`` is accepted too)."""
    if os.path.isdir(os.path.join(folder, "state")):
        folder = os.path.join(folder, "state")
    path = os.path.join(folder, JSON_NAME)
    if not os.path.isfile(path):
        raise InputFileError(folder, f"not a training state (no {JSON_NAME}); pass the run folder or its state/")
    try:
        with open(path, "rb") as fh:
            doc = json.loads(fh.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(path, f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise InputFileError(path, f"not a version-{VERSION} Gaussian Heads training state")
    for key in ("step", "position", "config", "world_size", "head_model"):
        if key not in doc:
            raise InputFileError(path, f"lacks '{key}'")
    doc["folder"] = folder
    return doc


def load_state(doc: dict, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Load the tensors of a state read by ``read_state_json`` into modules and optimisers (in place)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = os.path.join(doc["folder"], TENSORS_NAME)
    try:
        tensors = load_file(path)
    except FileNotFoundError:
        raise InputFileError(path, "missing: the training state needs it") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputFileError(path, f"truncated or corrupt ({exc})") from None
    for name, module in modules.items():
        sub = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
        try:
            module.load_state_dict(sub, strict=True)
        except RuntimeError as exc:
            raise GaussianHeadsError(f"{path}: {name} does not match this run's networks ({exc})") from None
    for name, opt in optimizers.items():
        _load_optimizer(name, opt, tensors)
