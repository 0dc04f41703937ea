"""The context-task recipe: the data, the training run behind the committed checkpoints, the ablations, the table.

``python -m ogclip_utils train`` runs :func:`train_run` (offline: scenes rendered from
:data:`TRAIN_SEED_BASE`; or a dataset folder), ``evaluate`` runs :func:`evaluate_run`. The
committed ``checkpoints/og-clip-context*.safetensors`` were trained with :data:`RECIPE` for
seeds 0, 1 and 2; their curve and settings are in each file's metadata.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import env, models
from .folder import coco_samples
from .samples import COCO_HOWTO, coco_val2017
from .context import TEST_SEED_BASE, TRAIN_SEED_BASE, ContextSample, context_samples
from .context_eval import BASELINES, ContextReport, context_galleries, evaluate_baseline, evaluate_model
from .guided import GuidedCLIP, GuidedConfig, load_pretrained, pretrained_path, save_guided
from .guided_train import ContextData, ContextHistory, ContextTrainer, TrainSettings, prepare_data

#: the committed checkpoints' recipe (scenes rendered at 96–160 px; held-out sets below)
RECIPE = dict(relational_scenes=8_000, attribute_scenes=3_000, steps=900, batch=32, lr=1e-3, lr_text=1e-3,
              lr_tokens=1e-3)
#: training seeds of the committed checkpoints (``guided.pretrained_path(seed)``)
PRETRAINED_SEEDS = (0, 1, 2)
#: held-out scene counts of the table (seeds from TEST_SEED_BASE; attribute scenes 1,000,000 later)
TEST_SCENES = dict(relational=200, attribute=150)
ATTRIBUTE_OFFSET = 5_000_000  # training attribute scenes start here above the relational seeds
TEST_ATTRIBUTE_OFFSET = 1_000_000

#: ablations: each switches one thing off the full model (``GuidedConfig`` fields)
VARIANTS: dict[str, dict] = {
    "OG-CLIP (late fusion)": {},
    "no CLIP tokens": {"use_clip": False},
    "no object branch": {"use_object": False},
    "no mask branch": {"use_mask": False},
    "no centroid offsets": {"use_coords": False},
    "no masked-crop residual": {"use_crop": False},
    "frozen text tower": {"train_text": False, "text_init": "pretrained"},
    "pretrained text tower, fine-tuned": {"text_init": "pretrained"},
    "end-token text pooling": {"text_pool": "eot"},
    "early fusion (Alpha-CLIP)": {"fusion": "early"},
}


def train_samples(relational: int, attribute: int, first_seed: int = TRAIN_SEED_BASE, workers: int = 2,
                  progress: bool = False) -> list[ContextSample]:
    """Training samples of the context task (deterministic from the seeds)."""
    return (context_samples(range(first_seed, first_seed + relational), "relational", workers=workers, progress=progress)
            + context_samples(range(first_seed + ATTRIBUTE_OFFSET, first_seed + ATTRIBUTE_OFFSET + attribute),
                              "attribute", workers=workers, progress=progress))


def test_samples(relational: int = TEST_SCENES["relational"], attribute: int = TEST_SCENES["attribute"],
                 first_seed: int = TEST_SEED_BASE, workers: int = 1) -> list[ContextSample]:
    """Held-out samples (seeds disjoint from every training set)."""
    return (context_samples(range(first_seed, first_seed + relational), "relational", workers=workers)
            + context_samples(range(first_seed + TEST_ATTRIBUTE_OFFSET, first_seed + TEST_ATTRIBUTE_OFFSET + attribute),
                              "attribute", workers=workers))


@dataclass
class Run:
    """One training run: the model, its curve, its settings and the wall-clock minutes."""

    model: GuidedCLIP
    history: ContextHistory
    settings: TrainSettings
    config: GuidedConfig
    minutes: float = 0.0

    def metadata(self, **extra) -> dict:
        return {"history": self.history.rows, "settings": asdict(self.settings), "config": asdict(self.config),
                "train_minutes": round(self.minutes, 2), **extra}


def train_run(clip, train: ContextData, val: ContextData | None, config: GuidedConfig | None = None,
              settings: TrainSettings | None = None, progress: bool = True) -> Run:
    """Train one :class:`GuidedCLIP` on prepared data."""
    import torch

    settings = settings or TrainSettings()
    config = config or GuidedConfig()
    torch.manual_seed(settings.seed)
    model = GuidedCLIP(clip, config)
    t0 = time.time()
    hist = ContextTrainer(model, train, val, settings, progress=progress).fit()
    return Run(model, hist, settings, config, (time.time() - t0) / 60)


def save_run(run: Run, out_dir: str | Path, name: str = "og-clip.safetensors", **extra) -> Path:
    """Write the checkpoint (safetensors, recipe and curve in its metadata) and ``history.json`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = save_guided(run.model, out_dir / name, metadata=run.metadata(**extra))
    (out_dir / (Path(name).stem + ".history.json")).write_text(json.dumps(run.metadata(**extra), indent=1))
    return path


@dataclass
class Table:
    """Reports per method over seeds (``reports[method]`` one :class:`ContextReport` per seed)."""

    reports: dict[str, list[ContextReport]] = field(default_factory=dict)

    def add(self, report: ContextReport, name: str | None = None) -> None:
        self.reports.setdefault(name or report.method, []).append(report)

    def mean(self, method: str, key: str = "relational") -> float:
        return float(np.mean([getattr(r, key) for r in self.reports[method]]))

    def std(self, method: str, key: str = "relational") -> float:
        return float(np.std([getattr(r, key) for r in self.reports[method]]))

    def format(self) -> str:
        """Markdown: within-scene accuracy (percent) on relational and attribute captions, gallery
        text→image R@1 / R@5 (percent) and mean rank; mean ± std where there are several seeds."""
        keys = (("relational", 100, "relational %"), ("attribute", 100, "attribute %"), ("t2i_r1", 1, "t2i R@1"),
                ("t2i_r5", 1, "t2i R@5"), ("t2i_mean_rank", 1, "mean rank"))
        lines = ["| method | " + " | ".join(k[2] for k in keys) + " | seeds |", "|---" * (len(keys) + 2) + "|"]
        for name, reps in self.reports.items():
            cells = []
            for key, scale, _ in keys:
                v = np.asarray([getattr(r, key) for r in reps]) * scale
                nd = 2 if key == "t2i_mean_rank" else 1
                cells.append(f"{v.mean():.{nd}f} ± {v.std():.{nd}f}" if len(v) > 1 else f"{v.mean():.{nd}f}")
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(reps)} |")
        return "\n".join(lines)


def baseline_table(clip, samples: Sequence[ContextSample], methods: Sequence[str] | None = None,
                   seed: int = 0) -> Table:
    """The frozen-CLIP baselines on ``samples`` (one row each)."""

    table = Table()
    gal = context_galleries(samples, seed=seed)
    for m in methods or BASELINES:
        table.add(evaluate_baseline(clip, samples, m, gal, seed=seed), f"frozen CLIP · {m}")
    return table


def evaluate_run(models: Sequence[GuidedCLIP], data: ContextData, name: str = "OG-CLIP", seed: int = 0,
                 table: Table | None = None) -> Table:
    """Add one row for ``models`` (one per training seed) evaluated on the same galleries."""
    table = table or Table()
    gal = context_galleries(data.samples, seed=seed)
    for m in models:
        table.add(evaluate_model(m, data, gal, name=name, seed=seed), name)
    return table


def prepared(samples: Sequence[ContextSample], clip, full: bool = False, progress: bool = False) -> ContextData:
    """:func:`prepare_data` with everything every variant reads (tokens, crops; full images for early fusion)."""
    return prepare_data(samples, clip, tokens=True, crops=True, full=full, progress=progress)


@dataclass
class Lesson:
    """What notebook 05 works with, for the mode it runs in.

    clip / segmenter: the mode's models (tiny-shapes + classical offline; ViT-B/16 + SAM2.1 in
    real mode); test: held-out samples (context task offline; COCO when it is in the cache in
    real mode, else the context task); train: samples for the in-notebook run of ``steps``
    steps (batches of ``batch`` scenes); pretrained: the committed checkpoints (offline only, one per training seed); note:
    what to expect in this mode."""

    mode: str
    clip: object
    segmenter: object
    test: list
    train: list
    steps: int
    pretrained: list
    note: str
    batch: int = 32


def lesson(mode: str | None = None) -> Lesson:
    """The mode-aware set-up of notebook 05 (see :class:`Lesson`); ``OGCLIP_SMOKE=1`` shrinks it."""

    mode = env.get_mode(mode)
    tiny = env.smoke()
    clip, seg = models.default_models(mode)
    rel, att = (8, 4) if tiny else (TEST_SCENES["relational"], TEST_SCENES["attribute"])
    train_n = (16, 8) if tiny else (1000, 300)
    steps, batch = (3, 4) if tiny else (150, 32)
    if mode == "offline":
        return Lesson(mode, clip, seg, test_samples(rel, att), train_samples(*train_n), steps,
                      [load_pretrained(seed=s) for s in PRETRAINED_SEEDS if pretrained_path(s).is_file()],
                      "offline: tiny-shapes CLIP, the classical segmenter, rendered scenes with exact ground truth", batch)
    coco = coco_val2017()
    test = coco_samples(*coco, max_images=4 if tiny else 200) if coco else []
    note = (f"real: {clip.name} and {type(seg).__name__}; " +
            ("COCO val2017 attribute captions for the measurements" if test else
             "no COCO in the cache, so the rendered context task stands in. " + COCO_HOWTO))
    if not test:
        test = test_samples(rel, att)
    return Lesson(mode, clip, seg, test, train_samples(*train_n), steps, [], note +
                  " No Object-Guided CLIP checkpoint exists for this CLIP yet: the in-notebook run is the only model.", batch)
