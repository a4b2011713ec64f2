"""Tests for streamssl.learner.main_head: the main MLP, its drift challenger and their duel."""

from __future__ import annotations

import torch

from streamssl.learner.classifier import OnlineMLPClassifier
from streamssl.learner.duel import Duel
from streamssl.learner.main_head import MainHead
from streamssl.state.checkpoint import decode, encode


def new_mlp(i: int) -> OnlineMLPClassifier:
    mlp = OnlineMLPClassifier(3, 8, 3e-3, 16, seed=i)
    mlp.add_classes(2)
    return mlp


def heads(min_labels: int = 1000) -> MainHead:
    return MainHead(new_mlp, lambda: Duel(min_labels=min_labels, patience=10_000, margin=0.05))


def labelled(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(n, 3, generator=g)
    return Z, (Z[:, 0] > 0).long()


def learn(h: MainHead, Z: torch.Tensor, y: torch.Tensor) -> None:
    main_right = h.proba(Z, lambda z: z).argmax(1) == y
    h.round(main_right, Z, y, lambda z: z)
    for mlp in h.mlps:
        mlp.learn(Z, y, torch.ones(len(y)), lambda z: z, torch.ones(len(y), dtype=torch.bool))


def test_a_challenger_that_does_not_lead_within_its_patience_is_dropped():
    h = MainHead(new_mlp, lambda: Duel(min_labels=4, patience=8, margin=0.5))
    h.challenge(group=0.0)
    Z, y = labelled(8)
    h.round(torch.ones(8, dtype=torch.bool), Z, y, lambda z: z)  # the main MLP right on every label
    assert h.challenger is None and h.swaps == 0 and h.made == 2


def test_a_second_warning_keeps_the_challenger_already_on():
    h = heads()
    h.challenge(group=0.0)
    first = h.challenger
    h.challenge(group=0.0)
    assert h.challenger is first and h.made == 2


def test_state_round_trips_mid_duel_and_goes_on_alike():
    h = heads()
    h.challenge(group=0.0)
    h.challenger = None  # one challenger came and went: the next is the third MLP made
    Z, y = labelled(64, seed=1)
    learn(h, Z, y)
    h.challenge(group=0.0)
    learn(h, *labelled(64, seed=2))
    restored = heads()
    restored.load_state_dict(decode(encode(h.state_dict())))
    assert (restored.made, restored.swaps, restored.duel.scores) == (h.made, h.swaps, h.duel.scores)
    probe = labelled(32, seed=3)[0]
    for a, b in zip(h.mlps, restored.mlps):
        torch.testing.assert_close(a.predict_proba(probe), b.predict_proba(probe))
    Z, y = labelled(64, seed=4)
    learn(h, Z, y)
    learn(restored, Z, y)
    assert restored.duel.scores == h.duel.scores
    torch.testing.assert_close(restored.proba(probe, lambda z: z), h.proba(probe, lambda z: z))
    h.challenger = restored.challenger = None  # a later challenger is built alike (its seed from the count)
    h.challenge(group=0.0)
    restored.challenge(group=0.0)
    assert restored.made == h.made == 4
    torch.testing.assert_close(restored.challenger.predict_proba(probe), h.challenger.predict_proba(probe))
