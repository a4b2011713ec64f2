"""The streaming learner: standardiser, self-supervised encoder, online head, pseudo-labels, drift."""

from __future__ import annotations

import functools
import math
from collections import deque
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np
import torch
from river import base

from ..device import resolve_device, to_tensor, torch_threads
from ..drift.detectors import VECTOR_SIGNALS
from ..drift.monitor import DriftEvent, DriftMonitor
from ..ssl import DEFAULT_OBJECTIVE
from ..ssl.continual import ContinualEncoder, Encoder
from . import compiled
from .calibration import Reliability, TemperatureCalibrator
from .classifier import Lesson, MLPHead, OnlineMLPClassifier, flush_together, learn_together
from .combine import COMBINERS, EWA, Select
from .dict_rows import DictRows
from .duel import Duel
from .features import Features
from .fold import FeatureFold
from .forest import BatchForest
from .learned_temporal import LearnedTemporalContext
from .linear import OnlineLinear
from .main_head import MainHead
from .members import Batch, LinearMember, Member, MemoryMember, OwnFeaturesMLP, RiverMember
from .memory import NearestNeighbourMemory
from .pseudo import PseudoLabelPolicy
from .standardize import OnlineStandardizer
from .temporal import TemporalContext, fingerprint


#: The learner's arguments that take a part, and the part's class (:func:`build_learner` builds
#: one from a mapping of its settings).
PARTS: dict[str, type] = {
    "temporal": TemporalContext, "encoder": Encoder, "mlp": MLPHead, "memory": NearestNeighbourMemory,
    "calibrate": TemperatureCalibrator, "pseudo_labels": PseudoLabelPolicy, "duel": Duel, "drift": DriftMonitor,
    "linear": OnlineLinear, "trees": BatchForest, "fold": FeatureFold,
}


def build_learner(threshold: float = 0.99, device: str = "cpu", seed: int = 0, threads: int = 1,
                  objective: str | None = None, objective_params: dict | None = None,
                  parts: Mapping[str, Mapping] | None = None, **switches: bool | None) -> "StreamLearner":
    """A :class:`StreamLearner` from the settings of the CLI and the daemon's config: torch gets
    ``threads`` CPU threads, a switch left ``None`` (``encoder``, ``pseudo_labels``,
    ``temporal``, ``memory``, ``trees``, ``combiner``...) keeps its default, and the switches
    with settings get their parts: pseudo-labels a :class:`PseudoLabelPolicy` at ``threshold``,
    the encoder an :class:`~streamssl.ssl.continual.Encoder` with ``objective`` and
    ``objective_params``. Naming an ``objective`` switches the encoder on unless ``encoder=False``
    is given. A part may also be given by its settings, as a mapping (``mlp={"hidden": 32}``,
    ``drift={"respond": False}``: how the switches that set one setting of a part reach it).
    ``parts`` sets settings of :data:`PARTS` by name over what the switches made (the daemon's
    ``learner.parts``); a part given settings is on, and one switched off cannot take any.

    >>> build_learner(seed=1, encoder=None, memory=False).memory
    False
    >>> m = build_learner(objective="vicreg", pseudo_labels=True, threshold=0.95)
    >>> m.encoder.objective, m.pseudo_labels.threshold
    ('vicreg', 0.95)
    >>> build_learner(pseudo_labels={"source": "memory"}).pseudo_labels.source
    'memory'
    >>> build_learner(drift={"channels": ["error:DDM"], "respond": False}).drift
    DriftMonitor (
      channels=('error:DDM',)
      respond=False
      history=10000
    )
    >>> m = build_learner(pseudo_labels=True, threshold=0.95, parts={"mlp": {"max_steps": 64}, "pseudo_labels": {"warmup": 50}})
    >>> m.mlp.max_steps, m.pseudo_labels.threshold, m.pseudo_labels.warmup
    (64, 0.95, 50)
    """
    torch.set_num_threads(threads)
    settings = {k: PARTS[k](**v) if isinstance(v, Mapping) else v for k, v in switches.items() if v is not None}
    if objective is not None:
        settings.setdefault("encoder", True)
    if settings.get("encoder") is True:
        settings["encoder"] = Encoder(objective or DEFAULT_OBJECTIVE, objective_params)
    if settings.get("pseudo_labels") is True:
        settings["pseudo_labels"] = PseudoLabelPolicy(threshold=threshold)
    for name, values in (parts or {}).items():
        settings[name] = part_with(name, values, settings.get(name))
    return StreamLearner(device=device, seed=seed, threads=threads, **settings)


def part_with(name: str, values: Mapping, part: Any = None) -> base.Base:
    """Part ``name`` of :data:`PARTS` with ``values`` over its settings: over ``part`` if it is
    one, else over the part's defaults; ValueError says what is wrong.

    >>> part_with("mlp", {"max_steps": 64}).max_steps
    64
    >>> part_with("mlp", {"steps_max": 64})
    Traceback (most recent call last):
    ...
    ValueError: part mlp (MLPHead) has no setting steps_max (its settings: balanced_replay, hidden, label_smoothing, lr, max_steps, replay, smoothing_halved_at, steps, steps_per_label)
    """
    if name not in PARTS:
        raise ValueError(f"no part {name!r} (the parts: {', '.join(sorted(PARTS))})")
    if part is False:
        raise ValueError(f"part {name} is switched off and takes no settings")
    if not isinstance(part, base.Base):
        part = PARTS[name]()
    known = set(part._get_params())
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"part {name} ({type(part).__name__}) has no setting {', '.join(unknown)} "
                         f"(its settings: {', '.join(sorted(known))})")
    current = part._get_params()
    typed = {k: _as_type_of(current[k], v, f"part {name}: {k}") for k, v in values.items()}
    try:
        return part.clone(typed)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"part {name}: {exc}") from None


def _as_type_of(current: Any, value: Any, what: str) -> Any:
    """``value`` read as a number where the setting it replaces is one: YAML reads ``1e-5``
    (no dot) as a string, and a string in a float setting failed deep inside the run.

    >>> _as_type_of(0.001, "1e-5", "x"), _as_type_of(0.5, 1, "x"), _as_type_of(10, "20", "x")
    (1e-05, 1.0, 20)
    >>> _as_type_of(0.001, "small", "part trees: drift_delta")
    Traceback (most recent call last):
    ...
    ValueError: part trees: drift_delta must be a number, got 'small'
    """
    if isinstance(current, bool) or isinstance(value, bool) or not isinstance(current, (int, float)):
        return value
    kind = float if isinstance(current, float) else int
    if isinstance(value, str) or (kind is float and isinstance(value, int)):
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"{what} must be {'a number' if kind is float else 'an integer'}, got {value!r}") from None
    return value


def check_parts(parts: Mapping[str, Mapping], switches: Mapping[str, Any]) -> None:
    """Check each part's settings in ``parts`` (:func:`part_with`) against the learner arguments
    the ``switches`` make: a part they switch off takes none. ValueError says what is wrong."""
    for name, values in parts.items():
        part_with(name, values, False if switches.get(name) is False else None)


def _in_threads(method):
    """Run a learner method with torch's CPU threads set to the learner's ``threads``."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with torch_threads(self.threads):
            return method(self, *args, **kwargs)

    return wrapper


#: The built-in heads, in the order that breaks ties of recent accuracy (plugged members follow).
HEADS = ("mlp", "raw", "memory", "tree", "raw-tree", "linear")
# Labelled events given one at a time that every part learns together (at most; one_batch if
# fewer). The forests take them in their chunks (5 rows with their defaults), the rest waiting
# for the next gathering, so their trees grow as in micro-batches.
GATHER = 9


def _is_missing(label: Any) -> bool:
    return label is None or (isinstance(label, float) and math.isnan(label))


def _rows_of(t: torch.Tensor | np.ndarray, which: np.ndarray) -> torch.Tensor | np.ndarray:
    """The rows of ``t`` (a tensor, or a numpy array of the learner's own) where ``which``
    holds; ``t`` itself, or none of it, without an indexing call where it holds everywhere or
    nowhere (as for one event)."""
    held = np.count_nonzero(which)  # a C call, where which.all() and .any() are Python wrappers
    if held == which.size:
        return t
    if not held:
        return t[:0]
    return t[torch.as_tensor(which, device=t.device)] if isinstance(t, torch.Tensor) else t[which]


def _check_part(name: str, value: Any, kind: type) -> None:
    if not isinstance(value, (bool, kind)):
        raise TypeError(f"{name} must be True, False or a {kind.__name__}, got {type(value).__name__}")


def _part(value: bool | base.Base, kind: type):
    """The part a switch-or-part argument gives: a fresh clone of a part, a default one for
    ``True``, ``None`` for ``False``."""
    if value is False:
        return None
    return kind() if value is True else value.clone()


def _rebuilt(value: Any) -> Any:
    """A part from its ``(class, settings)`` as river's ``_get_params`` gives it."""
    if (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], type)
            and issubclass(value[0], base.Base) and isinstance(value[1], dict)):
        return value[0](**{k: _rebuilt(v) for k, v in value[1].items()})
    return value


