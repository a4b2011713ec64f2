"""Streams from river itself, kept out of the suite: its bundled real datasets and its drift
generators, written once as CSV (numeric features, then ``label``) under ``benchmarks/.cache``.

No setting of the learner was chosen on them: they are a wider check of how the defaults chosen
on the suite do elsewhere (``python benchmarks/suite.py --river-streams``). The generators'
settings were fixed before any model ran on them, with their drifts where a stream of this length
shows them (a third and two thirds in, or the middle), and are not to be tuned.

>>> sorted(STREAMS)[:3]
['agrawal_abrupt', 'bananas', 'hyperplane']
>>> rows = list(_take(STREAMS["sea_gradual"].make(), 2))
>>> len(rows), sorted(rows[0][0])
(2, [0, 1, 2])
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

SYNTH_EVENTS = 20_000


@dataclass(frozen=True)
class RiverStream:
    make: Callable[[], Iterable[tuple[dict, object]]]
    events: int | None  # None: the whole dataset
    note: str


def _take(rows: Iterable, n: int | None) -> Iterator:
    return iter(rows) if n is None else itertools.islice(rows, n)


def _phishing():
    from river import datasets
    return datasets.Phishing()


def _image_segments():
    from river import datasets
    return datasets.ImageSegments()


def _bananas():
    from river import datasets
    return datasets.Bananas()


def _hyperplane():
    from river.datasets import synth
    return synth.Hyperplane(seed=1, n_features=10, n_drift_features=5, mag_change=0.001, noise_percentage=0.05,
                            sigma=0.1)


def _rbf_drift():
    from river.datasets import synth
    return synth.RandomRBFDrift(seed_model=1, seed_sample=1, n_classes=5, n_features=10, n_centroids=50,
                                change_speed=0.001, n_drift_centroids=25)


def _agrawal_abrupt():
    from river.datasets import synth
    third = SYNTH_EVENTS // 3
    first = synth.ConceptDriftStream(synth.Agrawal(classification_function=1, seed=1),
                                     synth.Agrawal(classification_function=4, seed=2), position=third, width=100, seed=1)
    return synth.ConceptDriftStream(first, synth.Agrawal(classification_function=7, seed=3), position=2 * third,
                                    width=100, seed=2)


def _sea_gradual():
    from river.datasets import synth
    return synth.ConceptDriftStream(synth.SEA(variant=0, noise=0.1, seed=1), synth.SEA(variant=3, noise=0.1, seed=2),
                                    position=SYNTH_EVENTS // 2, width=2_000, seed=1)


def _led_drift():
    from river.datasets import synth
    return synth.ConceptDriftStream(synth.LEDDrift(seed=1, noise_percentage=0.1, irrelevant_features=True,
                                                   n_drift_features=1),
                                    synth.LEDDrift(seed=2, noise_percentage=0.1, irrelevant_features=True,
                                                   n_drift_features=7),
                                    position=SYNTH_EVENTS // 2, width=1_000, seed=1)


def _waveform():
    from river.datasets import synth
    return synth.Waveform(seed=1, has_noise=True)


STREAMS: dict[str, RiverStream] = {
    "phishing": RiverStream(_phishing, None, "river's bundled Phishing: 1,250 web pages, 9 features, phishing or not"),
    "image_segments": RiverStream(_image_segments, None,
                                  "river's bundled ImageSegments: 2,310 image regions, 18 features, 7 classes"),
    "bananas": RiverStream(_bananas, None, "river's bundled Bananas: 5,300 points, 2 features, 2 classes"),
    "hyperplane": RiverStream(_hyperplane, SYNTH_EVENTS, "river's Hyperplane: 10 features, 5 of them drifting "
                              "gradually all along (mag_change 0.001), 5 % label noise"),
    "rbf_drift": RiverStream(_rbf_drift, SYNTH_EVENTS, "river's RandomRBFDrift: 10 features, 5 classes, 25 of 50 "
                             "centroids moving (speed 0.001)"),
    "agrawal_abrupt": RiverStream(_agrawal_abrupt, SYNTH_EVENTS, "river's Agrawal: 9 features, functions 1 → 4 → 7, "
                                  "switches over 100 events a third and two thirds in"),
    "sea_gradual": RiverStream(_sea_gradual, SYNTH_EVENTS, "river's SEA: 3 features, variant 0 → 3 over 2,000 events "
                               "at the middle, 10 % label noise"),
    "led_drift": RiverStream(_led_drift, SYNTH_EVENTS, "river's LEDDrift: 24 binary features (17 irrelevant), 10 "
                             "digits, 10 % noise; 1 → 7 drifting features over 1,000 events at the middle"),
    "waveform": RiverStream(_waveform, SYNTH_EVENTS, "river's Waveform with noise: 40 features, 3 classes, stationary"),
}


def write_csv(name: str, path: Path) -> None:
    """Write stream ``name`` to ``path`` (gzip CSV: its features in their first row's order, then
    ``label``; booleans as 0/1). Generated with fixed seeds, so the same bytes every time."""
    stream = STREAMS[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.GzipFile(tmp, "wb", mtime=0) as raw, io.TextIOWrapper(raw, newline="") as f:
        writer, names = csv.writer(f), None
        for x, y in _take(stream.make(), stream.events):
            if names is None:
                names = list(x)
                writer.writerow([str(n) for n in names] + ["label"])
            writer.writerow([_value(x[n]) for n in names] + [_value(y)])
    tmp.replace(path)


def _value(v: object) -> object:
    return int(v) if isinstance(v, bool) else v
