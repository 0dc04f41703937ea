"""The second half of ``make demo``: the 18-step explainer on a shapes scene and on a bundled photo.

Runs offline and prints where each ``index.html`` is."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

from . import cli, data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ogclip_utils.demo_extras")
    p.add_argument("--out", default="outputs")
    a = p.parse_args(argv)
    out = Path(a.out) / "explain"
    out.mkdir(parents=True, exist_ok=True)
    scene = data.make_scene(2024, size=192, num_objects=4)
    scene_path = out / "shapes_scene.png"
    Image.fromarray(scene.image).save(scene_path)
    runs = [
        ("shapes scene", scene_path, data.CLASS_NAMES, out / "shapes_scene"),
        ("photo (chelsea; offline model: expect noise — the domain gap)", data.photo_path("chelsea"),
         data.PHOTO_VOCABULARIES["chelsea"], out / "photo_chelsea"),
    ]
    status = 0
    for title, image, vocab, dest in runs:
        rc = cli.cmd_explain(["--image", str(image), "--vocabulary", *vocab, "--output", str(dest), "--mode", "offline"])
        html = dest / "index.html"
        if rc == 0 and html.exists():
            print(f"  explainer, {title}: {html.resolve()}")
        else:
            status = 1
            print(f"  explainer, {title}: FAILED (exit {rc})", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
