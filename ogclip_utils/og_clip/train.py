"""Training Object-Guided CLIP: scene batches (hard negatives), InfoNCE against the captions, history."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import env, training
from ..training import contrastive_loss
from .features import FeatureCache, feature_tensors
from .model import save_checkpoint
from .retrieval import evaluate_model, make_galleries


@dataclass
class TrainConfig:
    """Trainer settings. ``hard_negatives``: batches are made of whole scenes, so the other
    objects of the same image are in-batch negatives. ``amp``: bfloat16 autocast on CUDA only."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # fraction of steps
    grad_clip: float = 1.0
    seed: int = 0
    hard_negatives: bool = True
    amp: bool = True
    progress: bool = True
    eval_every: int = 1  # epochs
    checkpoint: str | None = None  # best model (val t2i R@1) saved here when set


@dataclass
class History:
    """Per-epoch mean training loss and validation text→image R@1 (%); the best epoch."""

    loss: list[float] = field(default_factory=list)
    val_r1: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val_r1: float = float("nan")

    def plot(self, ax=None):
        """Loss and validation R@1 against the epoch (matplotlib)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3))
        ax.plot(range(1, len(self.loss) + 1), self.loss, color="tab:blue", label="train loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss", color="tab:blue")
        if self.val_r1:
            ax2 = ax.twinx()
            ax2.plot(range(1, len(self.val_r1) + 1), self.val_r1, color="tab:red", label="val t2i R@1")
            ax2.set_ylabel("val text→image R@1 (%)", color="tab:red")
        return ax


def _batches(feats: FeatureCache, cfg: TrainConfig, rng: np.random.Generator) -> list[np.ndarray]:
    if not cfg.hard_negatives:
        perm = rng.permutation(len(feats))
        return [perm[i:i + cfg.batch_size] for i in range(0, len(perm), cfg.batch_size)]
    scenes = np.unique(feats.scene_ids)
    rng.shuffle(scenes)
    by_scene = {s: np.nonzero(feats.scene_ids == s)[0] for s in scenes}
    out, cur = [], []
    for s in scenes:
        cur.extend(by_scene[s].tolist())
        if len(cur) >= cfg.batch_size:
            out.append(np.asarray(cur))
            cur = []
    if cur:
        out.append(np.asarray(cur))
    return out


class Trainer:
    """AdamW, linear warm-up + cosine decay, gradient clipping, seeded data order, bfloat16
    autocast on CUDA, progress bar, history, best checkpoint (safetensors) by validation R@1.

    ``Trainer(model, train_feats, val_feats=None, config=TrainConfig()).fit() -> History``."""

    def __init__(self, model, train: FeatureCache, val: FeatureCache | None = None, config: TrainConfig | None = None,
                 device=None):

        self.cfg = config or TrainConfig()
        if len(train) < 2:
            raise ValueError("train needs at least 2 samples")
        if self.cfg.epochs < 1 or self.cfg.batch_size < 2 or not self.cfg.lr > 0:
            raise ValueError(f"need epochs ≥ 1, batch_size ≥ 2, lr > 0; got {self.cfg}")
        self.device = env.get_device(device) if device is None or isinstance(device, str) else device
        self.model = model.to(self.device)
        self.train_feats, self.val_feats = train, val
        self.history = History()
        self.val_galleries = make_galleries(val, seed=self.cfg.seed) if val is not None else None

    def fit(self) -> History:
        from tqdm.auto import tqdm

        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        opt = torch.optim.AdamW(training.param_groups(self.model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
        steps_per_epoch = len(_batches(self.train_feats, cfg, np.random.default_rng(0)))
        total = cfg.epochs * steps_per_epoch
        warm = max(1, int(cfg.warmup * total))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: training.warmup_cosine(step, total, warm))
        use_amp = cfg.amp and self.device.type == "cuda"
        step = 0
        bar = tqdm(range(cfg.epochs), desc="OG-CLIP", disable=not cfg.progress)
        for epoch in bar:
            self.model.train()
            losses = []
            for idx in _batches(self.train_feats, cfg, rng):
                img, msk, tok, txt = feature_tensors(self.train_feats, idx, self.device)
                ids = torch.from_numpy(self.train_feats.caption_ids[idx]).to(self.device)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
                    emb = self.model(img, msk, tok)
                    loss = contrastive_loss(emb.float(), self.model.encode_text(txt).float(),
                                            self.model.logit_scale, ids)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                opt.step()
                sched.step()
                with torch.no_grad():
                    self.model.logit_scale.clamp_(0, math.log(100))
                losses.append(float(loss.detach()))
                step += 1
            self.history.loss.append(float(np.mean(losses)))
            if self.val_feats is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
                r1 = evaluate_model(self.model, self.val_feats, self.val_galleries, seed=cfg.seed).t2i_r1
                self.history.val_r1.append(r1)
                if not r1 <= self.history.best_val_r1:  # first epoch (NaN) or better
                    self.history.best_epoch, self.history.best_val_r1 = epoch, r1
                    if cfg.checkpoint:
                        save_checkpoint(self.model, cfg.checkpoint)
                bar.set_postfix(loss=f"{losses[-1]:.3f}", val_r1=f"{r1:.1f}")
        if cfg.checkpoint and self.val_feats is None:
            save_checkpoint(self.model, cfg.checkpoint)
        return self.history
