"""The project's dataset downloads, against a local HTTP server holding a COCO fixture in COCO's layout."""
import functools
import http.server
import json
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from ogclip_utils import cli, fetch, og_clip, weights


def _ann(ann_id, image_id, cat, x0, y0, side):
    poly = [x0, y0, x0 + side, y0, x0 + side, y0 + side, x0, y0 + side]
    return {"id": ann_id, "image_id": image_id, "category_id": cat, "iscrowd": 0, "area": float(side * side),
            "segmentation": [poly], "bbox": [x0, y0, side, side]}


@pytest.fixture
def coco_server(tmp_path):
    """Images 1 and 3 are usable (two objects, a unique category); image 2 has one object only."""
    site = tmp_path / "site"
    (site / "val2017").mkdir(parents=True)
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 96, "height": 80} for i in (3, 1, 2)]
    for info in images:
        rgb = np.random.default_rng(info["id"]).integers(0, 255, (80, 96, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(site / "val2017" / info["file_name"])
    anns = [_ann(10, 1, 1, 2, 2, 40), _ann(11, 1, 2, 50, 30, 40), _ann(20, 2, 1, 5, 5, 40),
            _ann(30, 3, 1, 4, 4, 36), _ann(31, 3, 1, 50, 40, 36), _ann(32, 3, 2, 40, 2, 34)]
    coco = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}
    with zipfile.ZipFile(site / "annotations_trainval2017.zip", "w") as z:
        z.writestr("annotations/instances_val2017.json", json.dumps(coco))
        z.writestr("annotations/captions_val2017.json", "{}")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield dict(annotations_url=f"{base}/annotations_trainval2017.zip", image_url=base + "/val2017/{file_name}")
    server.shutdown()


def test_fetches_the_usable_images_one_by_one_and_verifies_them_later(coco_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OGCLIP_CACHE", str(tmp_path / "cache"))
    lines = []
    rep = fetch.fetch_coco_val2017(images=2, progress=False, log=lines.append, **coco_server)
    root = tmp_path / "cache" / "datasets" / "coco"
    assert rep.root == root and rep.images == 2 and rep.downloaded == 3 and rep.verified == 0
    assert lines[0].startswith("COCO val2017 subset: annotations_trainval2017.zip (241 MB") and "2 images" in lines[0]
    assert sorted(p.name for p in (root / "val2017").iterdir()) == ["000000000001.jpg", "000000000003.jpg"]
    assert (root / "annotations" / "instances_val2017.json").is_file() and not (root / "annotations_trainval2017.zip").exists()
    manifest = json.loads((root / "manifest.json").read_text())
    assert set(manifest) == {"annotations_trainval2017.zip", "val2017/000000000001.jpg", "val2017/000000000003.jpg"}
    # what notebook 05's real mode reads: the layout, and samples from the fetched images only
    ann, img = og_clip.coco_val2017()
    assert og_clip.folder.coco_image_ids(ann) == [1, 3]
    samples = og_clip.coco_samples(ann, img)
    assert {s.seed for s in samples} == {1, 3} and [s.caption for s in samples if s.seed == 3] == ["the dog"]
    # a second run downloads nothing and checks what is there
    again = fetch.fetch_coco_val2017(images=2, progress=False, log=lambda s: None, **coco_server)
    assert (again.downloaded, again.verified, again.images) == (0, 2, 2)
    # a file that changed on disk is reported, not reused
    with open(root / "val2017" / "000000000003.jpg", "ab") as f:
        f.write(b"x")
    with pytest.raises(weights.CheckpointError, match="bytes, expected"):
        fetch.fetch_coco_val2017(images=2, progress=False, log=lambda s: None, **coco_server)


def test_offline_and_bad_arguments_give_clear_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OGCLIP_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="positive integer"):
        fetch.fetch_coco_val2017(images=0)
    with pytest.raises(weights.CheckpointError, match="cannot reach"):
        fetch.fetch_coco_val2017(images=1, progress=False, log=lambda s: None, timeout=2,
                                 annotations_url="http://127.0.0.1:9/none.zip")
    assert cli.main(["datasets", "--list"]) == 0
    assert "coco-val2017" in capsys.readouterr().out
