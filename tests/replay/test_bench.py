import json

import pytest

from streamssl import cli
from streamssl.replay.bench import BenchSettings, ModelRun, _child, _curve_point, available_models, bench
from streamssl.replay.run import bundled_sample

pytestmark = pytest.mark.slow  # whole benchmark runs: `pytest -m "not slow and not kafka"` leaves them out

REPLAY_KEYS = {"events", "accuracy", "kappa", "events_per_second", "peak_rss_mb", "labels_used",
               "pseudo_labels_accepted", "pseudo_label_precision", "drifts", "drift_events", "ssl", "experts",
               "accuracy_after_first_batch", "majority_rate", "no_change_accuracy", "rows_rejected", "label_column",
               "calibration_error", "estimated_accuracy", "reliability"}


def test_bench_command_writes_the_json_schema_and_a_plot(tmp_path, capsys):
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    code = cli.main(["bench", str(bundled_sample()), "--limit", "1280", "--label-rate", "0.1", "--window", "200",
                     "--models", "streamssl,streamssl-pseudo,river-nb,no-change", "--json", str(out),
                     "--plot", str(png), "--quiet"])
    assert code == 0
    doc = json.loads(out.read_text())
    assert set(doc) == {"stream", "label_rate", "label_delay", "seed", "label_column", "rows_rejected", "runs"}
    assert (doc["stream"], doc["label_rate"], doc["label_delay"], doc["seed"]) == ("elec2_sample.csv.gz", 0.1, 0, 0)
    # --peer-features both (the default): each peer on raw features and on streamssl's context stage
    assert [r["model"] for r in doc["runs"]] == ["streamssl", "streamssl-pseudo", "river-nb", "river-nb+context",
                                                 "no-change"]
    for run in doc["runs"]:
        assert set(run) == {"model"} | REPLAY_KEYS
        assert run["events"] == 1280
    # The same seeded mask for every model: the same labels.
    assert len({r["labels_used"] for r in doc["runs"]}) == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    table = capsys.readouterr().out
    assert "no-change" in table and "river-nb" in table


def test_each_model_gets_a_curve_of_windowed_accuracy():
    runs = bench(bundled_sample(), ["streamssl", "no-change"], BenchSettings(limit=2000, window=500, label_rate=1.0))
    assert [r.error for r in runs] == [None, None]
    by = {r.model: r for r in runs}
    # With micro-batches of 64 the last label seen is a weak baseline (the probe found .51).
    assert by["streamssl"].result["accuracy"] > by["no-change"].result["accuracy"] > 0.4
    for run in runs:
        xs = [x for x, _ in run.curve]
        assert xs == sorted(xs) and xs[0] >= 500 and xs[-1] <= 2000
        assert all(0.0 <= acc <= 1.0 for _, acc in run.curve)
    # The learner's members' shares of the answers, at the curve's own points; a peer has none.
    weights = by["streamssl"].weights
    assert [x for x, _ in weights] == [x for x, _ in by["streamssl"].curve] and by["no-change"].weights == []
    assert all(set(w) == {"mlp", "raw", "memory", "tree", "raw-tree", "linear"} and abs(sum(w.values()) - 1) < 1e-9 for _, w in weights)
    assert len({tuple(sorted(w.items())) for _, w in weights}) > 1  # they move as the members are scored


def test_the_plot_has_a_panel_of_the_members_weights_when_streamssl_ran(tmp_path):
    from streamssl.replay.plot import accuracy_plot

    curve = [(100 * i, 0.5 + 0.01 * i) for i in range(1, 9)]
    weights = [(x, {"mlp": 0.5, "tree": 0.5 - 0.05 * i, "memory": 0.05 * i}) for i, (x, _) in enumerate(curve)]
    runs = [ModelRun("streamssl", {"accuracy": 0.55}, curve, weights), ModelRun("no-change", {"accuracy": 0.5}, curve)]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    accuracy_plot(runs, tmp_path / "with.png", "t", 100)
    accuracy_plot(runs[1:], tmp_path / "without.png", "t", 100)
    assert plt.get_fignums() == before  # closed after saving
    from PIL import Image

    assert Image.open(tmp_path / "with.png").size[1] > Image.open(tmp_path / "without.png").size[1]


