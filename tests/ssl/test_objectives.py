"""The objectives learn structure, the collapse guard works, and the parts behave as described."""

import numpy as np
import pytest
import torch

from streamssl.ssl import OBJECTIVE_NAMES
from streamssl.ssl.augment import Mask, Mixup, Noise, Resample, View, mixup
from streamssl.ssl.collapse import CollapseMonitor, effective_rank, embedding_std
from streamssl.ssl.continual import ContinualEncoder
from streamssl.ssl.encoder import MLPEncoder
from streamssl.ssl.memory_bank import MemoryBank
from streamssl.ssl.momentum import ema_update, frozen_copy, momentum_schedule
from streamssl.ssl.objectives import BYOL, DINO, JEPA, OBJECTIVES, make_objective
from streamssl.state.serialize import dumps, loads

CPU = torch.device("cpu")


def clustered_stream(n: int, seed: int, k: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """k clusters in a 3-d latent space, seen through 8 correlated features, next to 24 features of
    pure noise of the same variance (standardised): a random 8-d embedding mixes the signal
    with the noise, an encoder that learned the structure keeps it."""
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.normal(size=(k, 3))
    y = rng.integers(0, k, n)
    latent = centres[y] + 0.5 * rng.normal(size=(n, 3))
    signal = latent @ rng.normal(size=(3, 8)) + 0.3 * rng.normal(size=(n, 8))
    X = np.concatenate([signal, rng.normal(size=(n, 24))], axis=1)
    return (X - X.mean(0)) / X.std(0), y


def linear_probe(E_train, y_train, E_test, y_test) -> float:
    """Ridge regression on one-hot labels (closed form, deterministic); test accuracy."""
    A = np.c_[E_train, np.ones(len(E_train))]
    W = np.linalg.solve(A.T @ A + 1e-3 * np.eye(A.shape[1]), A.T @ np.eye(y_train.max() + 1)[y_train])
    return float(((np.c_[E_test, np.ones(len(E_test))] @ W).argmax(1) == y_test).mean())


def train(objective: str, X: np.ndarray, seed: int = 0, **params) -> ContinualEncoder:
    enc = ContinualEncoder(X.shape[1], hidden=64, dim=8, every=16, device=CPU, seed=seed,
                           objective=objective, objective_params=params)
    for chunk in np.array_split(X, 100):
        enc.observe(chunk)
    return enc


@pytest.fixture(scope="module")
def stream():
    X, y = clustered_stream(12000, seed=0)
    return X[:8000], y[:8000], X[8000:], y[8000:]


@pytest.fixture(scope="module")
def random_probe(stream):
    X_train, y_train, X_test, y_test = stream
    frozen = ContinualEncoder(X_train.shape[1], hidden=64, dim=8, device=CPU, seed=0)  # never stepped
    return linear_probe(frozen.embed(X_train).numpy(), y_train, frozen.embed(X_test).numpy(), y_test)


@pytest.mark.parametrize("objective", OBJECTIVE_NAMES)
def test_every_objective_beats_a_frozen_random_encoder_on_a_linear_probe(objective, stream, random_probe):
    X_train, y_train, X_test, y_test = stream
    torch.set_num_threads(1)
    enc = train(objective, X_train)
    assert enc.steps == 500
    accuracy = linear_probe(enc.embed(X_train).numpy(), y_train, enc.embed(X_test).numpy(), y_test)
    print(f"{objective}: probe {accuracy:.3f} vs frozen random {random_probe:.3f}; {enc.collapse_stats()}")
    assert accuracy > random_probe + 0.08
    assert np.isfinite(enc.last_loss)


@pytest.mark.parametrize("seed", [1, 2])
def test_byol_without_predictor_and_stop_gradient_collapses_and_full_byol_does_not(seed, stream):
    X_train = stream[0]
    torch.set_num_threads(1)
    broken = train("byol", X_train, seed=seed, predictor=False, stop_gradient=False).collapse_stats()
    full = train("byol", X_train, seed=seed).collapse_stats()
    print(f"seed {seed}: broken {broken}\n        full {full}")
    # The loss's space falls onto one direction; the full method keeps several.
    assert broken["projection_effective_rank"] < 1.5
    assert full["projection_effective_rank"] > 3.0


def test_collapse_measures():
    assert effective_rank(torch.eye(5)) == pytest.approx(5.0)
    assert effective_rank(torch.ones(10, 4)) == pytest.approx(1.0)
    assert effective_rank(torch.zeros(3, 3)) == 1.0
    # Two directions with equal energy: rank 2 whatever the number of rows.
    z = torch.cat([torch.tensor([[1.0, 0.0, 0.0]]).repeat(7, 1), torch.tensor([[0.0, 1.0, 0.0]]).repeat(7, 1)])
    assert effective_rank(z) == pytest.approx(2.0)
    assert embedding_std(torch.ones(6, 3)).max().item() == 0.0
    # ±e_j with equal chances: each normalised dimension has std sqrt(1/d).
    d = 4
    z = torch.cat([torch.eye(d), -torch.eye(d)])
    assert embedding_std(z).tolist() == pytest.approx([(1 / d) ** 0.5] * d)


def test_collapse_monitor_window_keeps_the_newest_rows():
    mon = CollapseMonitor(window=6, per_batch=2)
    for i in range(5):
        mon.add(torch.full((4, 2), float(i)))
    rows = mon.rows()
    assert len(rows) == 6 and sorted(rows[:, 0].tolist()) == [2, 2, 3, 3, 4, 4]
    assert CollapseMonitor().stats() == {}


def test_augmentations():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 5, generator=g)
    assert (View([])(x) == x).all()
    masked = Mask(0.5)(x, g)
    assert 0.4 < (masked == 0).float().mean().item() < 0.6
    noisy = Noise(0.1)(x, g)
    assert 0.08 < (noisy - x).std().item() < 0.12
    resampled = Resample(1.0)(x, g)
    for j in range(5):
        assert torch.isin(resampled[:, j], x[:, j]).all()
    # Mixup: every view lies between its row and some row of the batch, closer to its own.
    mixed = mixup(x, 0.4, g)
    dist_own = (mixed - x).norm(dim=1)
    assert (dist_own <= 0.4 * (x[:, None, :] - x[None, :, :]).norm(dim=2).max(dim=1).values + 1e-5).all()
    assert (Mixup(0.0)(x, g) == x).all()
    # Steps apply in order: masking after noise leaves exact zeros, noise after masking does not.
    assert (View([Noise(0.5), Mask(1.0)])(x, g) == 0).all()
    assert (View([Mask(1.0), Noise(0.5)])(x, g) != 0).all()


