import torch

from streamssl.learner.memory import NearestNeighbourMemory


def test_votes_are_distance_weighted_and_smoothed():
    m = NearestNeighbourMemory(capacity=10, k=3, smoothing=0.0)
    m.add(torch.tensor([[0.0], [1.0], [10.0]]), torch.tensor([0, 0, 1]))
    p = m.predict_proba(torch.tensor([[0.5], [9.0]]), n_classes=2)
    # At 0.5: neighbours 0 and 1 (distance 0.5 each) against 10 (9.5): class 0 by far.
    w0, w1 = 2 / 0.5, 1 / 9.5
    assert torch.allclose(p[0], torch.tensor([w0 / (w0 + w1), w1 / (w0 + w1)]), atol=1e-4)
    assert p[1].argmax() == 1 and torch.allclose(p.sum(1), torch.ones(2))


def test_empty_memory_is_uniform_and_the_ring_keeps_the_newest():
    m = NearestNeighbourMemory(capacity=2, k=1)
    assert torch.allclose(m.predict_proba(torch.zeros(1, 2), 4), torch.full((1, 4), 0.25))
    m.add(torch.tensor([[0.0, 0.0]]), torch.tensor([0]))
    m.add(torch.tensor([[1.0, 1.0], [2.0, 2.0]]), torch.tensor([1, 2]))
    assert len(m) == 2 and sorted(m.y.tolist()) == [1, 2]
    restored = NearestNeighbourMemory(capacity=2, k=1)
    restored.load_state_dict(m.state_dict())
    q = torch.tensor([[1.9, 2.1]])
    assert torch.equal(restored.predict_proba(q, 3), m.predict_proba(q, 3))
