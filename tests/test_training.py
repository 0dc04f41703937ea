"""The shared contrastive-training pieces (ogclip_utils.training)."""
import math

import pytest
import torch
import torch.nn.functional as F

from ogclip_utils import training


def test_loss_is_zero_for_confident_matching_pairs_and_symmetric():
    e = torch.eye(4)
    assert float(training.contrastive_loss(e, e, torch.tensor(math.log(100.0)))) < 1e-3
    a, b = F.normalize(torch.randn(5, 8), dim=1), F.normalize(torch.randn(5, 8), dim=1)
    s = torch.tensor(1.0)
    assert torch.isclose(training.contrastive_loss(a, b, s), training.contrastive_loss(b, a, s))


def test_max_scale_clamps_the_temperature():
    a, b = F.normalize(torch.randn(6, 4), dim=1), F.normalize(torch.randn(6, 4), dim=1)
    huge = torch.tensor(math.log(1e6))
    assert torch.isclose(training.contrastive_loss(a, b, huge, max_scale=100.0),
                         training.contrastive_loss(a, b, torch.tensor(math.log(100.0))))


def test_shared_captions_are_soft_positives():
    """Image 1 matches caption 2 as well as its own when both say the same thing (ids [0, 1, 1]):
    by hand, rows/columns 1 and 2 put target 1/2 on each of the two, so the loss is the mean of
    the hard-target rows' cross-entropies with those targets."""
    img = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), dim=1)
    txt = img.clone()
    s = torch.tensor(0.0)  # scale 1
    logits = img @ txt.t()
    tgt = torch.tensor([[1, 0, 0], [0, 0.5, 0.5], [0, 0.5, 0.5]])
    by_hand = 0.5 * (-(tgt * F.log_softmax(logits, 1)).sum(1).mean() - (tgt * F.log_softmax(logits.t(), 1)).sum(1).mean())
    assert torch.isclose(training.contrastive_loss(img, txt, s, [0, 1, 1]), by_hand)
    assert not torch.isclose(training.contrastive_loss(img, txt, s), by_hand)
    with pytest.raises(ValueError, match="one id per pair"):
        training.contrastive_loss(img, txt, s, [0, 1])
    with pytest.raises(ValueError, match="N×D"):
        training.contrastive_loss(torch.zeros(3, 2), torch.zeros(2, 2), s)


def test_warmup_then_cosine_to_zero():
    f = [training.warmup_cosine(s, 100, 10) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[55] == pytest.approx(0.5) and f[-1] < 0.001
    assert all(x >= y for x, y in zip(f[10:], f[11:]))


def test_param_groups_decay_only_trainable_weight_matrices():
    m = torch.nn.Module()
    m.proj = torch.nn.Linear(4, 4)
    m.ln = torch.nn.LayerNorm(4)
    m.token_embedding = torch.nn.Embedding(10, 4)
    m.logit_scale = torch.nn.Parameter(torch.tensor(1.0))
    m.frozen = torch.nn.Linear(4, 4)
    m.frozen.requires_grad_(False)
    decay, no_decay = training.param_groups(m, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 4])]  # proj.weight only
    assert len(no_decay["params"]) == 5  # proj.bias, ln.weight, ln.bias, token_embedding, logit_scale


def test_infonce_at_scales_starts_at_chance_and_falls_for_a_winning_diagonal():
    e = torch.nn.functional.normalize(torch.eye(6) + 0.1, dim=-1)  # each image matches its own caption best
    losses = training.infonce_at_scales(e, e, [0.01, 1, 10, 100])
    assert abs(losses[0] - math.log(6)) < 0.01 and all(a > b for a, b in zip(losses, losses[1:]))
    with pytest.raises(ValueError, match="positive"):
        training.infonce_at_scales(e, e, [0])