def test_ema_and_schedule():
    online, target = MLPEncoder(3, 4, 2), None
    target = frozen_copy(online)
    assert all(not p.requires_grad for p in target.parameters())
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    before = [p.clone() for p in target.parameters()]
    ema_update(target, online, 0.75)
    for b, t, o in zip(before, target.parameters(), online.parameters()):
        assert torch.allclose(t, 0.75 * b + 0.25 * o)
    values = [momentum_schedule(s, 0.9, 0.99, steps=100) for s in range(0, 150, 10)]
    assert values[0] == pytest.approx(0.9) and values[-1] == 0.99
    assert all(a <= b for a, b in zip(values, values[1:]))
    with pytest.raises(ValueError):
        ema_update(target, online, 1.5)


def test_memory_bank_is_a_ring():
    bank = MemoryBank(size=4, dim=1)
    for v in range(6):
        bank.add(torch.tensor([[float(v)]]))
    assert sorted(bank.negatives()[:, 0].tolist()) == [2, 3, 4, 5]
    bank.add(torch.arange(10.0)[:, None])  # more rows than the bank: the newest four stay
    assert sorted(bank.negatives()[:, 0].tolist()) == [6, 7, 8, 9]


def test_targets_get_no_gradient_and_follow_the_online_network():
    torch.manual_seed(0)
    x = torch.randn(32, 6)
    for obj in (BYOL(MLPEncoder(6, 8, 4)), JEPA(MLPEncoder(6, 8, 4), groups=3), DINO(MLPEncoder(6, 8, 4))):
        target = obj.target_encoder if hasattr(obj, "target_encoder") else obj.teacher_encoder
        obj(x).backward()
        assert all(p.grad is None for p in target.parameters())
        assert all(p.grad is not None for p in obj.encoder.parameters())
        with torch.no_grad():
            for p in obj.encoder.parameters():
                p.add_(1.0)
        gap = sum((t - o).abs().sum() for t, o in zip(target.parameters(), obj.encoder.parameters()))
        obj.after_step(0)
        after = sum((t - o).abs().sum() for t, o in zip(target.parameters(), obj.encoder.parameters()))
        assert after < gap


