import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from ogclip_utils import models


# ----------------------------------------------------------------------------- downloader
@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OGCLIP_CACHE", str(tmp_path / "cache"))
    return tmp_path


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support (like real checkpoint hosts)."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            body = body[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: _RangeHandler(*a, directory=str(root), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_file_url_and_hash(cache, tmp_path):
    src = tmp_path / "w.bin"
    payload = bytes(range(256)) * 100
    src.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    out = models.download(src.as_uri(), sha256=digest, size=len(payload), progress=False)
    assert out.read_bytes() == payload
    assert not out.with_name(out.name + ".part").exists()
    # already there: returned without re-downloading
    assert models.download(src.as_uri(), sha256=digest, progress=False) == out


def test_download_wrong_hash_and_size(cache, tmp_path):
    src = tmp_path / "w.bin"
    src.write_bytes(b"x" * 1000)
    with pytest.raises(models.CheckpointError, match="sha256"):
        models.download(src.as_uri(), dest=tmp_path / "a.bin", sha256="0" * 64, progress=False)
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.bin.part").exists()
    with pytest.raises(models.CheckpointError, match="truncated or corrupt"):
        models.download(src.as_uri(), dest=tmp_path / "b.bin", size=2000, progress=False)
    assert not (tmp_path / "b.bin").exists()


def test_download_resume_over_http(cache, server, tmp_path):
    root, base = server
    payload = np.random.default_rng(0).bytes(300_000)
    (root / "ck.pt").write_bytes(payload)
    dest = tmp_path / "ck.pt"
    dest.with_name("ck.pt.part").write_bytes(payload[:100_000])  # an interrupted earlier download
    out = models.download(f"{base}/ck.pt", dest=dest, sha256=hashlib.sha256(payload).hexdigest(), progress=False)
    assert out.read_bytes() == payload


def test_download_offline_and_404(cache, server, tmp_path):
    _, base = server
    with pytest.raises(models.CheckpointError, match="404"):
        models.download(f"{base}/missing.pt", dest=tmp_path / "m.pt", progress=False)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(models.CheckpointError, match="offline"):
        models.download(f"http://127.0.0.1:{port}/x.pt", dest=tmp_path / "x.pt", progress=False, timeout=2)


def test_registry():
    assert "clip-vit-b-16-openai" in models.REGISTRY
    for size in ("tiny", "small", "base_plus", "large"):
        ck = models.REGISTRY[f"sam2.1-hiera-{size}"]
        assert ck.url.endswith(f"sam2.1_hiera_{size}.pt") and ck.extra["config"].startswith("configs/sam2.1/")
    with pytest.raises(ValueError, match="unknown checkpoint"):
        models.checkpoint_path("nope")
    with pytest.raises(ValueError, match="neither"):
        models.download("nope-not-a-url")


# ----------------------------------------------------------------------------- CLIP
def test_vit_b16_random_init_real_architecture():
    clip = models.load_clip("ViT-B-16", pretrained=None, device="cpu")
    v = clip.model.visual
    assert clip.image_size == 224 and clip.patch_size == 16 and v.grid_size == (14, 14)
    assert v.transformer.width == 768 and len(v.transformer.resblocks) == 12
    assert clip.model.text_projection.shape == (512, 512)
    emb = clip.encode_images(np.zeros((1, 224, 224, 3), np.uint8))
    assert emb.shape == (1, 512)
    t = clip.encode_texts(["a photo of a cat", "a dog"])
    assert t.shape == (2, 512) and torch.allclose(t.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_tiny_random_and_bad_names():
    clip = models.load_clip("tiny-shapes", pretrained=False, device="cpu")
    assert clip.image_size == 64 and clip.model.visual.grid_size == (8, 8) and clip.patch_size == 8
    x = clip.encode_images(np.zeros((2, 64, 64, 3), np.uint8))
    assert x.shape == (2, 128)
    with pytest.raises(ValueError, match="unknown CLIP model"):
        models.load_clip("ViT-Z-99")
    with pytest.raises(ValueError, match="pretrained"):
        models.load_clip("ViT-B-16", pretrained="laion-not-here")
    with pytest.raises(models.CheckpointError, match="not found"):
        models.load_clip("tiny-shapes", pretrained="/nonexistent/tiny.safetensors")
    with pytest.raises(ValueError, match="texts"):
        clip.encode_texts("not a list")


def test_local_file_prefers_the_given_checkpoint_then_the_cache(tmp_path, monkeypatch):
    from ogclip_utils import weights

    monkeypatch.setenv("OGCLIP_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        weights.local_file("sam2.1-hiera-tiny", tmp_path / "missing.pt")
    cached = weights.checkpoint_path("sam2.1-hiera-tiny")
    cached.write_bytes(b"x")
    assert weights.local_file("sam2.1-hiera-tiny") == cached, "a file in the cache is used as it is, never re-fetched"
    given = tmp_path / "mine.pt"
    given.write_bytes(b"y")
    assert weights.local_file("sam2.1-hiera-tiny", given) == given


def test_checkpoints_command_states_the_download_size_first(tmp_path, monkeypatch, capsys):
    from ogclip_utils import cli, weights

    monkeypatch.setenv("OGCLIP_CACHE", str(tmp_path))
    fetched = []
    monkeypatch.setattr(weights, "download", lambda name, *a, **k: fetched.append(name) or tmp_path / name)
    assert cli.main(["checkpoints"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("to download into") and "clip-vit-b-16-openai (~598 MB)" in out[0]
    assert "sam2.1-hiera-tiny (~156 MB)" in out[0] and "about 754 MB at most" in out[0]
    assert fetched == ["clip-vit-b-16-openai", "sam2.1-hiera-tiny"]
    assert weights.entry("sd2-inpainting").approx_mb == 5200.0
    assert cli.main(["checkpoints", "--list"]) == 0
    assert "~898 MB" in capsys.readouterr().out
