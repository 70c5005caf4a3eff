"""``python -m engine train``: train the generator on a dataset folder (one process or under torchrun).

    python -m engine train --data DATASET --out runs/x [--steps 2000] [--batch 4] [--gen-uv-resolution 64] …
    python -m engine train --resume runs/x [--steps 4000]          # continue a run (bit-identical)
    python -m engine train --data DATASET --init CHECKPOINT …       # fine-tune a generator checkpoint
    torchrun --nproc_per_node 2 -m engine train --data DATASET …    # DistributedDataParallel

Every flag is a ``TrainConfig`` field (``engine/train/config.py``); ``--config FILE.json`` loads a
whole config first. Ctrl-C or SIGTERM stops after the current step and writes a resumable state.
"""

from __future__ import annotations

import argparse
import json
import os

from ..errors import GaussianHeadsError, InputFileError
from .config import TrainConfig, add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="TrainConfig JSON file (flags override it)")
    parser.add_argument("--resume", default=None, help="run folder (or its state/) to continue")
    parser.add_argument("--init", default=None, help="generator checkpoint to start from (fine-tuning)")
    parser.add_argument("--head-model", default=None,
                        help="head model to load instead of the dataset's spec (e.g. where your FLAME file is now)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    add_config_arguments(parser)


def prepare(args: argparse.Namespace, env):
    """-> (TrainConfig, HeadDataset, HeadModel, resume state doc or None, initial generator or None).

    Everything that can be wrong with the inputs is found here, before any training."""
    from ..head_model import load_head_model
    from .dataset import INDEX_NAME, check_same_model, head_model_info, open_dataset
    from .state import read_state_json

    doc = None
    if args.resume:
        doc = read_state_json(args.resume)
        cfg = config_from_args(args, base=TrainConfig.from_dict(doc["config"]))
    else:
        cfg = config_from_args(args)
    if not cfg.data:
        raise GaussianHeadsError("name the dataset folder with --data (build one with `python -m engine dataset`)")
    dataset = open_dataset(cfg.data, check_images=cfg.check_images)
    spec = args.head_model or dataset.model_info["spec"]
    try:
        model = load_head_model(spec)
    except GaussianHeadsError as exc:
        raise GaussianHeadsError(f"{os.path.join(cfg.data, INDEX_NAME)}: cannot load its head model ({exc}); "
                                 "pass --head-model PATH") from None
    check_same_model(dataset.model_info, model, os.path.join(cfg.data, INDEX_NAME), "the loaded head model")
    if not model.has_uv:
        raise GaussianHeadsError(f"head model '{model.name}' has no UV layout; the generator needs one")
    if doc is not None:
        check_same_model(doc["head_model"], model, doc["folder"], "the dataset's head model")
    generator = None
    if args.init:
        from ..generator.checkpoint import load_generator_torch

        generator, _, ckpt = load_generator_torch(args.init)
        try:
            ckpt_model = load_head_model(ckpt.config.head_model)
        except GaussianHeadsError as exc:
            raise InputFileError(ckpt.path, f"cannot load the head model it was made for ({exc})") from None
        check_same_model(head_model_info(ckpt_model, ckpt.config.head_model), model, ckpt.path,
                         "the dataset's head model")
        cfg = cfg.replace(generator=ckpt.config)
    cfg = cfg.replace(generator=cfg.generator.replace(head_model=dataset.model_info["spec"]))
    if generator is not None:
        generator.config = cfg.generator
    return cfg, dataset, model, doc, generator


def run(args: argparse.Namespace) -> int:
    from . import ddp
    from .loop import Trainer

    env = ddp.setup(args.device or "auto")
    try:
        cfg, dataset, model, doc, generator = prepare(args, env)
        trainer = Trainer(cfg, dataset, model, env, init_state=doc, init_generator=generator)
        result = trainer.run(progress=not args.no_progress)
        if env.is_main:
            print(json.dumps(result))
            if result["stopped_by"] == "interrupted":
                print(f"interrupted at step {result['step']}; continue with: python -m engine train --resume {cfg.out}")
    finally:
        ddp.cleanup(env)
    return 0