def test_the_plot_has_each_models_reliability_diagram_with_its_ece():
    from streamssl.replay.plot import model_styles, reliability_panel
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = [{"low": 0.6, "high": 0.7, "events": 10, "confidence": 0.65, "accuracy": 0.6},
            {"low": 0.9, "high": 1.0, "events": 30, "confidence": 0.95, "accuracy": 0.9}]
    runs = [ModelRun("streamssl", {"reliability": bins, "calibration_error": 0.05}),
            ModelRun("no-change", {"reliability": []})]  # nothing scored: no line
    fig, ax = plt.subplots()
    reliability_panel(ax, runs, model_styles([r.model for r in runs]))
    diagonal, line = ax.get_lines()
    assert list(line.get_xdata()) == [0.65, 0.95] and list(line.get_ydata()) == [0.6, 0.9]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["streamssl  (ECE 0.050)"]
    plt.close(fig)


def test_unknown_models_are_refused_before_anything_runs(capsys):
    with pytest.raises(ValueError, match="unknown model"):
        bench(bundled_sample(), ["streamssl", "river-zzz"])
    assert cli.main(["bench", "--models", "river-zzz", "--quiet"]) == 2
    assert "unknown model(s) river-zzz" in capsys.readouterr().err
    assert {"streamssl", "streamssl-no-ssl", "streamssl-no-pseudo", "river-arf", "river-hat", "river-lr",
            "river-nb", "no-change"} <= set(available_models())


def test_a_failing_model_is_reported_not_raised(tmp_path):
    messages = []

    class Sink:
        put = staticmethod(messages.append)

    _child("streamssl", str(tmp_path / "missing.csv"), BenchSettings(), Sink)
    kind, run = messages[-1]
    assert kind == "done" and run["error"] and "missing.csv" in run["error"]
    assert ModelRun(**run).to_json() == {"model": "streamssl"}


def test_curve_point_is_accuracy_over_the_last_window_of_scored_events():
    history = [(0, 0, 0), (100, 100, 50), (200, 200, 140), (300, 250, 180)]
    assert _curve_point(history, 1000) is None
    assert _curve_point(history, 150) == (300, (180 - 50) / (250 - 100))


@pytest.mark.parametrize("features, expected", [
    ("raw", ["streamssl", "river-arf", "no-change"]),
    ("same", ["streamssl", "river-arf+context", "no-change"]),
    ("both", ["streamssl", "river-arf", "river-arf+context", "no-change"]),
])
def test_peer_features_choose_the_peers_inputs(features, expected):
    from streamssl.replay.bench import with_peer_features

    assert with_peer_features(["streamssl", "river-arf", "no-change"], features) == expected


def test_a_peer_with_context_sees_the_same_features_as_streamssl():
    import numpy as np

    from streamssl.learner.temporal import TemporalContext
    from streamssl.replay.bench import build_model

    peer = build_model("river-nb+context", 0, ["a", "b"])
    X = np.random.default_rng(0).normal(size=(10, 2))
    peer.learn_many(X, [0, 1] * 5)
    ctx = TemporalContext()
    expected = ctx.update(X)
    assert np.allclose(peer.context.recall(X), expected)
    assert peer.model.feature_names[2:4] == ["a-ema4", "b-ema4"]


def test_part_settings_reach_every_streamssl_model_that_has_the_part():
    from streamssl.replay.bench import build_model

    parts = {"mlp": {"max_steps": 3}, "memory": {"k": 3}, "pseudo_labels": {"warmup": 10}}
    default = build_model("streamssl", 0, ["a"], parts=parts)
    assert default.mlp.max_steps == 3 and default.memory.k == 3
    assert default.pseudo_labels is False  # off by default: settings for every model do not switch it on
    baseline = build_model("streamssl-baseline", 0, ["a"], parts=parts)
    assert baseline.memory is False and baseline.mlp.max_steps == 3  # switched off by the model: stays off
    pseudo = build_model("streamssl-pseudo", 0, ["a"], parts=parts)
    assert pseudo.pseudo_labels.warmup == 10
    assert build_model("streamssl", 0, ["a"]).mlp is None  # no settings: the learner's defaults


def test_bench_part_flags_are_checked_first_and_written_to_the_json(tmp_path, capsys):
    assert cli.main(["bench", "--models", "streamssl", "--part", "mlp.steps_max=3", "--quiet"]) == 2
    assert "--part: part mlp (MLPHead) has no setting steps_max" in capsys.readouterr().err
    out = tmp_path / "bench.json"
    code = cli.main(["bench", str(bundled_sample()), "--limit", "640", "--models", "streamssl", "--part",
                     "mlp.max_steps=3", "--json", str(out), "--quiet"])
    assert code == 0
    assert json.loads(out.read_text())["parts"] == {"mlp": {"max_steps": 3}}
