import numpy as np
import pytest
import torch

from streamssl.ssl.augment import marginal_resample
from streamssl.ssl.continual import ContinualEncoder
from streamssl.ssl.losses import reconstruction_loss


def low_rank_stream(n: int, d: int = 12, rank: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(rank, d))
    X = rng.normal(size=(n, rank)) @ basis + 0.05 * rng.normal(size=(n, d))
    return (X - X.mean(0)) / X.std(0)


def test_reconstruction_loss_by_hand_and_shape_check():
    assert reconstruction_loss(torch.tensor([[1.0, -1.0], [0.0, 2.0]]), torch.zeros(2, 2)).item() == pytest.approx(1.5)
    with pytest.raises(ValueError):
        reconstruction_loss(torch.zeros(2, 2), torch.zeros(2, 3))


def test_marginal_resample_keeps_each_column_within_its_values_and_respects_rate():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 4)
    out = marginal_resample(x, 0.3, g)
    changed = (out != x).float().mean().item()
    assert 0.2 < changed < 0.35  # a resampled entry can land on its own value
    for j in range(4):
        assert torch.isin(out[:, j], x[:, j]).all()


def test_denoising_objective_learns_structure_from_the_stream():
    X = low_rank_stream(6000)
    enc = ContinualEncoder(12, hidden=32, dim=4, every=32, device=torch.device("cpu"), seed=0, objective="denoising")
    before = enc.loss_on(X[:512])
    for chunk in np.array_split(X, 60):
        enc.observe(chunk)
    after = enc.loss_on(X[:512])
    assert enc.steps == 6000 // 32
    assert after < 0.6 * before


def test_seeded_runs_repeat_exactly():
    X = low_rank_stream(1000)
    runs = []
    for _ in range(2):
        enc = ContinualEncoder(12, hidden=16, dim=3, every=16, device=torch.device("cpu"), seed=5)
        enc.observe(X)
        runs.append(enc.embed(X[:10]))
    assert torch.equal(runs[0], runs[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_path_trains_and_embeds_on_the_gpu():
    X = low_rank_stream(2000)
    enc = ContinualEncoder(12, dim=4, every=32, device=torch.device("cuda"), seed=0)
    enc.observe(X)
    assert enc.embed(X[:8]).device.type == "cuda"
    assert enc.last_loss is not None and np.isfinite(enc.last_loss)