def test_simsiam_has_no_target_and_byol_without_stop_gradient_trains_both_branches():
    torch.manual_seed(0)
    x = torch.randn(16, 4)
    simsiam = make_objective("simsiam", MLPEncoder(4, 8, 2))
    assert not hasattr(simsiam, "target_encoder")
    simsiam(x).backward()
    broken = BYOL(MLPEncoder(4, 8, 2), predictor=False, stop_gradient=False)
    assert not hasattr(broken, "target_encoder")  # no EMA without a stop-gradient to hide behind


def test_dino_centre_follows_the_teacher():
    torch.manual_seed(0)
    obj = DINO(MLPEncoder(4, 8, 2), prototypes=5, center_momentum=0.0)
    x = torch.randn(16, 4)
    obj(x)
    with torch.no_grad():
        t = obj.teacher_head(obj.teacher_encoder(x))
    assert obj.center.abs().sum() > 0
    obj.eval()
    before = obj.center.clone()
    obj(x)
    assert torch.equal(obj.center, before)  # evaluating (a drift signal) does not move it
    assert t.shape[1] == 5


def test_optimiser_trains_online_parameters_only():
    enc = ContinualEncoder(5, hidden=8, dim=3, device=CPU, objective="byol")
    trained = {id(p) for group in enc.optimizer.param_groups for p in group["params"]}
    assert all(id(p) not in trained for p in enc.objective.target_encoder.parameters())
    assert all(id(p) in trained for p in enc.objective.predictor.parameters())


@pytest.mark.parametrize("objective", OBJECTIVE_NAMES)
def test_state_round_trips_through_the_safe_serialiser(objective):
    X, _ = clustered_stream(600, seed=3)
    enc = ContinualEncoder(X.shape[1], hidden=16, dim=4, every=32, batch_size=64, device=CPU, seed=1,
                           objective=objective)
    enc.observe(X[:400])
    state = loads(dumps(enc.state_dict()))
    copy = ContinualEncoder(X.shape[1], hidden=16, dim=4, every=32, batch_size=64, device=CPU, seed=99,
                            objective=objective)
    copy.load_state_dict(state)
    assert torch.allclose(copy.embed(X[:20]), enc.embed(X[:20]))
    assert copy.collapse_stats() == pytest.approx(enc.collapse_stats())
    enc.observe(X[400:])
    copy.observe(X[400:])
    assert copy.last_loss == pytest.approx(enc.last_loss, rel=1e-5)
    assert torch.allclose(copy.embed(X[:20]), enc.embed(X[:20]), atol=1e-6)


def test_unknown_objective_is_refused():
    with pytest.raises(ValueError, match="unknown objective"):
        ContinualEncoder(3, objective="simclr")
    assert set(OBJECTIVES) == set(OBJECTIVE_NAMES)


def test_memory_bank_contents_survive_a_state_round_trip():
    bank = MemoryBank(size=4, dim=2)
    bank.add(torch.ones(3, 2))
    copy = MemoryBank(size=4, dim=2)
    copy.load_state_dict(loads(dumps(bank.state_dict())))
    assert torch.equal(copy.negatives(), bank.negatives()) and len(copy.negatives()) == 3
