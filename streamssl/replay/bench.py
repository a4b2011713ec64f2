"""Side-by-side benchmark: streamssl and peers on one recorded stream, same labels, same protocol.

Each model runs in a fresh process (so its peak RSS is its own) through the prequential loop of
:mod:`streamssl.replay.prequential`, with the same seeded label mask and delay. A child streams
its progress to the parent and ends with its replay result and a curve of accuracy over a
sliding window of scored events (for plots).
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from river import forest

from ..learner.forest import BatchForest
from ..sources.file import FileOptions
from ..ssl import OBJECTIVE_NAMES

STREAMSSL_MODELS: dict[str, dict] = {
    "streamssl": {},  # the defaults
    # Ablations, explicit whatever the defaults are:
    "streamssl-no-temporal": {"temporal": False},  # no temporal context stage (so no raw-feature head either)
    "streamssl-no-memory": {"memory": False},  # no nearest-neighbour memory head
    "streamssl-no-selection": {"raw_head": False, "memory": False},  # one MLP head, on the temporal features
    "streamssl-baseline": {"temporal": False, "memory": False},  # one MLP on the raw features (the default of release 0.1)
    "streamssl-no-ssl": {"encoder": False},
    "streamssl-no-pseudo": {"pseudo_labels": False},
    # The mechanisms switched on (they did not win the tables):
    "streamssl-ssl": {"encoder": True},
    "streamssl-pseudo": {"pseudo_labels": True},  # the MLP's own confident predictions
    "streamssl-pseudo-threshold-only": {"pseudo_labels": {"audit": None, "support": None}},  # no guard by the labels
    "streamssl-pseudo-no-audit": {"pseudo_labels": {"audit": None}},  # the support guard without the audit
    "streamssl-cotrain": {"pseudo_labels": {"source": "memory"}},  # the memory's, for the MLP
    "streamssl-ssl-pseudo": {"encoder": True, "pseudo_labels": True},
    "streamssl-trees": {"trees": True},  # the heads that split (BatchForest on the same features and the own), explicit
    "streamssl-no-trees": {"trees": False},
    "streamssl-no-raw-tree": {"raw_tree": False},
    # River's adaptive random forests as the two forest members: the default before 2026-12-05.
    "streamssl-river-forest": {"trees": forest.ARFClassifier()},
    # Twice the trees in the forest on the event's own features alone (benchmarks/results/forest-size).
    "streamssl-raw-forest-20": {"raw_tree": BatchForest(n_models=20)},
    "streamssl-batch-forest": {"trees": BatchForest()},  # our forest as arrays (the default since 2026-12-05), explicit  # the forest on the context alone: the default before 2026-12-04
    "streamssl-linear": {"linear": True},  # the linear head (logistic regression on the own features), explicit
    # The linear head as it was before 2026-12-05: softmax regression on the learner's standardisation.
    "streamssl-linear-softmax": {"linear": {"link": "softmax", "scale": False}},
    "streamssl-no-linear": {"linear": False},  # without it: the default before 2026-12-03
    "streamssl-uncalibrated": {"calibrate": False},  # the combined answer served as it is
    "streamssl-uniform-replay": {"mlp": {"balanced_replay": False}},  # replay drawn uniformly: the default before 2026-12-03
    "streamssl-no-smoothing": {"mlp": {"label_smoothing": 0.0}},  # the MLP heads on one-hot targets: the default before 2026-12-05
    # The MLP heads' smoothing constant, not fading with the labels: the default of 2026-12-05 (evening).
    "streamssl-constant-smoothing": {"mlp": {"smoothing_halved_at": None}},
    "streamssl-ewa": {"combiner": "ewa"},  # heads averaged by weights on their 0/1 errors, fixed share
    "streamssl-select": {"combiner": "select"},  # the head with the best recent accuracy answers alone
    # Self-supervision over time: the learned context instead of the moving averages (one MLP head).
    "streamssl-temporal-ssl": {"temporal_ssl": True, "raw_head": False, "memory": False},
}
"""streamssl configurations by benchmark name: keyword arguments of
:func:`~streamssl.learner.build_learner` (a part by the mapping of its settings)."""
for _objective in OBJECTIVE_NAMES:  # the encoder with each objective, pseudo-labels on (benchmarks/OBJECTIVES.md)
    STREAMSSL_MODELS[f"streamssl-ssl-pseudo-{_objective}"] = {"encoder": {"objective": _objective},
                                                              "pseudo_labels": True}

DEFAULT_MODELS = ["streamssl", "streamssl-ssl", "streamssl-pseudo", "river-arf", "river-hat", "river-lr",
                  "river-nb", "no-change"]


def available_models() -> list[str]:
    """Every model name ``bench`` accepts."""
    from .peers import CAPYMOA_PEERS, PEERS, capymoa_available

    from .peers import CONTEXT_SUFFIX

    peers = [*PEERS, *(CAPYMOA_PEERS if capymoa_available() else ())]
    return [*STREAMSSL_MODELS, *peers, *(p + CONTEXT_SUFFIX for p in peers if p != "no-change")]


def with_peer_features(models: list[str], peer_features: str) -> list[str]:
    """Expand peer names for ``--peer-features``: ``raw`` as given, ``same`` with streamssl's
    temporal context stage (``NAME+context``), ``both`` each peer in both forms.

    A model named twice, or once by name and once by expansion, runs once:

    >>> with_peer_features(["streamssl", "river-arf", "no-change"], "both")
    ['streamssl', 'river-arf', 'river-arf+context', 'no-change']
    >>> with_peer_features(["river-arf+context", "river-arf", "river-lr"], "both")
    ['river-arf+context', 'river-arf', 'river-lr', 'river-lr+context']
    """
    from .peers import CONTEXT_SUFFIX

    out: dict[str, None] = {}  # ordered, each once
    for m in models:
        is_peer = m not in STREAMSSL_MODELS and m != "no-change" and not m.endswith(CONTEXT_SUFFIX)
        if not is_peer or peer_features == "raw":
            out[m] = None
        elif peer_features == "same":
            out[m + CONTEXT_SUFFIX] = None
        else:
            out.update({m: None, m + CONTEXT_SUFFIX: None})
    return list(out)


@dataclass(frozen=True)
class BenchSettings:
    """The protocol every model of one benchmark shares."""

    label_rate: float = 0.05
    label_delay: int = 0
    seed: int = 0
    batch_size: int = 64
    limit: int | None = None
    threads: int = 1
    window: int = 1000  # scored events per point of the accuracy curve
    file: FileOptions = FileOptions()  # how the file's columns are read
    # Settings of the learner's parts for every streamssl model (``--part``; a part that a model
    # does not have, switched off or off by default, stays off), e.g. {"mlp": {"max_steps": 64}}.
    parts: dict = field(default_factory=dict)


@dataclass
class ModelRun:
    """One model's outcome: the replay result (the replay JSON keys), its accuracy curve, or an error."""

    model: str
    result: dict = field(default_factory=dict)
    curve: list[tuple[int, float]] = field(default_factory=list)  # (event index, windowed accuracy)
    weights: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # (event index, member weights)
    error: str | None = None

    def to_json(self) -> dict:
        return {"model": self.model, **self.result}


