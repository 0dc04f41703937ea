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

from .. import env, models, paths
from .folder import coco_samples
from .samples import COCO_HOWTO, coco_val2017
from .context import TEST_SEED_BASE, TRAIN_SEED_BASE, ContextSample, context_samples
from .context_eval import BASELINES, ContextReport, context_galleries, evaluate_baseline, evaluate_model
from .guided import GuidedCLIP, GuidedConfig, load_guided, load_pretrained, pretrained_path, save_guided
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
    # the smoke run's sizes: ViT-B/16 encodes ~5 crops per caption and baseline on the CPU, about
    # 0.2 s each, so (8, 4) test + (16, 8) train captions took 190 of the notebook's 230 s
    rel, att = (1, 1) if tiny else (TEST_SCENES["relational"], TEST_SCENES["attribute"])
    train_n = (4, 2) if tiny else (1000, 300)
    # 60 in-notebook steps (about 45 s on 2 CPU cores; 150 took 1.9 min of CI's 20-minute budget)
    steps, batch = (3, 4) if tiny else (60, 32)
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


#: the model card of the committed checkpoints, generated by :func:`model_card`
CARD = "og-clip-context.md"


def model_card(seeds: Sequence[int] = PRETRAINED_SEEDS) -> str:
    """``checkpoints/og-clip-context.md`` generated from the committed checkpoints' own metadata
    (configuration, settings, curve, minutes) and file sizes — no number typed by hand."""
    files = [(s, pretrained_path(s)) for s in seeds if pretrained_path(s).is_file()]
    if not files:
        raise FileNotFoundError(f"no committed checkpoint among {[str(pretrained_path(s)) for s in seeds]}")
    models_ = {s: load_guided(p, device="cpu") for s, p in files}
    m0 = models_[files[0][0]]
    md, cfg = m0.metadata, m0.config
    st = md["settings"]
    head = sum(p.numel() for n, p in m0.named_parameters() if n.startswith(("fusion.", "crop_alpha")))
    text = sum(p.numel() for n, p in m0.named_parameters()
               if n.startswith(("clip.transformer.", "clip.ln_final", "clip.positional_embedding", "clip.text_projection")))
    sizes = ", ".join(f"`{p.name}` (seed {s}, {p.stat().st_size / 1e6:.1f} MB)" for s, p in files)
    share = round(100 * st["relational_share"])
    rows = "\n".join(
        f"| {s} | {r['step']} | {r['minutes']:.1f} | {r['loss']:.3f} | {100 * r['relational']:.1f} | {100 * r['attribute']:.1f} |"
        for s, m in models_.items() for r in m.metadata["history"])
    times = ", ".join(f"{m.metadata['train_minutes']:.1f} min (seed {s})" for s, m in models_.items())
    return f"""# og-clip-context — Object-Guided CLIP on the context task (notebook 05)

*Generated by `og_clip.recipe.model_card()` from the checkpoints' metadata; `tests/` checks it is current.*

- **Files**: {sizes}; seed {files[0][0]} is what `og_clip.load_pretrained()` returns.
  Each stores only what training changed on top of `tiny-shapes.safetensors` (float16), with the configuration, the training settings and the
  validation curve in its safetensors metadata (`og_clip.load_guided(path).metadata`).
- **Architecture** (`og_clip.GuidedCLIP`, {cfg.fusion} fusion): frozen {m0.bundle.name} patch
  tokens ({cfg.tokens.replace('_', ' ')}) + an object conv on the masked image + a mask conv on [mask, dx, dy]
  (offsets from the mask's centroid) → {cfg.layers} Transformer layers (width {cfg.width}, {cfg.heads} heads) → attention
  pooling → projection, plus α × the frozen masked-crop embedding (α learned from 0): {head / 1e6:.2f} M trained
  image-side parameters. Text: the CLIP's word embeddings under a {'freshly initialised' if cfg.text_init == 'scratch' else 'pretrained'}
  text Transformer ({text / 1e6:.2f} M parameters), pooled as {cfg.text_pool.replace('+', ' + ')}.
- **Data**: {md['scenes']:,} rendered scenes ({RECIPE['relational_scenes']:,} relational + {RECIPE['attribute_scenes']:,} attribute
  in `RECIPE`) from `og_clip.context.TRAIN_SEED_BASE`, ground-truth masks,{' each also seen mirrored left–right / up–down (the relation word swapped),' if st['flips'] else ''}
  the same scenes for every seed (the seed changes the initialisation and the batch order).
- **Recipe** (`og_clip.recipe.RECIPE`, `python -m ogclip_utils train --seed S`): {st['steps']} steps, batches of
  {st['batch']} scenes ({share} % relational), AdamW lr {st['lr']:g} (new layers), {st['lr_text']:g} (text Transformer),
  {st['lr_tokens']:g} (word embeddings), weight decay {st['weight_decay']:g}, {round(100 * st['warmup'])} % warm-up then cosine;
  loss {st['w_infonce']:g} × InfoNCE + {st['w_scene']:g} × within-scene cross-entropy + {st['w_relation']:g} × relation
  negatives + {st['w_mirror']:g} × mirrored-scene negatives. Wall-clock training on 2 CPU threads: {times}
  (longer when the cores were shared with other work).
- **Held-out results**: notebook 05, section 5 ({TEST_SCENES['relational']} relational + {TEST_SCENES['attribute']} attribute
  captions from `og_clip.context.TEST_SEED_BASE`). The curve below used other held-out scenes ({md['validation']});
  nothing was selected with it.

## Validation curve (within-scene accuracy, %)

| seed | step | minutes | loss | relational | attribute |
|---|---|---|---|---|---|
{rows}
"""


