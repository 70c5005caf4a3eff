"""``python -m engine bench train``: does a small generator learn on the synthetic dataset in bounded time?

Builds (or reuses) a synthetic dataset, evaluates the untrained generator, trains one process for
``--seconds``, and evaluates again. One JSON object per line:

* ``dataset``: images, resolution, build time;
* ``eval`` (before and after): (a) distribution distance — SWD over Laplacian-pyramid patches
  (``metrics.swd``) between ``--eval-count`` training images and EMA-generator renders for the
  same head parameters and cameras (fresh z); (b) expression control on the held-out expressions
  (never in the training split): the generator is fitted to each held-out subject's neutral image
  and posed with ψ; in the region the expression changes, is its render closer to the dataset's
  render of ψ than the fitted neutral render (``expression_eval``: gain, change cosine)? Also the
  SWD of fresh-z renders with ψ and at neutral to the dataset's ψ renders (``expression_swd``);
* ``train``: steps, steps/s, wall and process CPU seconds, load average (1, 5, 15 min);
* ``gpu``: steps/s with gsplat at 512² when torch sees CUDA, else the reason it was skipped.

Sample grids (row 1 dataset, row 2 generator, same parameters and cameras) are written to
``--out``/before.png and after.png, the fitted held-out subjects (rows: dataset neutral, dataset ψ,
fitted neutral, fitted posed with ψ) to expression_before.png and expression_after.png.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time

import torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="dataset folder (default: build the synthetic one in --out)")
    parser.add_argument("--out", default="runs/bench_train", help="run folder")
    parser.add_argument("--seconds", type=float, default=600.0, help="training wall time")
    parser.add_argument("--identities", type=int, default=24)
    parser.add_argument("--views", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--heldout-identities", type=int, default=24,
                        help="identities rendered at neutral and with each held-out expression")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=None, help="generator and discriminator learning rate "
                                                                  "(default: TrainConfig's)")
    parser.add_argument("--gaussians", type=int, default=None, help="Gaussians per identity (default: TrainConfig's)")
    parser.add_argument("--eval-count", type=int, default=96, help="images per SWD set")
    parser.add_argument("--inversion-steps", type=int, default=200,
                        help="Adam steps fitting each held-out subject for the expression measure (0: skip it)")
    parser.add_argument("--inversion-subjects", type=int, default=None, help="held-out subjects fitted (default all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu-steps", type=int, default=20, help="timed steps of the CUDA line (when CUDA exists)")


def _print(kind: str, **fields) -> None:
    print(json.dumps({"bench": "train", "kind": kind, **fields}), flush=True)


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


@torch.no_grad()
def evaluate(trainer, eval_count: int, seed: int = 1, inversion_steps: int = 200, max_subjects: int | None = None,
             picture: str | None = None) -> dict:
    from .data import collate
    from .dataset import SPLIT_TRAIN
    from .expression_eval import expression_control, heldout_pairs
    from .metrics import swd
    from .model import GeneratorStep

    ds, net = trainer.dataset, GeneratorStep(trainer.G_ema, amp=trainer.amp)
    gen = torch.Generator().manual_seed(seed)
    train_idx = ds.indices(SPLIT_TRAIN)
    pick = train_idx[torch.randperm(len(train_idx), generator=gen)[:eval_count].numpy()]
    reals, fakes = [], []
    for start in range(0, len(pick), 16):
        batch = collate(ds, pick[start:start + 16], trainer.env.device)
        reals.append(batch["image"])
        fakes.append(trainer.render(net, batch, trainer._z(gen, len(batch["image"]))).clamp(0, 1))
    real, fake = torch.cat(reals), torch.cat(fakes)
    out = {"swd": swd(real, fake, seed=seed)}
    neutral_rows, expr_rows, _ = heldout_pairs(ds)
    if len(expr_rows):
        b_expr, b_neutral = collate(ds, expr_rows, trainer.env.device), collate(ds, neutral_rows, trainer.env.device)
        z = trainer._z(gen, len(expr_rows))
        g_expr = trainer.render(net, b_expr, z).clamp(0, 1)
        g_neutral = trainer.render(net, b_neutral, z).clamp(0, 1)
        d_expr = b_expr["image"]
        out["expression_swd"] = {
            "swd_generator_psi_to_data_psi": swd(d_expr, g_expr, seed=seed)["mean"],
            "swd_generator_neutral_to_data_psi": swd(d_expr, g_neutral, seed=seed)["mean"],
            "pairs": int(len(expr_rows)),
        }
    if inversion_steps:
        out["expression"] = expression_control(trainer, steps=inversion_steps, max_subjects=max_subjects,
                                               picture=picture)
    return out


def _evaluate(trainer, args, when: str) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    out = evaluate(trainer, args.eval_count, inversion_steps=args.inversion_steps, max_subjects=args.inversion_subjects,
                   picture=os.path.join(args.out, f"expression_{when}.png"))
    return {**out, "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1)}


def _grid(trainer, path: str) -> None:
    from PIL import Image

    Image.fromarray(trainer.sample_grid()).resize((trainer.resolution * 8 * 2, trainer.resolution * 2 * 2),
                                                   Image.NEAREST).save(path)


def _gpu_line(args) -> None:
    """steps/s at 512² with gsplat on CUDA (the paper's render size), or why it was skipped."""
    from ..head_model import load_head_model
    from . import ddp
    from .config import TrainConfig
    from .dataset import open_dataset
    from .loop import Trainer
    from .synthetic import SyntheticConfig, build_synthetic

    if not torch.cuda.is_available():
        _print("gpu", skipped="torch sees no CUDA device on this machine")
        return
    if importlib.util.find_spec("gsplat") is None:
        _print("gpu", skipped="gsplat is not installed")
        return
    data = os.path.join(args.out, "dataset_512")
    if not os.path.exists(os.path.join(data, "dataset.json")):
        build_synthetic(data, SyntheticConfig(identities=2, views=8, resolution=512, heldout_identities=0))
    ds = open_dataset(data)
    cfg = TrainConfig(data=data, out=os.path.join(args.out, "run_gpu"), batch=args.batch, steps=args.gpu_steps,
                      sample_every=0, checkpoint_every=0, onnx=False, device="cuda", backend="gsplat")
    cfg = cfg.replace(generator=cfg.generator.replace(head_model=ds.model_info["spec"], uv_resolution=256,
                                                      n_gaussians=65536, channel_base=8192, channel_max=256,
                                                      deform_resolution=64))
    trainer = Trainer(cfg, ds, load_head_model(ds.model_info["spec"]), ddp.setup("cuda"))
    trainer.train_step()                                     # gsplat's first call builds its kernels
    torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(cfg.steps - 1):
        trainer.train_step()
    torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    trainer.stream.close()
    _print("gpu", device=torch.cuda.get_device_name(0), resolution=512, batch=cfg.batch,
           n_gaussians=cfg.generator.n_gaussians, uv_resolution=256, steps=cfg.steps - 1,
           steps_per_s=round((cfg.steps - 1) / wall, 3), wall_s=round(wall, 2), cpu_s=round(cpu, 2),
           amp=trainer.amp, load=_load())


def run(args: argparse.Namespace) -> int:
    from ..head_model import load_head_model
    from . import ddp
    from .config import TrainConfig
    from .dataset import open_dataset
    from .loop import Trainer
    from .synthetic import SyntheticConfig, build_synthetic

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    data = args.data or os.path.join(args.out, "dataset")
    t0, c0 = time.perf_counter(), time.process_time()
    if not os.path.exists(os.path.join(data, "dataset.json")):
        build_synthetic(data, SyntheticConfig(identities=args.identities, views=args.views, resolution=args.resolution,
                                              heldout_identities=args.heldout_identities))
    ds = open_dataset(data)
    _print("dataset", path=data, images=len(ds), resolution=ds.width, description=ds.description,
           wall_s=round(time.perf_counter() - t0, 1), cpu_s=round(time.process_time() - c0, 1), load=_load())
    model = load_head_model(ds.model_info["spec"])
    cfg = TrainConfig(data=data, out=os.path.join(args.out, "run"), batch=args.batch, steps=10 ** 9,
                      seconds=args.seconds, sample_every=0, checkpoint_every=0, log_every=10,
                      threads=args.threads)
    if args.lr:
        cfg = cfg.replace(g_lr=args.lr, d_lr=args.lr)
    gen_changes = {"head_model": ds.model_info["spec"]}
    if args.gaussians:
        gen_changes["n_gaussians"] = args.gaussians
    cfg = cfg.replace(generator=cfg.generator.replace(**gen_changes))
    env = ddp.setup("cpu")
    trainer = Trainer(cfg, ds, model, env)
    _grid(trainer, os.path.join(args.out, "before.png"))
    _print("eval", when="before", step=0, **_evaluate(trainer, args, "before"))
    t0, c0, load0 = time.perf_counter(), time.process_time(), _load()
    result = trainer.run(progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    _print("train", steps=result["step"], wall_s=round(wall, 1), cpu_s=round(cpu, 1),
           steps_per_s=round(result["step"] / result["elapsed_s"], 4), batch=cfg.batch, resolution=ds.width,
           g_lr=cfg.g_lr, d_lr=cfg.d_lr,
           n_gaussians=cfg.generator.n_gaussians, load_before=load0, load_after=_load(), threads=args.threads,
           checkpoint=result["checkpoint"])
    _grid(trainer, os.path.join(args.out, "after.png"))
    _print("eval", when="after", step=result["step"], **_evaluate(trainer, args, "after"))
    _gpu_line(args)
    return 0
