"""RefCOCOg (umd split) referring expressions, read from its published layout (``refs(umd).p`` + ``instances.json``).

The pickle is read with a restricted unpickler that only builds plain containers, never
arbitrary objects (:class:`_SafeUnpickler`).
"""
from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import data


@dataclass
class RefExample:
    """One RefCOCOg sentence: the image file, the sentence, the target box (x0, y0, x1, y1)."""

    image_path: Path
    sentence: str
    box: tuple[float, float, float, float]
    ref_id: int
    ann_id: int
    image_id: int
    category: str
    split: str

    def load_image(self) -> np.ndarray:
        return data.load_image(self.image_path)


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that only builds plain containers and scalars (refs(umd).p holds nothing else)."""

    def find_class(self, module, name):  # noqa: D401
        raise pickle.UnpicklingError(f"refs file wants to build {module}.{name}; refusing (only plain data is allowed)")


def _find(root: Path, names: Sequence[str]) -> Path | None:
    for n in names:
        p = root / n
        if p.exists():
            return p
    return None


def load_refcocog(root: str | Path, split: str = "val", limit: int | None = None) -> list[RefExample]:
    """Read RefCOCOg (umd split) in its published layout.

    ``root`` holds ``refs(umd).p`` and ``instances.json`` (directly or in ``refcocog/``) and
    the COCO train2014 images in ``images/train2014/``, ``train2014/`` or
    ``images/mscoco/images/train2014/`` (as with the refer toolkit). ``split``: "train",
    "val" or "test". Returns one :class:`RefExample` per sentence (boxes converted from COCO
    x, y, w, h to x0, y0, x1, y1). The pickle is read with an unpickler that refuses to
    build anything but plain data.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"RefCOCOg root {str(root)!r} is not a folder; download RefCOCOg and pass its folder")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test' (umd), got {split!r}")
    refs_p = _find(root, ["refs(umd).p", "refcocog/refs(umd).p"])
    inst_p = _find(root, ["instances.json", "refcocog/instances.json"])
    if refs_p is None or inst_p is None:
        raise FileNotFoundError(f"{root} must contain refs(umd).p and instances.json (or refcocog/ with both)")
    img_dir = _find(root, ["images/train2014", "train2014", "images/mscoco/images/train2014",
                           "../images/mscoco/images/train2014", "images"])
    if img_dir is None:
        raise FileNotFoundError(f"no COCO train2014 image folder under {root} (expected images/train2014/)")
    with open(refs_p, "rb") as f:
        try:
            refs = _SafeUnpickler(f, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError) as exc:
            raise ValueError(f"{refs_p} is not a valid refs pickle ({exc})") from exc
    inst = json.loads(inst_p.read_text())
    anns = {a["id"]: a for a in inst.get("annotations", [])}
    imgs = {i["id"]: i for i in inst.get("images", [])}
    cats = {c["id"]: c["name"] for c in inst.get("categories", [])}
    out: list[RefExample] = []
    for r in refs:
        if r.get("split") != split:
            continue
        a = anns.get(r["ann_id"])
        if a is None:
            raise ValueError(f"ref {r.get('ref_id')} points to annotation {r['ann_id']} missing from {inst_p.name}")
        x, y, w, h = a["bbox"]
        info = imgs.get(r["image_id"], {})
        fname = info.get("file_name") or f"COCO_train2014_{int(r['image_id']):012d}.jpg"
        for s in r.get("sentences", []):
            sent = s.get("sent") or s.get("raw") or " ".join(s.get("tokens", []))
            out.append(RefExample(img_dir / fname, str(sent), (float(x), float(y), float(x + w), float(y + h)),
                                  int(r["ref_id"]), int(r["ann_id"]), int(r["image_id"]),
                                  cats.get(r.get("category_id"), str(r.get("category_id"))), split))
            if limit is not None and len(out) >= limit:
                return out
    return out
