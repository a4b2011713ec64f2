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


def test_the_compiled_vote_on_the_cpu_is_the_torch_vote():
    # The CPU answers through one compiled loop, a GPU through torch calls: the same vote.
    generator = torch.Generator().manual_seed(0)
    m = NearestNeighbourMemory(capacity=64, k=5, smoothing=0.01)
    m.add(torch.randn(40, 6, generator=generator), torch.randint(0, 3, (40,), generator=generator))
    m.add(torch.randn(40, 6, generator=generator), torch.randint(0, 3, (40,), generator=generator))  # wraps
    queries = torch.randn(50, 6, generator=generator)
    compiled = m.predict_proba(queries, n_classes=4)  # 300 values: the compiled loop
    assert compiled.dtype == torch.float32 and compiled.shape == (50, 4)
    assert torch.allclose(compiled, m._torch_votes(queries, 5, 4), atol=1e-4)
    assert torch.allclose(compiled.sum(1), torch.ones(50))
    # Fewer stored than k: every stored row votes; a stored row itself is its own nearest.
    few = NearestNeighbourMemory(capacity=8, k=5, smoothing=0.0)
    few.add(queries[:3], torch.tensor([0, 1, 2]))
    assert few.predict_proba(queries[:3], n_classes=3).argmax(1).tolist() == [0, 1, 2]
    assert torch.allclose(few.predict_proba(queries[3:9], 3), few._torch_votes(queries[3:9], 3, 3), atol=1e-4)
    # Beyond COMPILED_VALUES, torch's matrix products answer on the CPU too.
    wide = NearestNeighbourMemory(capacity=8, k=3)
    wide.add(torch.randn(8, 2048, generator=generator), torch.arange(8) % 2)
    rows = torch.randn(9, 2048, generator=generator)
    assert torch.equal(wide.predict_proba(rows, 2), wide._torch_votes(rows, 3, 2))
    assert torch.allclose(wide.predict_proba(rows[:1], 2), wide._torch_votes(rows[:1], 3, 2), atol=1e-4)


def test_the_compiled_vote_reads_the_stored_rows_as_they_change_and_in_a_copy():
    """The vote reads numpy views of the stored rows, kept between calls: rows added after (in
    place), a restored state and a copy that learns on are each seen."""
    import copy
    import pickle

    m = NearestNeighbourMemory(capacity=4, k=1)
    m.add(torch.tensor([[0.0], [10.0]]), torch.tensor([0, 1]))
    q = torch.tensor([[4.0]])
    assert m.predict_proba(q, 2).argmax(1).tolist() == [0]
    m.add(torch.tensor([[4.5]]), torch.tensor([1]))  # written into the same buffer
    assert m.predict_proba(q, 2).argmax(1).tolist() == [1]
    for twin in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        twin.add(torch.tensor([[4.0]]), torch.tensor([0]))
        assert twin.predict_proba(q, 2).argmax(1).tolist() == [0]
    assert m.predict_proba(q, 2).argmax(1).tolist() == [1]
    fresh = NearestNeighbourMemory(capacity=4, k=1)
    fresh.load_state_dict(m.state_dict())
    fresh.add(torch.tensor([[3.9]]), torch.tensor([0]))
    assert fresh.predict_proba(q, 2).argmax(1).tolist() == [0]
