"""The 18-step explainer on a small hand-built result (fast), HTML escaping, file-name
sanitising, the data files, and the command lines on a shapes scene."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from ogclip_utils import cli, explain

HOSTILE = "<img src=x onerror=alert(1)>"
TRAVERSAL = "../../evil/$x$ name"


def fake_result(size: int = 48):
    """A SegmentationResult-shaped object: two squares, three classes (one hostile name)."""
    H = W = size
    img = np.full((H, W, 3), 90, np.uint8)
    a = np.zeros((H, W), bool)
    a[6:20, 6:20] = True
    b = np.zeros((H, W), bool)
    b[26:42, 24:44] = True
    img[a] = (220, 30, 30)
    img[b] = (30, 30, 220)
    probs = np.full((3, H, W), 0.1, np.float32)
    probs[0] = 0.8
    probs[1][a], probs[0][a] = 0.8, 0.1
    probs[2][b], probs[0][b] = 0.7, 0.2
    probs /= probs.sum(0, keepdims=True)
    classes = ["background", "red square", HOSTILE]
    dense = SimpleNamespace(probs=probs, classes=classes, logits=np.log(probs) / 40.0, queries=classes,
                            query_to_class=np.arange(3), windows=[(0, 0, 32, 32), (16, 0, 48, 32), (0, 16, 32, 48), (16, 16, 48, 48)],
                            logit_scale=40.0)
    argmax = probs.argmax(0)
    thr = np.where((argmax > 0) & (probs.max(0) >= 0.3), argmax, -1)
    comps = np.zeros((H, W), np.int32)
    comps[a], comps[b] = 1, 2
    comps[0:2, 46:48] = 3  # a speck removed by the size filter
    thr[0:2, 46:48] = 1
    kept = np.where(comps < 3, comps, 0)
    prompts = [SimpleNamespace(class_id=1, points=np.array([[12.0, 12.0], [34.0, 34.0]]), labels=np.array([1, 0]), region=a, confidence=0.8),
               SimpleNamespace(class_id=2, points=np.array([[33.0, 33.0]]), labels=np.array([1]), region=b, confidence=0.7)]
    ext = SimpleNamespace(prompts=prompts, argmax=argmax, max_prob=probs.max(0), thresholded=thr, components=comps,
                          component_class=[1, 2, 1], component_size=[int(a.sum()), int(b.sum()), 4], kept=kept)

    def nested(m):
        return np.stack([m & ~np.roll(m, 2, 0), m, np.roll(m, 1, 1) | m])

    cands = [SimpleNamespace(prompt_index=0, class_id=1, masks=nested(a), scores=np.array([0.6, 0.95, 0.7]), chosen=1),
             SimpleNamespace(prompt_index=1, class_id=2, masks=nested(b), scores=np.array([0.5, 0.9, 0.8]), chosen=1)]
    inst = [SimpleNamespace(mask=a, class_id=1, score=0.95), SimpleNamespace(mask=b, class_id=2, score=0.9)]
    lm = np.zeros((H, W), np.int64)
    lm[a], lm[b] = 1, 2
    return SimpleNamespace(image=img, dense=dense, extraction=ext, prompts=prompts, candidates=cands, before_overlap=inst,
                           instances=inst, label_map=lm, num_queries=2, timings={"dense": 0.1, "refine": 0.05},
                           params={"min_confidence": 0.3, "min_region_size": 10, "note": "<b>bold</b>"})


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("explain")
    res = fake_result()
    return explain.explain(res, out, per_class_details=True, title=f"scene {HOSTILE}"), res


def test_eighteen_steps_and_data(written):
    out, res = written
    names = sorted(p.name for p in (out.output / "steps").iterdir())
    assert len(names) == 18 and names[0] == "01_raw_image.png" and names[-1] == "18_comparison_grid.png"
    assert names[12] == "13_sam_prompting.png" and names[13] == "14_sam_candidates.png"  # the seed's step files
    assert [p.name for p in out.steps] == names
    conf = np.load(out.output / "data" / "confidences.npy")
    assert conf.shape == res.dense.probs.shape and conf.dtype == np.float32
    prompts = json.loads((out.output / "data" / "prompts.json").read_text())
    assert [p["class_id"] for p in prompts] == [1, 2] and prompts[0]["labels"] == [1, 0]
    stats = json.loads((out.output / "data" / "statistics.json").read_text())
    by = {c["name"]: c for c in stats["classes"]}
    assert by["red square"]["regions"] == 1 and by["red square"]["prompts"] == 1
    assert by[HOSTILE]["pixels"] == int((res.label_map == 2).sum())
    assert stats["num_queries"] == 2 and stats["grid_queries"] == 64 * 64


def test_html_escapes_every_user_string(written):
    out, _ = written
    doc = out.html.read_text()
    assert HOSTILE not in doc and "<b>bold</b>" not in doc
    assert "&lt;img src=x onerror=alert(1)&gt;" in doc and "&lt;b&gt;bold&lt;/b&gt;" in doc
    assert doc.count('class="step"') == 18 and "ArrowRight" in doc
    for i in range(1, 19):
        assert f'id="step-{i}"' in doc
    assert 'src="steps/01_raw_image.png"' in doc


def test_per_class_names_are_sanitised(written, tmp_path):
    out, _ = written
    names = sorted(p.name for p in out.per_class)
    assert names == ["class_0_background.png", "class_1_red_square.png", "class_2_img_src_x_onerror_alert_1.png"]
    for p in out.per_class:
        assert p.parent == out.output / "per_class"
    for name in (TRAVERSAL, "..", "/", "a/b\\c", "\x00", "", "名前"):
        s = explain.safe_name(name)
        assert s and "/" not in s and "\\" not in s and "." not in s and len(s) <= 40


def test_explain_with_path_like_class_names(tmp_path):
    res = fake_result()
    res.dense.classes = ["background", TRAVERSAL, "a/b"]
    out = explain.explain(res, tmp_path / "o", per_class_details=True, create_html=False)
    assert out.html is None and not (tmp_path / "o" / "index.html").exists()
    assert all(p.resolve().parent == (tmp_path / "o" / "per_class").resolve() for p in out.per_class)
    assert not (tmp_path / "evil").exists()


def test_bad_result(tmp_path):
    with pytest.raises(ValueError, match="dense"):
        explain.explain(SimpleNamespace(image=np.zeros((4, 4, 3), np.uint8)), tmp_path)


def test_cli_errors(tmp_path, capsys):
    assert cli.cmd_explain(["--image", str(tmp_path / "missing.png"), "--vocabulary", "a", "--output", str(tmp_path)]) == 2
    assert "missing.png" in capsys.readouterr().err
    assert cli.cmd_segment(["--image", "x.png", "--vocabulary", "a", "--edit", "remove", "--output", "o.png"]) == 2
    assert "--prompt" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the real pipeline, offline
@pytest.fixture(scope="module")
def shapes_png(tmp_path_factory):
    from PIL import Image

    from ogclip_utils import data

    scene = data.make_scene(3, size=96, num_objects=2)
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    Image.fromarray(scene.image).save(path)
    return path, scene


@pytest.mark.slow
def test_cli_explain_on_a_shapes_scene_with_a_hostile_class(shapes_png, tmp_path, capsys):
    from ogclip_utils import data

    path, scene = shapes_png
    names = [o.name for o in scene.objects]
    vocab = ["background", *names, *[n for n in data.CLASS_NAMES[1:6] if n not in names], HOSTILE]
    out = tmp_path / "out"
    assert cli.cmd_explain(["--image", str(path), "--vocabulary", *vocab, "--output", str(out), "--per-class-details",
                                "--mode", "offline"]) == 0
    assert "index.html" in capsys.readouterr().out
    files = sorted(p.name for p in (out / "steps").glob("*.png"))
    firsts = [f for f in files if not re.search(r"_p\d+\.png$", f)]
    assert len(firsts) == 18
    # vocab has 2 + len(names) + … classes: more than one page of class maps, each page its own file
    n_pages = -(-len(vocab) // 8)
    assert [f for f in files if f.startswith("05_confidence_maps")] == \
        ["05_confidence_maps.png"] + [f"05_confidence_maps_p{k}.png" for k in range(2, n_pages + 1)]
    doc_pages = (out / "index.html").read_text()
    assert doc_pages.count('class="step"') == 18 and f"page {n_pages} of {n_pages}" in doc_pages
    for f in ("confidences.npy", "prompts.json", "statistics.json"):
        assert (out / "data" / f).is_file()
    assert np.load(out / "data" / "confidences.npy").shape == (len(vocab), 96, 96)
    doc = (out / "index.html").read_text()
    assert HOSTILE not in doc and "&lt;img src=x onerror=alert(1)&gt;" in doc
    assert all(p.parent == out / "per_class" for p in (out / "per_class").iterdir())


@pytest.mark.slow
def test_cli_segment_remove_changes_only_the_dilated_target(shapes_png, tmp_path, capsys):
    from PIL import Image

    from ogclip_utils import data, edit, models, pipeline

    path, scene = shapes_png
    target = scene.objects[0].name
    out = tmp_path / "removed.png"
    assert cli.cmd_segment(["--image", str(path), "--vocabulary", *data.CLASS_NAMES, "--prompt", target, "--edit", "remove",
                                "--use-inpainting", "--dilate", "5", "--mode", "offline", "--output", str(out)]) == 0
    assert "segmenter queries" in capsys.readouterr().out
    res = pipeline.segment(scene.image, list(data.CLASS_NAMES), clip=models.load_clip("tiny-shapes"),
                           segmenter=models.load_segmenter("classical"), target=target)
    mask = explain.target_mask(res, data.CLASS_NAMES, target)
    assert mask.any(), "the offline pipeline should find the target object"
    changed = (np.asarray(Image.open(out)) != scene.image).any(axis=2)
    assert changed.any() and not changed[~edit.dilate_mask(mask, 5)].any()


def test_show_steps_previews_the_written_figures(written):
    out, _ = written
    fig = explain.show_steps(out, (1, 18))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["step 1: Raw image", "step 18: " + explain.STEPS[17][1]]
    with pytest.raises(ValueError, match="steps must be step numbers between 1 and 18"):
        explain.show_steps(out, (0, 19))


def test_pages_show_every_class_and_prompt_and_per_class_region_sizes():
    from ogclip_utils.viz import explain as vx

    res = fake_result()
    v = explain.view_of(res)
    n = vx.class_pages(v)
    shown = []
    for k in range(n):
        fig = vx.step_confidence_maps(v, page=k)
        shown += [a.get_title() for a in fig.axes if a.get_title()]
    assert len(shown) == len(v.classes), "every class appears on exactly one page"
    with pytest.raises(ValueError, match="page must lie in"):
        vx.step_candidates(v, page=vx.prompt_pages(v))
    c = int(res.prompts[0].class_id)
    sizes = vx.region_sizes(v, c)
    assert sizes.sum() == int(((v.thresholded == c) & (v.components > 0)).sum()) and (sizes > 0).all()
    fig = vx.per_class(v, c)
    assert any(a.get_title().startswith("region sizes (px)") for a in fig.axes)