def _arguments(params: dict) -> dict:
    """A learner's arguments from the ``params`` of its :meth:`StreamLearner.state_dict`.

    Checkpoints written before the learner took parts kept their settings flat (``head_hidden``,
    ``threshold``, ``memory_k``, ``drift_channels``...); they are mapped onto the parts. Those from before balanced
    replay keep the uniform replay they learned with, MLP settings written before smoothed
    targets their one-hot targets and those from before it faded their constant smoothing (a
    learner left at the default part takes today's), and those from before the linear head,
    calibration, the raw-feature forest or the fold of wide events go on without them.
    """
    mlp = params.get("mlp")
    if isinstance(mlp, tuple) and len(mlp) == 2 and isinstance(mlp[1], dict):
        params = {**params, "mlp": (mlp[0], {"label_smoothing": 0.0, "smoothing_halved_at": None, **mlp[1]})}
    params = {"linear": False, "calibrate": False, "raw_tree": False, "fold": False, **{k: _rebuilt(v) for k, v in params.items()}}
    if "drift" not in params:  # before the drift stage was a part
        channels, respond = params.pop("drift_channels", None), params.pop("drift_response", True)
        params["drift"] = True if channels is None and respond else DriftMonitor(channels, respond)
    if "mlp" in params:
        return params
    old = {"balanced_replay": False, **params}
    take = old.pop
    cooldown = take("drift_cooldown", 500)
    encoder = Encoder(take("objective", DEFAULT_OBJECTIVE), take("objective_params", None), take("embedding_dim", 16),
                      take("encoder_hidden", 64), take("encoder_lr", 1e-3), take("corruption", 0.3),
                      take("ssl_every", 64), take("ssl_batch", 128), take("drift_lr_boost", 3.0), cooldown)
    policy = PseudoLabelPolicy(take("threshold", 0.99), take("warmup_labels", 100), take("pseudo_weight", 0.3),
                               take("class_slack", 1.5), cooldown, source=take("pseudo_source", "self"))
    memory = NearestNeighbourMemory(take("memory_size", 256), take("memory_k", 5))
    spans = take("temporal_spans", (4, 16, 64))
    combiner, window = take("combiner", "ewa"), take("selection_window", 50)
    parts = {
        "encoder": encoder if take("encoder", False) else False,
        "pseudo_labels": policy if take("pseudo_labels", False) else False,
        "memory": memory if take("memory", True) else False,
        "temporal": TemporalContext(spans) if take("temporal", True) else False,
        "combiner": Select(window=window) if combiner == "select" else combiner,
        "mlp": MLPHead(take("head_hidden", 64), take("head_lr", 3e-3), take("head_replay", 256),
                       take("balanced_replay"), take("head_steps", 1), take("head_steps_per_label", 2.0),
                       take("head_max_steps", 16), label_smoothing=0.0),
        "duel": Duel(take("challenger_min_labels", 30), take("challenger_patience", 500),
                     take("challenger_margin", 0.05)),
    }
    return {**old, **parts}  # what is left of old: the switches and settings that kept their names


