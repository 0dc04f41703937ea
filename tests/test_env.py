import numpy as np
import pytest
import torch

from ogclip_utils import env


def test_device_default_and_explicit():
    assert env.get_device().type in ("cpu", "cuda", "mps")
    assert env.get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device"):
        env.get_device("not-a-device")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            env.get_device("cuda")


def test_mode(monkeypatch):
    assert env.get_mode("offline") == "offline"
    assert env.get_mode("REAL") == "real"
    monkeypatch.setenv("OGCLIP_MODE", "offline")
    assert env.get_mode() == "offline"
    monkeypatch.setenv("OGCLIP_CACHE", "/nonexistent-cache-for-test")
    assert env.get_mode("auto") == "offline"  # no weights on disk -> offline, never a download
    with pytest.raises(ValueError, match="OGCLIP_MODE"):
        env.get_mode("sometimes")


def test_seed_everything():
    g1 = env.seed_everything(3)
    a = torch.rand(3)
    g2 = env.seed_everything(3)
    assert torch.equal(a, torch.rand(3))
    assert g1.integers(1000) == g2.integers(1000)
    with pytest.raises(ValueError, match="seed"):
        env.seed_everything("x")


def test_colab_and_describe(monkeypatch, tmp_path):
    assert env.in_colab() is False
    monkeypatch.setenv("OGCLIP_CACHE", str(tmp_path))
    info = env.describe("offline", "cpu")
    assert info.mode == "offline" and info.device == "cpu" and "torch=" in str(info)
    assert env.cache_dir("x") == tmp_path / "x"
    assert isinstance(np.random.default_rng(0), np.random.Generator)


def test_auto_means_real_in_colab_and_says_why(monkeypatch):
    import sys
    import types

    monkeypatch.setenv("OGCLIP_MODE", "auto")
    monkeypatch.setenv("OGCLIP_CACHE", str(__import__("tempfile").mkdtemp()))
    assert env.get_mode() == "offline" and "no official weights" in env.mode_reason()
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert env.get_mode() == "real" and "Colab" in env.mode_reason()
    monkeypatch.setenv("OGCLIP_MODE", "offline")
    assert env.mode_reason() == "offline (OGCLIP_MODE=offline)"
