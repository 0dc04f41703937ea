"""Training and measuring Object-Guided CLIP on the context task.

- :func:`prepare_data` — everything frozen, computed once per scene: CLIP tokens of the image
  as it is and mirrored (left–right, up–down), the branch inputs, every object's mask and its
  frozen masked-crop embedding;
- :class:`ContextTrainer` — AdamW with warm-up + cosine; the loss is ½ InfoNCE over the batch
  + 1.0 × within-scene cross-entropy (the caption against every object of its scene: the
  same-class distractor is the hard negative) + 0.5 × relation negatives (the target against
  its caption with each of the four relation words); flips swap the relation word;
- :func:`within_scene` — the validation measure during training (the full report lives in
  :mod:`.context_eval`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import data
from ..arrays import masked_crop, resize_float, resize_rgb
from ..training import contrastive_loss, param_groups, warmup_cosine
from .context import HFLIP, VFLIP, ContextSample, parse_relation, with_relation, within_scene_accuracy
from .features import clip_tokens, token_dim
from .guided import GuidedCLIP

FLIPS = ("none", "h", "v")


def _caption_variants(s: ContextSample) -> list[str]:
    """The caption as it is, for the left–right mirror and for the up–down mirror."""
    if s.relation is None:
        return [s.caption] * 3
    return [s.caption, with_relation(s.caption, HFLIP[s.relation]), with_relation(s.caption, VFLIP[s.relation])]


@dataclass
class ContextData:
    """Frozen inputs of N samples, K = the most objects in a scene.

    tokens V×N×G×G×D float16 (V = 3: as is, left–right and up–down mirrored; D = 0 when not
    computed); images N×3×B×B float32 (CLIP-normalised, B = branch side); masks N×K×B×B float32;
    full N×3×S×S and full_masks N×K×S×S float16 (early fusion only, else None); crop_emb
    N×K×E float32 (frozen masked crop; zeros when not computed); n_objects N; captions N×3
    (the caption under each mirror)."""

    samples: list[ContextSample]
    tokens: np.ndarray
    images: np.ndarray
    masks: np.ndarray
    crop_emb: np.ndarray
    n_objects: np.ndarray
    captions: list[list[str]]
    full: np.ndarray | None = None
    full_masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.samples)


def prepare_data(samples: Sequence[ContextSample], clip, branch: int | None = None, tokens: bool = True, crops: bool = True,
                 full: bool = False, token_source: str = "block_input", batch: int = 512,
                 progress: bool = False) -> ContextData:
    """Compute :class:`ContextData` for ``samples`` with the frozen ``clip`` (a ClipBundle, or a
    :class:`GuidedCLIP`, whose configuration then decides what is needed).

    ``branch``: side of the object and mask branch inputs (default 4 × the token grid);
    ``tokens``: CLIP patch tokens from ``token_source`` (late fusion with the CLIP branch); ``crops``: frozen
    masked-crop embeddings (the residual); ``full``: the images and masks at CLIP's input size
    (early fusion). One superset serves every ablation."""
    if isinstance(clip, GuidedCLIP):
        cfg = clip.config
        branch, clip, token_source = cfg.branch, clip.bundle, cfg.tokens
        tokens, crops, full = cfg.fusion == "late" and cfg.use_clip, cfg.use_crop, cfg.fusion == "early"
    if len(samples) == 0:
        raise ValueError("samples is empty: render some with og_clip.context_samples(...)")
    bundle = clip
    G = int(bundle.model.visual.grid_size[0])
    S, B, K = bundle.image_size, int(branch or 4 * G), max(len(s.names) for s in samples)
    n = len(samples)
    E = int(bundle.model.text_projection.shape[-1])
    D = token_dim(bundle, token_source)
    tok = np.zeros((3, n, G, G, D) if tokens else (3, n, 0, 0, 0), np.float16)
    images = np.zeros((n, 3, B, B), np.float32)
    masks = np.zeros((n, K, B, B), np.float32)
    crop = np.zeros((n, K, E), np.float32)
    big_all = np.zeros((n, 3, S, S), np.float16) if full else None
    fmasks = np.zeros((n, K, S, S), np.float16) if full else None
    rng = range(0, n, batch)
    if progress:
        from tqdm.auto import tqdm
        rng = tqdm(rng, desc="frozen CLIP features")
    for i in rng:
        chunk = samples[i:i + batch]
        sl = slice(i, i + len(chunk))
        big = np.stack([resize_rgb(s.image, S) for s in chunk])
        if tokens:
            tok[0, sl] = clip_tokens(bundle, big, source=token_source)
            tok[1, sl] = clip_tokens(bundle, np.ascontiguousarray(big[:, :, ::-1]), source=token_source)
            tok[2, sl] = clip_tokens(bundle, np.ascontiguousarray(big[:, ::-1]), source=token_source)
        if full:
            big_all[sl] = bundle.preprocess(big).float().numpy()
        images[sl] = bundle.preprocess(np.stack([resize_rgb(s.image, B) for s in chunk])).float().numpy()
        views, where = [], []
        for j, s in enumerate(chunk):
            for k, m in enumerate(s.masks):
                masks[i + j, k] = np.clip(resize_float(m, B), 0, 1)
                if full:
                    fmasks[i + j, k] = np.clip(resize_float(m, S), 0, 1)
                if crops:
                    views.append(masked_crop(s.image, m, S))
                    where.append((i + j, k))
        if views:
            emb = bundle.encode_images(np.stack(views)).numpy()
            for (a, k), e in zip(where, emb):
                crop[a, k] = e
    return ContextData(list(samples), tok, images, masks, crop, np.asarray([len(s.names) for s in samples]),
                       [_caption_variants(s) for s in samples], big_all, fmasks)


def _flip(x: torch.Tensor, v: int) -> torch.Tensor:
    return x if v == 0 else torch.flip(x, (-1,) if v == 1 else (-2,))


def _object_batch(d: ContextData, idx: Sequence[int], flips: Sequence[int], device,
                  only_target: bool = False) -> tuple[dict, list[int]]:
    """Inputs of every object of the scenes ``idx`` (each under its mirror; only the target
    with ``only_target``), and the object counts per scene."""
    toks, ims, ms, crops, fulls, fms, counts = [], [], [], [], [], [], []
    for i, v in zip(idx, flips):
        k = int(d.n_objects[i])
        sel = [d.samples[i].target] if only_target else list(range(k))
        k = len(sel)
        counts.append(k)
        m = _flip(torch.from_numpy(d.masks[i, sel]), v)[:, None]
        ms.append(m)
        ims.append(_flip(torch.from_numpy(d.images[i]), v)[None].expand(k, -1, -1, -1))
        if d.tokens.shape[-1]:
            toks.append(torch.from_numpy(d.tokens[v, i].astype(np.float32))[None].expand(k, -1, -1, -1))
        crops.append(torch.from_numpy(d.crop_emb[i, sel]))
        if d.full is not None:
            fulls.append(_flip(torch.from_numpy(d.full[i].astype(np.float32)), v)[None].expand(k, -1, -1, -1))
            fms.append(_flip(torch.from_numpy(d.full_masks[i, sel].astype(np.float32)), v)[:, None])
    cat = (lambda xs: torch.cat(xs).to(device) if xs else None)
    return dict(tokens=cat(toks), images=cat(ims), masks=cat(ms), crop_emb=cat(crops), images_full=cat(fulls),
                masks_full=cat(fms)), counts


class _Tokens:
    """Tokenised captions, cached (captions repeat across batches)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.cache = tokenizer, {}

    def __call__(self, caps: list[str]) -> torch.Tensor:
        new = [c for c in dict.fromkeys(caps) if c not in self.cache]
        if new:
            for c, t in zip(new, self.tokenizer(new)):
                self.cache[c] = t
        return torch.stack([self.cache[c] for c in caps])


