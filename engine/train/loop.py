"""The training loop: one ``Trainer`` per process (torchrun starts several; rank 0 logs and writes).

Each step: (1) generator update — fakes rendered from the real batch's head parameters and
cameras with fresh z, scored by both discriminators (frozen), non-saturating loss; (2)
discriminator update on real and fake; (3) every ``r1_interval`` steps lazy R1 on real images;
(4) EMA of the generator. ``accum`` micro-batches are accumulated per update (DDP syncs only on
the last). All randomness of a step comes from a generator seeded with (seed, rank, step) and
the data order from the DistributedSampler's (seed, epoch), so resuming from a saved state
continues bit-identically on the same hardware and process count.

Outputs in ``config.out``: ``state/`` (resume), ``checkpoint/`` (the add-on's safetensors +
JSON + ONNX, ``meta.trained = true``), ``log.csv``, ``samples/step-NNNNNN.png`` (row 1 real,
row 2 the EMA generator for the same head parameters and cameras), ``tensorboard/`` (``board.py``).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import os
import signal
import time

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from ..errors import GaussianHeadsError
from ..generator.networks import build_generator
from . import ddp
from .board import open_board
from .config import TrainConfig
from .data import BatchStream, collate
from .dataset import HeadDataset
from .discriminator import build_discriminator
from .losses import augment, discriminator_loss, ema_update, generator_loss, r1_penalty
from .model import PARAM_KEYS, GeneratorStep, TrainingHead
from .splat_torch import rasterize, rasterize_gsplat, sh_colours
from .state import load_state, save_state

_STEP_STREAM = 0x7A1


class Trainer:
    def __init__(self, cfg: TrainConfig, dataset: HeadDataset, model, env: ddp.DistEnv,
                 init_state: dict | None = None, init_generator=None):
        self.cfg, self.dataset, self.env = cfg, dataset, env
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        res = dataset.width
        if dataset.width != dataset.height or res < 8 or res & (res - 1):
            raise GaussianHeadsError(f"{dataset.root}: training needs square power-of-two images "
                                     f"(at least 8 px), got {dataset.width}x{dataset.height}")
        self.resolution, dev = res, env.device
        use_gsplat = cfg.backend == "gsplat" or (cfg.backend == "auto" and dev.type == "cuda")
        if use_gsplat and dev.type != "cuda":
            raise GaussianHeadsError("--backend gsplat needs a CUDA device")
        self.backend = "gsplat" if use_gsplat else "torch"
        self.amp = cfg.amp and dev.type == "cuda"
        self.head = TrainingHead(model, cfg.generator).to(dev)
        self.G = (init_generator or build_generator(cfg.generator, seed=cfg.seed)).to(dev).train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.D = build_discriminator(res, cfg.d_channel_base, cfg.d_channel_max, cfg.seed).to(dev).train()
        self.step_module = GeneratorStep(self.G, amp=self.amp)
        if env.distributed:
            ids = [dev.index] if dev.type == "cuda" else None
            self.G_train = DDP(self.step_module, device_ids=ids)
            self.D_train = DDP(self.D, device_ids=ids)
        else:
            self.G_train, self.D_train = self.step_module, self.D
        r1c = cfg.r1_interval / (cfg.r1_interval + 1)  # StyleGAN2's lazy-regularisation correction
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.g_lr, betas=(0.0, cfg.beta2), eps=1e-8)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.d_lr * r1c, betas=(0.0, cfg.beta2 ** r1c),
                                      eps=1e-8)
        self.step, self.elapsed = 0, 0.0
        position = 0
        if init_state is not None:
            load_state(init_state, self.modules(), {"opt_g": self.opt_g, "opt_d": self.opt_d})
            self.step, position, self.elapsed = init_state["step"], init_state["position"], init_state.get("elapsed", 0.0)
        self.stream = BatchStream(dataset, cfg.batch, env.rank, env.world_size, cfg.seed, dev, position,
                                  workers=cfg.workers)
        self.board = None                           # TensorBoard writer of rank 0 while run() runs
        self.sampled_step = -1                      # step of the last sample grid written
        self.stop_requested = False
        self.log_rows: list[dict] = []

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"G": self.G, "G_ema": self.G_ema, "D": self.D}

    # -- forward pieces -----------------------------------------------------------------------------
    def _autocast(self):
        if self.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def render(self, net, batch: dict, z: torch.Tensor) -> torch.Tensor:
        """Fakes [B, 3, H, W] from ``net`` (GeneratorStep, DDP or not) for the batch's params and cameras."""
        head, cfg, res = self.head, self.cfg, self.resolution
        params = {k: batch[k] for k in PARAM_KEYS}
        attributes, residuals = net(z, head.shape_maps(batch["shape"]), head.condition(batch["expr"], batch["jaw"]))
        means, covs, sh, opac = head.gaussians(attributes, residuals, head.vertices(params))
        bg = tuple(float(v) for v in self.dataset.background)
        if self.backend == "gsplat":
            rgb, _ = rasterize_gsplat(means, covs, sh, opac, batch["world_to_cam"], batch["intrinsics"], res, res, bg,
                                      cfg.generator.sh_degree)
        else:
            colours = sh_colours(sh, means, batch["world_to_cam"], cfg.generator.sh_degree)
            rgb, _ = rasterize(means, covs, colours, opac, batch["world_to_cam"], batch["intrinsics"], res, res, bg,
                               window=cfg.window)
        return rgb

    def cue(self, batch: dict) -> torch.Tensor:
        return self.head.geometry_cue({k: batch[k] for k in PARAM_KEYS}, batch["world_to_cam"], batch["intrinsics"],
                                      self.resolution, self.resolution)

    def _z(self, gen: torch.Generator, n: int) -> torch.Tensor:
        return torch.randn(n, self.cfg.generator.z_dim, generator=gen).to(self.env.device)

    # -- one optimisation step -------------------------------------------------------------------
    def train_step(self) -> dict:
        cfg, env = self.cfg, self.env
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.seed, env.rank, self.step,
                                                                          _STEP_STREAM]).generate_state(1)[0]))
        batches = [self.stream.next() for _ in range(cfg.accum)]
        for b in batches:
            b["cue"] = self.cue(b)
        stats = {"loss_g": 0.0, "loss_d": 0.0, "d_real": 0.0, "d_fake": 0.0, "r1": float("nan")}

        def syncing(module, k):
            return module.no_sync() if env.distributed and k < cfg.accum - 1 else contextlib.nullcontext()

        # (1) generator
        self.D.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        for k, b in enumerate(batches):
            with syncing(self.G_train, k):
                fake = self.render(self.G_train, b, self._z(gen, cfg.batch))
                with self._autocast():
                    logits = self.D(*augment(fake, b["cue"], cfg.augment_p, gen))
                loss = generator_loss(tuple(lg.float() for lg in logits))
                (loss / cfg.accum).backward()
            stats["loss_g"] += loss.item() / cfg.accum
        self.opt_g.step()
        self.D.requires_grad_(True)

        # (2) discriminator
        self.opt_d.zero_grad(set_to_none=True)
        for k, b in enumerate(batches):
            with torch.no_grad():
                fake = self.render(self.step_module, b, self._z(gen, cfg.batch))
            real_img, real_cue = augment(b["image"], b["cue"], cfg.augment_p, gen)
            fake_img, fake_cue = augment(fake, b["cue"], cfg.augment_p, gen)
            with syncing(self.D_train, k):
                with self._autocast():
                    real_logits, fake_logits = self.D_train(real_img, real_cue, fake_img, fake_cue)
                real_logits = tuple(lg.float() for lg in real_logits)
                fake_logits = tuple(lg.float() for lg in fake_logits)
                loss = discriminator_loss(real_logits, fake_logits)
                (loss / cfg.accum).backward()
            stats["loss_d"] += loss.item() / cfg.accum
            stats["d_real"] += float(sum(lg.mean().item() for lg in real_logits)) / cfg.accum
            stats["d_fake"] += float(sum(lg.mean().item() for lg in fake_logits)) / cfg.accum
        self.opt_d.step()

        # (3) lazy R1 on real images (the gradient is taken before augmentation)
        if cfg.r1_gamma > 0 and self.step % cfg.r1_interval == 0:
            self.opt_d.zero_grad(set_to_none=True)
            total = 0.0
            for k, b in enumerate(batches):
                real = b["image"].detach().requires_grad_(True)
                with syncing(self.D_train, k):
                    logits = self.D_train(*augment(real, b["cue"], cfg.augment_p, gen))
                    penalty = r1_penalty(real, tuple(lg.float() for lg in logits))
                    # + 0 x logits: the last biases get a (zero) gradient too, as DDP expects of every parameter
                    loss = penalty * (cfg.r1_gamma / 2) * cfg.r1_interval + 0.0 * sum(lg.sum() for lg in logits)
                    (loss / cfg.accum).backward()
                total += penalty.item() / cfg.accum
            self.opt_d.step()
            stats["r1"] = total

        # (4) EMA (rank 0's tracked w average is the one every rank keeps, as DDP's buffer broadcast does)
        if env.distributed:
            for buf in self.G.buffers():
                torch.distributed.broadcast(buf, 0)
        ema_update(self.G_ema, self.G, cfg.ema_beta)
        self.step += 1
        for key in ("loss_g", "loss_d", "d_real", "d_fake"):
            if not np.isfinite(stats[key]):
                raise GaussianHeadsError(f"training diverged at step {self.step}: {key} = {stats[key]} "
                                         "(lower the learning rates or raise r1_gamma)")
        return stats

    # -- outputs (rank 0) -----------------------------------------------------------------------
    def write_state(self) -> None:
        cfg = self.cfg
        if self.env.is_main:
            save_state(os.path.join(cfg.out, "state"), step=self.step, position=self.stream.position,
                       config_dict=cfg.to_dict(), world_size=self.env.world_size,
                       head_model=self.dataset.model_info, dataset=self.dataset.description, elapsed=self.elapsed,
                       modules=self.modules(), optimizers={"opt_g": self.opt_g, "opt_d": self.opt_d})
        ddp.barrier(self.env)

    def write_checkpoint(self) -> str:
        from ..generator.checkpoint import save_checkpoint

        cfg, path = self.cfg, os.path.join(self.cfg.out, "checkpoint")
        if self.env.is_main:
            ema = copy.deepcopy(self.G_ema).cpu().eval()
            meta = {"trained": True, "step": self.step, "dataset": self.dataset.description,
                    "dataset_path": os.path.abspath(self.dataset.root),
                    "images_seen": self.step * cfg.batch * cfg.accum * self.env.world_size,
                    "train_config": cfg.to_dict()}
            save_checkpoint(ema, path, meta, onnx=cfg.onnx)
            if self.board is not None:
                self.board.flush()
        ddp.barrier(self.env)
        return path

    @torch.no_grad()
    def sample_grid(self, count: int = 8) -> np.ndarray:
        """[2 H, count W, 3] uint8: ``count`` training items spread over the split (row 1) and G_ema for them (row 2)."""
        train = self.dataset.indices(0)
        idx = train[np.linspace(0, len(train) - 1, min(count, len(train))).astype(np.int64)]
        batch = collate(self.dataset, idx, self.env.device)
        z = self._z(torch.Generator().manual_seed(self.cfg.seed), len(idx))
        fake = self.render(GeneratorStep(self.G_ema, amp=self.amp), batch, z)
        rows = [torch.cat(list(x.clamp(0, 1)), dim=2) for x in (batch["image"], fake)]
        grid = torch.cat(rows, dim=1).permute(1, 2, 0).cpu().numpy()
        return (grid * 255 + 0.5).astype(np.uint8)

    def write_samples(self) -> None:
        self.sampled_step = self.step
        if self.env.is_main:
            from PIL import Image

            folder = os.path.join(self.cfg.out, "samples")
            os.makedirs(folder, exist_ok=True)
            grid = self.sample_grid()
            Image.fromarray(grid).save(os.path.join(folder, f"step-{self.step:06d}.png"))
            if self.board is not None:
                self.board.image(self.step, grid)

    def _log(self, stats: dict, rate: float) -> None:
        row = {"step": self.step, "elapsed_s": round(self.elapsed, 3), "steps_per_s": round(rate, 4),
               **{k: round(v, 6) for k, v in stats.items()}}
        self.log_rows.append(row)
        if self.board is not None:
            self.board.scalars(row)
        path = os.path.join(self.cfg.out, "log.csv")
        new = not os.path.exists(path)
        with open(path, "a", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def weights_digest(self) -> list[str]:
        """SHA-256 (first 16 hex digits) of G, G_ema and D on every rank, gathered: DDP keeps them equal."""
        import hashlib

        h = hashlib.sha256()
        for name, module in self.modules().items():
            for key, value in sorted(module.state_dict().items()):
                h.update(f"{name}.{key}".encode())
                h.update(value.detach().cpu().contiguous().numpy().tobytes())
        mine = int.from_bytes(h.digest()[:8], "little", signed=True)
        if not self.env.distributed:
            return [f"{mine & (2**64 - 1):016x}"]
        t = torch.tensor([mine], dtype=torch.int64, device=self.env.device)
        gathered = [torch.zeros_like(t) for _ in range(self.env.world_size)]
        torch.distributed.all_gather(gathered, t)
        return [f"{int(g.item()) & (2**64 - 1):016x}" for g in gathered]

    # -- the loop -----------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        self.stop_requested = True

    def run(self, progress: bool = True) -> dict:
        """Train until ``steps`` (or ``seconds``), a signal, or an error; always leave a resumable state."""
        cfg, env = self.cfg, self.env
        os.makedirs(cfg.out, exist_ok=True)
        if cfg.tensorboard and env.is_main:
            self.board = open_board(cfg.out, self.step)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        bar = None
        if progress and env.is_main:
            try:
                from tqdm import tqdm

                bar = tqdm(total=cfg.steps, initial=self.step, unit="step", dynamic_ncols=True)
            except ImportError:
                bar = None
        start, start_step, reason = time.perf_counter(), self.step, "steps"
        session_base = self.elapsed
        # Adam's second moments of tiny gradients are denormal: 10x slower on a CPU. Flushing them is
        # process-wide, so it is switched off again afterwards (it breaks IEEE arithmetic for others).
        torch.set_flush_denormal(True)
        try:
            while self.step < cfg.steps:
                stats = self.train_step()
                self.elapsed = session_base + time.perf_counter() - start
                rate = (self.step - start_step) / max(time.perf_counter() - start, 1e-9)
                if env.is_main and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
                    self._log(stats, rate)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(g=f"{stats['loss_g']:.3f}", d=f"{stats['loss_d']:.3f}")
                if cfg.sample_every and self.step % cfg.sample_every == 0:
                    self.write_samples()
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                    self.write_state()
                    self.write_checkpoint()
                over_time = bool(cfg.seconds) and time.perf_counter() - start >= cfg.seconds
                if ddp.any_rank(self.stop_requested or over_time, env):
                    reason = "interrupted" if ddp.any_rank(self.stop_requested, env) else "seconds"
                    break
            self.write_state()
            checkpoint = self.write_checkpoint()
            if self.sampled_step != self.step:
                self.write_samples()
        finally:
            torch.set_flush_denormal(False)
            for s, handler in previous.items():
                signal.signal(s, handler)
            if bar is not None:
                bar.close()
            self.stream.close()
            if self.board is not None:              # also after an error: keep what was logged
                self.board.close()
                self.board = None
        return {"step": self.step, "stopped_by": reason, "checkpoint": checkpoint,
                "state": os.path.join(cfg.out, "state"), "elapsed_s": self.elapsed,
                "world_size": env.world_size, "rank_digests": self.weights_digest()}
