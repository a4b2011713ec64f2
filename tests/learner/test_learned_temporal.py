import numpy as np
import torch

from streamssl.learner.learned_temporal import LearnedTemporalContext, next_latent_loss


def test_loss_is_zero_for_a_perfect_prediction_and_symmetric_in_scale():
    p = torch.randn(16, 4)
    assert float(next_latent_loss(p, p, variance_weight=0.0)) < 1e-6
    assert torch.isclose(next_latent_loss(p, 3 * p, 0.0), next_latent_loss(p, p, 0.0), atol=1e-6)
    # A collapsed prediction pays the variance hinge.
    collapsed = torch.ones(16, 4)
    assert float(next_latent_loss(collapsed, collapsed)) > 0.9


def test_the_window_embedding_is_causal():
    X = np.random.default_rng(0).normal(size=(64, 3))
    a = LearnedTemporalContext(3, window=4, dim=2, seed=0)
    b = LearnedTemporalContext(3, window=4, dim=2, seed=0)
    Y = X.copy()
    Y[40:] += 100
    assert np.array_equal(a.transform(X)[:40], b.transform(Y)[:40])


def test_on_a_predictable_stream_the_next_latent_is_learned():
    t = np.arange(6000)
    X = np.c_[np.sin(t / 7), np.cos(t / 13)] + np.random.default_rng(1).normal(scale=0.05, size=(6000, 2))
    ctx = LearnedTemporalContext(2, window=8, dim=8, every=16, seed=0)
    losses = []
    for i in range(0, 6000, 64):
        ctx.update(X[i:i + 64])
        losses.append(ctx.last_loss)
    early, late = np.mean([v for v in losses[2:10] if v is not None]), np.mean(losses[-10:])
    assert late < early * 0.5
    # and the embedding did not collapse: its dimensions still vary across events
    emb = ctx.transform(X[:512])[:, 2:]
    assert (emb.std(0) > 1e-3).sum() >= 4
