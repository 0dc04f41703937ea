"""Object-Guided CLIP: a point-prompted object embedding trained contrastively against text.

A global CLIP embedding of a scene with several objects cannot say which object a caption
means. Object-Guided CLIP takes the image, a point on one object and the mask a promptable
segmenter returns for that point, and fuses three branches into one embedding in CLIP's
text space::

    image ──► frozen CLIP image encoder ──► patch tokens (G×G×C) ──┐
    image × mask ──► object conv (2 layers) ──► pooled to G×G ─────┼─► concat ─► 1×1 conv ─► GAP
    mask ──► mask conv (2 layers) ──► pooled to G×G ────────────────┘     (or attention pooling)
                                                                           ─► projection head ─► embedding
    caption ──► frozen CLIP text encoder (+ optional linear projection) ─► embedding

Every branch can be switched off (ablations). Training uses the bidirectional InfoNCE loss
with a learnable temperature (initialised at 0.07); frozen CLIP features are computed once
(:func:`precompute_features`) so many short runs fit on a CPU.

Data: :func:`shapes_samples` (offline: one sample per (scene, object) with a point on the
object and its caption "a red circle") and :func:`coco_object_samples` (real mode: COCO
``instances_*.json`` object–category pairs). Masks come from the segmenter given the point
(``mask_source="segmenter"``); ``mask_source="ground_truth"`` exists for ablations only and
is labelled as such in every result.

Evaluation protocol (:func:`make_galleries`, :func:`evaluate_retrieval`): captions repeat
across scenes ("a red circle" appears in many), so R@1 over one big gallery would punish a
model for ties no model can break. We split the held-out samples into galleries of whole
scenes in which every caption is unique, and compute R@K and mean rank inside each gallery
(:func:`metrics.retrieval_metrics`), averaged over queries. Because whole scenes go into a
gallery, every gallery holds several samples of the *same image* with different prompts —
the case a global embedding cannot separate. Exact score ties are broken at random (seeded),
so a method that cannot tell two samples apart scores chance between them, not zero.

Modules, in import order (each imports only the ones before it):
:mod:`.samples` (the data), :mod:`.features` (frozen CLIP features, computed once),
:mod:`.model` (the model and its checkpoints), :mod:`.retrieval` (galleries, R@K, baselines),
:mod:`.train` (the trainer), :mod:`.experiment` (variants × seeds, the ablation table).
Everything is importable from ``ogclip_utils.og_clip`` as before.
"""
from ..arrays import masked_crop  # noqa: F401  (the masked-crop baseline; og_clip.masked_crop, as before)
from ..training import contrastive_loss  # noqa: F401  (og_clip.contrastive_loss, as before)
from .samples import COCO_HOWTO, MASK_SOURCES, ObjectSample, TEST_SEED_BASE, TRAIN_SEED_BASE, coco_object_samples, coco_val2017, interior_point, segment_point, shapes_samples  # noqa: F401
from .features import FeatureCache, clip_tokens, precompute_features  # noqa: F401
from .model import ObjectGuidedCLIP, load_checkpoint, model_for, save_checkpoint  # noqa: F401
from .retrieval import RetrievalReport, embed, evaluate_baseline, evaluate_model, evaluate_retrieval, make_galleries  # noqa: F401
from .train import History, TrainConfig, Trainer  # noqa: F401
from .experiment import VARIANTS, Experiment, run_experiment  # noqa: F401