@dataclass
class TrainSettings:
    """One training run. steps × batch scenes (``relational_share`` of them relational);
    learning rates for the new layers, the text tower and the token embeddings; loss weights."""

    steps: int = 1500
    batch: int = 32
    relational_share: float = 0.8
    lr: float = 1e-3
    lr_text: float = 1e-3
    lr_tokens: float = 1e-3
    lr_clip: float = 2e-5  # early fusion: CLIP's image tower
    weight_decay: float = 0.05
    warmup: float = 0.05
    w_infonce: float = 0.5
    w_scene: float = 1.0
    w_relation: float = 0.5
    w_mirror: float = 1.0
    flips: bool = True
    seed: int = 0
    eval_every: int = 250
    threads: int | None = None


@dataclass
class ContextHistory:
    """Training curve: one row per evaluation (step, minutes, loss, relational / attribute
    within-scene accuracy on the validation samples)."""

    rows: list[dict] = field(default_factory=list)

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        st = [r["step"] for r in self.rows]
        for key, label in (("relational", "relational captions"), ("attribute", "attribute captions")):
            ax.plot(st, [100 * r[key] for r in self.rows], marker="o", label=label)
        ax.set_xlabel("training step")
        ax.set_ylabel("within-scene accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend()
        return ax


class ContextTrainer:
    """Train ``model`` on ``train`` (:class:`ContextData`), evaluating on ``val`` every
    ``settings.eval_every`` steps."""

    def __init__(self, model: GuidedCLIP, train: ContextData, val: ContextData | None = None,
                 settings: TrainSettings | None = None, progress: bool = True):
        self.model, self.train_data, self.val, self.s, self.progress = model, train, val, settings or TrainSettings(), progress
        self.tokens = _Tokens(model.bundle.tokenizer)
        kinds = np.asarray([s.kind for s in train.samples])
        self.rel_idx, self.att_idx = np.flatnonzero(kinds == "relational"), np.flatnonzero(kinds == "attribute")
        if len(self.rel_idx) + len(self.att_idx) == 0:
            raise ValueError("train holds no samples")

    def _groups(self):
        s, m = self.s, self.model
        groups = []
        head = torch.nn.ModuleDict({k: v for k, v in m.named_children() if k not in ("clip", "bundle")})
        for g in param_groups(head, s.weight_decay):
            g["lr"] = s.lr
            groups.append(g)
        extra = [p for n, p in m.named_parameters(recurse=False)]
        groups.append({"params": extra, "weight_decay": 0.0, "lr": s.lr})
        text = [p for n, p in m.clip.named_parameters() if p.requires_grad and not n.startswith("visual.")
                and n != "token_embedding.weight"]
        if text:
            groups.append({"params": text, "weight_decay": 0.0, "lr": s.lr_text})
            groups.append({"params": [m.clip.token_embedding.weight], "weight_decay": 0.0, "lr": s.lr_tokens})
        vis = [p for n, p in m.clip.named_parameters() if p.requires_grad and n.startswith("visual.")
               and "mask_embed" not in n]
        if vis:
            groups.append({"params": vis, "weight_decay": 0.0, "lr": s.lr_clip})
        for g in groups:
            g["base_lr"] = g["lr"]
        return [g for g in groups if g["params"]]

    def _batch(self, rng) -> np.ndarray:
        s = self.s
        n_rel = int(round(s.batch * s.relational_share)) if len(self.att_idx) else s.batch
        n_rel = min(n_rel, s.batch) if len(self.rel_idx) else 0
        parts = []
        if n_rel:  # with replacement only when there are fewer samples than a batch
            parts.append(rng.choice(self.rel_idx, n_rel, replace=len(self.rel_idx) < n_rel))
        if s.batch - n_rel:
            parts.append(rng.choice(self.att_idx, s.batch - n_rel, replace=len(self.att_idx) < s.batch - n_rel))
        return np.concatenate(parts)

    def loss(self, idx: np.ndarray, flips: np.ndarray) -> torch.Tensor:
        m, s, d = self.model, self.s, self.train_data
        dev = m.logit_scale.device
        inputs, counts = _object_batch(d, idx, flips, dev)
        obj = m.fused(**inputs)  # (Σ K)×E
        caps = [d.captions[i][v] for i, v in zip(idx, flips)]
        rel_caps, rel_rows = [], []
        for b, i in enumerate(idx):
            if d.samples[i].relation is not None:
                rel_caps += [with_relation(caps[b], r) for r in data.RELATIONS]
                rel_rows.append((b, data.RELATIONS.index(parse_relation(caps[b]))))
        txt = m.text(self.tokens(caps + rel_caps).to(dev))
        t_cap, t_rel = txt[:len(caps)], txt[len(caps):]
        scale = m.logit_scale.exp().clamp(max=100)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        targets = torch.as_tensor([int(st) + d.samples[i].target for st, i in zip(starts, idx)], device=dev)
        tgt = obj[targets]
        cap_ids = torch.as_tensor([hash(c) % (2 ** 31) for c in caps])
        loss = s.w_infonce * contrastive_loss(tgt, t_cap, m.logit_scale, cap_ids, max_scale=100)
        # within-scene: the caption against every object of its scene
        K = max(counts)
        logits = torch.full((len(idx), K), -1e4, device=dev)
        for b, (st, k) in enumerate(zip(starts, counts)):
            logits[b, :k] = scale * obj[st:st + k] @ t_cap[b]
        loss = loss + s.w_scene * F.cross_entropy(logits, torch.as_tensor([d.samples[i].target for i in idx], device=dev))
        if rel_rows:
            rows = torch.as_tensor([b for b, _ in rel_rows], device=dev)
            lab = torch.as_tensor([r for _, r in rel_rows], device=dev)
            rl = scale * torch.einsum("nd,nrd->nr", tgt[rows], t_rel.view(len(rel_rows), len(data.RELATIONS), -1))
            loss = loss + s.w_relation * F.cross_entropy(rl, lab)
        if s.w_mirror and rel_rows:
            loss = loss + s.w_mirror * self._mirror_loss(idx, scale, dev)
        return loss

    def _mirror_loss(self, idx: np.ndarray, scale: torch.Tensor, dev) -> torch.Tensor:
        """Mirrored-scene hard negatives: the target in its scene and in the scene mirrored along
        the relation's axis, against the caption of one of the two (left of ↔ right of)."""
        m, d = self.model, self.train_data
        rel = [i for i in idx if d.samples[i].relation is not None]
        axis = [1 if d.samples[i].relation in ("left of", "right of") else 2 for i in rel]
        pick = self._rng.integers(0, 2, len(rel))  # which view the caption describes
        views = [(0, a) if p == 0 else (a, 0) for a, p in zip(axis, pick)]
        pos_in, _ = _object_batch(d, rel, [v[0] for v in views], dev, only_target=True)
        neg_in, _ = _object_batch(d, rel, [v[1] for v in views], dev, only_target=True)
        pos, neg = m.fused(**pos_in), m.fused(**neg_in)
        txt = m.text(self.tokens([d.captions[i][v[0]] for i, v in zip(rel, views)]).to(dev))
        logits = scale * torch.stack([(pos * txt).sum(-1), (neg * txt).sum(-1)], 1)
        return F.cross_entropy(logits, torch.zeros(len(rel), dtype=torch.long, device=dev))

    def fit(self) -> ContextHistory:
        s, m = self.s, self.model
        if s.threads:
            torch.set_num_threads(int(s.threads))
        torch.manual_seed(s.seed)
        rng = self._rng = np.random.default_rng(s.seed)
        groups = self._groups()
        opt = torch.optim.AdamW(groups, betas=(0.9, 0.98), eps=1e-6)
        hist = ContextHistory()
        t0 = time.time()
        steps = range(s.steps)
        if self.progress:
            from tqdm.auto import tqdm
            steps = tqdm(steps, desc="OG-CLIP (context task)", mininterval=5)
        m.train()
        warm = max(1, int(s.warmup * s.steps))
        running = []
        for step in steps:
            f = warmup_cosine(step, s.steps, warm)
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * f
            idx = self._batch(rng)
            flips = rng.integers(0, 3, len(idx)) if s.flips else np.zeros(len(idx), int)
            loss = self.loss(idx, flips)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
            opt.step()
            running.append(float(loss.detach()))
            if self.val is not None and ((step + 1) % s.eval_every == 0 or step + 1 == s.steps):
                acc = within_scene(m, self.val)
                hist.rows.append(dict(step=step + 1, minutes=round((time.time() - t0) / 60, 2),
                                      loss=round(float(np.mean(running)), 4), **{k: round(v, 4) for k, v in acc.items()}))
                running = []
                if self.progress:
                    print(hist.rows[-1], flush=True)
                m.train()
        m.eval()
        return hist


@torch.no_grad()
def object_scores(model: GuidedCLIP, d: ContextData, batch: int = 128) -> list[np.ndarray]:
    """Per sample, the K scores (float32) of its caption against each object of its scene."""
    model.eval()
    tok = _Tokens(model.bundle.tokenizer)
    dev = model.logit_scale.device
    out = []
    for i in range(0, len(d), batch):
        idx = list(range(i, min(len(d), i + batch)))
        inputs, counts = _object_batch(d, idx, [0] * len(idx), dev)
        obj = model.fused(**inputs)
        txt = model.text(tok([d.captions[j][0] for j in idx]).to(dev))
        st = 0
        for b, k in enumerate(counts):
            out.append((obj[st:st + k] @ txt[b]).cpu().numpy())
            st += k
    return out


def _by_kind(scores: Sequence[np.ndarray], samples: Sequence[ContextSample], seed: int) -> dict[str, float]:
    out = {}
    for kind in ("relational", "attribute"):
        idx = [i for i, s in enumerate(samples) if s.kind == kind]
        if idx:
            table = {id(samples[i]): scores[i] for i in idx}
            out[kind] = within_scene_accuracy(lambda s: table[id(s)], [samples[i] for i in idx], seed)
    return out


def within_scene(model: GuidedCLIP, d: ContextData, seed: int = 0) -> dict[str, float]:
    """Within-scene accuracy of ``model`` per caption kind (``relational``, ``attribute``) on ``d``."""
    return _by_kind(object_scores(model, d), d.samples, seed)