class StreamLearner(base.Classifier):
    """A classifier for drifting, label-scarce streams that also learns from unlabelled events.

    Each event first gets its temporal context (:class:`TemporalContext`: its differences from
    moving averages of the past events, no labels used), then online standardisation;
    optionally a self-supervised encoder (trained continually on a replay of the unlabelled
    stream with one of the objectives of :mod:`streamssl.ssl.objectives`) adds an embedding.
    Several heads predict, and a combiner weighs them by their prequential errors on labelled
    events: an MLP on everything, an MLP on the event's own features (for streams where the past
    is noise), a nearest-neighbour memory over the last labelled events (for many classes with
    few labels each, and right after a change), adaptive random forests on the same
    features and on the event's own (heads that split, :class:`~streamssl.learner.forest.BatchForest`) and a linear head (logistic regression,
    steady with few labels). The MLPs learn from
    true labels (with a replay of recent ones) and from pseudo-labels that pass a
    :class:`PseudoLabelPolicy`, either their own confident predictions or the memory's
    (co-training). A :class:`DriftMonitor` watches the error on labelled events and the
    confidence on unlabelled ones; a background head trained only on recent labels replaces the
    main one when it proves better after a warning or drift.

    Its parts, each in its own module: ``features`` (:class:`~streamssl.learner.features.Features`:
    the temporal context, standardisation, the encoder's embedding), ``main``
    (:class:`~streamssl.learner.main_head.MainHead`: the MLP on everything and its drift
    challenger), ``heads`` (the other members, :mod:`streamssl.learner.members`), ``mix`` (the
    combiner, :mod:`streamssl.learner.combine`), ``calibrator``, ``policy`` (pseudo-labels) and
    ``monitor`` (drift).

    It follows river's classifier contract (``learn_one``, ``predict_proba_one``,
    ``predict_one``) and adds micro-batch methods on numpy arrays (``learn_many``,
    ``predict_proba_many``, ``predict_many``). A missing label (``None`` or NaN) means
    "unlabelled". Labels that arrive late for events already passed to ``learn_many`` go to
    :meth:`learn_late_labels`, so those events are not counted twice by the unsupervised parts.

    The defaults are what won the benchmark tables (benchmarks/RESULTS.md and
    benchmarks/results/): the temporal context, the six heads weighed by ``ewa``, calibration;
    the encoder and pseudo-labels default to off, since they did not win.

    **A composition of parts.** Each stage is a small estimator with its own settings, given
    river-style as an argument: the learner works with a fresh clone of it (``clone()``) and
    ``_get_params`` nests its settings. An argument that is also a switch of the CLI and the
    daemon's config (:mod:`~streamssl.learner.switches`) takes ``True`` (the part with its default
    settings), ``False`` (no such stage) or the part itself::

        StreamLearner(
            fold=FeatureFold(max_inputs=1024),              # events wider folded; False: never
            temporal=TemporalContext(spans=(4, 16, 64)),   # feature stage; False: raw events
            encoder=Encoder("vicreg", embedding_dim=32),     # self-supervised encoder; default False
            mlp=MLPHead(hidden=64, lr=3e-3),                 # every MLP head's settings
            memory=NearestNeighbourMemory(capacity=256, k=5),
            trees=BatchForest(n_models=20),                  # the forests; or any river classifier
            combiner=EWA(rate=0.5, share=0.02),              # or "ewa", "select", Select(window=50)
            calibrate=TemperatureCalibrator(window=128, floor=0.02),
            pseudo_labels=PseudoLabelPolicy(threshold=0.99, source="self"),  # default False
            drift=DriftMonitor(channels=None, respond=True),  # None: the default channels
            duel=Duel(min_labels=30, patience=500, margin=0.05),
        )

    Parameters
    ----------
    fold
        The first feature stage (:class:`~streamssl.learner.fold.FeatureFold`): an event wider
        than ``max_inputs`` (1,024) columns is folded into that many by a fixed feature hash
        before every part but the linear head sees it (the part's docstring says why); ``False``:
        never. ``n_inputs_`` is the event's width, ``n_own_`` what the other parts work with.
    temporal
        The temporal context stage (:class:`~streamssl.learner.temporal.TemporalContext`: each
        event with its differences from moving averages of the past, over its ``spans``).
    temporal_ssl
        With ``temporal``, learn the context instead (:class:`~streamssl.learner.learned_temporal.LearnedTemporalContext`:
        an embedding of the last 16 events trained to predict the next one's latent).
    encoder
        The self-supervised encoder (:class:`~streamssl.ssl.continual.Encoder`: its objective,
        size, learning rate and rhythm); ``False``: the heads see standardised features only.
    mlp
        The settings of every MLP head (:class:`~streamssl.learner.classifier.MLPHead`: hidden
        units, learning rate, labelled replay, steps per label). Its default draws the replay
        class-balanced: +0.27 / +0.37 points of mean accuracy over the suite at 1 % / 5 % labels,
        better in 14 of 21 cells at each rate (``benchmarks/results/balanced-replay``).
        Its targets are smoothed (``label_smoothing=0.1``): a head rehearsing a few dozen labels
        otherwise answers near certainty while right three times in four, and outvotes the
        forests in the mix; +0.20 / +0.22 points over the suite (2026-12-05, tagged passes).
        The smoothing fades as labels come (``smoothing_halved_at=256``, the replay's size: ε
        halves once a head has remembered 256 labels), as a prior weighs less against more
        evidence; constant, it cost the held-out powersupply 1.8 points at 5 %, whose underfit
        main MLP it slowed (``benchmarks/results/smoothing-fade``).
    raw_head
        With the temporal context, also an MLP head on the event's own features.
    memory
        The nearest-neighbour memory head (:class:`~streamssl.learner.memory.NearestNeighbourMemory`:
        how many labelled events it keeps, how many vote).
    trees
        A head that splits: an adaptive random forest on the same features as the MLP, before
        standardisation (on by default since it won the suite: ``benchmarks/results/trees-ewa``).
        ``True``: a :class:`~streamssl.learner.forest.BatchForest` (river's ``ARFClassifier``
        algorithm held as arrays, learned and asked a micro-batch at a time: the same accuracy
        over the suite at 1.2-3.6 times the learner's events/s, ``benchmarks/results/batch-forest``);
        or the part with settings (``BatchForest(n_models=20)``), or any river classifier
        (``forest.ARFClassifier()``, river's own, the default before 2026-12-05). Weighted by
        the combiner like the other heads; it learns and is scored on labelled events only.
        ``trees=False`` for the learner without it.
    raw_tree
        With the temporal context and ``trees``, also a forest on the event's own features
        alone: the ``trees`` part again (or the river classifier given). Where the concept is a threshold on one of the event's own features,
        the forest among the context's four times as many columns rarely gets to choose it:
        Luxembourg +1.8 / +4.2 points at 1 % / 5 % labels (``benchmarks/results/raw-tree``).
    linear
        A linear head (:class:`~streamssl.learner.linear.OnlineLinear`, or one with settings):
        by default river's logistic regression behind a scaler, one-vs-rest on the event's own
        features standardised by the labelled events, one SGD step per label in order. Few
        labels move it little, so it is a steady answer where the MLPs overfit their replay:
        +0.30 / +0.19 points of mean accuracy over the suite at 1 % / 5 % labels, spam +1.4 /
        +0.9 (``benchmarks/results/linear``, as softmax regression on the learner's
        standardisation; river's recipe gained spam a further +0.4 / +0.7,
        ``benchmarks/results/linear-recipe``); a matrix product per micro-batch.
    members
        More members by name: any river classifiers (a fresh clone of each learns on the same
        features as the tree head, :class:`~streamssl.learner.members.RiverMember`), weighed
        by the combiner beside the built-in heads, e.g.
        ``{"lr": linear_model.LogisticRegression()}``. River learns them label by label in Python.
    combiner
        How the heads answer (:mod:`streamssl.learner.combine`), by name or as a part:
        ``"ewa"`` (the default, :class:`~streamssl.learner.combine.EWA`), every head's
        probabilities averaged with exponentially weighted weights on its 0/1 errors with a
        fixed share; ``"select"`` (:class:`~streamssl.learner.combine.Select`), the head with the
        best accuracy over its last ``window`` labelled events answers alone (the default
        before; ``benchmarks/results/ewa``).
    calibrate
        Calibrate the served answer (:class:`~streamssl.learner.calibration.TemperatureCalibrator`):
        a temperature for the combined probabilities and a share of the uniform answer mixed in
        (the floor of labels wrong whatever the confidence), fitted on the last labelled events
        as they were answered before their labels were learned, so a confidence of 0.9 is right
        about 90 % of the time; the most probable class, and so accuracy, do not move.
    pseudo_labels
        Learn from accepted pseudo-labels, guarded by a
        :class:`~streamssl.learner.pseudo.PseudoLabelPolicy` (threshold, warm-up, weight, class
        balance, cooldown after a drift, the support of the memory's labelled events, the audit
        of the threshold by the labels, and where they come from: ``source="self"``, the
        learner's own served answer, combined and calibrated, so that the threshold is a
        calibrated confidence: at 0.99 on elec2, kdd and spam at 5 % labels, precision
        0.989-0.994 against 0.966-0.982 when the main MLP's own probabilities chose,
        ``benchmarks/results/calibration``; or ``"memory"``, the memory's, co-training). The
        main MLP learns them.
    drift
        The drift stage (:class:`~streamssl.drift.monitor.DriftMonitor`): which detector watches
        which signal, as specs ``signal:Detector[:name=value...]`` (see
        :mod:`streamssl.drift.detectors`; by default ADWIN on the error, warning and drift, and
        on the confidence, and the CUSUM on the calibrated residual), and whether detections
        change the learner (``respond``, see :meth:`_react`) or are only reported. ``False``:
        nothing is watched.
    duel
        When the background head started by a drift replaces the main one
        (:class:`~streamssl.learner.duel.Duel`): once scored on at least ``min_labels`` labels
        and ahead by ``margin`` (share of those labels); it is dropped after ``patience``
        labels without winning.
    device
        ``"cpu"`` (the default), ``"cuda"`` or ``"auto"`` (CUDA when present); chosen once.
        With micro-batches of 64 and small networks the CPU wins: on an H200 machine the
        learner ran Elec2 at 5 % labels at 0.62x its CPU speed on CUDA (README, "On a GPU").
    one_batch
        Events given one at a time (:meth:`learn_one`) after which the MLP heads learn the
        labels that came with them, all together, as :meth:`learn_many` learns a micro-batch of
        that size (every other part learns them :data:`GATHER` at a time, and at the end of
        the group); 1 for a torch step with every label, and every part learning it at once.
    threads
        torch's CPU threads while the learner computes (set on entry to ``learn_many``,
        ``predict_proba_many`` and ``learn_late_labels``, and the caller's setting restored on
        return); ``None`` leaves torch's setting alone. One by default: the networks are small,
        and more threads busy-wait against other processes on a shared machine (river's
        ``progressive_val_score`` on Phishing next to two busy processes: see the README).
    seed
        Seeds every random choice, so a run repeats exactly on the same device.

    Examples
    --------
    >>> import numpy as np
    >>> from river import datasets, evaluate, metrics
    >>> model = StreamLearner(seed=0)
    >>> evaluate.progressive_val_score(datasets.Phishing(), model, metrics.Accuracy())
    Accuracy: 90.23%

    Micro-batches on numpy arrays, with ``None`` for unlabelled events:

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(256, 4))
    >>> y = [int(v) if i % 4 == 0 else None for i, v in enumerate(X[:, 0] > 0)]
    >>> model = StreamLearner(encoder=True, pseudo_labels=True, seed=0)
    >>> for _ in range(5):
    ...     model.learn_many(X, y)
    >>> model.classes_, model.predict_proba_many(X[:3]).shape
    ([1, 0], (3, 2))
    """

    def __init__(
        self,
        fold: bool | FeatureFold = True,
        temporal: bool | TemporalContext = True,
        temporal_ssl: bool = False,
        encoder: bool | Encoder = False,
        mlp: MLPHead | None = None,
        raw_head: bool = True,
        memory: bool | NearestNeighbourMemory = True,
        trees: bool | base.Classifier = True,
        raw_tree: bool | base.Classifier = True,
        linear: bool | OnlineLinear = True,
        members: dict[str, base.Classifier] | None = None,
        combiner: str | EWA | Select = "ewa",
        calibrate: bool | TemperatureCalibrator = True,
        pseudo_labels: bool | PseudoLabelPolicy = False,
        drift: bool | DriftMonitor = True,
        duel: Duel | None = None,
        device: str = "cpu",
        threads: int | None = 1,
        one_batch: int = 64,
        seed: int = 0,
    ) -> None:
        _check_part("fold", fold, FeatureFold)
        _check_part("temporal", temporal, TemporalContext)
        _check_part("encoder", encoder, Encoder)
        _check_part("memory", memory, NearestNeighbourMemory)
        _check_part("calibrate", calibrate, TemperatureCalibrator)
        _check_part("pseudo_labels", pseudo_labels, PseudoLabelPolicy)
        _check_part("trees", trees, base.Classifier)
        _check_part("raw_tree", raw_tree, base.Classifier)
        _check_part("drift", drift, DriftMonitor)
        _check_part("linear", linear, OnlineLinear)
        self.fold = fold
        self.temporal = temporal
        self.temporal_ssl = temporal_ssl
        self.encoder = encoder
        self.mlp = mlp
        self.raw_head = raw_head
        self.memory = memory
        self.trees = trees
        self.raw_tree = raw_tree
        self.linear = linear
        clash = sorted(set(members or {}) & set(HEADS))
        if clash:
            raise ValueError(f"members: {', '.join(clash)} is the name of a built-in head")
        self.members = members
        if isinstance(combiner, str) and combiner not in COMBINERS:
            raise ValueError(f"combiner must be one of {', '.join(COMBINERS)} or a combiner, got {combiner!r}")
        if not isinstance(combiner, (str, EWA, Select)):
            raise TypeError(f"combiner must be a name or a combiner, got {type(combiner).__name__}")
        self.combiner = combiner
        self.calibrate = calibrate
        self.pseudo_labels = pseudo_labels
        self.drift = drift
        self.duel = duel
        self.device = device
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        self.threads = threads
        if one_batch < 1:
            raise ValueError(f"one_batch must be >= 1, got {one_batch}")
        self.one_batch = one_batch
        self.seed = seed
        self._reset()

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        self._device = resolve_device(self.device)
        # The parts' settings as this learner works with them (fresh clones of what it was given).
        self._encoder = _part(self.encoder, Encoder)
        self._mlp = self.mlp if self.mlp is not None else MLPHead()
        self._duel = self.duel if self.duel is not None else Duel()
        self._memory = _part(self.memory, NearestNeighbourMemory)
        # The event with its temporal context (the rows), standardised (what the networks see), and
        # with the encoder (built with the heads) its embedding.
        self.features = Features(_part(self.temporal, TemporalContext))
        self._fold = _part(self.fold, FeatureFold)  # wide events folded before every other stage
        self.policy = _part(self.pseudo_labels, PseudoLabelPolicy) or PseudoLabelPolicy()
        monitor = _part(self.drift, DriftMonitor)
        self.monitor: DriftMonitor = monitor if monitor is not None else DriftMonitor(channels=(), respond=False)
        self._rows = DictRows()  # river's dicts (learn_one, predict_proba_one) as rows
        self.classes_: list[Hashable] = []
        self._class_index: dict[Hashable, int] = {}
        self.n_features_: int | None = None  # what the heads see (with the temporal context)
        self.n_inputs_: int | None = None  # what an event has
        self.n_own_: int | None = None  # what the learner works with of it (folded where wide)
        # The heads beside the main MLP, by name, built with it (_build).
        self.heads: dict[str, Member] = {}
        temporal = self.features.context is not None
        trees = self.trees is not False  # a river forest has a length: never read a part as a truth value
        built = {"mlp": True, "raw": temporal and self.raw_head, "memory": self._memory is not None, "tree": trees,
                 "raw-tree": temporal and trees and self.raw_tree is not False, "linear": self.linear is not False}
        names = [name for name in HEADS if built[name]] + list(self.members or {})
        # How the heads answer together, learned from their prequential outcomes on labelled events.
        combiner = COMBINERS[self.combiner]() if isinstance(self.combiner, str) else self.combiner
        self.mix: EWA | Select = combiner.clone({"members": names})
        # Each head's prequential outcomes over every labelled event: [scored, correct] (for reports).
        self.head_tally: dict[str, list[int]] = {name: [0, 0] for name in names}
        # The temperature of the served answer, fitted on labelled events scored before learning.
        self.calibrator = _part(self.calibrate, TemperatureCalibrator)
        # (served confidence, right) of the last labelled events, answered before learning them.
        self._recent_served: deque[tuple[float, bool]] = deque(maxlen=1000)
        self._outcomes: dict[str, list[bool]] = {}  # the heads' outcomes on the labelled batch in hand
        self.main: MainHead | None = None  # the MLP on every feature and its challenger, built with the others
        self.n_seen = 0
        self._group = 0.0  # label mass the MLP heads gather before learning (inf inside learn_one)
        # (X, keys, each asked head's answers) of the last predict_proba_many (_take_served);
        # whatever learns labels or changes the features drops it.
        self._last_served: tuple | None = None
        self._last_row: tuple[dict, np.ndarray] | None = None  # predict_proba_one's event and its row (_vector)
        self._since_flush = 0  # learn_one events since the MLP heads last learned
        # learn_one's labelled events not learned yet: (Z, classes, rows, the heads' answers served).
        self._gathered: list[tuple[torch.Tensor, np.ndarray, np.ndarray, dict[str, np.ndarray] | None]] = []
        self.labels_used = 0
        # Rows of the last learn_many batch accepted as pseudo-labels, and their labels.
        self.last_pseudo_labels: tuple[np.ndarray, list[Hashable]] = (np.zeros(0, dtype=np.int64), [])
        self._shared: list[tuple[np.ndarray, list[Hashable]]] | None = None  # see share_labelled
        self.last_confidence: float | None = None

    @property
    def _multiclass(self) -> bool:
        return True

    def _build(self, n_features: int) -> None:
        self.n_features_ = n_features
        if self._encoder is not None:
            self.features.encoder = self._encoder.build(n_features, device=self._device, seed=self.seed)
        self.main = MainHead(self._new_mlp, self._new_duel)
        if "raw" in self.mix.members:
            self.heads["raw"] = OwnFeaturesMLP(self._mlp.build(
                self.n_own_, device=self._device, seed=self.seed + 104729, row_width=self.n_features_))
            self.heads["raw"].add_classes(len(self.classes_))
        if self._memory is not None:
            self.heads["memory"] = MemoryMember(self._memory)
        if "tree" in self.mix.members:
            self.heads["tree"] = RiverMember(self._forest())
        if "raw-tree" in self.mix.members:
            tree = self._forest() if self.raw_tree is True else self.raw_tree.clone()
            self.heads["raw-tree"] = RiverMember(tree, own_features=True)
        if self.linear is not False:
            self.heads["linear"] = LinearMember(_part(self.linear, OnlineLinear))
            self.heads["linear"].add_classes(len(self.classes_))
        for name, model in (self.members or {}).items():
            self.heads[name] = RiverMember(model.clone())

    def _forest(self) -> base.Classifier:
        """A fresh forest member: the ``trees`` part (a :class:`BatchForest` for ``True``) with
        the learner's seed where it has none."""
        part = BatchForest() if self.trees is True else self.trees
        return part.clone({"seed": self.seed} if part._get_params().get("seed", 0) is None else {})

    def _start(self, n_inputs: int) -> None:
        """Size everything for events of ``n_inputs`` features (the first event, or a restore)."""
        compiled.start()
        self.n_inputs_ = n_inputs
        self.n_own_ = n_inputs if self._fold is None else self._fold.n_outputs(n_inputs)
        if self.features.context is not None and self.temporal_ssl:
            self.features.context = LearnedTemporalContext(self.n_own_, seed=self.seed, device=self._device)
        self._build(self.features.n_outputs(self.n_own_))

    @property
    def objective(self) -> str | None:
        """The encoder's self-supervised objective (``None`` without an encoder)."""
        return None if self._encoder is None else self._encoder.objective

    @property
    def context(self) -> TemporalContext | LearnedTemporalContext | None:
        """The temporal context stage (``None`` with ``temporal=False``)."""
        return self.features.context

    @property
    def ssl(self) -> ContinualEncoder | None:
        """The self-supervised encoder (``None`` with ``encoder=False`` or before the first event)."""
        return self.features.encoder

    @property
    def standardizer(self) -> OnlineStandardizer:
        """The online standardisation of the events with their context."""
        return self.features.standardizer

    def _raw(self, Z: torch.Tensor) -> torch.Tensor:
        """The event's own standardised features: the first columns of the heads' input."""
        return Z[:, : self.n_own_]

    def _new_mlp(self, made: int) -> OnlineMLPClassifier:
        """The ``made``-th MLP on every feature (the main head, then each challenger)."""
        n_inputs = self.n_features_ + (0 if self._encoder is None else self._encoder.embedding_dim)
        head = self._mlp.build(n_inputs, device=self._device, seed=self.seed + 7919 * made, row_width=self.n_features_)
        head.add_classes(len(self.classes_))
        return head

    def _new_duel(self) -> Duel:
        return self._duel.clone()

    @property
    def head(self) -> OnlineMLPClassifier | None:
        """The main MLP head (``None`` before the first event)."""
        return None if self.main is None else self.main.mlp

    @property
    def challenger(self) -> OnlineMLPClassifier | None:
        """The background head a drift started, while it duels the main one."""
        return None if self.main is None else self.main.challenger

    @property
    def swaps(self) -> int:
        """Challengers that replaced the main head."""
        return 0 if self.main is None else self.main.swaps

    # --------------------------------------------------------------- features
    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D array of events, got shape {X.shape}")
        if self.n_inputs_ is not None and X.shape[1] != self.n_inputs_:
            raise ValueError(f"expected {self.n_inputs_} features, got {X.shape[1]}")
        if not np.logical_and.reduce(np.isfinite(X), axis=None):  # the ufunc: np.all's wrapper costs more on a row
            raise ValueError("events contain NaN or infinite values")
        return X

    @property
    def _folds(self) -> bool:
        """Whether this learner's events are folded (wider than ``fold.max_inputs``)."""
        return self.n_own_ is not None and self.n_own_ != self.n_inputs_

    def _unfold(self, X: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """Checked events as the parts read them: ``(wide, X)``, the events unfolded for the
        linear head where the learner folds them (``None`` otherwise), and the events the other
        parts read (folded where wide, ``fold``)."""
        return (X, self._fold.transform(X)) if self._folds else (None, X)

    @staticmethod
    def _take(wide: np.ndarray | None, which) -> np.ndarray | None:
        return None if wide is None else wide[which]

    def _featurize(self, Z: torch.Tensor) -> torch.Tensor:
        return self.features.featurize(Z)

    @property
    def feature_names_(self) -> list[Hashable] | None:
        """The features of river's events (``learn_one``, ``predict_proba_one``), fixed by the
        first one (:class:`~streamssl.learner.dict_rows.DictRows`)."""
        return self._rows.keys

    def _vector(self, x: dict, keep: bool = False) -> np.ndarray:
        """River's event ``x`` as a row. The row of the event :meth:`predict_proba_one` just
        read (``keep``) is given back once to :meth:`learn_one` of an equal event: each event is
        encoded once, and its values update the imputation means once."""
        last, self._last_row, row = self._last_row, None, None
        if last is not None:
            try:
                row = last[1] if last[0] == x else None
            except (TypeError, ValueError):  # values that do not compare to a bool (arrays)
                pass
        if row is None:
            row = self._rows(x)
        if keep:
            self._last_row = (dict(x), row)
        return row

    def _encode_labels(self, labels: Sequence[Hashable]) -> np.ndarray:
        for label in labels:
            if label not in self._class_index:
                self._class_index[label] = len(self.classes_)
                self.classes_.append(label)
        for head in (self.main, *self.heads.values()):
            if hasattr(head, "add_classes"):
                head.add_classes(len(self.classes_))
        return np.array([self._class_index[label] for label in labels], dtype=np.int64)

    # -------------------------------------------------------------- predicting
    @_in_threads
    def predict_proba_many(self, X: np.ndarray, keys: Sequence[Hashable] | None = None) -> np.ndarray:
        """Class probabilities, shape ``(n, len(classes_))``, columns in the order of ``classes_``
        (``keys``: each event's entity, for the temporal context)."""
        X = self._check(X)
        if self.head is None or not self.classes_:
            return np.zeros((len(X), len(self.classes_)))
        wide, X = self._unfold(X)
        A, Z = self.features.peek(X, keys)
        batch = self._batch(A, to_tensor(Z, self._device), wide)
        probas = {name: self._head_proba(name, batch) for name in self.mix.asked()}
        # Kept for learn_many of these very events: their labels are scored on what was served.
        self._last_served = (fingerprint(X), None if keys is None else list(keys), probas)
        return self._served(probas)

    def _take_served(self, X: np.ndarray, keys: Sequence[Hashable] | None) -> dict[str, np.ndarray] | None:
        """The heads' answers served for ``X`` by the last :meth:`predict_proba_many`, if nothing
        was learned since and they were these events (``None`` otherwise); taken once."""
        last, self._last_served = self._last_served, None
        if last is None or last[1] != (None if keys is None else list(keys)):
            return None
        return last[2] if last[0] == fingerprint(X) else None

    def _served(self, probas: dict[str, np.ndarray]) -> np.ndarray:
        """The answer from the heads' probabilities: combined, then calibrated."""
        return self._calibrated(self.mix.combine(probas))

    def _calibrated(self, combined: np.ndarray) -> np.ndarray:
        return combined if self.calibrator is None else self.calibrator.apply(combined)

    def _batch(self, A: np.ndarray, Z: torch.Tensor, wide: np.ndarray | None = None) -> Batch:
        return Batch(A, Z, self.n_own_, wide)

    def _head_proba(self, head: str, batch: Batch) -> np.ndarray:
        """One head's probabilities for ``batch``."""
        if head == "mlp":
            return self._proba(batch.Z).cpu().numpy().astype(np.float64)
        return self.heads[head].proba(batch, len(self.classes_))

    @property
    def head_weights(self) -> dict[str, float]:
        """Each head's share of the answers now (the combiner's weights, summing to 1)."""
        return self.mix.weights

    @property
    def selected_head(self) -> str:
        """The head with the largest share of the answers (with ``select``, the one that
        answers alone: ``mlp`` on the full features, ``raw`` the MLP on the event's own
        features, ``memory`` the nearest-neighbour memory, ``tree`` the forest, ``raw-tree`` the
        forest on the event's own features, or a plugged member's name)."""
        weights = self.mix.weights
        return max(weights, key=weights.get)

    def _proba(self, Z: torch.Tensor) -> torch.Tensor:
        return self.main.proba(Z, self._featurize)

    def predict_many(self, X: np.ndarray) -> list[Hashable | None]:
        """The most probable class of each event (``None`` before any label was seen)."""
        proba = self.predict_proba_many(X)
        if proba.shape[1] == 0:
            return [None] * len(proba)
        return [self.classes_[i] for i in proba.argmax(axis=1)]

    def predict_proba_one(self, x: dict) -> dict[Hashable, float]:
        if self.head is None:
            return {}
        proba = self.predict_proba_many(self._vector(x, keep=True))[0].astype(np.float64)
        return dict(zip(self.classes_, (proba / proba.sum()).tolist()))  # sums to 1 in float64 too

    # ---------------------------------------------------------------- learning
    def learn_one(self, x: dict, y: Hashable | None = None) -> None:
        """Learn one event. The temporal context and the standardiser take it at once (the
        next event's features see it). Its label is gathered with the next ones and learned by
        every part together (:data:`GATHER`, 9, at a time, as :meth:`learn_many` would learn
        them: the memory, linear head, forests, combiner, calibrator, drift monitor and
        pseudo-label policy), and the MLP heads learn the labels of ``one_batch`` events
        together. So a label reaches the predictions at most 8 labelled events later, the MLPs'
        at most ``one_batch - 1`` events later, and the per-event path pays a whole update per
        few labels, not per label. A label of a class not seen yet is learned at once (with
        those gathered before it). :meth:`learn_many` and :meth:`learn_late_labels` first learn
        what waits; a state (:meth:`state_dict`) holds it; :attr:`labels_used` counts the
        labels learned.

        A label given with the event that :meth:`predict_proba_one` just answered (river's
        test-then-train) is scored, for the combiner and the calibrator, on the heads' answers
        served then; they are not asked again."""
        self._group = math.inf
        try:
            self.learn_many(self._vector(x), [y])
        finally:
            self._group = 0.0
        self._since_flush += 1
        if self._since_flush >= self.one_batch:
            self._flush_heads()

    def _mlps(self) -> list[tuple[OnlineMLPClassifier, Callable[[torch.Tensor], torch.Tensor]]]:
        """The MLP heads, each with what makes its inputs of the standardised rows: the main one
        (and its challenger), and the one on the event's own features."""
        mlps = [(mlp, self._featurize) for mlp in (self.main.mlps if self.main is not None else ())]
        raw = self.heads.get("raw")
        return mlps if raw is None else [*mlps, (raw.mlp, raw.own)]

    def _set_groups(self) -> bool:
        """Before learning: the MLP heads gather labels inside learn_one, and the forests hold
        them for a chunk; both learn at once (with what waits) otherwise. True if what waited
        was learned now."""
        flushed = self._group == 0.0 and self._since_flush > 0
        if flushed:
            self._flush_heads()
        for mlp, _ in self._mlps():
            mlp.group = self._group
        for member in self.heads.values():
            if isinstance(member, RiverMember):
                member.wait = self._group != 0.0
        return flushed

    def _gathered_state(self) -> dict | None:
        if not self._gathered:
            return None
        Z, y, rows, served, wide = zip(*self._gathered)
        both = None if any(s is None or s.keys() != served[0].keys() for s in served) else {
            name: np.concatenate([s[name] for s in served]) for name in served[0]}
        return {"Z": torch.cat(Z).cpu(), "y": np.concatenate(y), "rows": np.concatenate(rows), "served": both,
                "wide": None if wide[0] is None else np.concatenate(wide)}

    def _learn_gathered(self) -> None:
        """Learn the labelled events that :meth:`learn_one` gathered, all together (scored on
        the answers served for each, where every one was served by the same heads)."""
        gathered = self._gathered_state()
        if gathered is None:
            return
        self._gathered = []
        labels = [self.classes_[c] for c in gathered["y"]]
        self._learn_labelled(gathered["Z"].to(self._device), labels, rows=gathered["rows"], served=gathered["served"],
                             wide=gathered["wide"])
        self._keep_shared(gathered["rows"], labels, gathered["wide"])

    def _flush_heads(self) -> None:
        """The labelled events gathered are learned, the MLP heads learn the labels waiting for
        their group, and the forests those they hold."""
        self._learn_gathered()
        self._since_flush = 0
        with torch_threads(self.threads):
            flush_together(self._mlps())  # in the same steps where they match
            for member in self.heads.values():
                if hasattr(member, "flush"):
                    member.flush()

    @_in_threads
    def learn_many(self, X: np.ndarray, y: Sequence[Hashable | None] | None = None,
                   keys: Sequence[Hashable] | None = None) -> None:
        """Learn from a micro-batch of new events; ``y[i]`` is ``None``/NaN when unlabelled
        (``keys``: each event's entity, for the temporal context)."""
        X = self._check(X)
        if len(X) == 0:
            return
        if y is None:
            y = [None] * len(X)
        if len(y) != len(X):
            raise ValueError(f"{len(X)} events but {len(y)} labels")
        if self.n_inputs_ is None:
            self._start(X.shape[1])
        wide, X = self._unfold(X)
        served = self._take_served(X, keys)
        if self._set_groups():
            served = None  # the heads first learned the labels that waited: their answers changed
        raw = X
        X, Z = self.features.learn(X, keys)
        self.n_seen += len(X)
        signals = self.monitor.signals
        if "features" in signals:
            self._react(self.monitor.update("features", raw, self.n_seen))
        if self.ssl is not None:
            steps = self.ssl.steps
            self.ssl.observe(Z)
            if "ssl_loss" in signals and self.ssl.steps > steps:
                self._react(self.monitor.update("ssl_loss", [self.ssl.last_loss], self.n_seen))
        Zt = to_tensor(Z, self._device)
        if "embedding" in signals:
            rows = Zt if self.ssl is None else self.ssl.embed(Zt)
            self._react(self.monitor.update("embedding", rows.detach().cpu().numpy(), self.n_seen))
        labelled = np.array([not _is_missing(v) for v in y])
        # Pseudo-labels are chosen by the head as it is before this batch's labels, and learned
        # together with them.
        unlabelled = ~labelled
        pseudo = None
        if unlabelled.any():
            pseudo = self._pseudo_label(_rows_of(Zt, unlabelled), np.flatnonzero(unlabelled), X[unlabelled],
                                        self._take(wide, unlabelled))
        else:
            self.last_pseudo_labels = (np.zeros(0, dtype=np.int64), [])
        if labelled.any():
            labels = [v for v, k in zip(y, labelled) if k]
            served = None if served is None else {k: _rows_of(p, labelled) for k, p in served.items()}
            if self._group == math.inf and pseudo is None and all(v in self._class_index for v in labels):
                self._gathered.append((_rows_of(Zt, labelled), np.array([self._class_index[v] for v in labels]),
                                       X[labelled], served, self._take(wide, labelled)))
                if sum(len(g[1]) for g in self._gathered) >= min(GATHER, self.one_batch):
                    self._learn_gathered()
            else:
                self._learn_gathered()
                self._learn_labelled(_rows_of(Zt, labelled), labels, pseudo, rows=X[labelled], served=served,
                                     wide=self._take(wide, labelled))
                self._keep_shared(X[labelled], labels, self._take(wide, labelled))
        elif pseudo is not None:
            Zp, yp = pseudo
            self.head.learn(Zp, yp, self._pseudo_weights(len(yp)), self._featurize, mass=0.0)

    @_in_threads
    def learn_late_labels(self, X: np.ndarray, y: Sequence[Hashable], keys: Sequence[Hashable] | None = None) -> None:
        """Learn labels that arrived late for events already given to :meth:`learn_many`."""
        X = self._check(X)
        keep = [i for i, v in enumerate(y) if not _is_missing(v)]
        if not keep:
            return
        if self.n_inputs_ is None:
            self._start(X.shape[1])
        wide, X = self._unfold(X)
        wide = self._take(wide, keep)
        self._set_groups()
        A, Z = self.features.recall(X[keep], None if keys is None else [keys[i] for i in keep])
        self._learn_labelled(to_tensor(Z, self._device), [y[i] for i in keep], rows=A, wide=wide)
        self._keep_shared(A, [y[i] for i in keep], wide)

    # -- labels shared between replicas (streamssl.distributed)
    def share_labelled(self, on: bool = True) -> None:
        """Keep (or stop keeping) the labelled events learned from now on, for
        :meth:`take_labelled`, and the statistics of the events seen, for :meth:`take_moments`:
        replicas of one daemon group learn each other's labels and standardise alike."""
        self._shared = [] if on else None
        self.features.share(on)

    def take_moments(self) -> tuple[int, np.ndarray, np.ndarray] | None:
        """Count, mean and sum of squared deviations of the events seen since the last call (as
        the heads see them, before standardisation); ``None`` if there were none.

        >>> import numpy as np
        >>> a, b = StreamLearner(seed=0, temporal=False), StreamLearner(seed=1, temporal=False)
        >>> a.share_labelled()
        >>> a.learn_many(np.array([[0.0], [2.0]]), [None, None])
        >>> b.learn_many(np.array([[4.0], [6.0]]), [None, None])
        >>> b.merge_moments(*a.take_moments())
        >>> b.standardizer.mean.tolist(), a.take_moments()
        ([3.0], None)
        """
        return self.features.take_moments()

    def encoder_state(self) -> dict[str, torch.Tensor] | None:
        """The self-supervised encoder's weights (its objective's networks), copied to the CPU;
        ``None`` without an encoder. Replicas average them (:meth:`load_encoder_state`)."""
        if self.ssl is None:
            return None
        return {k: v.detach().cpu().clone() for k, v in self.ssl.objective.state_dict().items()}

    def load_encoder_state(self, state: dict[str, torch.Tensor]) -> None:
        """Take encoder weights (e.g. the replicas' average); the optimiser's state stays."""
        if self.ssl is None:
            raise ValueError("this learner has no encoder")
        self._last_served = None
        self.ssl.objective.load_state_dict({k: v.to(self.ssl.device) for k, v in state.items()})

    def merge_moments(self, n: int, mean: np.ndarray, m2: np.ndarray) -> None:
        """Merge another replica's event statistics (:meth:`take_moments`) into the
        standardisation, as if this learner had seen those events too."""
        self._last_served = None
        self.features.merge_moments(n, mean, m2)

    def _keep_shared(self, rows: np.ndarray, labels: list[Hashable], wide: np.ndarray | None = None) -> None:
        if self._shared is not None:
            rows = rows if wide is None else np.hstack([rows, wide])  # the linear head's unfolded events too
            self._shared.append((np.array(rows, dtype=np.float32), list(labels)))

    @property
    def _shared_width(self) -> int:
        """Columns of a row :meth:`take_labelled` gives: the heads' rows, then, where events are
        folded, the unfolded event the linear head reads."""
        return (self.n_features_ or 0) + (self.n_inputs_ if self._folds else 0)

    def take_labelled(self) -> tuple[np.ndarray, list[Hashable]]:
        """The labelled events learned since the last call (with :meth:`share_labelled` on):
        rows as the heads saw them (the event's features and its temporal context, before
        standardisation) and their labels.

        >>> import numpy as np
        >>> a, b = StreamLearner(seed=0), StreamLearner(seed=1)
        >>> a.share_labelled()
        >>> a.learn_many(np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]), ["x", "y", None])
        >>> rows, labels = a.take_labelled()
        >>> rows.shape[0], labels, a.take_labelled()[1]
        (2, ['x', 'y'], [])
        >>> b.learn_many(np.array([[0.2, 0.8]]), [None])  # b has seen events, not labels
        >>> b.learn_shared(rows, labels)
        >>> b.classes_, b.labels_used
        (['x', 'y'], 2)
        """
        kept, self._shared = (self._shared or []), ([] if self._shared is not None else None)
        if not kept:
            return np.zeros((0, self._shared_width), dtype=np.float32), []
        return np.concatenate([r for r, _ in kept]), [v for _, ls in kept for v in ls]

    def kept_labelled(self) -> list[tuple[np.ndarray, list[Hashable]]]:
        """What :meth:`take_labelled` would return next, in parts, without taking it."""
        return list(self._shared or [])

    def learn_shared(self, rows: np.ndarray, labels: Sequence[Hashable]) -> None:
        """Learn labelled events another replica learned (:meth:`take_labelled`'s rows, which
        carry their own temporal context): standardised with this learner's statistics, then
        learned like late labels. They are not kept for sharing again."""
        rows = np.asarray(rows, dtype=np.float32)
        if len(rows) == 0:
            return
        if self.n_features_ is None:
            raise ValueError("learn_shared needs a learner that has seen events of its own first")
        if rows.shape[1] != self._shared_width:
            raise ValueError(f"shared rows have {rows.shape[1]} columns, this learner's take {self._shared_width}")
        rows, wide = rows[:, : self.n_features_], (rows[:, self.n_features_:] if self._folds else None)
        self._learn_labelled(to_tensor(self.standardizer.transform(rows), self._device), list(labels), rows=rows,
                             wide=wide)

    def _learn_labelled(self, Z: torch.Tensor, labels: list[Hashable],
                        pseudo: tuple[torch.Tensor, torch.Tensor] | None = None, *, rows: np.ndarray,
                        served: dict[str, np.ndarray] | None = None, wide: np.ndarray | None = None) -> None:
        """Learn labelled events ``Z`` (standardised; ``rows``: the same before standardisation)
        and the pseudo-labels riding along. ``served``: heads' answers already served for these
        events (:meth:`predict_proba_many` just before, nothing learned since); the heads scored,
        combined and calibrated on them need not answer again. ``wide``: the events unfolded, where
        the learner folds them (:attr:`Batch.wide`)."""
        known = len(self.classes_)
        y = self._encode_labels(labels)
        if len(self.classes_) != known:
            served = None  # a new class: the answers served had no column for it
        yt = torch.as_tensor(y, device=self._device)
        # Prequential error of the heads on these labels, before they learn them. A challenger
        # born from this very update is not scored on labels it has never had a chance at.
        challenger = self.challenger
        self._outcomes = {}
        batch = self._batch(rows, Z, wide)
        # Every head answers these events before any of them learns their labels.
        served = served or {}
        probas = {name: served[name] if name in served else self._head_proba(name, batch) for name in ("mlp", *self.heads)}
        main_ok = torch.as_tensor(probas["mlp"].argmax(1) == y, device=self._device)
        self._react(self.monitor.update("error", (~main_ok).float().tolist(), self.n_seen))
        for name, proba in probas.items():
            self._score(name, (proba.argmax(1) == y).tolist())
        lessons = []  # the MLP heads learn in the same steps as the main one, below
        for member in self.heads.values():
            if isinstance(member, OwnFeaturesMLP):
                lessons.append(member.lesson(batch, y))
            else:
                member.learn(batch, y)
        combined = self.mix.combine(probas)  # the answer as served, before anything learns
        served = self._calibrated(combined)
        confidence, right = served.max(1), served.argmax(1) == y
        self._recent_served.extend(zip(confidence.tolist(), right.tolist()))
        if "residual" in self.monitor.signals:
            self._react(self.monitor.update("residual", (right - confidence).tolist(), self.n_seen))
        if self.calibrator is not None:  # fitted on the combination before its weights learn
            self.calibrator.observe(combined, y)
        self.mix.update(self._outcomes)
        if challenger is not None and challenger is self.challenger:
            self.main.round(main_ok, Z, yt, self._featurize)
        self.policy.observe_labels(y, len(self.classes_))
        if self.pseudo_labels is not False:  # the audit of the answers the policy is offered
            offered = probas["memory"] if self.policy.source == "memory" and "memory" in probas else served
            self.policy.observe_answers(offered.max(1), offered.argmax(1) == y)
        ones = torch.ones(len(y), device=self._device)
        remember = torch.ones(len(y), dtype=torch.bool, device=self._device)
        if self.challenger is not None:
            lessons.append(Lesson(self.challenger, Z, yt, ones, self._featurize, remember))
        if pseudo is not None:
            # Pseudo-labels ride along in the steps that the true labels pay for; they are
            # never replayed.
            Zp, yp = pseudo
            Z, yt = torch.cat([Z, Zp]), torch.cat([yt, yp])
            ones = torch.cat([ones, self._pseudo_weights(len(yp))])
            remember = torch.cat([remember, torch.zeros(len(yp), dtype=torch.bool, device=self._device)])
        learn_together([*lessons, Lesson(self.head, Z, yt, ones, self._featurize, remember, mass=float(len(y)))])
        self.labels_used += len(y)
        self._last_served = None  # the heads learned: what they served before is not what they answer now

    def _score(self, head: str, correct: list[bool]) -> None:
        """A head's prequential outcomes on labelled events (before it learns them)."""
        tally = self.head_tally[head]
        tally[0] += len(correct)
        tally[1] += sum(correct)
        self._outcomes[head] = correct

    @property
    def calibration_error(self) -> float | None:
        """Expected calibration error (15 bins) of the served answer over the last 1,000
        labelled events, each answered before its label was learned (``None`` before any)."""
        served = list(self._recent_served)  # one step: a scrape's thread may read while a batch learns
        if not served:
            return None
        recent = Reliability()
        confidence, correct = zip(*served)
        recent.add(confidence, correct)
        return recent.calibration_error

    @property
    def experts(self) -> dict[str, dict[str, float | None]]:
        """Each head that exists: ``weight``, its share of the answers now (its ``ewa`` weight;
        with ``select``, 1 for the selected head and 0 for the others), and ``accuracy``,
        prequential on every labelled event (``None`` before the first).

        >>> model = StreamLearner(seed=0)
        >>> model.learn_many(np.eye(3), [0, 1, 1])
        >>> experts = model.experts
        >>> sorted(experts), round(sum(e["weight"] for e in experts.values()), 6)
        (['linear', 'memory', 'mlp', 'raw', 'raw-tree', 'tree'], 1.0)
        >>> select = StreamLearner(seed=0, combiner="select")
        >>> select.learn_many(np.eye(3), [0, 1, 1])
        >>> sorted(e["weight"] for e in select.experts.values())  # one head answers alone
        [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
        """
        return {name: {"weight": weight,
                       "accuracy": self.head_tally[name][1] / self.head_tally[name][0] if self.head_tally[name][0]
                       else None}
                for name, weight in self.mix.weights.items()}

    def _pseudo_weights(self, n: int) -> torch.Tensor:
        return torch.full((n,), self.policy.weight, device=self._device)

    def _pseudo_label(self, Z: torch.Tensor, positions: np.ndarray, rows: np.ndarray,
                      wide: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Watch the confidence on unlabelled events and pick those the policy accepts: by the
        served answer (combined and calibrated, so the threshold is a calibrated confidence), or
        the memory's with the policy's ``source="memory"``."""
        self.last_pseudo_labels = (np.zeros(0, dtype=np.int64), [])
        if len(Z) == 0 or not self.classes_:
            return None
        proba = self._proba(Z)
        self.last_confidence = float(proba.max(1).values.mean())
        self._react(self.monitor.update("confidence", [self.last_confidence], self.n_seen))
        if "entropy" in self.monitor.signals and proba.shape[1] > 1:
            entropy = -(proba * proba.clamp_min(1e-12).log()).sum(1).mean() / math.log(proba.shape[1])
            self._react(self.monitor.update("entropy", [float(entropy)], self.n_seen))
        if self.pseudo_labels is False:
            return None
        memory = self.heads.get("memory")
        if self.policy.source == "memory":
            # Co-training: the memory, another learner over another view, labels for the MLP.
            if memory is None or len(memory.memory) < memory.memory.k:
                return None
            proba = memory.memory.predict_proba(self._raw(Z), len(self.classes_)).cpu().numpy()
        else:  # the served answer, so that the threshold is a calibrated confidence
            batch = self._batch(rows, Z, wide)
            proba = self._served({name: self._head_proba(name, batch) for name in self.mix.asked()})
        familiar = None if self.policy.support is None or memory is None else (
            memory.memory.familiar(self._raw(Z), self.policy.support).cpu().numpy())
        picked, labels = self.policy.select(proba, self.n_seen, familiar)
        if len(picked) == 0:
            return None
        self.last_pseudo_labels = (positions[picked], [self.classes_[c] for c in labels])
        idx = torch.as_tensor(picked, device=self._device)
        return Z[idx], torch.as_tensor(labels, device=self._device)

    # ----------------------------------------------------------- drift response
    def _react(self, events: list[DriftEvent]) -> None:
        """The response (the monitor's ``respond``): on a warning or drift, a background head starts
        learning from the labels that come (it replaces the main head once it proves better);
        on a drift, pseudo-labelling pauses for the policy's ``cooldown`` events, the encoder
        learns at its ``drift_boost`` times its rate for its ``boost_events``, and the two-sample tests take a
        new reference."""
        if not self.monitor.respond:
            return
        for event in events:
            if event.level == "drift":
                self.policy.pause(self.n_seen)
                if self.ssl is not None and self._encoder.drift_boost != 1.0:
                    self.ssl.boost(self._encoder.drift_boost, max(1, self._encoder.boost_events // self.ssl.every))
                if event.signal not in VECTOR_SIGNALS:  # a two-sample test that fired takes a new reference itself
                    self.monitor.refresh()
            self.main.challenge(self._group)

    @property
    def drift_events(self) -> Sequence[DriftEvent]:
        """Drift detections so far, oldest first (the most recent ``monitor.history``); read-only."""
        return self.monitor.events

    @property
    def drift_in_progress(self) -> bool:
        """A warning or drift was signalled and its background head has not yet won or given up."""
        return self.challenger is not None

    @property
    def pseudo_labels_accepted(self) -> int:
        return self.policy.accepted

    @property
    def ssl_loss(self) -> float | None:
        return None if self.ssl is None else self.ssl.last_loss

    def ssl_stats(self) -> dict | None:
        """The encoder's objective, steps, latest loss and collapse measures (``None`` without
        an encoder); see :meth:`~streamssl.ssl.continual.ContinualEncoder.collapse_stats`."""
        if self.ssl is None:
            return None
        return {"objective": self.objective, "steps": self.ssl.steps, "loss": self.ssl.last_loss,
                **self.ssl.collapse_stats()}

    # ------------------------------------------------------------- save/restore
    def state_dict(self) -> dict:
        """Everything the learner has learned, as plain data, tensors and river detectors."""
        main = self.main.state_dict() if self.main is not None else {
            "head": None, "challenger": None, "duel": [0, 0, 0], "heads_made": 0, "swaps": 0}
        return {
            "params": self._get_params(),
            "n_features": self.n_features_,
            "feature_names": self.feature_names_,
            "rows": self._rows.state_dict(),
            "classes": list(self.classes_),
            "standardizer": self.standardizer.state_dict(),
            "policy": self.policy.state_dict(),
            "monitor": self.monitor.state_dict(),
            "ssl": None if self.ssl is None else self.ssl.state_dict(),
            "head": main["head"],
            "challenger": main["challenger"],
            "n_inputs": self.n_inputs_,
            "context": None if self.context is None else self.context.state_dict(),
            "members": {name: member.state_dict() for name, member in self.heads.items()},
            "combiner": self.mix.state_dict(),
            "gathered": self._gathered_state(),
            "calibrator": None if self.calibrator is None else self.calibrator.state_dict(),
            "head_tally": {k: list(v) for k, v in self.head_tally.items()},
            "counters": {
                "duel": main["duel"], "heads_made": main["heads_made"], "n_seen": self.n_seen,
                "labels_used": self.labels_used, "swaps": main["swaps"], "since_flush": self._since_flush,
            },
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> "StreamLearner":
        """Rebuild a learner from :meth:`state_dict` (see :mod:`streamssl.state.checkpoint`)."""
        model = cls(**_arguments(state["params"]))
        if state["n_inputs"] is not None:
            model._start(state["n_inputs"])
        model._rows.load_state_dict(state.get("rows"), state["feature_names"])
        if state["context"] is not None:
            model.context.load_state_dict(state["context"])
        # Checkpoints before streamssl.learner.members kept the heads under their own keys.
        members = state.get("members") or {"memory": state.get("memory"), "raw": state.get("raw_head"),
                                           "tree": state.get("forest")}
        for name, member_state in members.items():
            if member_state is not None and name in model.heads:
                model.heads[name].load_state_dict(member_state)
        model.head_tally.update({k: list(v) for k, v in state.get("head_tally", {}).items()})  # absent in older checkpoints
        if "combiner" in state:
            model.mix.load_state_dict(state["combiner"])
        elif isinstance(model.mix, EWA):  # checkpoints before streamssl.learner.combine
            model.mix.load_state_dict({"logw": state.get("head_logw", {})})
        else:
            model.mix.load_state_dict({"scores": state["head_scores"]})
        if state.get("calibrator") is not None:
            model.calibrator.load_state_dict(state["calibrator"])
        model._encode_labels(state["classes"])
        model.standardizer.load_state_dict(state["standardizer"])
        model.policy.load_state_dict(state["policy"])
        model.monitor.load_state_dict(state["monitor"])
        if state["ssl"] is not None:
            model.ssl.load_state_dict(state["ssl"])
        counters = state["counters"]
        if state["head"] is not None:
            model.main.load_state_dict({"head": state["head"], "challenger": state["challenger"],
                                        "duel": counters["duel"], "heads_made": counters["heads_made"],
                                        "swaps": counters["swaps"]})
        model.n_seen, model.labels_used = counters["n_seen"], counters["labels_used"]
        model._since_flush = counters.get("since_flush", 0)
        gathered = state.get("gathered")  # absent in checkpoints from before learn_one gathered labels
        if gathered is not None:
            model._gathered = [(gathered["Z"].to(model._device), gathered["y"], gathered["rows"], gathered["served"],
                                gathered.get("wide"))]  # absent before wide events were folded
        return model