def build_model(name: str, seed: int, feature_names: list[str], classes: Callable[[], list] | None = None,
                parts: dict | None = None):
    """A fresh model by benchmark name, ready for the prequential loop (``classes`` lists the
    stream's labels, for peers that need them up front; ``parts``: settings of a streamssl
    model's parts, see :class:`BenchSettings`)."""
    from ..learner import build_learner
    from .peers import CAPYMOA_PEERS, CONTEXT_SUFFIX, PEERS, CapyMOABatchAdapter, RiverBatchAdapter, WithTemporalContext

    if name.endswith(CONTEXT_SUFFIX):
        base = name[: -len(CONTEXT_SUFFIX)]
        return WithTemporalContext(lambda names: build_model(base, seed, names, classes), feature_names)
    if name in STREAMSSL_MODELS:
        model = build_learner(seed=seed, **STREAMSSL_MODELS[name])
        # Only the parts this model has: a part it switches off (or that is off by default,
        # as pseudo-labels) is not switched on by settings given for every model.
        own = {part: values for part, values in (parts or {}).items() if getattr(model, part, None) is not False}
        return build_learner(seed=seed, parts=own, **STREAMSSL_MODELS[name]) if own else model
    if name in PEERS:
        return RiverBatchAdapter(PEERS[name](seed), feature_names)
    if name in CAPYMOA_PEERS and classes is not None:
        return CapyMOABatchAdapter(CAPYMOA_PEERS[name], feature_names, classes(), seed)
    raise ValueError(f"unknown model {name!r}; known: {', '.join(available_models())}")


def _curve_point(history: list[tuple[int, int, int]], window: int) -> tuple[int, float] | None:
    """Accuracy over the last ``window`` scored events, from (events, scored, correct) totals."""
    events, scored, correct = history[-1]
    for _, s0, c0 in reversed(history):
        if scored - s0 >= window:
            return events, (correct - c0) / (scored - s0)
    return None


