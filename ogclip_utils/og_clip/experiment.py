"""The ablation experiment: every variant trained over several seeds, reported as mean ± std."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from .features import FeatureCache
from .model import model_for
from .retrieval import RetrievalReport, evaluate_baseline, evaluate_model, make_galleries
from .train import History, TrainConfig, Trainer


VARIANTS: dict[str, dict] = {
    "OG-CLIP": {},
    "no mask branch": {"use_mask": False},
    "no object branch": {"use_object": False},
    "no CLIP branch": {"use_clip": False},
}


@dataclass
class Experiment:
    """Reports per method and seed (``reports[method][i]``), trained models of the last seed, histories."""

    reports: dict[str, list[RetrievalReport]]
    histories: dict[str, list[History]]
    models: dict
    seeds: tuple[int, ...]

    def table(self, keys: Sequence[str] = ("t2i_r1", "t2i_r5", "i2t_r1", "t2i_scene_r1", "mean_rank")) -> str:
        """Markdown table of mean ± std over seeds (one decimal)."""
        head = "| method | " + " | ".join(keys) + " |"
        lines = [head, "|" + "---|" * (len(keys) + 1)]
        for name, reps in self.reports.items():
            cells = []
            for k in keys:
                v = np.asarray([getattr(r, k) for r in reps])
                cells.append(f"{v.mean():.1f} ± {v.std():.1f}" if len(v) > 1 else f"{v.mean():.1f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def mean(self, method: str, key: str = "t2i_r1") -> float:
        return float(np.mean([getattr(r, key) for r in self.reports[method]]))


def run_experiment(train: FeatureCache, test: FeatureCache, seeds: Sequence[int] = (0, 1, 2),
                   variants: dict[str, dict] | None = None, config: TrainConfig | None = None,
                   baselines: bool = True, **model_kwargs) -> Experiment:
    """Train every variant for every seed on ``train``, evaluate on ``test`` (same galleries for
    all methods), and evaluate the frozen-CLIP baselines. Deterministic for given seeds."""
    variants = VARIANTS if variants is None else variants
    config = config or TrainConfig()
    reports: dict[str, list[RetrievalReport]] = {}
    histories: dict[str, list[History]] = {}
    models: dict = {}
    galleries = make_galleries(test, seed=0)
    if baselines:
        reports["CLIP global (frozen)"] = [evaluate_baseline(test, "global", galleries, seed=s) for s in seeds]
        reports["CLIP masked crop (frozen)"] = [evaluate_baseline(test, "masked_crop", galleries, seed=s) for s in seeds]
    for name, kw in variants.items():
        for s in seeds:
            torch.manual_seed(s)
            model = model_for(train, **{**model_kwargs, **kw})
            cfg = TrainConfig(**{**asdict(config), "seed": int(s)})
            hist = Trainer(model, train, None, cfg).fit()
            reports.setdefault(name, []).append(evaluate_model(model, test, galleries, seed=s))
            histories.setdefault(name, []).append(hist)
            models[name] = model
    return Experiment(reports, histories, models, tuple(int(s) for s in seeds))