def write_model_card(out_dir: str | Path | None = None) -> Path:
    """Write :func:`model_card` to ``checkpoints/og-clip-context.md`` (or ``out_dir``)."""
    path = Path(out_dir or paths.CHECKPOINT_DIR) / CARD
    path.write_text(model_card())
    return path


#: the committed ablation study, written by :func:`ablate` (``python -m ogclip_utils ablate``)
ABLATIONS = "og-clip-ablations.json"


def ablate(steps: int = 300, seed: int = 0, variants: Sequence[str] | None = None, scenes: tuple[int, int] | None = None,
           test: tuple[int, int] | None = None, progress: bool = True) -> dict:
    """Train every :data:`VARIANTS` entry (or ``variants``) for ``steps`` steps from seed ``seed``
    on the recipe's scenes (``scenes`` = (relational, attribute) to shrink them) and measure it on
    the held-out set of the table. Returns the JSON :func:`save_ablations` writes: the settings
    shared by every run and one row per variant (its ``GuidedConfig`` changes, minutes, report)."""
    clip = models.clip_by_name("tiny-shapes")
    rel, att = scenes or (RECIPE["relational_scenes"], RECIPE["attribute_scenes"])
    names = list(variants or VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    early = any(VARIANTS[n].get("fusion") == "early" for n in names)
    train = prepared(train_samples(rel, att, progress=progress), clip, full=early, progress=progress)
    held = prepared(test_samples(*(test or (TEST_SCENES["relational"], TEST_SCENES["attribute"]))), clip, full=early)
    gal = context_galleries(held.samples, seed=0)
    settings = TrainSettings(steps=steps, batch=RECIPE["batch"], lr=RECIPE["lr"], lr_text=RECIPE["lr_text"],
                             lr_tokens=RECIPE["lr_tokens"], seed=seed, eval_every=steps)
    rows = []
    for name in names:
        run = train_run(clip, train, None, GuidedConfig(**VARIANTS[name]), settings, progress=progress)
        rep = evaluate_model(run.model, held, gal, name=name)
        rows.append({"variant": name, "changes": VARIANTS[name], "minutes": round(run.minutes, 2), **rep.as_dict()})
        if progress:
            print(f"{name}: relational {100 * rep.relational:.1f} %, attribute {100 * rep.attribute:.1f} %, "
                  f"{run.minutes:.1f} min", flush=True)
    import torch

    return {"settings": asdict(settings), "scenes": len(train), "held_out": len(held),
            "threads": torch.get_num_threads(), "rows": rows}


def save_ablations(result: dict, out_dir: str | Path | None = None) -> Path:
    """Write :func:`ablate`'s result as ``og-clip-ablations.json`` (atomically)."""
    path = Path(out_dir or paths.CHECKPOINT_DIR) / ABLATIONS
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(path)
    return path


def load_ablations(path: str | Path | None = None) -> tuple[Table, dict]:
    """The committed ablation study as a :class:`Table` (one row per variant) and its settings."""
    path = Path(path or paths.CHECKPOINT_DIR / ABLATIONS)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; write it with `python -m ogclip_utils ablate`")
    result = json.loads(path.read_text())
    table = Table()
    keys = ContextReport.__dataclass_fields__
    for row in result["rows"]:
        table.add(ContextReport(**{k: row[k] for k in keys}), row["variant"])
    return table, result
