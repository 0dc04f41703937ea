"""Object-Guided CLIP: an object embedding steered by a mask, computed on the whole image.

"a red circle" is decided by the object's own pixels: cut the object out (a masked crop) and
a frozen CLIP reads it. "the red circle left of the blue star", in a scene with two red
circles, is not: the masked crops of the two circles look the same, and a global embedding
does not know which object is meant. Object-Guided CLIP keeps both — the mask says *which*
object, the whole image says *where* — and is trained contrastively against captions.

Modules, in import order (each imports only the ones before it):

- :mod:`.samples` — a point inside a mask, the segmenter's mask for a point, COCO polygons;
- :mod:`.context` — the context task (relational and attribute captions on shapes-world
  scenes) and within-scene accuracy;
- :mod:`.folder` — the seeds' JSON dataset folder (``train --data-path``), COCO in real mode;
- :mod:`.features` — frozen CLIP patch tokens;
- :mod:`.guided` — the model (:class:`GuidedCLIP`, late or early fusion), its checkpoints,
  :func:`load_pretrained`, and the seeds' point-prompted interface;
- :mod:`.guided_train` — cached inputs and the trainer;
- :mod:`.context_eval` — within-scene accuracy, gallery R@K, the frozen-CLIP baselines;
- :mod:`.recipe` — the committed checkpoints' recipe, the ablations, the table.
"""
from ..arrays import masked_crop  # noqa: F401  (the masked-crop baseline; og_clip.masked_crop, as before)
from ..training import contrastive_loss  # noqa: F401  (og_clip.contrastive_loss, as before)
from . import context  # noqa: F401
from .samples import COCO_HOWTO, coco_val2017, interior_point, polygon_mask, segment_point  # noqa: F401
from .context import (HFLIP, KINDS, TEST_SEED_BASE, TRAIN_SEED_BASE, VFLIP, ContextSample, attribute_caption, mirrored,  # noqa: F401
                      context_sample, context_samples, parse_relation, relational_caption, segmenter_masks,
                      with_relation, within_scene_accuracy)
from .folder import FolderError, coco_samples, read_folder, write_folder  # noqa: F401
from .features import clip_tokens  # noqa: F401
from .guided import (PRETRAINED, GuidedCLIP, GuidedConfig, PointPromptedCLIP, create_object_guided_clip,  # noqa: F401
                     load_guided, load_pretrained, mask_channels, save_guided)
from .guided_train import (ContextData, ContextHistory, ContextTrainer, TrainSettings, object_scores,  # noqa: F401
                           prepare_data, within_scene)
from .context_eval import (BASELINES, VISUAL_PROMPTS, ContextReport, baseline_scores, context_galleries,  # noqa: F401
                           evaluate_baseline, evaluate_model, gallery_retrieval, mask_quality)
from .recipe import RECIPE, VARIANTS, Lesson, Run, Table, lesson, baseline_table, evaluate_run, save_run, test_samples, train_run, train_samples  # noqa: F401
