"""Each loss against values computed by hand on tiny inputs, and its symmetries."""

import math

import pytest
import torch

from streamssl.ssl import losses


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_reconstruction_by_hand_with_and_without_weights():
    r, t = torch.tensor([[1.0, -1.0], [0.0, 2.0]]), torch.zeros(2, 2)
    assert losses.reconstruction_loss(r, t).item() == pytest.approx((1 + 1 + 0 + 4) / 4)
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert losses.reconstruction_loss(r, t, w).item() == pytest.approx((1 + 4) / 2)
    assert losses.reconstruction_loss(r, t, torch.zeros(2, 2)).item() == 0.0  # nothing hidden, nothing scored


def test_info_nce_by_hand():
    z = torch.eye(2)
    # Each row's logits are (1, 0) at temperature 1.
    assert losses.info_nce(z, z, 1.0).item() == pytest.approx(math.log(1 + math.exp(-1)))
    # At temperature 0.5 they are (2, 0).
    assert losses.info_nce(z, z, 0.5).item() == pytest.approx(math.log(1 + math.exp(-2)))
    # A bank negative equal to e1: row 0 of each direction sees (1, 0, 1), row 1 sees (1, 0, 0).
    bank = torch.tensor([[1.0, 0.0]])
    row0 = -math.log(math.e / (2 * math.e + 1))
    row1 = -math.log(math.e / (math.e + 2))
    assert losses.info_nce(z, z, 1.0, bank).item() == pytest.approx((row0 + row1) / 2)


def test_info_nce_symmetry_scale_and_row_order():
    a, b = rand(8, 4, seed=1), rand(8, 4, seed=2)
    base = losses.info_nce(a, b)
    assert losses.info_nce(b, a).item() == pytest.approx(base.item(), rel=1e-6)
    assert losses.info_nce(3 * a, 0.5 * b).item() == pytest.approx(base.item(), rel=1e-5)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    assert losses.info_nce(a[perm], b[perm]).item() == pytest.approx(base.item(), rel=1e-5)
    # Matching views are better than unrelated ones.
    assert losses.info_nce(a, a + 0.01 * b).item() < base.item()
    with pytest.raises(ValueError):
        losses.info_nce(a, b, temperature=0.0)
    with pytest.raises(ValueError):
        losses.info_nce(a, b[:4])


def test_negative_cosine_by_hand_range_and_scale():
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    z = torch.tensor([[0.0, 5.0], [2.0, 2.0]])
    # Orthogonal: 2; aligned: 0.
    assert losses.negative_cosine(p, z).item() == pytest.approx(1.0)
    a, b = rand(16, 3, seed=3), rand(16, 3, seed=4)
    v = losses.negative_cosine(a, b).item()
    assert 0.0 <= v <= 4.0
    assert losses.negative_cosine(2 * a, 7 * b).item() == pytest.approx(v, rel=1e-5)
    assert losses.negative_cosine(a, -a).item() == pytest.approx(4.0)


def test_vicreg_terms_by_hand():
    # Perfectly correlated dimensions: covariance [[2, 2], [2, 2]], off-diagonal² summed = 8, / d = 4.
    z = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    t = losses.vicreg_terms(z, z)
    assert t["invariance"].item() == 0.0
    assert t["covariance"].item() == pytest.approx(4.0)
    assert t["variance"].item() == 0.0  # both stds are √2 ≥ 1
    # Invariance is the mean squared distance between the views.
    t = losses.vicreg_terms(torch.zeros(3, 2), torch.ones(3, 2))
    assert t["invariance"].item() == pytest.approx(1.0)
    assert t["variance"].item() == pytest.approx(1 - math.sqrt(1e-4))  # every std is 0
    weighted = losses.vicreg_loss(torch.zeros(3, 2), torch.ones(3, 2), invariance=2.0, variance=3.0, covariance=5.0)
    assert weighted.item() == pytest.approx(2 * 1.0 + 3 * (1 - math.sqrt(1e-4)))
    with pytest.raises(ValueError):
        losses.vicreg_terms(torch.zeros(1, 2), torch.zeros(1, 2))


def test_vicreg_symmetry_and_translation_invariance():
    a, b = rand(32, 5, seed=5), rand(32, 5, seed=6)
    base = losses.vicreg_loss(a, b).item()
    assert losses.vicreg_loss(b, a).item() == pytest.approx(base, rel=1e-6)
    shift = rand(1, 5, seed=7)
    assert losses.vicreg_loss(a + shift, b + shift).item() == pytest.approx(base, rel=1e-5)


def test_distillation_by_hand():
    # A teacher centred to uniform over two prototypes; a student certain of the first.
    s, t, c = torch.tensor([[1.0, 0.0]]), torch.zeros(1, 2), torch.zeros(2)
    expected = 0.5 * math.log(1 + math.exp(-10)) + 0.5 * (10 + math.log(1 + math.exp(-10)))
    assert losses.distillation_loss(s, t, c).item() == pytest.approx(expected, rel=1e-5)
    # A sharp teacher on prototype 0: the loss is the student's cross-entropy on class 0.
    t = torch.tensor([[1.0, 0.0]])
    assert losses.distillation_loss(s, t, c).item() == pytest.approx(math.log(1 + math.exp(-10)), abs=1e-4)


def test_distillation_centring_and_shift_invariance():
    s, t = rand(8, 6, seed=8), rand(8, 6, seed=9)
    c = rand(6, seed=10)
    base = losses.distillation_loss(s, t, c).item()
    # Adding a constant to every logit of a row changes neither softmax.
    assert losses.distillation_loss(s + 3.0, t - 2.0, c).item() == pytest.approx(base, rel=1e-5)
    # Centring removes exactly what the centre says: shifting teacher and centre together is a no-op.
    assert losses.distillation_loss(s, t + c, c + c).item() == pytest.approx(base, rel=1e-5)
    # No gradient reaches the teacher.
    t.requires_grad_(True)
    losses.distillation_loss(s.requires_grad_(True), t, c).backward()
    assert t.grad is None and s.grad is not None


def test_latent_prediction_by_hand_and_scale_invariance():
    p, z = torch.tensor([[1.0, -1.0]]), torch.tensor([[-1.0, 1.0]])
    # Layer-normalised: (1, −1) vs (−1, 1), squared distance 4 per entry.
    assert losses.latent_prediction_loss(p, z).item() == pytest.approx(4.0, rel=1e-3)
    a, b = rand(4, 8, seed=11), rand(4, 8, seed=12)
    base = losses.latent_prediction_loss(a, b).item()
    assert losses.latent_prediction_loss(2 * a + 1, 5 * b - 3).item() == pytest.approx(base, rel=1e-4)
    b.requires_grad_(True)
    losses.latent_prediction_loss(a.requires_grad_(True), b).backward()
    assert b.grad is None
