"""Merging what replicas learned apart, and the distributed config section."""

import numpy as np
import pytest
import torch

from streamssl.config import ConfigError, DistributedConfig, load_config_text
from streamssl.distributed.merge import average_states, merge_moments, moments


def test_merged_moments_are_those_of_one_pass_over_all_rows_in_any_order():
    rng = np.random.default_rng(0)
    parts = [rng.normal(loc, 3.0, size=(n, 4)) for loc, n in ((0, 500), (50, 7), (-20, 1200), (5, 1))]
    n, mean, m2 = merge_moments([moments(p) for p in parts])
    rows = np.concatenate(parts)
    assert n == len(rows)
    np.testing.assert_allclose(mean, rows.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(m2 / n, rows.var(axis=0), rtol=1e-10)
    _, mean_r, m2_r = merge_moments([moments(p) for p in reversed(parts)])
    np.testing.assert_allclose((mean_r, m2_r), (mean, m2), rtol=1e-10)
    assert merge_moments([(0.0, np.zeros(4), np.zeros(4)), moments(parts[0])])[0] == 500
    with pytest.raises(ValueError):
        merge_moments([(0.0, np.zeros(4), np.zeros(4))])


def test_parameters_are_averaged_by_weight_and_counters_come_from_the_heaviest():
    a = {"w": torch.tensor([1.0, 2.0]), "steps": torch.tensor(10)}
    b = {"w": torch.tensor([4.0, 8.0]), "steps": torch.tensor(99)}
    out = average_states([a, b], [1, 3])
    assert torch.allclose(out["w"], torch.tensor([3.25, 6.5])) and out["w"].dtype == torch.float32
    assert int(out["steps"]) == 99
    with pytest.raises(ValueError):
        average_states([a, b], [0, 0])


def test_the_distributed_section_validates_and_takes_the_pod_ordinal():
    text = "kafka: {events_topic: e, predictions_topic: p, dead_letter_topic: d}\nevents: {features: [a]}\n"
    config = load_config_text(text, environ={"STREAMSSL_DISTRIBUTED_WORLD_SIZE": "3",
                                             "STREAMSSL_DISTRIBUTED_ADDRESS": "streamssl-0.streamssl:29400"})
    assert config.distributed.world_size == 3 and config.distributed.rank is None
    assert config.distributed.resolved_rank({"HOSTNAME": "streamssl-1"}) == 1
    with pytest.raises(ConfigError, match="ordinal"):
        config.distributed.resolved_rank({"HOSTNAME": "streamssl-7"})
    with pytest.raises(ConfigError, match="rank 3 is not below"):
        load_config_text(text + "distributed: {world_size: 3, rank: 3}\n", environ={})
    with pytest.raises(ConfigError, match="host:port"):
        load_config_text(text + "distributed: {address: nowhere}\n", environ={})
    assert DistributedConfig().resolved_rank({}) == 0  # one replica: rank 0
