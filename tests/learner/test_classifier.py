import math

import pytest
import torch

from streamssl.learner.classifier import COMPILED_ROWS, OnlineMLPClassifier


def blobs(n, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(k, 4) * 4
    y = torch.randint(0, k, (n,), generator=g)
    return centres[y] + 0.3 * torch.randn(n, 4, generator=g), y


def test_a_class_that_appears_mid_stream_is_learned_without_forgetting_the_others():
    head = OnlineMLPClassifier(n_inputs=4, seed=0)
    head.add_classes(2)
    X, y = blobs(600, 2)
    for i in range(0, 600, 20):
        head.learn(X[i:i + 20], y[i:i + 20], torch.ones(20), remember=torch.ones(20, dtype=torch.bool))
    head.add_classes(3)  # capacity grows from 2 to 4, existing weights kept
    assert head.n_classes == 3 and head._capacity == 4
    X3, y3 = blobs(900, 3, seed=1)
    for i in range(0, 900, 20):
        head.learn(X3[i:i + 20], y3[i:i + 20], torch.ones(20), remember=torch.ones(20, dtype=torch.bool))
    Xt, yt = blobs(300, 3, seed=2)
    proba = head.predict_proba(Xt)
    assert proba.shape == (300, 3)
    assert torch.allclose(proba.sum(1), torch.ones(300))
    assert (proba.argmax(1) == yt).float().mean() > 0.95


def test_rows_not_remembered_do_not_enter_the_replay():
    head = OnlineMLPClassifier(n_inputs=4, replay=8, seed=0)
    head.add_classes(2)
    X, y = blobs(10, 2)
    head.learn(X, y, torch.full((10,), 0.3))
    assert head._stored == 0
    head.learn(X, y, torch.ones(10), remember=torch.tensor([True] * 3 + [False] * 7))
    assert head._stored == 3


def test_zero_classes_predicts_an_empty_distribution():
    head = OnlineMLPClassifier(n_inputs=4)
    assert head.predict_proba(torch.zeros(5, 4)).shape == (5, 0)


def test_growth_does_not_depend_on_the_global_torch_rng():
    heads = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        head = OnlineMLPClassifier(n_inputs=4, seed=0)
        head.add_classes(40)
        heads.append(head)
    for a, b in zip(heads[0].net.parameters(), heads[1].net.parameters()):
        assert torch.equal(a, b)


def test_balanced_replay_rehearses_a_rare_class_as_often_as_a_common_one():
    rows = torch.randn(256, 3)
    labels = torch.tensor([1] * 16 + [0] * 240)
    draws = {}
    for balanced in (True, False):
        head = OnlineMLPClassifier(3, replay=256, balanced=balanced, seed=0)
        head.add_classes(2)
        head.learn(rows, labels, torch.ones(256), remember=torch.ones(256, dtype=torch.bool))
        chance = head.replay_chances()
        assert float(chance.sum()) == pytest.approx(1.0)
        idx = torch.multinomial(chance, 20_000, replacement=True, generator=torch.Generator().manual_seed(0))
        draws[balanced] = float((head._ybuf[idx] == 1).float().mean())
    assert draws[True] == pytest.approx(0.5, abs=0.02)
    assert draws[False] == pytest.approx(16 / 256, abs=0.01)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("n_classes", [2, 3, 5])  # 3 and 5: output slots beyond the classes in use
def test_a_step_moves_the_weights_as_autograd_and_adam_would(n_classes, smoothing):
    import copy

    import torch.nn.functional as F

    head = OnlineMLPClassifier(n_inputs=6, hidden=16, seed=1, label_smoothing=smoothing)
    head.add_classes(n_classes)
    twin, before = copy.deepcopy(head), copy.deepcopy(head)
    torch_adam = torch.optim.Adam(twin.net.parameters(), lr=twin.lr)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        H = torch.randn(9, 6, generator=g)
        y = torch.randint(0, n_classes, (9,), generator=g)
        w = torch.rand(9, generator=g) + 0.1
        head._step(H, y, w)
        loss = (F.cross_entropy(twin._logits(H), y, reduction="none", label_smoothing=smoothing) * w).sum() / w.sum()
        torch_adam.zero_grad(set_to_none=True)
        loss.backward()
        torch_adam.step()
        for mine, theirs in zip(head.net.parameters(), twin.net.parameters()):
            assert torch.allclose(mine, theirs, atol=1e-6)
    assert all(not torch.equal(a, b) for a, b in zip(head.net.parameters(), before.net.parameters()))  # it learned


@pytest.mark.parametrize("balanced", [True, False])
def test_replay_drawn_for_all_steps_at_once_is_the_replay_drawn_step_by_step(balanced):
    """learn() draws every step's replay rows in one call; the weights must be exactly those
    of drawing them step by step from the same generator (as the loop did before)."""
    import copy

    head = OnlineMLPClassifier(n_inputs=4, hidden=8, replay=32, replay_batch=8, steps_per_row=2.0,
                               max_steps=6, balanced=balanced, seed=3)
    head.add_classes(3)
    X, y = blobs(60, 3, seed=1)
    head.learn(X[:40], y[:40], torch.ones(40), remember=torch.ones(40, dtype=torch.bool))  # fills the replay
    twin = copy.deepcopy(head)
    Z, yz, w = X[40:45], y[40:45], torch.rand(5) + 0.5
    head.learn(Z, yz, w)
    n_replay = min(twin._stored, twin.replay)
    chance = twin.replay_chances()
    for _ in range(min(twin.max_steps, max(twin.steps, round(float(w.sum()) * twin.steps_per_row)))):
        if balanced:
            idx = torch.multinomial(chance, twin.replay_batch, replacement=True, generator=twin.generator)
        else:
            idx = torch.randint(0, n_replay, (twin.replay_batch,), generator=twin.generator)
        twin._step(torch.cat([Z, twin._zbuf[idx]]), torch.cat([yz, twin._ybuf[idx]]),
                   torch.cat([w, torch.ones(len(idx))]))
    for mine, theirs in zip(head.net.parameters(), twin.net.parameters()):
        assert torch.equal(mine, theirs)


def test_smoothed_targets_keep_a_head_from_certainty_on_a_few_rehearsed_labels():
    """Rehearsing 8 separable rows drives an unsmoothed head's confidence to 1; with targets
    smoothed by 0.2 it settles near their 0.9."""
    X = torch.tensor([[2.0, 0.0], [-2.0, 0.0]] * 4)
    y = torch.tensor([1, 0] * 4)
    confidence = {}
    for smoothing in (0.0, 0.2):
        head = OnlineMLPClassifier(n_inputs=2, hidden=16, lr=1e-2, seed=0, label_smoothing=smoothing)
        head.add_classes(2)
        for _ in range(200):
            head.learn(X, y, torch.ones(8), remember=torch.ones(8, dtype=torch.bool))
        confidence[smoothing] = head.predict_proba(X).max(1).values.mean().item()
    assert confidence[0.0] > 0.99
    assert confidence[0.2] == pytest.approx(0.9, abs=0.02)


def test_label_smoothing_outside_0_1_is_refused():
    from streamssl.learner.classifier import MLPHead

    with pytest.raises(ValueError, match="label_smoothing"):
        OnlineMLPClassifier(n_inputs=2, label_smoothing=1.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        MLPHead(label_smoothing=-0.1)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("halved_at", [None, 16.0])
def test_heads_learning_together_end_exactly_as_each_learning_alone(n_classes, halved_at):
    """learn_together steps heads of different inputs, seeds and ages in one batched step (the
    main MLP, the one on the event's own features, a challenger started later: with fading
    smoothing, its targets differ); each must end with the very weights and Adam state it
    reaches learning alone."""
    import copy

    from streamssl.learner.classifier import Lesson, learn_together

    def own(Z):
        return Z[:, :2]

    def new_head(n_inputs, seed):
        head = OnlineMLPClassifier(n_inputs=n_inputs, replay=32, replay_batch=8, max_steps=6, row_width=4,
                                   seed=seed, label_smoothing=0.1, smoothing_halved_at=halved_at)
        head.add_classes(n_classes)  # 3: capacity 4, one output not met yet, which gets no gradient
        return head

    together = {"main": new_head(4, 0), "own": new_head(2, 1)}
    apart = copy.deepcopy(together)
    X, y = blobs(152, n_classes)
    i = 0
    for n, size in enumerate([1, 2, 3, 5, 8] * 8):  # a few rows take other kernels in a batched product
        if n == 20:  # a challenger starts: fewer Adam steps than the others from here on
            together["late"] = new_head(4, 2)
            apart["late"] = copy.deepcopy(together["late"])
        Z, yz, ones, keep = X[i:i + size], y[i:i + size], torch.ones(size), torch.ones(size, dtype=torch.bool)
        i += size
        learn_together([Lesson(head, Z, yz, ones, own if name == "own" else None, keep)
                        for name, head in together.items()])
        for name, head in apart.items():
            head.learn(Z, yz, ones, own if name == "own" else None, keep)
    for name, head in together.items():
        alone = apart[name]
        for mine, theirs in zip(head.net.parameters(), alone.net.parameters()):
            assert torch.equal(mine, theirs), name
        for mine, theirs in zip(head.optimizer.state, alone.optimizer.state):
            assert all(torch.equal(mine[k], theirs[k]) for k in ("step", "exp_avg", "exp_avg_sq")), name
    assert float(together["late"].optimizer.state[0]["step"]) < float(together["main"].optimizer.state[0]["step"])
    if halved_at is not None:  # (so the heads did step together with targets of their own)
        assert together["late"].smoothing > together["main"].smoothing > 0


def test_adam_state_reads_and_writes_torch_adams_format():
    """Checkpoints from before the heads held their own Adam state hold torch's
    ``Adam.state_dict()``: a head loads it and steps on as torch's Adam would, and its own state
    loads into torch's Adam."""
    import copy

    from streamssl.learner.adam import Adam, adam_step

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 3))
    theirs = torch.optim.Adam(net.parameters(), lr=0.01)
    X, y = torch.randn(16, 4), torch.randint(0, 3, (16,))

    def grads(module):
        module.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(module(X), y).backward()
        return [p.grad.detach().clone() for p in module.parameters()]

    for _ in range(3):  # torch's Adam has a state now
        grads(net)
        theirs.step()
    mine_net = copy.deepcopy(net)
    mine = Adam(list(mine_net.parameters()), lr=0.5)  # the settings too come from the state
    mine.load_state_dict(theirs.state_dict())
    assert mine.settings() == (0.01, (0.9, 0.999), 1e-8)
    for _ in range(3):
        step = grads(mine_net)
        with torch.no_grad():
            adam_step([mine], [step])
        grads(net)
        theirs.step()
    for a, b in zip(mine_net.parameters(), net.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    back = torch.optim.Adam(copy.deepcopy(mine_net).parameters(), lr=1.0)
    back.load_state_dict(mine.state_dict())
    assert float(back.state_dict()["state"][0]["step"]) == 6.0
    with pytest.raises(ValueError, match="parameters"):
        Adam(list(mine_net.parameters())[:2]).load_state_dict(theirs.state_dict())


def test_learning_does_not_import_torch_dynamo():
    """Building ``torch.optim.Adam`` imports ``torch._dynamo`` (1-2 s, once per process), which a
    river user paid on the first ``learn_one``; the heads hold their own Adam state instead. In a
    fresh interpreter, a default learner's first labels and answers must not import it."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, torch\n"
        "from streamssl.learner import StreamLearner\n"
        "before = 'torch._dynamo' in sys.modules\n"
        "m = StreamLearner(seed=0)\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.normal(size=(200, 3)); y = (X[:, 0] > 0).astype(int).tolist()\n"
        "m.learn_many(X, y); m.predict_proba_many(X[:5])\n"
        "m.learn_one({'a': 1.0, 'b': 0.0, 'c': 2.0}, 1)\n"
        "print(before, 'torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    before, after = out.stdout.split()
    if before == "True":
        pytest.skip("this torch imports torch._dynamo with torch itself")
    assert after == "False"


@pytest.mark.parametrize("n_classes", [1, 3, 5])
def test_a_few_rows_are_answered_by_the_compiled_forward_as_by_torch(n_classes):
    # A few rows go through one compiled loop over the weights as they are, many through the
    # layers' torch kernels: the same probabilities, after learning moved the weights too.
    head = OnlineMLPClassifier(n_inputs=6, hidden=16, device=torch.device("cpu"), seed=2)
    head.add_classes(n_classes)
    generator = torch.Generator().manual_seed(1)
    X, y = torch.randn(40, 6, generator=generator), torch.randint(0, n_classes, (40,), generator=generator)
    for learned in (False, True):
        if learned:
            head.learn(X, y, torch.ones(40), remember=torch.ones(40, dtype=torch.bool))
        compiled = head.predict_proba(X[:5])
        with torch.no_grad():
            reference = torch.softmax(head._logits(X[:5]), dim=1)
        assert compiled.dtype == torch.float32 and compiled.shape == (5, n_classes)
        assert torch.allclose(compiled, reference, atol=1e-6)
    with torch.no_grad():  # more rows, or more values, than the compiled loop takes: torch's kernels
        many = torch.randn(COMPILED_ROWS + 1, 6, generator=generator)
        assert torch.equal(head.predict_proba(many), torch.softmax(head._logits(many), dim=1))
        wide = torch.randn(3, 6000, generator=generator)
        head = OnlineMLPClassifier(n_inputs=6000, hidden=4, device=torch.device("cpu"))
        head.add_classes(2)
        assert torch.equal(head.predict_proba(wide), torch.softmax(head._logits(wide), dim=1))


def test_the_compiled_answer_follows_the_weights_through_a_new_output_layer_and_copies():
    """The compiled answer reads numpy views of the parameters, kept between answers: a new
    output layer (classes past its capacity) and a copy (deepcopy, pickle) make their own, so
    each answers from its weights as they learn on."""
    import copy
    import pickle

    def torch_answer(model, rows):
        with torch.no_grad():
            return torch.softmax(model._logits(rows), dim=1)

    head = OnlineMLPClassifier(n_inputs=4, hidden=8, device=torch.device("cpu"), seed=0)
    head.add_classes(2)
    generator = torch.Generator().manual_seed(3)
    X = torch.randn(60, 4, generator=generator)
    head.predict_proba(X[:2])  # the views made
    head.add_classes(9)  # past the output layer's capacity: a new layer
    head.learn(X, torch.randint(0, 9, (60,), generator=generator), torch.ones(60))
    assert torch.allclose(head.predict_proba(X[:3]), torch_answer(head, X[:3]), atol=1e-6)
    for twin in (copy.deepcopy(head), pickle.loads(pickle.dumps(head))):
        twin.learn(X, torch.zeros(60, dtype=torch.long), torch.ones(60))
        assert torch.allclose(twin.predict_proba(X[:3]), torch_answer(twin, X[:3]), atol=1e-6)
        assert not torch.allclose(twin.predict_proba(X[:3]), head.predict_proba(X[:3]), atol=1e-3)
    assert torch.allclose(head.predict_proba(X[:3]), torch_answer(head, X[:3]), atol=1e-6)


@pytest.mark.parametrize("n_classes", [2, 3])  # 3: output slots beyond the classes in use
def test_the_compiled_gradients_on_the_cpu_are_the_torch_gradients(n_classes):
    # A CPU steps through one compiled loop per head, a GPU through torch's kernels: the same
    # gradients, to float32's rounding, for heads with their own smoothing stepping together.
    from streamssl.learner.classifier import _compiled_gradients, _torch_gradients

    heads = [OnlineMLPClassifier(n_inputs=7, hidden=12, seed=s, label_smoothing=e) for s, e in ((0, 0.0), (1, 0.1))]
    for head in heads:
        head.add_classes(n_classes)
    g = torch.Generator().manual_seed(4)
    Hs = [torch.randn(11, 7, generator=g) * 2 for _ in heads]
    y = torch.randint(0, n_classes, (11,), generator=g)
    weight = torch.rand(11, generator=g) + 0.1
    share = (weight / weight.sum()).unsqueeze(1)
    with torch.no_grad():
        expected = _torch_gradients(heads, Hs, [y, y], share)
    for head, H, theirs in zip(heads, Hs, expected):
        mine = _compiled_gradients(head, H, y, share)
        assert [t.shape for t in mine] == [p.shape for p in head.net.parameters()]
        for a, b in zip(mine, theirs):
            assert a.dtype == torch.float32 and torch.allclose(a, b, atol=1e-6, rtol=1e-4)
        assert not mine[2][n_classes:].any() and not mine[3][n_classes:].any()  # no gradient to unused slots


def test_heads_stepping_together_take_the_torch_gradients_for_wide_rows():
    # Rows of more than COMPILED_VALUES inputs step through torch's kernels on the CPU too: a
    # wide head and a narrow one stepping together each end as it would alone.
    import copy

    from streamssl.learner.classifier import Lesson, learn_together

    g = torch.Generator().manual_seed(5)
    wide, narrow = OnlineMLPClassifier(n_inputs=500, hidden=8, seed=1), OnlineMLPClassifier(n_inputs=3, hidden=8)
    for head in (wide, narrow):
        head.add_classes(2)
    alone = [copy.deepcopy(wide), copy.deepcopy(narrow)]
    Xw, Xn, y = torch.randn(40, 500, generator=g), torch.randn(40, 3, generator=g), torch.randint(0, 2, (40,), generator=g)
    remember = torch.ones(40, dtype=torch.bool)
    learn_together([Lesson(wide, Xw, y, torch.ones(40), remember=remember),
                    Lesson(narrow, Xn, y, torch.ones(40), remember=remember)])
    alone[0].learn(Xw, y, torch.ones(40), remember=remember)
    alone[1].learn(Xn, y, torch.ones(40), remember=remember)
    for together, apart in zip((wide, narrow), alone):
        for a, b in zip(together.net.parameters(), apart.net.parameters()):
            assert torch.equal(a, b)


def test_the_kernels_gelu_is_torchs_to_float32_rounding():
    from streamssl.learner.mlp_kernels import gelu

    a = torch.linspace(-12, 12, 4001)
    h, slope = torch.empty_like(a), torch.empty_like(a)
    gelu(a.numpy(), h.numpy(), slope.numpy())
    exact = a.double()
    cdf = 0.5 * (1 + torch.erf(exact * math.sqrt(0.5)))
    assert torch.allclose(h.double(), exact * cdf, rtol=1e-6, atol=1e-7)
    assert torch.allclose(slope.double(), cdf + exact * torch.exp(-exact * exact / 2) / math.sqrt(2 * math.pi),
                          rtol=1e-6, atol=1e-7)
    # torch's float32 GELU takes 1 + erf(x) in float32: off by up to 1e-6 where that cancels (x < -3)
    assert torch.allclose(h, torch.nn.functional.gelu(a), rtol=1e-6, atol=1e-6)
