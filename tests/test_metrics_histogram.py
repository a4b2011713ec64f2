"""The batched histogram exposes what prometheus_client's Histogram would, for the same values."""

import numpy as np
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from streamssl.metrics.histogram import BatchHistogram
from streamssl.metrics.registry import CONFIDENCE_BUCKETS


def test_batch_histogram_exposes_the_samples_of_prometheus_clients_histogram():
    values = np.random.default_rng(0).random(2000)
    values[:20] = 0.9  # on a bound: in its bucket (le)
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram("streamssl_prediction_confidence", "Top class probability.", buckets=CONFIDENCE_BUCKETS,
                          registry=theirs)
    for v in values:
        histogram.observe(float(v))
    batched = BatchHistogram("streamssl_prediction_confidence", "Top class probability.", buckets=CONFIDENCE_BUCKETS,
                             registry=ours)
    for part in np.array_split(values, 7):
        batched.observe_many(part)

    def samples(registry):
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in generate_latest(registry).decode().splitlines()
                if line and not line.startswith("#") and "_created" not in line}

    a, b = samples(theirs), samples(ours)
    assert a.keys() == b.keys() and len(a) == len(CONFIDENCE_BUCKETS) + 3  # the buckets, +Inf, count and sum
    assert all(a[k] == b[k] for k in a if not k.endswith("_sum"))
    assert abs(a["streamssl_prediction_confidence_sum"] - b["streamssl_prediction_confidence_sum"]) < 1e-9