def run_model(name: str, path: str, settings: BenchSettings, send: Callable[[tuple], None]) -> ModelRun:
    """Replay ``path`` with one model in this process, reporting progress through ``send``."""
    import torch

    from .prequential import prequential
    from .run import DeadLetters

    torch.set_num_threads(settings.threads)
    run = ModelRun(name)
    probe = settings.file.source(path, limit=1, on_bad=lambda bad: None)
    next(iter(probe), None)

    def classes() -> list:
        # In the order they first appear, as river's learners and streamssl meet them: MOA breaks
        # ties toward its first class, and sorted names made that the majority class of luxembourg and the usenets.
        seen = {label: None for batch in settings.file.source(path, limit=settings.limit, on_bad=lambda bad: None)
                for label in batch.y if label is not None}
        return list(seen)

    model = build_model(name, settings.seed, probe.feature_names, classes, settings.parts)
    dead = DeadLetters()
    source = settings.file.source(path, batch_size=settings.batch_size, limit=settings.limit, on_bad=dead)
    history: list[tuple[int, int, int]] = [(0, 0, 0)]
    summary = None
    for step in prequential(source, model, settings.label_rate, settings.label_delay, settings.seed):
        summary = step.summary
        history.append((summary.events, summary.scored, summary.correct))
        point = _curve_point(history, settings.window)
        if point is not None and (not run.curve or point[0] - run.curve[-1][0] >= settings.window // 4):
            run.curve.append(point)
            if hasattr(model, "experts"):  # the members' shares of the answers at the same moments
                run.weights.append((point[0], {name: e["weight"] for name, e in model.experts.items()}))
        send(("progress", name, summary.events, summary.accuracy))
    if summary is None:
        rejected = f" ({dead.count} rows rejected: {dead.by_reason})" if dead.count else ""
        raise ValueError(f"{path}: no events to replay{rejected}")
    summary.rows_rejected = dict(dead.by_reason)
    summary.label_column = source.label_name
    run.result = summary.to_json()
    if hasattr(model, "abstained"):  # a CapyMOA peer: events MOA gave no votes for, answered with the class prior
        run.result["abstained"] = model.abstained
    return run


def _child(name: str, path: str, settings: BenchSettings, queue) -> None:
    try:
        run = run_model(name, path, settings, queue.put)
    except Exception as exc:  # reported to the parent, which goes on with the other models
        run = ModelRun(name, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
    queue.put(("done", asdict(run)))


def bench(
    path: str | Path,
    models: list[str],
    settings: BenchSettings = BenchSettings(),
    on_progress: Callable[[str, int, float], None] | None = None,
) -> list[ModelRun]:
    """Run every model, one fresh process each, one after the other (so timings do not compete).

    Examples
    --------
    >>> from streamssl.replay.run import bundled_sample
    >>> runs = bench(bundled_sample(), ["streamssl", "no-change"], BenchSettings(limit=640))
    >>> [(r.model, r.result["events"], r.error) for r in runs]
    [('streamssl', 640, None), ('no-change', 640, None)]
    """
    unknown = [m for m in models if m not in available_models()]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(available_models())}")
    ctx = mp.get_context("spawn")
    runs = []
    for name in models:
        queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=(name, str(path), settings, queue), daemon=True)
        proc.start()
        done = None
        while done is None:
            try:
                message = queue.get(timeout=1.0)
            except Exception:  # queue.Empty: check that the child is still alive
                if not proc.is_alive():
                    done = asdict(ModelRun(name, error=f"process died with exit code {proc.exitcode}"))
                continue
            if message[0] == "progress" and on_progress is not None:
                on_progress(*message[1:])
            elif message[0] == "done":
                done = message[1]
        proc.join()
        runs.append(ModelRun(**{**done, "curve": [tuple(p) for p in done["curve"]],
                                 "weights": [tuple(p) for p in done.get("weights", [])]}))
    return runs


def bench_json(path: str | Path, settings: BenchSettings, runs: list[ModelRun]) -> dict:
    """The benchmark JSON: ``{"stream", "label_rate", "label_delay", "seed", "label_column",
    "rows_rejected", "runs": [...]}`` (the file's label column and rejected rows by reason are
    the same for every model)."""
    ok = [r for r in runs if r.error is None]
    doc = {
        "stream": Path(path).name, "label_rate": settings.label_rate, "label_delay": settings.label_delay,
        "seed": settings.seed, "label_column": ok[0].result.get("label_column") if ok else None,
        "rows_rejected": ok[0].result.get("rows_rejected", {}) if ok else {},
        "runs": [r.to_json() for r in ok],
    }
    if settings.parts:
        doc["parts"] = settings.parts
    return doc

